//! Q8_0: 32 weights, one f16 scale, signed 8-bit quants (8.5 bits/weight). Also the activation
//! type of Q4_0, Q5_0 and Q8_0 weights.

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::{abs_max, in_array, out_array, Block, Quantize, VecDot, QK};
use crate::rounding::round_half_away;

/// ggml's `block_q8_0`: `x[j] = d · q[j]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);

impl BlockQ8_0 {
    /// ggml's `dequantize_row_q8_0` for one block: `y = q · d` in f32.
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for (y, &q) in dst.iter_mut().zip(&self.qs) {
            *y = f32::from(q) * d;
        }
    }

    /// ggml's `quantize_row_q8_0_ref` for one block: `d = amax / 127`, `q = roundf(x / d)`
    /// (round half away from zero), with `x / d` computed as `x · (1/d)` like ggml.
    #[inline(always)]
    pub fn quantize(src: &[f32; QK]) -> Self {
        let (d, qs) = quantize_q8(src);
        Self { d: f16::from_f32(d), qs }
    }
}

/// The Q8 quantization shared by Q8_0 and Q8_1: the f32 scale (before rounding to f16, which Q8_1's
/// block sum uses) and the quants.
#[inline(always)]
pub(super) fn quantize_q8(src: &[f32; QK]) -> (f32, [i8; QK]) {
    let amax = abs_max(src);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    for (q, &x) in qs.iter_mut().zip(src) {
        *q = round_half_away(x * id) as i8;
    }
    (d, qs)
}

impl Block for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ8_0 {
    #[inline(always)]
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q8_0_q8_0_generic`: integer sum per block, then `sumi · (dx · dy)`.
pub fn vec_dot_q8_0_q8_0(weights: &[BlockQ8_0], activations: &[BlockQ8_0]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let sumi: i32 = x.qs.iter().zip(&y.qs).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        sumf += sumi as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sumf
}

impl VecDot for BlockQ8_0 {
    type Activation = BlockQ8_0;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_0]) -> f32 {
        vec_dot_q8_0_q8_0(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn known_values() {
        let mut qs = [0i8; 32];
        qs[0] = 127;
        qs[1] = -128;
        qs[31] = 3;
        let block = BlockQ8_0 { d: f16::from_f32(0.25), qs };
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!((out[0], out[1], out[2], out[31]), (31.75, -32.0, 0.0, 0.75));
    }

    #[test]
    fn quantize_rounds_half_away_from_zero() {
        let mut x = [0.0f32; 32];
        x[0] = 127.0; // d = 1
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = -127.0;
        let block = BlockQ8_0::quantize(&x);
        assert_eq!(block.d.to_f32(), 1.0);
        assert_eq!(&block.qs[..4], &[127, 3, -3, -127]);
        assert_eq!(BlockQ8_0::quantize(&[0.0; 32]), BlockQ8_0::zeroed());
    }

    #[test]
    fn round_trip_bounds() {
        // Error ≤ d/2 = amax/254, plus the f16 rounding of d (≤ 127·d·2⁻¹¹ = amax·2⁻¹¹).
        // RMS: measured 0.0038 (uniform) and 0.0067 (gaussian with outliers); bounds ~1.25x.
        for (data, rms_bound) in [(uniform(4096, 1), 0.0048), (gaussian(4096, 2), 0.0085)] {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ8_0>(&data);
            assert!(max_rel <= 1.0 / 254.0 + 1.0 / 2048.0, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn dot_matches_dequantized() {
        let weights: Vec<BlockQ8_0> = quantize_to_vec(&gaussian(32 * 64, 6)).expect("whole");
        let acts: Vec<BlockQ8_0> = quantize_to_vec(&uniform(32 * 64, 7)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
