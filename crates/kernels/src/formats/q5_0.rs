//! Q5_0: 32 weights, one f16 scale, 5-bit quants with an implicit offset of 16 (5.5 bits/weight).

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q4_0::{nibble, pack_nibbles};
use super::q8_0::BlockQ8_0;
use super::{in_array, out_array, signed_absmax, Block, Quantize, VecDot, QK};

/// ggml's `block_q5_0`: `x[j] = d · (q[j] − 16)`; the low 4 bits of `q[j]` are packed as in
/// Q4_0, bit 4 is bit `j` of the little-endian `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// High bits, bit `j` for element `j` (a little-endian u32, stored as bytes so the block
    /// needs only 2-byte alignment, like ggml's `uint8_t qh[4]`).
    pub qh: [u8; 4],
    /// Low nibbles: element `j < 16` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// The 5-bit unsigned quant of element `j` of a Q5_0/Q5_1 block (0..=31).
#[inline]
pub(crate) fn quant5(qh: [u8; 4], qs: &[u8; 16], j: usize) -> i32 {
    let high = (u32::from_le_bytes(qh) >> j) & 1;
    i32::from(nibble(qs, j)) | (high as i32) << 4
}

/// Packs 32 5-bit quants the way ggml's Q5 quantizers do.
#[inline]
pub(crate) fn pack5(q: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qh = 0u32;
    for (j, &xi) in q.iter().enumerate() {
        qh |= (u32::from(xi & 0x10) >> 4) << j;
    }
    (qh.to_le_bytes(), pack_nibbles(q))
}

impl BlockQ5_0 {
    /// ggml's `dequantize_row_q5_0` for one block: `y = (q − 16) · d` in f32.
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for (j, y) in dst.iter_mut().enumerate() {
            *y = (quant5(self.qh, &self.qs, j) - 16) as f32 * d;
        }
    }

    /// ggml's `quantize_row_q5_0_ref` for one block: the value of largest magnitude maps to
    /// −16, `q = min(31, trunc(x/d + 16.5))`.
    pub fn quantize(src: &[f32; QK]) -> Self {
        let (_, max) = signed_absmax(src);
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut q = [0u8; QK];
        for (q, &x) in q.iter_mut().zip(src) {
            *q = ((x * id + 16.5) as i8).min(31) as u8;
        }
        let (qh, qs) = pack5(&q);
        Self { d: f16::from_f32(d), qh, qs }
    }
}

impl Block for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ5_0 {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_q5_0_q8_0_generic`: integer sum per block, then `(dx · dy) · sumi`.
pub fn vec_dot_q5_0_q8_0(weights: &[BlockQ5_0], activations: &[BlockQ8_0]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += (quant5(x.qh, &x.qs, j) - 16) * i32::from(y.qs[j]);
        }
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32;
    }
    sumf
}

impl VecDot for BlockQ5_0 {
    type Activation = BlockQ8_0;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_0]) -> f32 {
        vec_dot_q5_0_q8_0(weights, activations)
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
        qs[0] = 0x21; // element 0 low 1, element 16 low 2
                      // Bit 0 (element 0) and bit 16 (element 16) set: 17 and 18.
        let qh = (1u32 | 1 << 16).to_le_bytes();
        let block = BlockQ5_0 { d: f16::from_f32(2.0), qh, qs };
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!((out[0], out[16], out[1]), (2.0, 4.0, -32.0));
    }

    #[test]
    fn pack_unpack() {
        let q: [u8; 32] = std::array::from_fn(|j| (j * 7 % 32) as u8);
        let (qh, qs) = pack5(&q);
        for (j, &v) in q.iter().enumerate() {
            assert_eq!(quant5(qh, &qs, j), i32::from(v));
        }
    }

    #[test]
    fn round_trip_bounds() {
        // As Q4_0 with 16 levels a side: error ≤ d = amax/16, plus f16 rounding of d.
        // RMS: measured 0.032 (uniform) and 0.054 (gaussian with outliers); bounds ~1.25x.
        for (data, rms_bound) in [(uniform(4096, 1), 0.04), (gaussian(4096, 2), 0.068)] {
            let (max_rel, rms_rel) = round_trip_errors::<BlockQ5_0>(&data);
            assert!(max_rel <= 1.0 / 16.0 + 0.001, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockQ5_0> = bytemuck::pod_collect_to_vec(&bytes(22 * 64, 4));
        for w in &mut weights {
            w.d = scale(&mut rng);
        }
        let acts: Vec<BlockQ8_0> = quantize_to_vec(&gaussian(32 * 64, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
