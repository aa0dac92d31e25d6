//! Q5_1: 32 weights, f16 scale and minimum, 5-bit unsigned quants (6 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q5_0::{pack5, quant5};
use super::q8_1::BlockQ8_1;
use super::{in_array, out_array, Block, Quantize, VecDot, QK};

/// ggml's `block_q5_1`: `x[j] = d · q[j] + m`, quants packed as in Q5_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// High bits, bit `j` for element `j` (little-endian u32 as bytes).
    pub qh: [u8; 4],
    /// Low nibbles: element `j < 16` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(size_of::<BlockQ5_1>() == 24);

impl BlockQ5_1 {
    /// ggml's `dequantize_row_q5_1` for one block: `y = q · d + m` in f32.
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        for (j, y) in dst.iter_mut().enumerate() {
            *y = quant5(self.qh, &self.qs, j) as f32 * d + m;
        }
    }

    /// ggml's `quantize_row_q5_1_ref` for one block: `d = (max − min)/31`,
    /// `q = min(31, trunc((x − min)/d + 0.5))`.
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
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut q = [0u8; QK];
        for (q, &x) in q.iter_mut().zip(src) {
            *q = (((x - min) * id + 0.5) as i8).min(31) as u8;
        }
        let (qh, qs) = pack5(&q);
        Self { d: f16::from_f32(d), m: f16::from_f32(min), qh, qs }
    }
}

impl Block for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ5_1 {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q5_1_q8_1_generic`: `(dx · dy) · sumi + m · s`.
pub fn vec_dot_q5_1_q8_1(weights: &[BlockQ5_1], activations: &[BlockQ8_1]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += quant5(x.qh, &x.qs, j) * i32::from(y.qs[j]);
        }
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sumf
}

impl VecDot for BlockQ5_1 {
    type Activation = BlockQ8_1;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_1]) -> f32 {
        vec_dot_q5_1_q8_1(weights, activations)
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
        qs[3] = 0x0f;
        let qh = (1u32 << 3).to_le_bytes(); // element 3 → 31
        let block = BlockQ5_1 { d: f16::from_f32(0.25), m: f16::from_f32(1.0), qh, qs };
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!((out[3], out[19], out[0]), (8.75, 1.0, 1.0));
    }

    #[test]
    fn round_trip_bounds() {
        // Error ≤ d/2 = (max − min)/62 ≤ amax/31, plus f16 rounding of d and m.
        // RMS: measured 0.030 (uniform) and 0.041 (gaussian with outliers); bounds ~1.25x.
        for (data, rms_bound) in [(uniform(4096, 1), 0.038), (gaussian(4096, 2), 0.052)] {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ5_1>(&data);
            assert!(max_rel <= 1.0 / 31.0 + 3.0 / 2048.0, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ5_1> = bytemuck::pod_collect_to_vec(&bytes(24 * 64, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
            w.m = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_1> = quantize_to_vec(&gaussian(32 * 64, 5)).expect("whole");
        assert_dot_with_block_sum_matches_dequantized(&weights, &acts, |w| w.m);
    }
}
