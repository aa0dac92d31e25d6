//! Q5_K: Q4_K's layout with a fifth quant bit in `qh` (5.5 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::k_scales::{dot_scale_min_k4_block, get_scale_min_k4, k_quant_levels, KQuantLevels};
use super::q8_k::BlockQ8_K;
use super::{in_array, out_array, Block, Quantize, VecDot, QK_K};

/// ggml's `block_q5_K`: `x = d·sc[s] · q − dmin·m[s]` for sub-block `s = j / 32`.
///
/// Element `j`: low 4 bits as in Q4_K, bit 4 is bit `j / 32` of `qh[j % 32]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ5_K {
    /// Super-block scale for the sub-block scales.
    pub d: f16,
    /// Super-block scale for the sub-block mins.
    pub dmin: f16,
    /// Eight 6-bit scales and mins (see [`get_scale_min_k4`]).
    pub scales: [u8; 12],
    /// High bits.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits, packed as Q4_K's quants.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockQ5_K>() == 176);

impl BlockQ5_K {
    /// The 5-bit quant of element `j` (0..=31).
    #[inline]
    pub(crate) fn quant(&self, j: usize) -> u8 {
        let byte = self.qs[(j / 64) * 32 + j % 32];
        let low = if j % 64 < 32 { byte & 0x0f } else { byte >> 4 };
        let high = (self.qh[j % 32] >> (j / 32)) & 1;
        low | (high << 4)
    }

    /// ggml's `quantize_row_q5_K_ref` for one block: Q4_K's algorithm with 32 levels
    /// (`make_qkx2_quants(31, …, −0.5, 0.1, 15)`), each quant's low 4 bits in Q4_K's nibble
    /// order and bit 4 in bit `j / 32` of `qh[j % 32]`.
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let KQuantLevels { levels, scales, d, dmin } = k_quant_levels(x, 31, -0.5, 15);
        let mut qh = [0u8; QK_K / 8];
        let mut qs = [0u8; QK_K / 2];
        for (chunk, q) in qs.chunks_exact_mut(32).enumerate() {
            for l in 0..32 {
                let (lo, hi) = (levels[64 * chunk + l], levels[64 * chunk + 32 + l]);
                q[l] = (lo & 15) | ((hi & 15) << 4);
                qh[l] |= (lo >> 4) << (2 * chunk) | (hi >> 4) << (2 * chunk + 1);
            }
        }
        Self { d, dmin, scales, qh, qs }
    }

    /// ggml's `dequantize_row_q5_K` for one block: `d1 = d · sc`, `m1 = dmin · m`,
    /// `y = d1 · q − m1`, f32.
    pub fn dequantize(&self, dst: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        for (s, out) in dst.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(s, &self.scales);
            let d1 = d * f32::from(sc);
            let m1 = min * f32::from(m);
            for (l, y) in out.iter_mut().enumerate() {
                *y = d1 * f32::from(self.quant(32 * s + l)) - m1;
            }
        }
    }
}

impl Quantize for BlockQ5_K {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

impl Block for BlockQ5_K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const NUM_ELEMENTS: usize = QK_K;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

/// ggml's `ggml_vec_dot_q5_K_q8_K_generic`, with integer sums per block (as Q4_K).
pub fn vec_dot_q5_k_q8_k(weights: &[BlockQ5_K], activations: &[BlockQ8_K]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    weights
        .iter()
        .zip(activations)
        .map(|(x, y)| dot_scale_min_k4_block(x.d, x.dmin, &x.scales, |j| x.quant(j), y))
        .fold(0.0f32, |sumf, (scaled, mins)| sumf + scaled - mins)
}

impl VecDot for BlockQ5_K {
    type Activation = BlockQ8_K;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_K]) -> f32 {
        vec_dot_q5_k_q8_k(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::k_scales::pack_scale_min_k4;
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn known_values() {
        let mut scales = [0u8; 8];
        let mut mins = [0u8; 8];
        scales[7] = 40;
        mins[7] = 10;
        let mut block = BlockQ5_K::zeroed();
        block.d = f16::from_f32(0.5);
        block.dmin = f16::from_f32(0.25);
        block.scales = pack_scale_min_k4(&scales, &mins);
        // Element 255: sub-block 7, qs[96 + 31] high nibble, qh[31] bit 7.
        block.qs[127] = 0xa0;
        block.qh[31] = 0x80;
        let mut out = [0.0f32; 256];
        block.dequantize(&mut out);
        assert_eq!(out[255], 0.5 * 40.0 * 26.0 - 0.25 * 10.0);
        assert_eq!(out[224], -2.5);
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ5_K> = bytemuck::pod_collect_to_vec(&bytes(176 * 8, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
            w.dmin = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_K> = quantize_to_vec(&gaussian(256 * 8, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
