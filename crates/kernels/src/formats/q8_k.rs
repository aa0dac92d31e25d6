//! Q8_K: 256 values, an f32 scale, signed 8-bit quants and sums of each 16 quants (9.125
//! bits/value). Mostly an activation type: every K-quant weight is dotted with it, the stored
//! sums paying for the weights' minimums. As a weight type (rare) it pairs with itself.

use bytemuck::{Pod, Zeroable};
use uma_gguf::GgmlType;

use super::{in_array, out_array, signed_absmax, Block, Quantize, VecDot, QK_K};
use crate::rounding::nearest_int;

/// ggml's `block_q8_K`: `x[j] = d · q[j]`, `bsums[k] = Σ q[16k..16k+16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ8_K {
    /// Scale (f32, unlike the other formats).
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sums of each group of 16 quants.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ8_K>() == 292);

impl BlockQ8_K {
    /// ggml's `dequantize_row_q8_K` for one block: `y = d · q`.
    pub fn dequantize(&self, dst: &mut [f32; QK_K]) {
        for (y, &q) in dst.iter_mut().zip(&self.qs) {
            *y = self.d * f32::from(q);
        }
    }

    /// ggml's `quantize_row_q8_K_ref` for one block: the value of largest magnitude maps to
    /// −127 (`iscale = −127/max`), `q = min(127, nearest_int(iscale · x))`, `d = 1/iscale`.
    ///
    /// An all-zero block gets zero quants, scale and sums (ggml leaves `bsums` unwritten there).
    #[inline(always)]
    pub fn quantize(src: &[f32; QK_K]) -> Self {
        let (amax, max) = signed_absmax(src);
        if amax == 0.0 {
            return Self::zeroed();
        }
        let iscale = -127.0 / max;
        let mut qs = [0i8; QK_K];
        for (q, &x) in qs.iter_mut().zip(src) {
            *q = nearest_int(iscale * x).min(127) as i8;
        }
        let bsums = std::array::from_fn(|k| {
            qs[16 * k..16 * k + 16].iter().map(|&q| i16::from(q)).sum::<i16>()
        });
        Self { d: 1.0 / iscale, qs, bsums }
    }
}

impl Block for BlockQ8_K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const NUM_ELEMENTS: usize = QK_K;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ8_K {
    #[inline(always)]
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// Q8_K weights with Q8_K activations: an integer sum per block, then `(dx · dy) · sumi`, the
/// order of ggml's Q8_0 and Q6_K dot products. (ggml itself has no Q8_K weight kernel; this is
/// the reference uma's packed Q8_K kernels match.)
pub fn vec_dot_q8_k_q8_k(weights: &[BlockQ8_K], activations: &[BlockQ8_K]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let sumi: i32 = x.qs.iter().zip(&y.qs).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        sumf += x.d * y.d * sumi as f32;
    }
    sumf
}

impl VecDot for BlockQ8_K {
    type Activation = BlockQ8_K;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_K]) -> f32 {
        vec_dot_q8_k_q8_k(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn quantize_known_block() {
        let mut x = [0.0f32; 256];
        x[0] = -127.0; // iscale = 1, d = 1
        x[1] = 2.5; // ties to even → 2
        x[17] = 3.5; // → 4
        x[255] = 127.0;
        let block = BlockQ8_K::quantize(&x);
        assert_eq!(block.d, 1.0);
        assert_eq!((block.qs[0], block.qs[1], block.qs[17], block.qs[255]), (-127, 2, 4, 127));
        assert_eq!((block.bsums[0], block.bsums[1], block.bsums[15]), (-125, 4, 127));
        assert_eq!(BlockQ8_K::quantize(&[0.0; 256]), BlockQ8_K::zeroed());
    }

    #[test]
    fn dot_matches_dequantized() {
        let weights: Vec<BlockQ8_K> =
            super::super::quantize_to_vec(&gaussian(256 * 8, 6)).expect("whole");
        let acts: Vec<BlockQ8_K> =
            super::super::quantize_to_vec(&uniform(256 * 8, 7)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }

    #[test]
    fn round_trip_bounds_and_sums() {
        for data in [uniform(4096, 1), gaussian(4096, 2)] {
            // Error ≤ d/2 = amax/254 (d is f32: no scale rounding to speak of).
            let (max_rel, _) = round_trip_errors::<BlockQ8_K>(&data);
            assert!(max_rel <= 1.0 / 254.0 + 1e-6, "max {max_rel}");
            let blocks: Vec<BlockQ8_K> = super::super::quantize_to_vec(&data).expect("whole");
            for b in &blocks {
                for k in 0..16 {
                    let sum: i32 = b.qs[16 * k..16 * k + 16].iter().map(|&q| i32::from(q)).sum();
                    assert_eq!(i32::from(b.bsums[k]), sum);
                }
            }
        }
    }
}
