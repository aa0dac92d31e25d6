//! Q2_K: 256 weights in 16 sub-blocks of 16, each with a 4-bit scale and 4-bit min relative to
//! the f16 super-block scales; 2-bit quants (2.625 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q8_k::BlockQ8_K;
use super::{out_array, Block, VecDot, QK_K};

/// ggml's `block_q2_K`: `x = d·(sc & 0xF) · q − dmin·(sc >> 4)` per 16-element sub-block.
///
/// Element `j` is bits `2k..2k+2` of `qs[32·(j / 128) + j % 32]` with `k = (j % 128) / 32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ2_K {
    /// Scale (low nibble) and min (high nibble) of each sub-block.
    pub scales: [u8; QK_K / 16],
    /// Quants, four per byte.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
}

const _: () = assert!(size_of::<BlockQ2_K>() == 84);

impl BlockQ2_K {
    /// The 2-bit quant of element `j` (0..=3).
    #[inline]
    pub(crate) fn quant(&self, j: usize) -> u8 {
        let shift = 2 * ((j % 128) / 32);
        (self.qs[32 * (j / 128) + j % 32] >> shift) & 3
    }

    /// ggml's `dequantize_row_q2_K` for one block: `dl = d · (sc & 0xF)`,
    /// `ml = dmin · (sc >> 4)`, `y = dl · q − ml`, f32.
    pub fn dequantize(&self, dst: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        for (s, out) in dst.chunks_exact_mut(16).enumerate() {
            let sc = self.scales[s];
            let dl = d * f32::from(sc & 0xf);
            let ml = min * f32::from(sc >> 4);
            for (l, y) in out.iter_mut().enumerate() {
                *y = dl * f32::from(self.quant(16 * s + l)) - ml;
            }
        }
    }
}

impl Block for BlockQ2_K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const NUM_ELEMENTS: usize = QK_K;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

/// ggml's `ggml_vec_dot_q2_K_q8_K_generic`: `dall · isum − dmin · summs` with
/// `isum = Σ_s (sc & 0xF) · Σ q·q8` and `summs = Σ_s bsums[s] · (sc >> 4)`.
pub fn vec_dot_q2_k_q8_k(weights: &[BlockQ2_K], activations: &[BlockQ8_K]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let mut summs = 0i32;
        let mut isum = 0i32;
        for s in 0..16 {
            let sc = x.scales[s];
            summs += i32::from(y.bsums[s]) * i32::from(sc >> 4);
            let mut sub = 0i32;
            for l in 0..16 {
                let j = 16 * s + l;
                sub += i32::from(y.qs[j]) * i32::from(x.quant(j));
            }
            isum += i32::from(sc & 0xf) * sub;
        }
        let dall = y.d * x.d.to_f32();
        let dmin = y.d * x.dmin.to_f32();
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

impl VecDot for BlockQ2_K {
    type Activation = BlockQ8_K;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_K]) -> f32 {
        vec_dot_q2_k_q8_k(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn known_values() {
        let mut block = BlockQ2_K::zeroed();
        block.d = f16::from_f32(0.5);
        block.dmin = f16::from_f32(0.25);
        block.scales[0] = 0x23; // scale 3, min 2
        block.scales[13] = 0x1f; // elements 208..224: scale 15, min 1
        block.qs[0] = 0b11_10_01_11; // elements 0, 32, 64, 96 → 3, 1, 2, 3
                                     // Element 210: half 1, k = (210 % 128) / 32 = 2, l = 18 → qs[32 + 18] bits 4..6.
        block.qs[50] = 0b10 << 4;
        let mut out = [0.0f32; 256];
        block.dequantize(&mut out);
        assert_eq!(out[0], 0.5 * 3.0 * 3.0 - 0.25 * 2.0);
        assert_eq!(out[1], -0.5);
        assert_eq!(out[32], 0.0, "sub-block 2 has scale 0, min 0");
        assert_eq!(out[210], 0.5 * 15.0 * 2.0 - 0.25);
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ2_K> = bytemuck::pod_collect_to_vec(&bytes(84 * 8, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
            w.dmin = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_K> = quantize_to_vec(&gaussian(256 * 8, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
