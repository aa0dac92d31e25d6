//! Q4_K: 256 weights in 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min relative to
//! the f16 super-block scales `d` and `dmin`; 4-bit quants (4.5 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::k_scales::{dot_scale_min_k4_block, get_scale_min_k4, k_quant_levels, KQuantLevels};
use super::q8_k::BlockQ8_K;
use super::{in_array, out_array, Block, Quantize, VecDot, QK_K};

/// ggml's `block_q4_K`: `x = d·sc[s] · q − dmin·m[s]` for sub-block `s = j / 32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ4_K {
    /// Super-block scale for the sub-block scales.
    pub d: f16,
    /// Super-block scale for the sub-block mins.
    pub dmin: f16,
    /// Eight 6-bit scales and eight 6-bit mins (see [`get_scale_min_k4`]).
    pub scales: [u8; 12],
    /// Quants: each 32 bytes hold 64 weights, the first 32 in the low nibbles.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockQ4_K>() == 144);

impl BlockQ4_K {
    /// The 4-bit quant of element `j` (0..=15).
    #[inline]
    fn quant(&self, j: usize) -> u8 {
        let byte = self.qs[(j / 64) * 32 + j % 32];
        if j % 64 < 32 {
            byte & 0x0f
        } else {
            byte >> 4
        }
    }

    /// ggml's `dequantize_row_q4_K` for one block: `d1 = d · sc`, `m1 = dmin · m`,
    /// `y = d1 · q − m1`, all f32.
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

    /// ggml's `quantize_row_q4_K_ref` for one block: per sub-block `make_qkx2_quants` with
    /// weights `√(mean x²) + |x|`, then the scales and mins quantized to 6 bits against their
    /// maxima, then the quants recomputed against the rounded scales.
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let KQuantLevels { levels, scales, d, dmin } = k_quant_levels(x, 15, -1.0, 20);
        let mut qs = [0u8; QK_K / 2];
        for (chunk, q) in qs.chunks_exact_mut(32).enumerate() {
            let j = 64 * chunk;
            for l in 0..32 {
                q[l] = levels[j + l] | (levels[j + l + 32] << 4);
            }
        }
        Self { d, dmin, scales, qs }
    }
}

impl Block for BlockQ4_K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const NUM_ELEMENTS: usize = QK_K;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ4_K {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q4_K_q8_K_generic`, with its integer sums per block:
/// `Σ_s sc[s]·Σ q·q8` and `Σ_k m[k/2]·bsums[k]`, then `d·dy·sumi − dmin·dy·summins`.
pub fn vec_dot_q4_k_q8_k(weights: &[BlockQ4_K], activations: &[BlockQ8_K]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    weights
        .iter()
        .zip(activations)
        .map(|(x, y)| dot_scale_min_k4_block(x.d, x.dmin, &x.scales, |j| x.quant(j), y))
        .fold(0.0f32, |sumf, (scaled, mins)| sumf + scaled - mins)
}

impl VecDot for BlockQ4_K {
    type Activation = BlockQ8_K;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_K]) -> f32 {
        vec_dot_q4_k_q8_k(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;
    use crate::formats::k_scales::pack_scale_min_k4;

    #[test]
    fn known_values() {
        let mut scales = [0u8; 8];
        let mut mins = [0u8; 8];
        scales[0] = 2;
        mins[0] = 1;
        scales[5] = 63;
        mins[5] = 33;
        let mut qs = [0u8; 128];
        qs[0] = 0x53; // element 0 → 3 (sub-block 0), element 32 → 5 (sub-block 1)
        qs[64 + 1] = 0xe0; // element 128+32+1 = 161 (sub-block 5) → 14
        let block = BlockQ4_K {
            d: f16::from_f32(0.5),
            dmin: f16::from_f32(0.25),
            scales: pack_scale_min_k4(&scales, &mins),
            qs,
        };
        let mut out = [0.0f32; 256];
        block.dequantize(&mut out);
        assert_eq!(out[0], 0.5 * 2.0 * 3.0 - 0.25);
        assert_eq!(out[1], -0.25);
        assert_eq!(out[32], 0.0, "sub-block 1 has scale 0, min 0");
        assert_eq!(out[161], 0.5 * 63.0 * 14.0 - 0.25 * 33.0);
    }

    #[test]
    fn round_trip_bounds() {
        // Empirical (the scale search has no closed-form bound): measured max 0.076/0.072 and
        // RMS 0.055/0.079 (uniform/gaussian with outliers); bounds ~1.25x.
        for (data, max_bound, rms_bound) in
            [(uniform(8192, 1), 0.095, 0.07), (gaussian(8192, 2), 0.09, 0.1)]
        {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ4_K>(&data);
            assert!(max_rel <= max_bound, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn zero_block() {
        let block = BlockQ4_K::quantize(&[0.0; 256]);
        assert_eq!(block, BlockQ4_K::zeroed());
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ4_K> = bytemuck::pod_collect_to_vec(&bytes(144 * 8, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
            w.dmin = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_K> = quantize_to_vec(&gaussian(256 * 8, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
