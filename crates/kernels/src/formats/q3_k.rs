//! Q3_K: 256 weights in 16 sub-blocks of 16, each with a 6-bit signed scale relative to the f16
//! super-block scale; 3-bit quants: 2 low bits plus a high-bit mask (3.4375 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::k_scales::q3_k_scales;
use super::q8_k::BlockQ8_K;
use super::{out_array, Block, VecDot, QK_K};

/// ggml's `block_q3_K`: `x = d · (sc − 32) · q` with `q = low2 − (hmask bit set ? 0 : 4)`.
///
/// Element `j`: low bits `2k..2k+2` of `qs[32·(j / 128) + j % 32]` with `k = (j % 128) / 32`;
/// high bit `j / 32` of `hmask[j % 32]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ3_K {
    /// High bits (set means "no −4").
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits, four per byte.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales (see [`q3_k_scales`]).
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}

const _: () = assert!(size_of::<BlockQ3_K>() == 110);

impl BlockQ3_K {
    /// The signed 3-bit quant of element `j` (−4..=3).
    #[inline]
    pub(crate) fn quant(&self, j: usize) -> i32 {
        let shift = 2 * ((j % 128) / 32);
        let low = i32::from((self.qs[32 * (j / 128) + j % 32] >> shift) & 3);
        let high_set = self.hmask[j % 32] & (1 << (j / 32)) != 0;
        low - if high_set { 0 } else { 4 }
    }

    /// ggml's `dequantize_row_q3_K` for one block: `dl = d · (sc − 32)`, `y = dl · q`, f32.
    pub fn dequantize(&self, dst: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let scales = q3_k_scales(&self.scales);
        for (s, out) in dst.chunks_exact_mut(16).enumerate() {
            let dl = d * f32::from(scales[s]);
            for (l, y) in out.iter_mut().enumerate() {
                *y = dl * self.quant(16 * s + l) as f32;
            }
        }
    }
}

impl Block for BlockQ3_K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const NUM_ELEMENTS: usize = QK_K;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

/// ggml's `ggml_vec_dot_q3_K_q8_K_generic`, with integer sums per block:
/// `Σ_s (sc − 32) · Σ q·q8`, then `d · dy · sumi`.
pub fn vec_dot_q3_k_q8_k(weights: &[BlockQ3_K], activations: &[BlockQ8_K]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let scales = q3_k_scales(&x.scales);
        let mut sumi = 0i32;
        for (s, &sc) in scales.iter().enumerate() {
            let mut sub = 0i32;
            for l in 0..16 {
                let j = 16 * s + l;
                sub += x.quant(j) * i32::from(y.qs[j]);
            }
            sumi += i32::from(sc) * sub;
        }
        sumf += x.d.to_f32() * y.d * sumi as f32;
    }
    sumf
}

impl VecDot for BlockQ3_K {
    type Activation = BlockQ8_K;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_K]) -> f32 {
        vec_dot_q3_k_q8_k(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn known_values() {
        let mut block = BlockQ3_K::zeroed();
        block.d = f16::from_f32(0.5);
        // Scale 0 = 34 (→ 2): low nibble 2 in byte 0, high bits 2 in byte 8 bits 0..2.
        block.scales[0] = 0x02;
        block.scales[8] = 0x02;
        block.qs[0] = 0b01; // element 0 low bits 1
        block.hmask[0] = 0x01; // element 0 high bit set → q = 1; element 32 not set
        block.hmask[1] = 0x00; // element 1: low 0, high clear → −4
        let mut out = [0.0f32; 256];
        block.dequantize(&mut out);
        assert_eq!(out[0], 0.5 * 2.0 * 1.0);
        assert_eq!(out[1], 0.5 * 2.0 * -4.0);
        // Scale 1 has low nibble 0 and high bits 0: 0 − 32.
        assert_eq!(out[16], 0.5 * -32.0 * -4.0);
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ3_K> = bytemuck::pod_collect_to_vec(&bytes(110 * 8, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_K> = quantize_to_vec(&gaussian(256 * 8, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
