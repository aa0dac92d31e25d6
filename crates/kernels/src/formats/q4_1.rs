//! Q4_1: 32 weights, f16 scale and minimum, 4-bit unsigned quants (5 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q4_0::nibble;
use super::q8_1::BlockQ8_1;
use super::{in_array, out_array, Block, Quantize, VecDot, QK};

/// ggml's `block_q4_1`: `x[j] = d · q[j] + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Element `j < 16` in the low nibble of `qs[j]`, element `j + 16` in its high nibble.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(size_of::<BlockQ4_1>() == 20);

impl BlockQ4_1 {
    /// The 4-bit quant of element `j` (0..=15).
    #[inline]
    fn quant(&self, j: usize) -> i32 {
        i32::from(nibble(&self.qs, j))
    }

    /// ggml's `dequantize_row_q4_1` for one block: `y = q · d + m` in f32 (two roundings).
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        for (j, y) in dst.iter_mut().enumerate() {
            *y = self.quant(j) as f32 * d + m;
        }
    }

    /// ggml's `quantize_row_q4_1_ref` for one block: `d = (max − min)/15`,
    /// `q = min(15, trunc((x − min)/d + 0.5))`.
    pub fn quantize(src: &[f32; QK]) -> Self {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in src {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; QK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let x0 = (src[j] - min) * id;
            let x1 = (src[j + QK / 2] - min) * id;
            let xi0 = ((x0 + 0.5) as i8).min(15) as u8;
            let xi1 = ((x1 + 0.5) as i8).min(15) as u8;
            *q = xi0 | (xi1 << 4);
        }
        Self { d: f16::from_f32(d), m: f16::from_f32(min), qs }
    }
}

impl Block for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ4_1 {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q4_1_q8_1_generic`: `(dx · dy) · sumi + m · s`, the activation block's
/// stored sum `s` standing for `dy · Σ qy`.
pub fn vec_dot_q4_1_q8_1(weights: &[BlockQ4_1], activations: &[BlockQ8_1]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += x.quant(j) * i32::from(y.qs[j]);
        }
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sumf
}

impl VecDot for BlockQ4_1 {
    type Activation = BlockQ8_1;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_1]) -> f32 {
        vec_dot_q4_1_q8_1(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn known_values() {
        let mut qs = [0u8; 16];
        qs[0] = 0xf3; // element 0 → 3, element 16 → 15
        let block = BlockQ4_1 { d: f16::from_f32(0.5), m: f16::from_f32(-1.0), qs };
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!((out[0], out[16], out[1]), (0.5, 6.5, -1.0));
    }

    #[test]
    fn round_trip_bounds() {
        // Error ≤ d/2 = (max − min)/30 ≤ amax/15, plus f16 rounding of d and m (≤ 3·amax·2⁻¹¹).
        // RMS: measured 0.061 (uniform) and 0.085 (gaussian with outliers); bounds ~1.2x.
        for (data, rms_bound) in [(uniform(4096, 1), 0.075), (gaussian(4096, 2), 0.105)] {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ4_1>(&data);
            assert!(max_rel <= 1.0 / 15.0 + 3.0 / 2048.0, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ4_1> = bytemuck::pod_collect_to_vec(&bytes(20 * 64, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
            w.m = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_1> = quantize_to_vec(&gaussian(32 * 64, 5)).expect("whole");
        assert_dot_with_block_sum_matches_dequantized(&weights, &acts, |w| w.m);
    }
}
