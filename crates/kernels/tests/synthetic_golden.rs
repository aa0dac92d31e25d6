//! Formats and edge cases the real models do not exercise, against gguf-py
//! (`scripts/golden/synthetic.py`):
//! - `golden/synthetic/<TYPE>.bin`: random blocks; `digests.tsv` holds the sha256 of gguf-py's
//!   dequantization (and `<TYPE>.expected.f32` the values themselves, for diagnostics);
//! - `golden/quantize/<TYPE>.f32` → `<TYPE>.bin`: gguf-py's quantizers, which our quantizers
//!   must reproduce byte for byte.

mod common;

use uma_gguf::GgmlType;

/// Every type gguf-py 0.19 can dequantize that uma supports. MXFP4's blocks include the edge
/// exponents (0, 1, 2, 252 … 255), whose values are subnormal or overflow to ±inf in both.
const SYNTHETIC_TYPES: &[&str] = &[
    "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    "MXFP4",
];

/// Every type gguf-py 0.19 can quantize that uma supports (it has no K-quant quantizers).
const QUANTIZE_TYPES: &[&str] = &["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4"];

fn parse_type(name: &str) -> GgmlType {
    GgmlType::from_name(name).unwrap_or_else(|| panic!("unknown ggml type {name} in goldens"))
}

#[test]
fn synthetic_dequantization_matches_gguf_py() {
    let dir = common::golden_dir().join("synthetic");
    let rows = common::tsv_rows(&dir.join("digests.tsv"));
    let listed: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    for ty in SYNTHETIC_TYPES {
        assert!(listed.contains(ty), "digests.tsv has no row for {ty}");
    }
    let mut failures = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), 3, "malformed digests.tsv row {row:?}");
        let ty = parse_type(&row[0]);
        let num_elements: usize = row[1].parse().expect("num_elements is an integer");
        let bytes = common::read_golden(&dir.join(format!("{}.bin", row[0])));
        let mut out = vec![0.0f32; num_elements];
        if let Err(e) = uma_kernels::dequantize(ty, &bytes, &mut out) {
            failures.push(format!("{ty}: {e}"));
            continue;
        }
        let digest = common::sha256_f32(&out);
        if digest != row[2] {
            let expected_path = dir.join(format!("{}.expected.f32", row[0]));
            let detail = match std::fs::read(&expected_path) {
                Ok(expected) => {
                    let expected = common::f32s(&expected);
                    let bad: Vec<usize> = (0..num_elements.min(expected.len()))
                        .filter(|&i| out[i].to_bits() != expected[i].to_bits())
                        .collect();
                    match bad.first() {
                        Some(&i) => format!(
                            "{} elements differ, first at {i}: {:e} ({:#010x}) vs {:e} ({:#010x})",
                            bad.len(),
                            out[i],
                            out[i].to_bits(),
                            expected[i],
                            expected[i].to_bits()
                        ),
                        None => "values equal but digest differs (length?)".to_owned(),
                    }
                }
                Err(_) => "no .expected.f32 for details".to_owned(),
            };
            failures.push(format!("{ty}: sha256 {digest} vs golden {}: {detail}", row[2]));
        }
    }
    assert!(failures.is_empty(), "synthetic dequantization differs:\n{}", failures.join("\n"));
}

#[test]
fn quantization_matches_gguf_py_bytes() {
    let dir = common::golden_dir().join("quantize");
    let mut failures = Vec::new();
    for name in QUANTIZE_TYPES {
        let ty = parse_type(name);
        let input = common::f32s(&common::read_golden(&dir.join(format!("{name}.f32"))));
        let expected = common::read_golden(&dir.join(format!("{name}.bin")));
        let mut ours = vec![0u8; expected.len()];
        if let Err(e) = uma_kernels::quantize(ty, &input, &mut ours) {
            failures.push(format!("{ty}: {e}"));
            continue;
        }
        let block_bytes = ty.type_size();
        let bad: Vec<usize> = (0..expected.len() / block_bytes)
            .filter(|&b| {
                ours[b * block_bytes..][..block_bytes] != expected[b * block_bytes..][..block_bytes]
            })
            .collect();
        if let Some(&first) = bad.first() {
            let range = first * block_bytes..(first + 1) * block_bytes;
            failures.push(format!(
                "{ty}: {} of {} blocks differ; first is block {first}:\n  ours   {}\n  gguf-py {}",
                bad.len(),
                expected.len() / block_bytes,
                common::hex(&ours[range.clone()]),
                common::hex(&expected[range])
            ));
        }
    }
    assert!(failures.is_empty(), "quantized bytes differ from gguf-py:\n{}", failures.join("\n"));
}
