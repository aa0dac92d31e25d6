//! The CPU backend's arithmetic of the shared layers, each following ggml's (operation order,
//! f32 vs f64) so that greedy decoding agrees with llama.cpp: RMSNorm, rope (normal and NeoX),
//! softmax, SiLU and tanh-GELU.

use crate::config::{RopeStyle, Yarn};

/// ggml's `rms_norm` then `mul`: `y = x · (1 / sqrt(mean(x²) + eps)) · w`, with `Σx²` summed in
/// f64 over f32 squares and the mean rounded to f32 (as `ggml_compute_forward_rms_norm_f32`).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert_eq!(x.len(), weight.len());
    debug_assert_eq!(x.len(), out.len());
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * scale) * w;
    }
}

/// [`rms_norm`] in place.
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = (*v * scale) * w;
    }
}

/// Rotary position embedding of one head, for one position.
#[derive(Clone, Debug)]
pub struct Rope {
    style: RopeStyle,
    cos: Vec<f32>, // [rope_dimension_count / 2]
    sin: Vec<f32>, // [rope_dimension_count / 2]
}

impl Rope {
    /// The rotation at `position`: pair `i` turns by `position · freq_scale · base^(-2i/d)`,
    /// computed as ggml's `rope_cache_init` does: in f32, `theta_scale = base^(-2/d)`, and a
    /// running product `theta *= theta_scale`.
    pub fn new(style: RopeStyle, dims: usize, base: f32, freq_scale: f32, position: usize) -> Self {
        Rope::scaled(style, dims, base, freq_scale, None, position)
    }

    /// [`Rope::new`] with YaRN's corrections when `yarn` is given (ggml's `rope_yarn`: the
    /// angle mixes the interpolated and the original one along a ramp over the pairs, and
    /// cosines and sines are scaled).
    pub fn scaled(
        style: RopeStyle,
        dims: usize,
        base: f32,
        freq_scale: f32,
        yarn: Option<&Yarn>,
        position: usize,
    ) -> Self {
        let theta_scale = base.powf(-2.0 / dims as f32);
        let corrections = yarn.filter(|y| y.ext_factor != 0.0).map(|y| {
            let (low, high) = yarn_correction_dims(dims, base, y);
            let mscale = y.attn_factor * (1.0 + 0.1 * (1.0 / freq_scale).ln());
            (low, high, y.ext_factor, mscale)
        });
        let mscale_plain = yarn.map_or(1.0, |y| y.attn_factor);
        let mut theta = position as f32;
        let mut cos = Vec::with_capacity(dims / 2);
        let mut sin = Vec::with_capacity(dims / 2);
        for i in 0..dims / 2 {
            let interpolated = freq_scale * theta;
            let (angle, mscale) = match corrections {
                None => (interpolated, mscale_plain),
                Some((low, high, ext_factor, mscale)) => {
                    let y = (i as f32 - low) / (high - low).max(0.001);
                    let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * ext_factor;
                    (interpolated * (1.0 - ramp_mix) + theta * ramp_mix, mscale)
                }
            };
            if mscale == 1.0 {
                cos.push(angle.cos());
                sin.push(angle.sin());
            } else {
                cos.push(angle.cos() * mscale);
                sin.push(angle.sin() * mscale);
            }
            theta *= theta_scale;
        }
        Rope { style, cos, sin }
    }

    /// The cosines and sines of the pairs' angles (`[rope_dimension_count / 2]` each).
    pub fn cos_sin(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Rotates the first `dims` values of `head` (the rest pass through).
    pub fn apply(&self, head: &mut [f32]) {
        let half = self.cos.len();
        for i in 0..half {
            let (a, b) = match self.style {
                RopeStyle::Normal => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            let (c, s) = (self.cos[i], self.sin[i]);
            head[a] = x0 * c - x1 * s;
            head[b] = x0 * s + x1 * c;
        }
    }
}

/// The pairs between which YaRN's ramp runs (ggml's `ggml_rope_yarn_corr_dims`): where a pair
/// makes `beta_fast` and `beta_slow` rotations over the original context, floored and ceiled,
/// within `0 ..= dims − 1`.
fn yarn_correction_dims(dims: usize, base: f32, yarn: &Yarn) -> (f32, f32) {
    let corr_dim = |rotations: f32| {
        dims as f32 * (yarn.original_context_length / (rotations * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    let start = corr_dim(yarn.beta_fast).floor();
    let end = corr_dim(yarn.beta_slow).ceil();
    (start.max(0.0), end.min(dims as f32 - 1.0))
}

/// Softmax in place as ggml's `soft_max`: `exp(x − max)` in f32, summed in f64, each scaled by
/// `1 / sum` rounded to f32.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inverse = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inverse;
    }
}

/// GELU, tanh approximation (`gelu_pytorch_tanh`; ggml's `ggml_gelu_f32`):
/// `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// GELU (tanh approximation) as llama.cpp computes it on CPU (`GGML_GELU_FP16`): 0 at or below
/// −10, `x` at or above 10, otherwise `x` rounded to f16 and looked up in a table of
/// [`gelu_tanh`] results rounded to f16. The same values as llama.cpp, and a table lookup instead
/// of a `tanh` per element (which took a sixth of Gemma's prefill).
#[inline]
pub fn gelu_ggml(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_table()[usize::from(half::f16::from_f32(x).to_bits())]
    }
}

/// `gelu_tanh` of every f16 value, rounded to f16 (ggml's `ggml_table_gelu_f16`), as f32.
fn gelu_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(gelu_tanh(x)).to_f32()
            })
            .collect()
    })
}

/// gpt-oss's gated activation of one gate and up value, as ggml's `swiglu_oai`:
/// `x = min(gate, limit)`, `x / (1 + e^(−α·x)) · (clamp(up, −limit, limit) + 1)`.
#[inline]
pub fn swiglu_oai(gate: f32, up: f32) -> f32 {
    use crate::config::HiddenActivation as A;
    let x = gate.min(A::SWIGLU_OAI_LIMIT);
    let y = up.clamp(-A::SWIGLU_OAI_LIMIT, A::SWIGLU_OAI_LIMIT);
    x / (1.0 + (A::SWIGLU_OAI_ALPHA * -x).exp()) * (y + 1.0)
}

/// `cap · tanh(x / cap)`.
#[inline]
pub fn softcap(x: f32, cap: f32) -> f32 {
    cap * (x / cap).tanh()
}

/// `a · b` in f32 with eight running sums (vectorizes; the order is fixed, so the result is
/// the same wherever it is computed).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[8 * c + l] * b[8 * c + l];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in 8 * chunks..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_known_values() {
        // mean(x²) = (9 + 16) / 2 = 12.5; scale = 1/sqrt(12.5 + 0.5) = 1/sqrt(13).
        let x = [3.0f32, -4.0];
        let mut out = [0.0f32; 2];
        rms_norm(&x, &[1.0, 2.0], 0.5, &mut out);
        let s = 1.0 / 13.0f32.sqrt();
        assert_eq!(out, [3.0 * s, -4.0 * s * 2.0]);
        let mut y = x;
        rms_norm_in_place(&mut y, &[1.0, 2.0], 0.5);
        assert_eq!(y, out);
    }

    #[test]
    fn rope_normal_rotates_adjacent_pairs() {
        // d = 4, base 100: pair 0 angle p, pair 1 angle p/10.
        let rope = Rope::new(RopeStyle::Normal, 4, 100.0, 1.0, 2);
        let mut x = [1.0f32, 0.0, 0.0, 1.0];
        rope.apply(&mut x);
        let (c0, s0) = (2.0f32.cos(), 2.0f32.sin());
        let a1 = 2.0f32 * 100.0f32.powf(-0.5);
        let (c1, s1) = (a1.cos(), a1.sin());
        assert_eq!(x, [c0, s0, -s1, c1]);
    }

    #[test]
    fn rope_neox_rotates_halves() {
        let rope = Rope::new(RopeStyle::Neox, 4, 100.0, 1.0, 3);
        let mut x = [1.0f32, 2.0, 0.0, 0.0];
        rope.apply(&mut x);
        let (c0, s0) = (3.0f32.cos(), 3.0f32.sin());
        let a1 = 3.0f32 * 100.0f32.powf(-0.5);
        let (c1, s1) = (a1.cos(), a1.sin());
        // Pairs (0, 2) and (1, 3).
        assert_eq!(x, [c0, 2.0 * c1, s0, 2.0 * s1]);
    }

    #[test]
    fn rope_partial_leaves_tail_alone_and_position_zero_is_identity() {
        let rope = Rope::new(RopeStyle::Neox, 2, 10_000.0, 1.0, 5);
        let mut x = [1.0f32, 0.0, 7.0, 8.0];
        rope.apply(&mut x);
        assert_eq!(&x[2..], &[7.0, 8.0]);
        assert_eq!(x[0], 5.0f32.cos());
        let rope = Rope::new(RopeStyle::Normal, 4, 10_000.0, 1.0, 0);
        let mut y = [1.0f32, 2.0, 3.0, 4.0];
        rope.apply(&mut y);
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rope_preserves_norm() {
        let rope = Rope::new(RopeStyle::Neox, 64, 1e6, 1.0, 1234);
        let mut x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let before: f32 = x.iter().map(|v| v * v).sum();
        rope.apply(&mut x);
        let after: f32 = x.iter().map(|v| v * v).sum();
        assert!((before - after).abs() < 1e-4 * before);
    }

    /// YaRN against Hugging Face's formulation (`_compute_yarn_parameters`, with `truncate`),
    /// in f64: `inv_freq = interpolation · (1 − e) + extrapolation · e` with `e` the ramp
    /// `1 − clamp((i − low) / (high − low), 0, 1)`, and cosines and sines scaled by
    /// `0.1 · ln(factor) + 1`.
    #[test]
    fn yarn_matches_the_hugging_face_formula() {
        let (dims, base, factor, original) = (64usize, 150_000.0f64, 32.0f64, 4096.0f64);
        let yarn = Yarn {
            original_context_length: original as f32,
            beta_fast: 32.0,
            beta_slow: 1.0,
            ext_factor: 1.0,
            // llama.cpp's `yarn_attn_factor` for gpt-oss: `get_mscale(32)` times its inverse.
            attn_factor: 1.0,
        };
        let corr = |rotations: f64| {
            dims as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln()
                / (2.0 * base.ln())
        };
        let (low, high) = (corr(32.0).floor().max(0.0), corr(1.0).ceil().min(dims as f64 - 1.0));
        let mscale = 0.1 * factor.ln() + 1.0;
        for position in [0usize, 1, 7, 300, 5000] {
            let rope = Rope::scaled(
                RopeStyle::Neox,
                dims,
                base as f32,
                (1.0 / factor) as f32,
                Some(&yarn),
                position,
            );
            let (cos, sin) = rope.cos_sin();
            for i in 0..dims / 2 {
                let extrapolation = base.powf(-2.0 * i as f64 / dims as f64);
                let interpolation = extrapolation / factor;
                let e = 1.0 - ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                let angle = position as f64 * (interpolation * (1.0 - e) + extrapolation * e);
                let tolerance = 2e-6 * (1.0 + angle.abs());
                assert!(
                    (f64::from(cos[i]) - angle.cos() * mscale).abs() < tolerance,
                    "{position} {i}"
                );
                assert!(
                    (f64::from(sin[i]) - angle.sin() * mscale).abs() < tolerance,
                    "{position} {i}"
                );
            }
        }
        // Without ext_factor YaRN is linear interpolation scaled by attn_factor.
        let flat = Yarn { ext_factor: 0.0, attn_factor: 1.0, ..yarn };
        let rope = Rope::scaled(RopeStyle::Neox, dims, 1e4, 0.25, Some(&flat), 9);
        assert_eq!(rope.cos_sin(), Rope::new(RopeStyle::Neox, dims, 1e4, 0.25, 9).cos_sin());
    }

    #[test]
    fn softmax_known_values() {
        let mut x = [0.0f32, 2.0f32.ln(), f32::NEG_INFINITY];
        softmax_in_place(&mut x);
        assert!((x[0] - 1.0 / 3.0).abs() < 1e-7);
        assert!((x[1] - 2.0 / 3.0).abs() < 1e-7);
        assert_eq!(x[2], 0.0);
        let mut big = [1000.0f32, 1000.0];
        softmax_in_place(&mut big);
        assert_eq!(big, [0.5, 0.5]);
    }

    #[test]
    fn activations_known_values() {
        assert_eq!(gelu_tanh(0.0), 0.0);
        // torch.nn.functional.gelu(torch.tensor(1.0), approximate="tanh") = 0.8411920070648193
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-6);
        assert!((gelu_tanh(-1.0) + 0.158_808).abs() < 1e-6);
        assert!((gelu_tanh(10.0) - 10.0).abs() < 1e-5);
        // The table path: f16 rounding of the input and the result, exact outside (−10, 10).
        for x in [-12.0f32, -10.0, -3.7, -0.25, 0.0, 0.001, 0.5, 1.0, 2.2, 9.99, 10.0, 31.0] {
            let (table, exact) = (gelu_ggml(x), gelu_tanh(x));
            assert!(
                (table - exact).abs() <= 2e-3 * exact.abs().max(1e-2),
                "{x}: {table} vs {exact}"
            );
        }
        assert_eq!(gelu_ggml(-10.0), 0.0);
        assert_eq!(gelu_ggml(10.0), 10.0);
        let rounded = half::f16::from_f32(1.3).to_f32();
        assert_eq!(gelu_ggml(1.3), half::f16::from_f32(gelu_tanh(rounded)).to_f32());
        assert!((softcap(1e6, 30.0) - 30.0).abs() < 1e-5);
        // Clamped: the gate at 7 and the up value at ±7, then `x·σ(1.702x)·(y + 1)`.
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        assert_eq!(swiglu_oai(20.0, 20.0), swiglu_oai(7.0, 7.0));
        assert_eq!(swiglu_oai(1.0, -30.0), swiglu_oai(1.0, -7.0));
        assert!((swiglu_oai(7.0, 7.0) - 7.0 * sigmoid(1.702 * 7.0) * 8.0).abs() < 1e-5);
        assert!((swiglu_oai(-2.0, 0.5) - -2.0 * sigmoid(-3.404) * 1.5).abs() < 1e-6);
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.25).collect();
        let naive: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
        assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-3);
    }
}
