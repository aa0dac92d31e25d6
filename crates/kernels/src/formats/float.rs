//! The plain float types F32, F16 and BF16: one element per "block".
//!
//! Their dot products take f32 activations (ggml converts activations to F16/BF16 for these
//! weights; uma keeps activations in f32 and converts the weight instead, which is exact) and
//! accumulate in f64 like ggml's scalar `ggml_vec_dot_f32`/`_f16` (`ggml_float` sums).

use half::{bf16, f16};
use uma_gguf::GgmlType;

use super::{Block, VecDot};

/// BF16 to f32: the bf16 bits are the high half of the f32 (gguf-py does the same shift).
#[inline]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// F16 to f32 (exact; every f16 is an f32).
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    x.to_f32()
}

/// F32 to F16 with round-to-nearest-even, as ggml's `GGML_FP32_TO_FP16` and numpy's
/// `astype(np.float16)`.
#[inline]
pub fn f32_to_f16(x: f32) -> f16 {
    f16::from_f32(x)
}

impl Block for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    const NUM_ELEMENTS: usize = 1;

    fn dequantize_block(&self, dst: &mut [f32]) {
        super::out_array::<1>(dst)[0] = *self;
    }
}

impl Block for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    const NUM_ELEMENTS: usize = 1;

    fn dequantize_block(&self, dst: &mut [f32]) {
        super::out_array::<1>(dst)[0] = f16_to_f32(*self);
    }
}

impl Block for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const NUM_ELEMENTS: usize = 1;

    fn dequantize_block(&self, dst: &mut [f32]) {
        super::out_array::<1>(dst)[0] = bf16_to_f32(*self);
    }
}

impl super::Quantize for f32 {
    fn quantize_block(src: &[f32]) -> Self {
        super::in_array::<1>(src)[0]
    }
}

/// F32 to BF16 as ggml's `ggml_compute_fp32_to_bf16` (and gguf-py's BF16 quantizer): NaNs are
/// truncated and forced quiet, everything else rounds to nearest even.
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    let rounded = (u64::from(u) + u64::from(0x7fff + ((u >> 16) & 1))) >> 16;
    bf16::from_bits(rounded as u16)
}

impl super::Quantize for bf16 {
    fn quantize_block(src: &[f32]) -> Self {
        f32_to_bf16(super::in_array::<1>(src)[0])
    }
}

impl super::Quantize for f16 {
    fn quantize_block(src: &[f32]) -> Self {
        f32_to_f16(super::in_array::<1>(src)[0])
    }
}

/// Row dequantization of F32 (a copy).
pub fn dequantize_row_f32(src: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(src);
}

/// Row dequantization of F16.
pub fn dequantize_row_f16(src: &[f16], dst: &mut [f32]) {
    for (x, y) in src.iter().zip(dst.iter_mut()) {
        *y = f16_to_f32(*x);
    }
}

/// Row dequantization of BF16.
pub fn dequantize_row_bf16(src: &[bf16], dst: &mut [f32]) {
    for (x, y) in src.iter().zip(dst.iter_mut()) {
        *y = bf16_to_f32(*x);
    }
}

/// Dot product of f32 weights and f32 activations, f32 products summed in f64.
pub fn vec_dot_f32_f32(weights: &[f32], activations: &[f32]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let sum: f64 = weights.iter().zip(activations).map(|(&w, &a)| f64::from(w * a)).sum();
    sum as f32
}

/// Dot product of f16 weights and f32 activations, f32 products summed in f64.
pub fn vec_dot_f16_f32(weights: &[f16], activations: &[f32]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let sum: f64 =
        weights.iter().zip(activations).map(|(&w, &a)| f64::from(f16_to_f32(w) * a)).sum();
    sum as f32
}

/// Dot product of bf16 weights and f32 activations, f32 products summed in f64.
pub fn vec_dot_bf16_f32(weights: &[bf16], activations: &[f32]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let sum: f64 =
        weights.iter().zip(activations).map(|(&w, &a)| f64::from(bf16_to_f32(w) * a)).sum();
    sum as f32
}

impl VecDot for f32 {
    type Activation = f32;
    fn vec_dot_blocks(weights: &[Self], activations: &[f32]) -> f32 {
        vec_dot_f32_f32(weights, activations)
    }
}

impl VecDot for f16 {
    type Activation = f32;
    fn vec_dot_blocks(weights: &[Self], activations: &[f32]) -> f32 {
        vec_dot_f16_f32(weights, activations)
    }
}

impl VecDot for bf16 {
    type Activation = f32;
    fn vec_dot_blocks(weights: &[Self], activations: &[f32]) -> f32 {
        vec_dot_bf16_f32(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_a_shift() {
        assert_eq!(bf16_to_f32(bf16::from_bits(0x3f80)), 1.0);
        assert_eq!(bf16_to_f32(bf16::from_bits(0xc040)), -3.0);
        // A signalling NaN keeps its payload (a shift, not an arithmetic conversion).
        assert_eq!(bf16_to_f32(bf16::from_bits(0x7f81)).to_bits(), 0x7f81_0000);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16(1.0).to_bits(), 0x3f80);
        // Halfway between 0x3f80 and 0x3f81: ties to even (down); next one up ties up.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)).to_bits(), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)).to_bits(), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)).to_bits(), 0x7fc0, "NaN quieted");
        assert_eq!(f32_to_bf16(f32::MAX).to_bits(), 0x7f80, "rounds to infinity");
    }

    #[test]
    fn f16_known_values() {
        let mut out = [0.0f32; 4];
        dequantize_row_f16(
            &[f16::from_bits(0x3c00), f16::from_bits(0xc000), f16::from_bits(0x0001), f16::ZERO],
            &mut out,
        );
        assert_eq!(out, [1.0, -2.0, 2.0f32.powi(-24), 0.0]);
        assert_eq!(f32_to_f16(1.0 + 2.0f32.powi(-11)).to_bits(), 0x3c00, "ties to even");
    }

    #[test]
    fn dots_are_exact_on_small_integers() {
        let w = [1.0f32, 2.0, -3.0];
        let a = [4.0f32, -5.0, 6.0];
        assert_eq!(vec_dot_f32_f32(&w, &a), -24.0);
        let wh: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
        assert_eq!(vec_dot_f16_f32(&wh, &a), -24.0);
        let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
        assert_eq!(vec_dot_bf16_f32(&wb, &a), -24.0);
    }
}
