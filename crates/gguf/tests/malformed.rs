//! Every kind of malformed input named in the format's contract yields its typed error, with the
//! offset or tensor that is wrong.

mod common;

use common::{sample_writer, RawGguf};
use uma_gguf::{GgufError, GgufFile, GgufHeader};

fn parse(bytes: &[u8]) -> GgufError {
    GgufHeader::parse(bytes).expect_err("malformed input must be refused")
}

#[test]
fn bad_magic() {
    assert!(matches!(parse(b"GGML\x03\0\0\0"), GgufError::BadMagic { found } if found == b"GGML"));
    let message = parse(b"\x7fELF\x02").to_string();
    assert!(message.contains(r#"starts with "\x7fELF""#), "{message}");
    assert!(matches!(parse(b"GG"), GgufError::BadMagic { .. }));
    assert!(matches!(parse(b""), GgufError::BadMagic { .. }));
    let message = parse(b"\x7fELF....").to_string();
    assert!(message.contains("not a GGUF file"), "{message}");
}

#[test]
fn unsupported_versions_and_big_endian() {
    for version in [0, 1, 4, 0xFFFF] {
        let bytes = RawGguf::header(version, 0, 0).build();
        assert!(
            matches!(parse(&bytes), GgufError::UnsupportedVersion { version: v } if v == version)
        );
    }
    let mut big_endian = b"GGUF".to_vec();
    big_endian.extend_from_slice(&3u32.to_be_bytes());
    big_endian.extend_from_slice(&[0; 16]);
    assert!(matches!(parse(&big_endian), GgufError::BigEndian));
}

#[test]
fn empty_file_with_valid_header_parses() {
    let header = GgufHeader::parse(&RawGguf::header(3, 0, 0).build()).unwrap();
    assert!(header.tensors.is_empty() && header.metadata.is_empty());
}

#[test]
fn truncation_at_every_offset_of_the_header_is_an_error() {
    let bytes = sample_writer().to_bytes();
    let header = GgufHeader::parse(&bytes).unwrap();
    let first_tensor = header.tensors.iter().map(|t| t.absolute_offset).min().unwrap();
    for len in 0..first_tensor as usize {
        let err = GgufHeader::parse(&bytes[..len]).expect_err("truncated header");
        assert!(
            matches!(
                err,
                GgufError::Truncated { .. }
                    | GgufError::BadMagic { .. }
                    | GgufError::CountTooLarge { .. }
                    | GgufError::TensorOutOfBounds { .. }
            ),
            "cut at {len}: {err}"
        );
    }
    // Cutting into the data section is caught as data out of bounds.
    let err = GgufHeader::parse(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, GgufError::TensorOutOfBounds { .. }), "{err}");
}

#[test]
fn truncation_error_names_offset_and_field() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("general.architecture").u32(8).u64(10).bytes.extend_from_slice(b"lla");
    match parse(&raw.build()) {
        GgufError::Truncated { offset, what, needed, available } => {
            assert_eq!((offset, what, needed, available), (64, "string value", 10, 3));
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn string_length_beyond_the_file() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.u64(u64::MAX).u64(0).u64(0);
    // The key's length field is at 24; its bytes would start at 32, where only 16 remain.
    assert!(matches!(
        parse(&raw.build()),
        GgufError::Truncated { offset: 32, what: "metadata key", available: 16, .. }
    ));
}

#[test]
fn array_length_beyond_the_file() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(9).u32(4).u64(1 << 40);
    match parse(&raw.build()) {
        GgufError::CountTooLarge { what, count, limit, .. } => {
            assert_eq!((what, count, limit), ("array element", 1 << 40, 0));
        }
        other => panic!("unexpected {other}"),
    }
    // Even a count that would fit the bytes is capped: no array this long is real.
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(9).u32(0).u64(uma_gguf::MAX_ARRAY_LENGTH + 1);
    raw.bytes.resize(raw.bytes.len() + uma_gguf::MAX_ARRAY_LENGTH as usize + 1, 0);
    assert!(matches!(parse(&raw.build()), GgufError::CountTooLarge { .. }));
}

#[test]
fn absurd_counts() {
    let bytes = RawGguf::header(3, u64::MAX, 0).build();
    assert!(matches!(parse(&bytes), GgufError::CountTooLarge { what: "tensor", offset: 8, .. }));
    let bytes = RawGguf::header(3, 0, 1 << 50).build();
    assert!(matches!(parse(&bytes), GgufError::CountTooLarge { offset: 16, .. }));
}

#[test]
fn unknown_value_type_invalid_bool_and_bad_utf8() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(13).u32(0);
    assert!(matches!(parse(&raw.build()), GgufError::UnknownValueType { type_id: 13, .. }));

    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(7).u8(2);
    assert!(matches!(parse(&raw.build()), GgufError::InvalidBool { value: 2, .. }));

    let mut raw = RawGguf::header(3, 0, 1);
    raw.u64(2).bytes.extend_from_slice(&[0xC3, 0x28]);
    raw.u32(4).u32(0);
    assert!(matches!(parse(&raw.build()), GgufError::InvalidUtf8 { offset: 32 }));
}

#[test]
fn deeply_nested_arrays_are_refused_without_overflowing_the_stack() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(9);
    for _ in 0..100_000 {
        raw.u32(9).u64(1);
    }
    raw.u32(0).u64(0);
    assert!(matches!(parse(&raw.build()), GgufError::NestingTooDeep { .. }));
}

#[test]
fn duplicate_keys_and_tensors() {
    let mut raw = RawGguf::header(3, 0, 2);
    raw.kv_u32("a", 1).kv_u32("a", 2);
    assert!(matches!(parse(&raw.build()), GgufError::DuplicateKey { key, .. } if key == "a"));

    let mut raw = RawGguf::header(3, 2, 0);
    raw.tensor("w", &[8], 0, 0).tensor("w", &[8], 0, 32).data(64);
    assert!(
        matches!(parse(&raw.build()), GgufError::DuplicateTensor { tensor, .. } if tensor == "w")
    );
}

#[test]
fn bad_alignment() {
    for value in [0, 3, 48, u32::MAX] {
        let mut raw = RawGguf::header(3, 0, 1);
        raw.kv_u32("general.alignment", value);
        assert!(matches!(parse(&raw.build()), GgufError::BadAlignment { .. }), "{value}");
    }
}

#[test]
fn too_many_dimensions() {
    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[1, 1, 1, 1, 1], 0, 0).data(4);
    assert!(matches!(parse(&raw.build()), GgufError::TooManyDimensions { num_dims: 5, .. }));
}

#[test]
fn element_count_overflow() {
    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[1 << 32, 1 << 32, 2], 0, 0).data(4);
    assert!(matches!(parse(&raw.build()), GgufError::ElementCountOverflow { .. }));
    // The element count fits but the byte count does not.
    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[1 << 62, 2], 0, 0).data(4);
    assert!(matches!(parse(&raw.build()), GgufError::ElementCountOverflow { .. }));
}

#[test]
fn unknown_ggml_type_and_partial_block() {
    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[32], 4, 0).data(32);
    assert!(matches!(parse(&raw.build()), GgufError::UnknownGgmlType { type_id: 4, .. }));

    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[16, 2], 2, 0).data(64);
    assert!(matches!(parse(&raw.build()), GgufError::PartialBlock { row_length: 16, .. }));
}

#[test]
fn tensor_data_out_of_bounds() {
    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[16], 0, 0).data(63);
    let err = parse(&raw.build());
    assert!(matches!(err, GgufError::TensorOutOfBounds { ref tensor, .. } if tensor == "w"));
    assert!(err.to_string().contains("beyond the end of the file"));

    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[1], 0, u64::MAX - 31).data(64);
    assert!(matches!(parse(&raw.build()), GgufError::TensorOutOfBounds { .. }));
}

#[test]
fn misaligned_tensor_data() {
    let mut raw = RawGguf::header(3, 1, 0);
    raw.tensor("w", &[1], 0, 4).data(64);
    assert!(matches!(
        parse(&raw.build()),
        GgufError::MisalignedTensor { data_offset: 4, alignment: 32, .. }
    ));
}

#[test]
fn overlapping_tensors() {
    let mut raw = RawGguf::header(3, 2, 0);
    raw.tensor("a", &[16], 0, 0).tensor("b", &[8], 0, 32).data(96);
    assert!(matches!(parse(&raw.build()), GgufError::OverlappingTensors { .. }));
    // Adjacent is fine.
    let mut raw = RawGguf::header(3, 2, 0);
    raw.tensor("a", &[8], 0, 0).tensor("b", &[8], 0, 32).data(64);
    GgufHeader::parse(&raw.build()).unwrap();
}

#[test]
fn errors_reach_callers_of_from_bytes_and_open() {
    assert!(matches!(GgufFile::from_bytes(b"nope".to_vec()), Err(GgufError::BadMagic { .. })));
    let path = std::env::temp_dir().join(format!("uma-bad-{}.gguf", std::process::id()));
    std::fs::write(&path, b"GGUF\x09\0\0\0").unwrap();
    let err = GgufFile::open(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, GgufError::UnsupportedVersion { version: 9 }));
}
