//! Quantization error bounds per type, on llama.cpp's synthetic data (with its published bounds)
//! and on real weights (with bounds measured here, stated below), plus the error of quantized dot
//! products against the exact dot product.

mod common;

use uma_gguf::{GgmlType, GgufFile};
use uma_kernels::{dequantize, quantize, vec_dot, vec_dot_type};
use uma_test_models::TestModel;

/// llama.cpp `tests/test-quantize-fns.cpp`: `MAX_QUANTIZATION_TOTAL_ERROR` (its metric is
/// `sqrt(Σ err²) / n` on `0.1 + 2·cos(i)`, n = 4096).
const LLAMA_MAX_TOTAL_ERROR: f64 = 0.002;
/// llama.cpp `MAX_QUANTIZATION_TOTAL_ERROR_2BITS` / `_3BITS`, for Q2_K / Q3_K (uma has no
/// quantizers for those yet; kept to document the pairing).
#[allow(dead_code)]
const LLAMA_MAX_TOTAL_ERROR_2BITS: f64 = 0.0075;
#[allow(dead_code)]
const LLAMA_MAX_TOTAL_ERROR_3BITS: f64 = 0.0040;
/// llama.cpp `MAX_DOT_PRODUCT_ERROR` (metric `|dot − ref| / n`); `_LOWBIT` (0.04) applies to
/// Q2_K, which uma cannot quantize yet.
const LLAMA_MAX_DOT_PRODUCT_ERROR: f64 = 0.02;

/// Types uma can quantize weights to, with their activation pairing. llama.cpp holds MXFP4 to
/// the default bounds too (only NVFP4 gets the looser `_FP4` ones).
const WEIGHT_TYPES: [GgmlType; 9] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::MXFP4,
];

fn round_trip(ty: GgmlType, data: &[f32]) -> Vec<f32> {
    let mut bytes = vec![0u8; ty.bytes_for(data.len() as u64).expect("whole blocks") as usize];
    quantize(ty, data, &mut bytes).expect("quantize");
    let mut out = vec![0.0f32; data.len()];
    dequantize(ty, &bytes, &mut out).expect("dequantize");
    out
}

fn quantized_dot(ty: GgmlType, weights: &[f32], activations: &[f32]) -> f64 {
    let act_ty = vec_dot_type(ty).expect("has a dot product");
    let mut w = vec![0u8; ty.bytes_for(weights.len() as u64).expect("whole") as usize];
    quantize(ty, weights, &mut w).expect("quantize weights");
    let mut a = vec![0u8; act_ty.bytes_for(activations.len() as u64).expect("whole") as usize];
    quantize(act_ty, activations, &mut a).expect("quantize activations");
    f64::from(vec_dot(ty, &w, &a).expect("dot"))
}

fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// RMS error relative to the data's RMS.
fn relative_rms(data: &[f32], approx: &[f32]) -> f64 {
    let err: f64 = data.iter().zip(approx).map(|(&x, &y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = data.iter().map(|&x| f64::from(x).powi(2)).sum();
    (err / norm).sqrt()
}

/// Max over blocks of (max abs error / the block's max magnitude).
fn relative_block_max(ty: GgmlType, data: &[f32], approx: &[f32]) -> f64 {
    let n = ty.block_size();
    data.chunks(n)
        .zip(approx.chunks(n))
        .map(|(x, y)| {
            let amax = x.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
            let err = x.iter().zip(y).fold(0.0f64, |m, (&a, &b)| m.max(f64::from(a - b).abs()));
            if amax > 0.0 {
                err / amax
            } else {
                err
            }
        })
        .fold(0.0, f64::max)
}

#[test]
fn llama_cpp_test_quantize_fns_bounds() {
    // generate_data(offset, n): 0.1 + 2·cosf(i + offset), n = 32·128.
    let n = 32 * 128;
    let data: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
    let data2: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32 + 1.0).cos()).collect();
    for ty in WEIGHT_TYPES.into_iter().chain([GgmlType::Q8_K]) {
        let back = round_trip(ty, &data);
        let sum_sq: f64 = data.iter().zip(&back).map(|(&x, &y)| f64::from(x - y).powi(2)).sum();
        let total_error = sum_sq.sqrt() / n as f64;
        assert!(total_error <= LLAMA_MAX_TOTAL_ERROR, "{ty}: total error {total_error}");
        if ty != GgmlType::Q8_K {
            let error =
                (quantized_dot(ty, &data, &data2) - dot_f64(&data, &data2)).abs() / n as f64;
            assert!(error <= LLAMA_MAX_DOT_PRODUCT_ERROR, "{ty}: dot product error {error}");
        }
    }
}

/// Bounds on real weights (Gemma 3 270M: `blk.0.attn_v` (Q8_0), the first 160K values of
/// `token_embd` (Q8_0), `blk.0.ffn_gate` (Q5_0), dequantized to f32): (type, RMS error / data
/// RMS, max error / block max). The RMS column and the K-quants' max column are measured here
/// (largest of the three sets) and rounded up by ~20-25%; the legacy types' max column is the
/// analytic bound (Q4_0: d = amax/8 when the clamped extreme is hit, + f16 rounding of d; Q4_1:
/// d/2 = range/30; …). Re-quantizing to the type a tensor is stored in is (nearly) lossless, so
/// each type is also measured on the sets stored in other types.
const REAL_DATA_BOUNDS: [(GgmlType, f64, f64); 9] = [
    (GgmlType::Q4_0, 0.14, 0.126),
    (GgmlType::Q4_1, 0.11, 1.0 / 15.0 + 3.0 / 2048.0),
    (GgmlType::Q5_0, 0.07, 1.0 / 16.0 + 0.001),
    (GgmlType::Q5_1, 0.053, 1.0 / 31.0 + 3.0 / 2048.0),
    (GgmlType::Q8_0, 0.0078, 1.0 / 254.0 + 1.0 / 2048.0),
    (GgmlType::Q4_K, 0.1, 0.125),
    // Measured rms up to 0.042, max up to 0.049 (2026-12-05).
    (GgmlType::Q5_K, 0.052, 0.06),
    (GgmlType::Q6_K, 0.027, 0.025),
    // Measured rms up to 0.131; the max is analytic: below a quarter of the block maximum.
    (GgmlType::MXFP4, 0.16, 0.25),
];

/// Real weights as f32, from three Gemma 3 270M tensors.
fn real_weights() -> Vec<(String, Vec<f32>)> {
    let file = GgufFile::open(uma_test_models::path(TestModel::Gemma3_270m)).expect("opens");
    let mut sets = Vec::new();
    for (name, max_elements) in [
        ("blk.0.attn_v.weight", usize::MAX),
        ("token_embd.weight", 163_840),
        ("blk.0.ffn_gate.weight", usize::MAX),
    ] {
        let tensor = file.tensor(name).expect("tensor exists");
        let n = (tensor.num_elements() as usize).min(max_elements);
        let bytes = tensor.ggml_type().bytes_for(n as u64).expect("whole blocks") as usize;
        let mut values = vec![0.0f32; n];
        dequantize(tensor.ggml_type(), &tensor.data()[..bytes], &mut values).expect("dequantize");
        sets.push((name.to_owned(), values));
    }
    sets
}

#[test]
fn real_weights_round_trip_within_bounds() {
    let sets = real_weights();
    let mut failures = Vec::new();
    for (ty, rms_bound, max_bound) in REAL_DATA_BOUNDS {
        for (name, data) in &sets {
            let back = round_trip(ty, data);
            let rms = relative_rms(data, &back);
            let max = relative_block_max(ty, data, &back);
            eprintln!("{ty} on {name}: rms {rms:.5} (bound {rms_bound}), max {max:.5} (bound {max_bound:.5})");
            if rms > rms_bound || max > max_bound {
                failures.push(format!("{ty} on {name}: rms {rms}, block max {max}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn real_weights_dot_products_within_bounds() {
    // Weights: attn_v; activations: token embeddings (layer 0's real inputs, up to scale).
    // Each 4096-element slice is one dot product. The error of a quantized dot product is
    // ≈ (r_w + r_a)·‖w‖‖a‖/√n for relative RMS errors r_w, r_a that are uncorrelated with the
    // other operand; the bound allows 5x that, with r from REAL_DATA_BOUNDS (Q8_1/Q8_K
    // activations: Q8_0's bound).
    let sets = real_weights();
    let (weights, activations) = (&sets[0].1, &sets[1].1);
    let n = 4096;
    let r_activation = REAL_DATA_BOUNDS[4].1;
    let mut failures = Vec::new();
    for (ty, r_weight, _) in REAL_DATA_BOUNDS {
        let mut worst = 0.0f64;
        for (w, a) in weights.chunks_exact(n).zip(activations.chunks_exact(n)) {
            let norm = dot_f64(w, w).sqrt() * dot_f64(a, a).sqrt();
            let error = (quantized_dot(ty, w, a) - dot_f64(w, a)).abs() / norm;
            worst = worst.max(error);
        }
        let bound = 5.0 * (r_weight + r_activation) / (n as f64).sqrt();
        eprintln!("{ty}: worst normalized dot error {worst:.6} (bound {bound:.6})");
        if worst > bound {
            failures.push(format!("{ty}: normalized dot error {worst} > {bound}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
