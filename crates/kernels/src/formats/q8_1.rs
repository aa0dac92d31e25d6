//! Q8_1: Q8_0 plus the block's sum (9 bits/weight). An activation type only: it is what Q4_1
//! and Q5_1 weights are dotted with, the stored sum paying for their `+ m` offset.

use bytemuck::{Pod, Zeroable};
use half::f16;
use uma_gguf::GgmlType;

use super::q8_0::{quantize_q8, BlockQ8_0};
use super::{in_array, out_array, Block, Quantize, QK};

/// ggml's `block_q8_1`: `x[j] = d · q[j]`, and `s = d · Σ q[j]` (rounded to f16).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d · Σ qs`.
    pub s: f16,
    /// Quants.
    pub qs: [i8; QK],
}

const _: () = assert!(size_of::<BlockQ8_1>() == 36);

impl BlockQ8_1 {
    /// `y = q · d` (ggml has no `dequantize_row_q8_1`; this is Q8_0's).
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        BlockQ8_0 { d: self.d, qs: self.qs }.dequantize(dst);
    }

    /// ggml's `quantize_row_q8_1_ref` for one block: as Q8_0, plus `s = f16(Σq · d)` with the
    /// scale `d` before its rounding to f16.
    pub fn quantize(src: &[f32; QK]) -> Self {
        let (d, qs) = quantize_q8(src);
        let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
        Self { d: f16::from_f32(d), s: f16::from_f32(sum as f32 * d), qs }
    }
}

impl Block for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockQ8_1 {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn quantize_stores_the_sum() {
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = -2.5;
        x[2] = 1.0;
        let block = BlockQ8_1::quantize(&x);
        assert_eq!(block.d.to_f32(), 1.0);
        assert_eq!(&block.qs[..3], &[127, -3, 1]);
        assert_eq!(block.s.to_f32(), 125.0);
    }

    #[test]
    fn round_trip_bounds() {
        for data in [uniform(4096, 1), gaussian(4096, 2)] {
            let (max_rel, _) = round_trip_errors::<BlockQ8_1>(&data);
            assert!(max_rel <= 1.0 / 254.0 + 1.0 / 2048.0, "max {max_rel}");
        }
    }
}
