//! The float loops of attention, compiled for the widest vectors the CPU has. The source is
//! plain Rust written lane-wise (independent running sums, no reductions), so the compiler
//! vectorizes it; each function exists once per instruction set, chosen at run time. Every
//! multiply-add is one fused `mul_add` (one rounding) on every path — an FMA instruction where
//! the CPU has one (x86 with FMA, every aarch64), a correctly rounded software fallback
//! elsewhere — so every path gives the same bits.
#![allow(unsafe_code)]

/// Positions per pass in [`scores_transposed_many`] and elements per pass in [`accumulate_weighted`].
pub const LANES: usize = 16;

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
    #[cfg(target_arch = "x86_64")]
    {
        if x86::avx512() {
            // SAFETY: the CPU has the features (checked).
            return unsafe {
                x86::scores_many_avx512(queries, head_dim, keys, stride, scale, scores)
            };
        }
        if x86::avx2_fma() {
            // SAFETY: the CPU has the features (checked).
            return unsafe {
                x86::scores_many_avx2(queries, head_dim, keys, stride, scale, scores)
            };
        }
    }
    scores_many_body(queries, head_dim, keys, stride, scale, scores);
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
    #[cfg(target_arch = "x86_64")]
    {
        if x86::avx512() {
            // SAFETY: the CPU has the features (checked).
            return unsafe { x86::accumulate_avx512(acc, weights, values) };
        }
        if x86::avx2_fma() {
            // SAFETY: the CPU has the features (checked).
            return unsafe { x86::accumulate_avx2(acc, weights, values) };
        }
    }
    accumulate_body(acc, weights, values);
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
    use std::sync::OnceLock;

    pub(super) fn avx2_fma() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        })
    }

    pub(super) fn avx512() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| std::is_x86_feature_detected!("avx512f") && avx2_fma())
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scores_many_avx2(
        q: &[f32],
        hd: usize,
        k: &[f32],
        stride: usize,
        s: f32,
        o: &mut [f32],
    ) {
        super::scores_many_body(q, hd, k, stride, s, o);
    }

    /// # Safety
    /// The CPU must support AVX-512 F and FMA.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn scores_many_avx512(
        q: &[f32],
        hd: usize,
        k: &[f32],
        stride: usize,
        s: f32,
        o: &mut [f32],
    ) {
        super::scores_many_body(q, hd, k, stride, s, o);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn accumulate_avx2(acc: &mut [f32], w: &[f32], v: &[f32]) {
        super::accumulate_body(acc, w, v);
    }

    /// # Safety
    /// The CPU must support AVX-512 F and FMA.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn accumulate_avx512(acc: &mut [f32], w: &[f32], v: &[f32]) {
        super::accumulate_body(acc, w, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
