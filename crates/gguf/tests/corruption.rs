//! Property tests: corrupting a valid file in any way yields an error or a valid parse, never a
//! panic, and whatever parses is internally consistent (every view lies inside the file).

mod common;

use proptest::prelude::*;
use uma_gguf::GgufFile;

fn check(bytes: Vec<u8>) {
    let len = bytes.len() as u64;
    if let Ok(file) = GgufFile::from_bytes(bytes) {
        for t in file.tensors() {
            assert!(t.file_offset() + t.data().len() as u64 <= len);
            assert_eq!(t.data().len() as u64, t.info().size_in_bytes);
        }
    }
}

fn sample() -> Vec<u8> {
    common::sample_writer().to_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn flipped_bytes(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = sample();
        for (index, mask) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= mask;
        }
        check(bytes);
    }

    #[test]
    fn rewritten_lengths(
        index in any::<prop::sample::Index>(),
        value in prop_oneof![
            Just(u64::MAX), Just(u64::MAX / 2), Just(1u64 << 32), Just(1u64 << 40),
            Just(0u64), 0u64..64, any::<u64>()
        ],
    ) {
        // Length and count fields are u64 at arbitrary offsets: overwrite 8 bytes anywhere.
        let mut bytes = sample();
        let i = index.index(bytes.len() - 8);
        bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
        check(bytes);
    }

    #[test]
    fn truncated_and_extended(cut in any::<prop::sample::Index>(), extra in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = sample();
        bytes.truncate(cut.index(bytes.len()));
        bytes.extend_from_slice(&extra);
        check(bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_start(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"GGUF\x03\0\0\0".to_vec();
        bytes.extend_from_slice(&tail);
        check(bytes);
    }
}
