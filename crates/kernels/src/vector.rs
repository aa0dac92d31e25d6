//! The float loops of attention, compiled for the widest vectors the CPU has. The source is
//! plain Rust written lane-wise (independent running sums, no reductions), so the compiler
//! vectorizes it; each function exists once per instruction set, chosen at run time. Every
//! multiply-add is one fused `mul_add` (one rounding) on every path — an FMA instruction where
//! the CPU has one (x86 with FMA, every aarch64), a correctly rounded software fallback
//! elsewhere — so every path gives the same bits.
#![allow(unsafe_code)]

/// Positions per pass in [`scores_transposed_many`] and elements per pass in [`accumulate_weighted`].
pub const LANES: usize = 16;

/// Calls `$body` (a plain `#[inline(always)]` loop of this module) compiled for AVX-512, AVX2
/// or the baseline, whichever this CPU has.
macro_rules! dispatch {
    ($body:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if x86::avx512() {
                // SAFETY: the CPU has the features (checked).
                return unsafe { x86::avx512::$body($($arg),*) };
            }
            if x86::avx2_fma() {
                // SAFETY: the CPU has the features (checked).
                return unsafe { x86::avx2::$body($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}

/// `scores[r, j] = (query r · key j) · scale` for every query (`queries` `[R, head_dim]`, `scores`
/// `[R, stride]`) and keys stored transposed, `keys[d · stride + j]` (`[head_dim, stride]`,
/// `stride` a multiple of [`LANES`]); each score is a sum over `d` in order. Four queries share
/// each load of the keys, with the same bits per query as one at a time.
pub fn scores_transposed_many(
    queries: &[f32],
    head_dim: usize,
    keys: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    assert!(stride.is_multiple_of(LANES) && head_dim > 0, "whole key rows");
    assert!(keys.len() >= head_dim * stride, "keys cover every query element");
    assert!(
        queries.len().is_multiple_of(head_dim) && scores.len() == queries.len() / head_dim * stride
    );
    dispatch!(scores_many_body(queries, head_dim, keys, stride, scale, scores))
}

/// Queries per pass of [`scores_transposed_many`].
const QUERY_BLOCK: usize = 4;

#[inline(always)]
fn scores_many_body(
    queries: &[f32],
    head_dim: usize,
    keys: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let mut rows = queries.chunks_exact(head_dim * QUERY_BLOCK);
    let mut outs = scores.chunks_exact_mut(stride * QUERY_BLOCK);
    for (block, out) in rows.by_ref().zip(outs.by_ref()) {
        for c in 0..stride / LANES {
            let mut s = [[0.0f32; LANES]; QUERY_BLOCK];
            for d in 0..head_dim {
                let k = &keys[d * stride + c * LANES..d * stride + (c + 1) * LANES];
                for (r, s) in s.iter_mut().enumerate() {
                    let qd = block[r * head_dim + d];
                    for (s, &k) in s.iter_mut().zip(k) {
                        *s = qd.mul_add(k, *s);
                    }
                }
            }
            for (r, s) in s.iter().enumerate() {
                let o = &mut out[r * stride + c * LANES..r * stride + (c + 1) * LANES];
                for (o, &s) in o.iter_mut().zip(s) {
                    *o = s * scale;
                }
            }
        }
    }
    for (query, out) in
        rows.remainder().chunks_exact(head_dim).zip(outs.into_remainder().chunks_exact_mut(stride))
    {
        scores_body(query, keys, stride, scale, out);
    }
}

/// `acc += Σ_j weights[j] · values[j]` (`values` is `[weights.len(), acc.len()]`), each element
/// summed over `j` in order.
pub fn accumulate_weighted(acc: &mut [f32], weights: &[f32], values: &[f32]) {
    assert!(values.len() >= weights.len() * acc.len(), "a value row per weight");
    dispatch!(accumulate_body(acc, weights, values))
}

/// `e^x` for `x ≤ 0`, within 2 ulp (Cephes' `expf`: `2^n · e^r`, `|r| ≤ ln2/2`, degree-6
/// polynomial), written lane-wise so that loops over it vectorise; 0 below −87.3 (where e^x
/// leaves the normal range).
#[inline]
pub fn exp_non_positive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, the first part exact in a few bits, so `x − n·ln2` loses nothing.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let below = x < -87.33;
    let x = x.max(-87.33);
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HIGH) - n * LN2_LOW;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n for n in −126 ..= 0, built from its exponent bits.
    let exponent = (t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) as u32;
    let y = e_r * f32::from_bits(exponent << 23);
    if below {
        0.0
    } else {
        y
    }
}

/// SwiGLU in place: `gate[i] = silu(gate[i]) · up[i]`, with `silu(x) = x / (1 + e^−x)` computed
/// from [`exp_non_positive`] of `−|x|` (for `x < 0` as `x·e^x / (1 + e^x)`, the same value), so
/// that it vectorises: the libm `expf` per element took 6% of a batched decode step. Within a
/// few ulp of the libm form; every path gives the same bits.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu callers pass rows of one length");
    dispatch!(swiglu_body(gate, up))
}

#[inline(always)]
fn swiglu_body(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let t = exp_non_positive(-x.abs());
        let numerator = if x >= 0.0 { x } else { x * t };
        *g = numerator / (1.0 + t) * u;
    }
}

/// One block of the online softmax for one query row: turns `scores` into weights
/// `e^(score − max')` in place, where `max'` is the running `max` raised to the block's largest
/// score, and rescales the running `sum` and `acc` (the weighted values so far) to the new max.
/// Then adds the weights to `sum`, in order. The exponential is plain multiplies and adds, so
/// every path gives the same bits.
pub fn online_softmax_update(scores: &mut [f32], max: &mut f32, sum: &mut f32, acc: &mut [f32]) {
    dispatch!(softmax_body(scores, max, sum, acc))
}

#[inline(always)]
fn softmax_body(scores: &mut [f32], max: &mut f32, sum: &mut f32, acc: &mut [f32]) {
    let block_max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let new_max = max.max(block_max);
    if new_max > *max {
        // Nothing to rescale before the first block.
        let correction =
            if *max == f32::NEG_INFINITY { 0.0 } else { exp_non_positive(*max - new_max) };
        *sum *= correction;
        acc.iter_mut().for_each(|a| *a *= correction);
        *max = new_max;
    }
    scores.iter_mut().for_each(|s| *s = exp_non_positive(*s - new_max));
    for &w in scores.iter() {
        *sum += w;
    }
}

/// Elements per Q8_0 group: one f16 scale per 32 signed bytes (ggml's `QK8_0`).
const Q8_GROUP: usize = crate::formats::QK;

/// Dequantizes a transposed Q8_0 tile: `out[r · stride + j] = quants[r · n + j] ·
/// scales[(r / 32) · n + j]` for `r` in `0..quants.len() / n` and `j` in `0..n` — a KV head's
/// keys of one cache block, `n` positions wide, each position's 32-element groups with their own
/// scale (already in f32).
pub fn dequantize_q8_transposed(
    quants: &[i8],
    scales: &[f32],
    n: usize,
    stride: usize,
    out: &mut [f32],
) {
    assert!(n > 0 && n <= stride && quants.len().is_multiple_of(n * Q8_GROUP), "whole groups");
    let rows = quants.len() / n;
    assert!(scales.len() == rows / Q8_GROUP * n, "a scale per group and column");
    assert!(out.len() >= (rows - 1) * stride + n, "out holds every row");
    dispatch!(dequantize_q8_transposed_body(quants, scales, n, stride, out))
}

#[inline(always)]
fn dequantize_q8_transposed_body(
    quants: &[i8],
    scales: &[f32],
    n: usize,
    stride: usize,
    out: &mut [f32],
) {
    for (r, row) in quants.chunks_exact(n).enumerate() {
        let scale_row = &scales[r / Q8_GROUP * n..(r / Q8_GROUP + 1) * n];
        let out_row = &mut out[r * stride..r * stride + n];
        for ((o, &q), &d) in out_row.iter_mut().zip(row).zip(scale_row) {
            *o = f32::from(q) * d;
        }
    }
}

/// Dequantizes Q8_0 rows: `out[i] = quants[i] · scales[i / 32]` (ggml's `dequantize_row_q8_0`
/// with the scales already in f32) — a KV head's values, one position after another.
pub fn dequantize_q8_rows(quants: &[i8], scales: &[f32], out: &mut [f32]) {
    assert!(quants.len() == scales.len() * Q8_GROUP && out.len() == quants.len(), "whole groups");
    dispatch!(dequantize_q8_rows_body(quants, scales, out))
}

#[inline(always)]
fn dequantize_q8_rows_body(quants: &[i8], scales: &[f32], out: &mut [f32]) {
    let groups = quants.chunks_exact(Q8_GROUP).zip(out.chunks_exact_mut(Q8_GROUP));
    for ((group, out), &d) in groups.zip(scales) {
        for (o, &q) in out.iter_mut().zip(group) {
            *o = f32::from(q) * d;
        }
    }
}

#[inline(always)]
fn scores_body(query: &[f32], keys: &[f32], stride: usize, scale: f32, scores: &mut [f32]) {
    for (c, out) in scores.chunks_exact_mut(LANES).enumerate() {
        let mut s = [0.0f32; LANES];
        for (&qd, keys_d) in query.iter().zip(keys.chunks_exact(stride)) {
            for (s, &k) in s.iter_mut().zip(&keys_d[c * LANES..(c + 1) * LANES]) {
                *s = qd.mul_add(k, *s);
            }
        }
        for (o, s) in out.iter_mut().zip(s) {
            *o = s * scale;
        }
    }
}

#[inline(always)]
fn accumulate_body(acc: &mut [f32], weights: &[f32], values: &[f32]) {
    let hd = acc.len();
    let mut chunks = acc.chunks_exact_mut(LANES);
    for (c, chunk) in chunks.by_ref().enumerate() {
        let mut a = [0.0f32; LANES];
        a.copy_from_slice(chunk);
        for (&w, value) in weights.iter().zip(values.chunks_exact(hd)) {
            for (a, &v) in a.iter_mut().zip(&value[c * LANES..(c + 1) * LANES]) {
                *a = w.mul_add(v, *a);
            }
        }
        chunk.copy_from_slice(&a);
    }
    let done = hd - chunks.into_remainder().len();
    for d in done..hd {
        let mut a = acc[d];
        for (&w, value) in weights.iter().zip(values.chunks_exact(hd)) {
            a = w.mul_add(value[d], a);
        }
        acc[d] = a;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::cpu::CpuFeatures;

    pub(super) fn avx2_fma() -> bool {
        CpuFeatures::detected().avx2
    }

    pub(super) fn avx512() -> bool {
        CpuFeatures::detected().avx512
    }

    /// The module's loops, each compiled once more with `$features` enabled: same source, so
    /// the same bits (every multiply-add is a `mul_add`).
    macro_rules! compiled_with {
        ($features:literal: $(fn $name:ident($($arg:ident: $ty:ty),*);)*) => {
            $(
                /// # Safety
                /// The CPU must have the features this function is compiled with.
                #[target_feature(enable = $features)]
                pub(in super::super) unsafe fn $name($($arg: $ty),*) {
                    super::super::$name($($arg),*)
                }
            )*
        };
    }

    macro_rules! every_loop {
        ($features:literal) => {
            compiled_with! { $features:
                fn scores_many_body(q: &[f32], hd: usize, k: &[f32], stride: usize, s: f32, o: &mut [f32]);
                fn accumulate_body(acc: &mut [f32], w: &[f32], v: &[f32]);
                fn swiglu_body(gate: &mut [f32], up: &[f32]);
                fn softmax_body(s: &mut [f32], max: &mut f32, sum: &mut f32, a: &mut [f32]);
                fn dequantize_q8_transposed_body(q: &[i8], sc: &[f32], n: usize, stride: usize, o: &mut [f32]);
                fn dequantize_q8_rows_body(q: &[i8], sc: &[f32], o: &mut [f32]);
            }
        };
    }

    pub(super) mod avx2 {
        every_loop!("avx2,fma");
    }

    pub(super) mod avx512 {
        every_loop!("avx512f,fma");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swiglu_matches_silu_times_up_and_every_path_agrees() {
        let xs: Vec<f32> =
            (-4000..4000).map(|i| i as f32 * 0.0125).chain([-100.0, 100.0, 0.0, -0.0]).collect();
        let up: Vec<f32> = (0..xs.len()).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let mut gate = xs.clone();
        swiglu(&mut gate, &up);
        for ((&x, &u), &got) in xs.iter().zip(&up).zip(&gate) {
            let want = x / (1.0 + (-x).exp()) * u;
            let tolerance = 4.0 * f32::EPSILON * want.abs() + 1e-30;
            assert!((got - want).abs() <= tolerance, "x = {x}: {got} vs {want}");
        }
        let mut portable = xs.clone();
        swiglu_body(&mut portable, &up);
        assert_eq!(
            portable.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            gate.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "the SIMD path and the portable one differ"
        );
    }

    #[test]
    fn exp_non_positive_is_within_two_ulp() {
        assert_eq!(exp_non_positive(0.0), 1.0);
        assert_eq!(exp_non_positive(-0.0), 1.0);
        assert_eq!(exp_non_positive(-100.0), 0.0);
        assert_eq!(exp_non_positive(f32::NEG_INFINITY), 0.0);
        for i in 0..=873_000 {
            let x = -(i as f32) * 1e-4;
            let want = f64::from(x).exp();
            let got = f64::from(exp_non_positive(x));
            assert!(
                ((got - want) / want).abs() < 2.0 * f64::from(f32::EPSILON),
                "e^{x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn online_softmax_update_paths_agree() {
        let value = |i: usize| ((i as f32) * 0.377).sin() * 4.0;
        for (first, second) in [(3usize, 16usize), (16, 5)] {
            let run = |fast: bool| {
                let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
                let mut acc: Vec<f32> = (0..40).map(|i| value(i + 9)).collect();
                let mut weights = Vec::new();
                for (offset, len) in [(0, first), (100, second)] {
                    let mut scores: Vec<f32> = (0..len).map(|i| value(i + offset)).collect();
                    if fast {
                        online_softmax_update(&mut scores, &mut max, &mut sum, &mut acc);
                    } else {
                        softmax_body(&mut scores, &mut max, &mut sum, &mut acc);
                    }
                    weights.extend(scores);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (max.to_bits(), sum.to_bits(), bits(&acc), bits(&weights))
            };
            assert_eq!(run(true), run(false));
            // The weights are e^(s − max) against the running max of their block.
            let (max, sum, _, _) = run(false);
            let max = f32::from_bits(max);
            assert!(f32::from_bits(sum) > 0.0 && max.is_finite());
        }
    }

    /// Every path gives the plain loop's bits (the loops fix the order of every sum).
    #[test]
    fn dispatched_equals_portable() {
        let hd = 72; // not a multiple of LANES: the accumulate tail runs too
        let stride = 48;
        let value = |i: usize| ((i as f32) * 0.377).sin();
        let query: Vec<f32> = (0..hd).map(value).collect();
        let keys: Vec<f32> = (0..hd * stride).map(|i| value(i + 7)).collect();
        let (mut fast, mut plain) = (vec![0.0; stride], vec![0.0; stride]);
        scores_transposed_many(&query, hd, &keys, stride, 0.125, &mut fast);
        scores_body(&query, &keys, stride, 0.125, &mut plain);
        assert_eq!(
            fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        for (j, &s) in plain.iter().enumerate() {
            let expected: f64 =
                (0..hd).map(|d| f64::from(query[d]) * f64::from(keys[d * stride + j])).sum();
            assert!((f64::from(s) - expected * 0.125).abs() < 1e-5, "score {j}");
        }
        // Several queries at once: each row the same bits as alone (7 rows: a block of 4 + 3).
        let queries: Vec<f32> = (0..7 * hd).map(|i| value(i + 50)).collect();
        let mut many = vec![0.0; 7 * stride];
        scores_transposed_many(&queries, hd, &keys, stride, 0.125, &mut many);
        for r in 0..7 {
            let mut one = vec![0.0; stride];
            scores_body(&queries[r * hd..(r + 1) * hd], &keys, stride, 0.125, &mut one);
            let row = &many[r * stride..(r + 1) * stride];
            assert_eq!(
                row.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "row {r}"
            );
        }
        let weights: Vec<f32> = (0..5).map(|i| value(i + 100).abs()).collect();
        let values: Vec<f32> = (0..5 * hd).map(|i| value(i + 200)).collect();
        let (mut fast, mut plain) = (query.clone(), query.clone());
        accumulate_weighted(&mut fast, &weights, &values);
        accumulate_body(&mut plain, &weights, &values);
        assert_eq!(
            fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        for d in 0..hd {
            let expected: f64 = f64::from(query[d])
                + (0..5)
                    .map(|j| f64::from(weights[j]) * f64::from(values[j * hd + d]))
                    .sum::<f64>();
            assert!((f64::from(plain[d]) - expected).abs() < 1e-5, "element {d}");
        }
    }
    #[test]
    fn q8_dequantizers_match_ggml_on_every_path() {
        let quants: Vec<i8> = (0..64 * 16).map(|i| ((i * 37 + 11) % 255) as i8).collect();
        let scales: Vec<f32> = (0..2 * 16).map(|i| 0.01 + i as f32 * 0.003).collect();
        // Transposed keys: 64 dims × 16 positions into rows of a wider stride.
        let mut out = vec![f32::NAN; 64 * 24];
        dequantize_q8_transposed(&quants, &scales, 16, 24, &mut out);
        let mut portable = out.clone();
        dequantize_q8_transposed_body(&quants, &scales, 16, 24, &mut portable);
        for r in 0..64 {
            for j in 0..16 {
                let want = f32::from(quants[r * 16 + j]) * scales[(r / 32) * 16 + j];
                assert_eq!(out[r * 24 + j].to_bits(), want.to_bits(), "row {r} column {j}");
                assert_eq!(portable[r * 24 + j].to_bits(), want.to_bits());
            }
            assert!(out[r * 24 + 16..(r + 1) * 24].iter().all(|v| v.is_nan()), "padding kept");
        }
        // Rows: ggml's dequantize_row_q8_0 is BlockQ8_0::dequantize.
        let scales: Vec<f32> =
            (0..32).map(|i| half::f16::from_f32(0.02 * i as f32).to_f32()).collect();
        let mut out = vec![0.0f32; quants.len()];
        dequantize_q8_rows(&quants, &scales, &mut out);
        for (g, chunk) in out.chunks_exact(32).enumerate() {
            let block = crate::BlockQ8_0 {
                d: half::f16::from_f32(scales[g]),
                qs: quants[g * 32..(g + 1) * 32].try_into().expect("32 quants"),
            };
            let mut want = [0.0f32; 32];
            block.dequantize(&mut want);
            assert_eq!(
                chunk.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "group {g}"
            );
        }
    }
}
