//! Q4_0: 32 weights, one f16 scale, 4-bit quants with an implicit offset of 8 (4.5 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q8_0::BlockQ8_0;
use super::{in_array, out_array, signed_absmax, Block, Quantize, VecDot, QK};

/// ggml's `block_q4_0`: `x[j] = d · (q[j] − 8)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Element `j < 16` in the low nibble of `qs[j]`, element `j + 16` in its high nibble.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// The 4-bit field of element `j` in ggml's nibble layout of 32 elements (Q4_0, Q4_1, the low
/// bits of Q5_0/Q5_1, MXFP4's codes): element `j < 16` in the low nibble of `qs[j]`, element
/// `j + 16` in its high nibble.
#[inline]
pub(crate) fn nibble(qs: &[u8; QK / 2], j: usize) -> u8 {
    let byte = qs[j % 16];
    if j < 16 {
        byte & 0x0f
    } else {
        byte >> 4
    }
}

/// Packs the low 4 bits of 32 fields into ggml's nibble layout (the inverse of [`nibble`]).
#[inline]
pub(crate) fn pack_nibbles(fields: &[u8; QK]) -> [u8; QK / 2] {
    std::array::from_fn(|j| (fields[j] & 0x0f) | (fields[j + QK / 2] << 4))
}

impl BlockQ4_0 {
    /// The 4-bit quant of element `j`, offset removed (−8..=7).
    #[inline]
    fn quant(&self, j: usize) -> i32 {
        i32::from(nibble(&self.qs, j)) - 8
    }

    /// ggml's `dequantize_row_q4_0` for one block: `y = (q − 8) · d` in f32.
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for (j, y) in dst.iter_mut().enumerate() {
            *y = self.quant(j) as f32 * d;
        }
    }

    /// ggml's `quantize_row_q4_0_ref` for one block: the value of largest magnitude maps to
    /// −8, `q = min(15, trunc(x/d + 8.5))`.
    pub fn quantize(src: &[f32; QK]) -> Self {
        let (_, max) = signed_absmax(src);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; QK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let x0 = src[j] * id;
            let x1 = src[j + QK / 2] * id;
            // C: (int8_t)(x + 8.5f), then MIN(15, ·); the values are in 0.5..=16.5.
            let xi0 = ((x0 + 8.5) as i8).min(15) as u8;
            let xi1 = ((x1 + 8.5) as i8).min(15) as u8;
            *q = xi0 | (xi1 << 4);
        }
        Self { d: f16::from_f32(d), qs }
    }
}

impl Block for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ4_0 {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q4_0_q8_0_generic`: integer sum per block, then `sumi · dx · dy`.
pub fn vec_dot_q4_0_q8_0(weights: &[BlockQ4_0], activations: &[BlockQ8_0]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += x.quant(j) * i32::from(y.qs[j]);
        }
        sumf += sumi as f32 * x.d.to_f32() * y.d.to_f32();
    }
    sumf
}

impl VecDot for BlockQ4_0 {
    type Activation = BlockQ8_0;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_0]) -> f32 {
        vec_dot_q4_0_q8_0(weights, activations)
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
        qs[0] = 0x0f; // element 0 → 15 − 8 = 7, element 16 → 0 − 8 = −8
        qs[1] = 0x98; // element 1 → 0, element 17 → 1
        let block = BlockQ4_0 { d: f16::from_f32(0.5), qs };
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!(out[0], 3.5);
        assert_eq!(out[16], -4.0);
        assert_eq!(out[1], 0.0);
        assert_eq!(out[17], 0.5);
        assert_eq!(out[2], -4.0, "nibble 0 is −8");
    }

    #[test]
    fn quantize_known_block() {
        let mut x = [0.0f32; 32];
        x[0] = -4.0; // the largest magnitude → q = 0, d = 0.5
        x[1] = 3.5;
        x[2] = 4.0; // clamps to 15 → 3.5
        let block = BlockQ4_0::quantize(&x);
        assert_eq!(block.d.to_f32(), 0.5);
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!(&out[..4], &[-4.0, 3.5, 3.5, 0.0]);
    }

    #[test]
    fn round_trip_bounds() {
        // Largest magnitude maps to ±8; the opposite extreme clamps at 7: error ≤ d = amax/8,
        // plus the f16 rounding of d (≤ 8·d·2⁻¹¹).
        // RMS: measured 0.066 (uniform) and 0.106 (gaussian with outliers); bounds ~1.2x.
        for (data, rms_bound) in [(uniform(4096, 1), 0.08), (gaussian(4096, 2), 0.13)] {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ4_0>(&data);
            assert!(max_rel <= 0.125 + 0.001, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ4_0> = bytemuck::pod_collect_to_vec(&bytes(18 * 64, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_0> = quantize_to_vec(&gaussian(32 * 64, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
