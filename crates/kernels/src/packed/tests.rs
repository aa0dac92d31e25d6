//! Parity: the scalar kernel on the packed layout is bit-identical to the scalar reference
//! [`crate::vec_dot`] on the original blocks, and every SIMD path this CPU supports is
//! bit-identical to the scalar kernel, for every packed format, token count and padding case.
//!
//! The float formats (fused multiply-adds in f32 where `vec_dot` sums f32 products in f64) are
//! within a stated rounding bound of `vec_dot`, and every path is bit-identical to their scalar
//! kernel.

use rand::Rng;
use uma_gguf::GgmlType;

use super::*;
use crate::formats::test_support::{bytes, gaussian, rng, scale, uniform};

/// The quantized formats, bit-identical to `vec_dot`.
fn quantized_formats() -> impl Iterator<Item = PackedFormat> {
    PackedFormat::ALL.into_iter().filter(|f| !f.is_float())
}

/// F32, F16 and BF16, within a rounding bound of `vec_dot`.
fn float_formats() -> impl Iterator<Item = PackedFormat> {
    PackedFormat::ALL.into_iter().filter(|f| f.is_float())
}

/// Weights from quantizing Gaussian values (realistic), or raw random bytes with finite scales
/// (every bit pattern of quants, sub-scales and mins, including Q8_0's −128; MXFP4 exponents
/// for scales 2⁻¹⁰ … 2⁻²). Raw float weights are Gaussian values scaled by 2⁻¹⁶ … 2⁷ (F16
/// subnormals included) and some zeros.
fn weights(
    format: PackedFormat,
    num_rows: usize,
    row_length: usize,
    seed: u64,
    raw: bool,
) -> Vec<u8> {
    let ty = format.ggml_type();
    let n = ty.bytes_for((num_rows * row_length) as u64).expect("fits") as usize;
    // Formats without a quantizer (Q5_K, Q3_K, Q2_K) take raw blocks either way.
    if !raw && crate::can_quantize(ty) {
        let mut out = vec![0u8; n];
        crate::quantize(ty, &gaussian(num_rows * row_length, seed), &mut out).expect("quantize");
        return out;
    }
    if format.is_float() {
        let mut r = rng(seed + 2);
        let values: Vec<f32> = gaussian(num_rows * row_length, seed)
            .into_iter()
            .map(|v| {
                if r.gen_range(0..16) == 0 {
                    0.0
                } else {
                    v * (r.gen_range(-16..8i32) as f32).exp2()
                }
            })
            .collect();
        let mut out = vec![0u8; n];
        crate::quantize(ty, &values, &mut out).expect("quantize");
        return out;
    }
    let mut out = bytes(n, seed);
    let mut r = rng(seed + 1);
    for block in out.chunks_exact_mut(ty.type_size()) {
        let d = scale(&mut r).to_le_bytes();
        match format {
            PackedFormat::Q6_K => block[208..210].copy_from_slice(&d),
            PackedFormat::Q3_K => block[108..110].copy_from_slice(&d),
            PackedFormat::Q2_K => {
                block[80..82].copy_from_slice(&d);
                block[82..84].copy_from_slice(&scale(&mut r).to_le_bytes());
            }
            PackedFormat::Q4_K | PackedFormat::Q5_K | PackedFormat::Q4_1 | PackedFormat::Q5_1 => {
                block[0..2].copy_from_slice(&d);
                block[2..4].copy_from_slice(&scale(&mut r).to_le_bytes());
            }
            PackedFormat::Q8_K => {
                block[0..4].copy_from_slice(&scale(&mut r).to_f32().to_le_bytes())
            }
            PackedFormat::MXFP4 => block[0] = r.gen_range(118..=126),
            _ => block[0..2].copy_from_slice(&d),
        }
    }
    out
}

/// `[num_tokens, num_rows]` by the scalar reference on the original blocks.
fn reference(ty: GgmlType, w: &[u8], num_rows: usize, row_length: usize, x: &[f32]) -> Vec<f32> {
    let act_ty = crate::vec_dot_type(ty).expect("has a dot product");
    let act_bytes = act_ty.bytes_for(row_length as u64).expect("fits") as usize;
    let row_bytes = w.len() / num_rows;
    let num_tokens = x.len() / row_length;
    let mut out = vec![0.0; num_tokens * num_rows];
    let mut a = vec![0u8; act_bytes];
    for t in 0..num_tokens {
        crate::quantize(act_ty, &x[t * row_length..(t + 1) * row_length], &mut a)
            .expect("quantize");
        for r in 0..num_rows {
            out[t * num_rows + r] =
                crate::vec_dot(ty, &w[r * row_bytes..(r + 1) * row_bytes], &a).expect("dot");
        }
    }
    out
}

fn assert_bits_equal(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.to_bits(), e.to_bits(), "{what}: element {i}: {a} vs {e}");
    }
}

#[test]
fn every_path_is_bit_identical_to_the_scalar_reference() {
    let isas = Isa::available();
    for format in quantized_formats() {
        for (num_rows, row_length, raw) in [(70, 512, false), (16, 768, true), (5, 256, true)] {
            let w = weights(format, num_rows, row_length, 7 + num_rows as u64, raw);
            let packed = PackedMatrix::pack(format, &w, num_rows, row_length).expect("pack");
            for num_tokens in [1, 2, 3, 5, 8, 11, 67] {
                let x = uniform(num_tokens * row_length, 100 + num_tokens as u64);
                let expected = reference(format.ggml_type(), &w, num_rows, row_length, &x);
                let mut acts = PackedActivations::new();
                acts.quantize(format.activation_format(), &x, row_length).expect("quantize");
                for &isa in &isas {
                    let mut out = vec![f32::NAN; num_tokens * num_rows];
                    packed.matmul_with(isa, &acts, &mut out).expect("matmul");
                    let what = format!(
                        "{format:?} {} rows {num_rows}×{row_length} raw {raw} tokens {num_tokens}",
                        isa.name()
                    );
                    assert_bits_equal(&out, &expected, &what);
                }
            }
        }
    }
}

/// The float formats: every path bit-identical to the scalar kernel (the same fused operations
/// in the same order, so batch-invariant too), and within the rounding bound of `vec_dot`:
///
/// |packed − vec_dot| ≤ (k/2 + 4) · 2⁻²⁴ · Σ|w·x| for rows of k elements: each of the two chains
/// adds k/2 fused products (one rounding each, ≤ (k/2)·u·Σ|w·x| with u = 2⁻²⁴), adding the
/// chains rounds once more, and the reference rounds each product and its result to f32 (≤ 2u;
/// its f64 sum adds ≤ k·2⁻⁵³). The test prints the worst error seen in units of u·Σ|w·x|.
#[test]
fn float_paths_match_the_scalar_kernel_and_vec_dot_within_the_bound() {
    let isas = Isa::available();
    let mut worst = 0.0f64;
    for format in float_formats() {
        for (num_rows, row_length, raw) in
            [(70, 512, false), (16, 768, true), (5, 256, true), (9, 40, true)]
        {
            let w = weights(format, num_rows, row_length, 7 + num_rows as u64, raw);
            let packed = PackedMatrix::pack(format, &w, num_rows, row_length).expect("pack");
            let mut values = vec![0.0f32; num_rows * row_length];
            crate::dequantize(format.ggml_type(), &w, &mut values).expect("dequantize");
            for num_tokens in [1, 2, 3, 5, 8, 11, 67] {
                let x = uniform(num_tokens * row_length, 100 + num_tokens as u64);
                let expected = reference(format.ggml_type(), &w, num_rows, row_length, &x);
                let mut acts = PackedActivations::new();
                acts.quantize(format.activation_format(), &x, row_length).expect("quantize");
                let mut scalar = vec![f32::NAN; num_tokens * num_rows];
                packed.matmul_with(Isa::Scalar, &acts, &mut scalar).expect("matmul");
                let what = format!("{format:?} rows {num_rows}×{row_length} tokens {num_tokens}");
                for (i, (&got, &want)) in scalar.iter().zip(&expected).enumerate() {
                    let (t, r) = (i / num_rows, i % num_rows);
                    let wr = &values[r * row_length..(r + 1) * row_length];
                    let xt = &x[t * row_length..(t + 1) * row_length];
                    let sum_abs: f64 =
                        wr.iter().zip(xt).map(|(&a, &b)| f64::from(a * b).abs()).sum();
                    let unit = sum_abs * (-24f64).exp2();
                    let error = (f64::from(got) - f64::from(want)).abs();
                    let bound =
                        (row_length as f64 / 2.0 + 4.0) * unit + f64::from(f32::MIN_POSITIVE);
                    assert!(error <= bound, "{what}: element {i}: {got} vs {want}, bound {bound}");
                    if unit > 0.0 {
                        worst = worst.max(error / unit);
                    }
                }
                for &isa in &isas {
                    let mut out = vec![f32::NAN; num_tokens * num_rows];
                    packed.matmul_with(isa, &acts, &mut out).expect("matmul");
                    assert_bits_equal(&out, &scalar, &format!("{what} {}", isa.name()));
                }
            }
        }
    }
    println!("float formats: worst |packed − vec_dot| = {worst:.2} · 2⁻²⁴ · Σ|w·x|");
}

#[test]
fn format_codes_round_trip() {
    for format in PackedFormat::ALL {
        assert_eq!(PackedFormat::from_code(format as u8), format);
        assert_eq!(PackedFormat::of(format.ggml_type()), Some(format));
    }
}

/// The model packs every matrix whose type has a packed format (`PackedFormat::of`): every
/// type with a dot product has one, so no weight type is left on the row path.
#[test]
fn every_type_with_a_dot_product_has_a_packed_format() {
    for ty in (0..64).filter_map(GgmlType::from_id) {
        if crate::vec_dot_type(ty).is_some() {
            let format = PackedFormat::of(ty);
            assert_eq!(format.map(PackedFormat::ggml_type), Some(ty), "{ty}");
        }
    }
}

#[test]
fn detected_path_is_available() {
    assert!(Isa::available().contains(&Isa::detected()));
    assert_eq!(Isa::available()[0], Isa::Scalar);
}

#[test]
fn shape_and_type_errors() {
    let w = weights(PackedFormat::Q8_0, 8, 64, 1, false);
    assert!(PackedMatrix::pack(PackedFormat::Q8_0, &w, 8, 32).is_err(), "byte length");
    assert!(PackedMatrix::pack(PackedFormat::Q8_0, &w, 8, 48).is_err(), "partial block");
    let packed = PackedMatrix::pack(PackedFormat::Q8_0, &w, 8, 64).expect("pack");
    let mut acts = PackedActivations::new();
    acts.quantize(ActivationFormat::Q8_0, &[0.5; 128], 64).expect("quantize");
    assert!(packed.matmul(&acts, &mut [0.0; 15]).is_err(), "output length");
    packed.matmul(&acts, &mut [0.0; 16]).expect("two tokens");
    acts.quantize(ActivationFormat::Q8_K, &[0.5; 256], 256).expect("quantize");
    assert!(packed.matmul(&acts, &mut [0.0; 8]).is_err(), "activation format");
    assert!(acts.quantize(ActivationFormat::Q8_0, &[0.5; 40], 20).is_err(), "partial block");
    assert!(acts.quantize(ActivationFormat::Q8_0, &[0.5; 40], 32).is_err(), "partial row");
    assert!(acts.quantize(ActivationFormat::F32, &[0.5; 24], 12).is_err(), "partial float block");
    let f16 = weights(PackedFormat::F16, 3, 12, 1, false);
    assert!(PackedMatrix::pack(PackedFormat::F16, &f16, 3, 12).is_err(), "partial float block");
}

#[test]
fn zero_tokens_is_a_no_op() {
    let w = weights(PackedFormat::Q4_K, 8, 256, 3, false);
    let packed = PackedMatrix::pack(PackedFormat::Q4_K, &w, 8, 256).expect("pack");
    let mut acts = PackedActivations::new();
    acts.quantize(ActivationFormat::Q8_K, &[], 256).expect("quantize");
    packed.matmul(&acts, &mut []).expect("no tokens");
}

/// Q4_0 scales as `(sumi·dw)·da`, the others as `(dw·da)·sumi`; the two differ only when
/// `sumi · dw` is inexact (`sumi` of 15 significant bits), so this pins the order: every weight
/// −7 (nibble 1) against positive activations of varied sizes.
#[test]
fn q4_0_keeps_ggml_scale_order_for_large_sums() {
    let (num_rows, row_length) = (8, 64);
    let mut w = Vec::new();
    let mut r = rng(5);
    for _ in 0..num_rows * row_length / 32 {
        w.extend_from_slice(&scale(&mut r).to_le_bytes());
        w.extend_from_slice(&[0x11u8; 16]);
    }
    let x: Vec<f32> = uniform(3 * row_length, 9).iter().map(|v| 1.5 + v).collect();
    let expected = reference(GgmlType::Q4_0, &w, num_rows, row_length, &x);
    let packed = PackedMatrix::pack(PackedFormat::Q4_0, &w, num_rows, row_length).expect("pack");
    let mut acts = PackedActivations::new();
    acts.quantize(ActivationFormat::Q8_0, &x, row_length).expect("quantize");
    for isa in Isa::available() {
        let mut out = vec![0.0; 3 * num_rows];
        packed.matmul_with(isa, &acts, &mut out).expect("matmul");
        assert_bits_equal(&out, &expected, isa.name());
    }
}

/// MXFP4's E8M0 scales at the edges: the subnormal scales of `e` 0 and 1, the first normal
/// ones, and 2¹²⁵ … 2¹²⁷, where `d_w · d_a` and the block terms overflow to ±inf and `inf · 0`
/// (an all-zero block sum) gives NaN. Row `r` < 12 has every block at one edge exponent, the
/// rest random exponents; tokens are scaled by 2⁻¹⁶ … 2²⁰ so that products underflow to
/// subnormals and overflow. Every path builds the scales with integer operations and performs
/// the reference's float operations, so the results agree bit for bit; NaNs agree as NaNs.
#[test]
fn mxfp4_edge_scales_match_the_scalar_reference() {
    let edges = [0u8, 1, 2, 3, 126, 127, 128, 200, 252, 253, 254, 255];
    let (num_rows, row_length) = (edges.len() + 5, 256);
    let mut w = weights(PackedFormat::MXFP4, num_rows, row_length, 21, true);
    let mut r = rng(22);
    let blocks_per_row = row_length / 32;
    for (i, block) in w.chunks_exact_mut(17).enumerate() {
        let row = i / blocks_per_row;
        block[0] = edges.get(row).copied().unwrap_or_else(|| r.gen());
        if i % blocks_per_row == 3 {
            block[1..].fill(0x88); // every code −0: a zero block sum
        }
    }
    let packed = PackedMatrix::pack(PackedFormat::MXFP4, &w, num_rows, row_length).expect("pack");
    let (mut infinite, mut nan, mut subnormal) = (false, false, false);
    for num_tokens in [1, 2, 5, 9] {
        let x: Vec<f32> = uniform(num_tokens * row_length, 300 + num_tokens as u64)
            .iter()
            .enumerate()
            .map(|(i, v)| v * ((i / row_length % 7) as f32 * 6.0 - 16.0).exp2())
            .collect();
        let expected = reference(GgmlType::MXFP4, &w, num_rows, row_length, &x);
        infinite |= expected.iter().any(|v| v.is_infinite());
        nan |= expected.iter().any(|v| v.is_nan());
        subnormal |= expected.iter().any(|v| v.is_subnormal());
        let mut acts = PackedActivations::new();
        acts.quantize(ActivationFormat::Q8_0, &x, row_length).expect("quantize");
        for isa in Isa::available() {
            let mut out = vec![0.0; num_tokens * num_rows];
            packed.matmul_with(isa, &acts, &mut out).expect("matmul");
            for (i, (a, e)) in out.iter().zip(&expected).enumerate() {
                let same = a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan());
                assert!(same, "{} tokens {num_tokens} element {i}: {a} vs {e}", isa.name());
            }
        }
    }
    assert!(infinite && nan && subnormal, "edges reached: {infinite} {nan} {subnormal}");
}

/// Several matrices in one region give each matrix's own product, bit for bit.
#[test]
fn matmul_many_equals_separate_products() {
    let row_length = 512;
    let shapes = [(PackedFormat::Q4_K, 21), (PackedFormat::Q6_K, 8), (PackedFormat::Q4_K, 3)];
    let matrices: Vec<PackedMatrix> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(format, rows))| {
            let w = weights(format, rows, row_length, 40 + i as u64, false);
            PackedMatrix::pack(format, &w, rows, row_length).expect("pack")
        })
        .collect();
    for num_tokens in [1, 3, 70] {
        let x = uniform(num_tokens * row_length, 77);
        let mut acts = PackedActivations::new();
        acts.quantize(ActivationFormat::Q8_K, &x, row_length).expect("quantize");
        let mut outs: Vec<Vec<f32>> =
            matrices.iter().map(|m| vec![f32::NAN; num_tokens * m.num_rows()]).collect();
        let mut products: Vec<Product<'_>> = matrices
            .iter()
            .zip(outs.iter_mut())
            .map(|(matrix, out)| Product { matrix, out: out.as_mut_slice() })
            .collect();
        matmul_many(&mut products, &acts).expect("matmul_many");
        for (matrix, out) in matrices.iter().zip(&outs) {
            let mut alone = vec![0.0; out.len()];
            matrix.matmul(&acts, &mut alone).expect("matmul");
            assert_bits_equal(out, &alone, "matmul_many");
        }
    }
    // A matrix whose activation format differs is refused.
    let q8 = weights(PackedFormat::Q8_0, 8, row_length, 3, false);
    let q8 = PackedMatrix::pack(PackedFormat::Q8_0, &q8, 8, row_length).expect("pack");
    let mut acts = PackedActivations::new();
    acts.quantize(ActivationFormat::Q8_K, &uniform(row_length, 1), row_length).expect("quantize");
    let (mut a, mut b) = (vec![0.0; matrices[0].num_rows()], vec![0.0; 8]);
    let mut mixed =
        [Product { matrix: &matrices[0], out: &mut a }, Product { matrix: &q8, out: &mut b }];
    assert!(matmul_many(&mut mixed, &acts).is_err());
}

#[test]
fn stacked_matrices_equal_separately_packed_ones_in_one_buffer() {
    // Three experts of 13 rows (a partial last group) in MXFP4 and Q4_K.
    for (format, row_length) in [(PackedFormat::MXFP4, 64), (PackedFormat::Q4_K, 256)] {
        let (count, rows) = (3, 13);
        let w = weights(format, count * rows, row_length, 50, true);
        let stacked =
            PackedMatrix::pack_stacked(format, &w, count, rows, row_length).expect("pack");
        assert_eq!(stacked.len(), count);
        let share = w.len() / count;
        let x = uniform(2 * row_length, 51);
        let mut acts = PackedActivations::new();
        acts.quantize(format.activation_format(), &x, row_length).expect("quantize");
        for (e, matrix) in stacked.iter().enumerate() {
            let alone =
                PackedMatrix::pack(format, &w[e * share..(e + 1) * share], rows, row_length)
                    .expect("pack");
            assert_eq!(matrix.data(), alone.data(), "{format:?} expert {e}");
            assert_eq!(matrix.data().as_ptr() as usize % 64, 0, "cache-line aligned");
            let (mut a, mut b) = (vec![0.0; 2 * rows], vec![0.0; 2 * rows]);
            matrix.matmul(&acts, &mut a).expect("matmul");
            alone.matmul(&acts, &mut b).expect("matmul");
            assert_bits_equal(&a, &b, "stacked expert");
        }
        // One buffer: every matrix shares the first one's storage.
        assert!(stacked.iter().all(|m| Arc::ptr_eq(&m.storage, &stacked[0].storage)));
        let held = PackedMatrix::allocated_bytes(format, count, rows, row_length);
        let size = stacked[0].size_in_bytes();
        assert!(held >= count * size && held < count * (size + 64) + 64, "{held} for {size}");
    }
    let w = weights(PackedFormat::Q8_0, 8, 64, 1, false);
    assert!(PackedMatrix::pack_stacked(PackedFormat::Q8_0, &w, 0, 8, 64).is_err(), "no matrices");
    assert!(PackedMatrix::pack_stacked(PackedFormat::Q8_0, &w[1..], 3, 8, 64).is_err(), "shares");
}

#[test]
fn experts_of_a_few_megabytes_are_not_rounded_to_huge_pages_each() {
    // gpt-oss-20b's experts: 2,880 × 2,880 MXFP4, 4.4 MB each; alone each takes 3 huge pages
    // (6 MiB), 32 together take 141 MB and one partly used huge page.
    let (format, n) = (PackedFormat::MXFP4, 2880);
    let one = PackedMatrix::allocated_bytes(format, 1, n, n);
    assert_eq!(one, 3 * (2 << 20));
    let all = PackedMatrix::allocated_bytes(format, 32, n, n);
    let packed = 32 * (n * n / 32 * 17);
    assert!(all >= packed && all < packed + (2 << 20), "{all} for {packed}");
}

#[test]
fn matmul_each_equals_separate_products() {
    // Experts of different formats and row counts, each on its own number of tokens (0 included:
    // an expert no token chose), across a token block boundary.
    let row_length = 256;
    let shapes = [
        (PackedFormat::Q4_K, 21, 1),
        (PackedFormat::Q8_0, 8, 70),
        (PackedFormat::Q6_K, 3, 0),
        (PackedFormat::MXFP4, 16, 5),
    ];
    let matrices: Vec<PackedMatrix> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(format, rows, _))| {
            let w = weights(format, rows, row_length, 60 + i as u64, true);
            PackedMatrix::pack(format, &w, rows, row_length).expect("pack")
        })
        .collect();
    let inputs: Vec<PackedActivations> = shapes
        .iter()
        .zip(&matrices)
        .enumerate()
        .map(|(i, (&(_, _, tokens), matrix))| {
            let mut acts = PackedActivations::new();
            let x = uniform(tokens * row_length, 70 + i as u64);
            let format = matrix.format().activation_format();
            acts.quantize(format, &x, row_length).expect("quantize");
            acts
        })
        .collect();
    let mut outs: Vec<Vec<f32>> =
        shapes.iter().map(|&(_, rows, tokens)| vec![f32::NAN; rows * tokens]).collect();
    let mut products: Vec<ProductOf<'_>> = matrices
        .iter()
        .zip(&inputs)
        .zip(outs.iter_mut())
        .map(|((matrix, x), out)| ProductOf { matrix, x, out: out.as_mut_slice() })
        .collect();
    for isa in Isa::available() {
        products.iter_mut().for_each(|p| p.out.fill(f32::NAN));
        matmul_each_with(isa, &mut products).expect("matmul_each");
        for product in &products {
            let mut alone = vec![0.0; product.out.len()];
            product.matrix.matmul_with(isa, product.x, &mut alone).expect("matmul");
            assert_bits_equal(product.out, &alone, isa.name());
        }
    }
    // A product whose output does not fit its shape is refused.
    let mut short = vec![0.0; 3];
    let bad = ProductOf { matrix: &matrices[0], x: &inputs[0], out: &mut short };
    assert!(matmul_each(&mut [bad]).is_err());
}
