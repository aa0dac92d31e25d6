//! Q6_K: 256 weights in 16 sub-blocks of 16, each with a signed 8-bit scale relative to the f16
//! super-block scale; 6-bit quants with an implicit offset of 32 (6.5625 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q8_k::BlockQ8_K;
use super::search::{make_qx_quants, GROUP_MAX_EPS};
use super::{in_array, out_array, Block, Quantize, VecDot, QK_K};
use crate::rounding::nearest_int;

/// ggml's `block_q6_K`: `x = d · sc[j/16] · (q − 32)`.
///
/// Element `j` lives in half `h = j / 128`; with `r = j % 128`, quarter `k = r / 32`,
/// `l = r % 32`: its low 4 bits are nibble `k / 2` of `ql[64h + 32(k % 2) + l]` and its high 2
/// bits are bits `2k..2k+2` of `qh[32h + l]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ6_K {
    /// Low 4 bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}

const _: () = assert!(size_of::<BlockQ6_K>() == 210);

impl BlockQ6_K {
    /// The 6-bit quant of element `j`, offset removed (−32..=31).
    #[inline]
    fn quant(&self, j: usize) -> i32 {
        let (h, r) = (j / 128, j % 128);
        let (k, l) = (r / 32, r % 32);
        let low = (self.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
        let high = (self.qh[32 * h + l] >> (2 * k)) & 0x03;
        i32::from(low | (high << 4)) - 32
    }

    /// ggml's `dequantize_row_q6_K` for one block: `y = (d · sc) · (q − 32)`, f32.
    pub fn dequantize(&self, dst: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        for (s, out) in dst.chunks_exact_mut(16).enumerate() {
            let ds = d * f32::from(self.scales[s]);
            for (l, y) in out.iter_mut().enumerate() {
                *y = ds * self.quant(16 * s + l) as f32;
            }
        }
    }

    /// ggml's `quantize_row_q6_K_ref` for one block: per sub-block `make_qx_quants(16, 32, …,
    /// rmse_type 1)`, the scales quantized to i8 against the largest-magnitude one, then the
    /// quants recomputed against the rounded scales.
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let mut levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for ib in 0..16 {
            let scale = make_qx_quants(
                32,
                &x[16 * ib..16 * ib + 16],
                &mut levels[16 * ib..16 * ib + 16],
                1,
            );
            scales[ib] = scale;
            let abs_scale = scale.abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            return Self::zeroed();
        }
        let iscale = -128.0 / max_scale;
        let d = f16::from_f32(1.0 / iscale);
        let block_scales: [i8; 16] =
            std::array::from_fn(|ib| nearest_int(iscale * scales[ib]).min(127) as i8);
        for j in 0..16 {
            let dj = d.to_f32() * f32::from(block_scales[j]);
            if dj == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(x[16 * j + ii] / dj).clamp(-32, 31);
                levels[16 * j + ii] = (l + 32) as i8;
            }
        }
        let mut ql = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 4];
        for h in 0..2 {
            let j = 128 * h;
            let level = |i: usize| levels[i] as u8;
            for l in 0..32 {
                let q1 = level(j + l) & 0xf;
                let q2 = level(j + l + 32) & 0xf;
                let q3 = level(j + l + 64) & 0xf;
                let q4 = level(j + l + 96) & 0xf;
                ql[64 * h + l] = q1 | (q3 << 4);
                ql[64 * h + l + 32] = q2 | (q4 << 4);
                qh[32 * h + l] = (level(j + l) >> 4)
                    | ((level(j + l + 32) >> 4) << 2)
                    | ((level(j + l + 64) >> 4) << 4)
                    | ((level(j + l + 96) >> 4) << 6);
            }
        }
        Self { ql, qh, scales: block_scales, d }
    }
}

impl Block for BlockQ6_K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const NUM_ELEMENTS: usize = QK_K;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ6_K {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q6_K_q8_K_generic`, with integer sums per block:
/// `Σ_s sc[s] · Σ (q − 32)·q8`, then `d · dy · sumi`.
pub fn vec_dot_q6_k_q8_k(weights: &[BlockQ6_K], activations: &[BlockQ8_K]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let mut sumi = 0i32;
        for s in 0..16 {
            let mut sub = 0i32;
            for l in 0..16 {
                let j = 16 * s + l;
                sub += x.quant(j) * i32::from(y.qs[j]);
            }
            sumi += i32::from(x.scales[s]) * sub;
        }
        sumf += x.d.to_f32() * y.d * sumi as f32;
    }
    sumf
}

impl VecDot for BlockQ6_K {
    type Activation = BlockQ8_K;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_K]) -> f32 {
        vec_dot_q6_k_q8_k(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn known_values() {
        let mut block = BlockQ6_K::zeroed();
        block.d = f16::from_f32(0.5);
        block.scales[0] = -2;
        block.scales[10] = 3; // elements 160..176: half 1, quarter 1
                              // Element 0: low nibble of ql[0], bits 0..2 of qh[0]: 0x5 | 0b11 << 4 = 53 → 21.
        block.ql[0] = 0x05;
        block.qh[0] = 0x03;
        // Element 165: h = 1, r = 37, k = 1, l = 5: ql[64 + 32 + 5] low, qh[32 + 5] bits 2..4.
        block.ql[101] = 0x0f;
        block.qh[37] = 0b10 << 2; // high 2 → 0x2f = 47 → 15
        let mut out = [0.0f32; 256];
        block.dequantize(&mut out);
        assert_eq!(out[0], 0.5 * -2.0 * 21.0);
        assert_eq!(out[1], 0.5 * -2.0 * -32.0);
        assert_eq!(out[165], 0.5 * 3.0 * 15.0);
        assert_eq!(out[200], 0.0, "scale 0");
    }

    #[test]
    fn round_trip_bounds() {
        // Empirical (scale search): measured max 0.016/0.016 and RMS 0.0134/0.021
        // (uniform/gaussian with outliers); bounds ~1.25x.
        for (data, max_bound, rms_bound) in
            [(uniform(8192, 1), 0.02, 0.017), (gaussian(8192, 2), 0.02, 0.027)]
        {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ6_K>(&data);
            assert!(max_rel <= max_bound, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
        assert_eq!(BlockQ6_K::quantize(&[0.0; 256]), BlockQ6_K::zeroed());
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ6_K> = bytemuck::pod_collect_to_vec(&bytes(210 * 8, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_K> = quantize_to_vec(&gaussian(256 * 8, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
