//! Property tests: decoding arbitrary bytes never panics, and quantize → dequantize stays within
//! the per-type error bound on arbitrary finite data.

use proptest::prelude::*;
use uma_gguf::GgmlType;
use uma_kernels::{can_dequantize, dequantize, quantize};

/// Every type with a dequantizer.
fn dequantizable() -> Vec<GgmlType> {
    GgmlType::all().filter(|&t| can_dequantize(t)).collect()
}

/// Max error / block max magnitude: analytic for the legacy types and MXFP4 (see the unit
/// tests), and for the K-quants a safe margin over measured values (≤ 0.1 for Q4_K, ≤ 0.02 for
/// Q6_K).
fn max_error_bound(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::Q4_0 => 0.125 + 0.001,
        GgmlType::Q4_1 => 1.0 / 15.0 + 3.0 / 2048.0,
        GgmlType::Q5_0 => 1.0 / 16.0 + 0.001,
        GgmlType::Q5_1 => 1.0 / 31.0 + 3.0 / 2048.0,
        GgmlType::Q8_0 | GgmlType::Q8_1 => 1.0 / 254.0 + 1.0 / 2048.0,
        GgmlType::Q8_K => 1.0 / 254.0 + 1e-6,
        GgmlType::Q4_K => 0.2,
        GgmlType::Q6_K => 0.05,
        // Block maxima in [8d, 16d) on a grid up to 12d: clipping and the widest gap (8d..12d)
        // both stay below amax/4; the scale is an exact power of two.
        GgmlType::MXFP4 => 0.25,
        other => panic!("no bound for {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dequantize_never_panics(type_index in 0usize..16, num_blocks in 0usize..4, seed in any::<u64>()) {
        let types = dequantizable();
        let ty = types[type_index % types.len()];
        let mut state = seed;
        let bytes: Vec<u8> = (0..num_blocks * ty.type_size())
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let mut out = vec![0.0f32; num_blocks * ty.block_size()];
        prop_assert!(dequantize(ty, &bytes, &mut out).is_ok());
        // Wrong lengths are errors, not panics.
        prop_assert!(dequantize(ty, &bytes, &mut vec![0.0f32; out.len() + ty.block_size()]).is_err());
        if !bytes.is_empty() {
            prop_assert!(dequantize(ty, &bytes[1..], &mut out).is_err());
        }
    }

    #[test]
    fn quantize_round_trip_within_bound(
        type_index in 0usize..9,
        values in prop::collection::vec(-1000.0f32..1000.0, 256),
        // Inputs stay within what the formats can represent: Q4_1/Q5_1 store the block minimum
        // itself as f16, so |x| must stay below 65504 (|x| ≤ 1000·2⁶ = 64000). Beyond that ggml
        // overflows to inf as well: it is outside the format's domain, not a rounding error.
        magnitude in -20i32..=6,
    ) {
        let types = [
            GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
            GgmlType::Q8_0, GgmlType::Q8_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::MXFP4,
        ];
        let ty = types[type_index];
        let scale = 2.0f32.powi(magnitude);
        let data: Vec<f32> = values.iter().map(|&v| v * scale).collect();
        let mut bytes = vec![0u8; ty.bytes_for(256).expect("whole") as usize];
        quantize(ty, &data, &mut bytes).expect("quantize");
        let mut back = vec![0.0f32; 256];
        dequantize(ty, &bytes, &mut back).expect("dequantize");
        for (x, y) in data.chunks(ty.block_size()).zip(back.chunks(ty.block_size())) {
            let amax = x.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
            let err = x.iter().zip(y).fold(0.0f64, |m, (&a, &b)| m.max(f64::from(a - b).abs()));
            // Tiny blocks get subnormal f16 scales (step 2⁻²⁴): allow that step times the
            // largest level (128) and the min's rounding, ≈ 5e-6 absolute.
            prop_assert!(
                err <= max_error_bound(ty) * amax + 5e-6,
                "{}: block error {} vs amax {}", ty, err, amax
            );
        }
    }
}
