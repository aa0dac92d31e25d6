//! The ggml block formats: one module per format, each holding the `#[repr(C)]` block struct
//! (byte-for-byte ggml's `ggml-common.h`) and its scalar reference kernels.
//!
//! A format module is the place for that format's future SIMD variants too
//! (`formats/q4_k.rs` → `formats/q4_k/{scalar,avx2,neon}.rs`); [`crate::dispatch`] is the only
//! place that chooses between them.
//!
//! Every block kernel here follows ggml's `dequantize_row_*`, `quantize_row_*_ref` and
//! `ggml_vec_dot_*_generic` operation for operation, in f32, in the same order, because the
//! point of a scalar reference is to be bit-identical to ggml (checked against gguf-py).

use std::fmt::Debug;

use bytemuck::Pod;
use uma_gguf::GgmlType;

use crate::error::{KernelError, Result};

pub mod float;
pub mod k_scales;
pub mod mxfp4;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;
pub mod search;

/// Elements per block of the legacy formats (ggml's `QK4_0`, `QK8_0`, …).
pub const QK: usize = 32;
/// Elements per super-block of the K-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// One encoded block of a ggml type (for plain float types, one element).
///
/// Implementors are `#[repr(C)]` and `Pod`, with `size_of::<Self>() == TYPE.type_size()`, so a
/// tensor's bytes can be viewed as `&[Self]` without copying (see [`crate::bytes`]).
pub trait Block: Pod + Debug {
    /// The ggml type this block encodes.
    const TYPE: GgmlType;
    /// Elements per block.
    const NUM_ELEMENTS: usize;

    /// Decodes the block into `dst`, which holds exactly [`Block::NUM_ELEMENTS`] values.
    ///
    /// # Panics
    /// When `dst` has another length; the row-level functions check lengths before calling this.
    fn dequantize_block(&self, dst: &mut [f32]);
}

/// A block type that can be produced from f32 values (ggml's `quantize_row_*_ref`).
pub trait Quantize: Block {
    /// Encodes exactly [`Block::NUM_ELEMENTS`] values.
    ///
    /// # Panics
    /// When `src` has another length; the row-level functions check lengths before calling this.
    fn quantize_block(src: &[f32]) -> Self;
}

/// A weight block type with ggml's dot product against its activation type (ggml's
/// `vec_dot_type`).
pub trait VecDot: Block {
    /// The type the activations are quantized to for this weight type.
    type Activation: Block;

    /// The dot product of a row of weights with a row of activations of the same number of
    /// elements (so the same number of blocks: every pairing has equal block sizes).
    ///
    /// # Panics
    /// When the lengths differ; [`vec_dot`] checks them first.
    fn vec_dot_blocks(weights: &[Self], activations: &[Self::Activation]) -> f32;
}

/// Number of blocks of `B` that hold `num_elements` elements.
pub fn num_blocks<B: Block>(num_elements: usize) -> Result<usize> {
    if !num_elements.is_multiple_of(B::NUM_ELEMENTS) {
        return Err(KernelError::NotWholeBlocks {
            ty: B::TYPE,
            num_elements,
            block_size: B::NUM_ELEMENTS,
        });
    }
    Ok(num_elements / B::NUM_ELEMENTS)
}

/// Decodes a row of blocks into `dst` (`dst.len() == blocks.len() * B::NUM_ELEMENTS`).
pub fn dequantize_blocks<B: Block>(blocks: &[B], dst: &mut [f32]) -> Result<()> {
    let expected = blocks.len() * B::NUM_ELEMENTS;
    if dst.len() != expected {
        return Err(KernelError::LengthMismatch {
            what: "dequantize destination",
            expected,
            actual: dst.len(),
        });
    }
    for (block, out) in blocks.iter().zip(dst.chunks_exact_mut(B::NUM_ELEMENTS)) {
        block.dequantize_block(out);
    }
    Ok(())
}

/// Encodes `src` into `dst` (`src.len() == dst.len() * B::NUM_ELEMENTS`).
pub fn quantize_blocks<B: Quantize>(src: &[f32], dst: &mut [B]) -> Result<()> {
    let expected = dst.len() * B::NUM_ELEMENTS;
    if src.len() != expected {
        return Err(KernelError::LengthMismatch {
            what: "quantize source",
            expected,
            actual: src.len(),
        });
    }
    for (values, block) in src.chunks_exact(B::NUM_ELEMENTS).zip(dst.iter_mut()) {
        *block = B::quantize_block(values);
    }
    Ok(())
}

/// Encodes `src` (a whole number of blocks) into a new vector of blocks.
pub fn quantize_to_vec<B: Quantize>(src: &[f32]) -> Result<Vec<B>> {
    let mut blocks = vec![B::zeroed(); num_blocks::<B>(src.len())?];
    quantize_blocks(src, &mut blocks)?;
    Ok(blocks)
}

/// The dot product of a row of weights with a row of activations holding as many elements.
pub fn vec_dot<W: VecDot>(weights: &[W], activations: &[W::Activation]) -> Result<f32> {
    let num_weights = weights.len() * W::NUM_ELEMENTS;
    let num_activations = activations.len() * W::Activation::NUM_ELEMENTS;
    if num_weights != num_activations {
        return Err(KernelError::LengthMismatch {
            what: "activations",
            expected: num_weights,
            actual: num_activations,
        });
    }
    Ok(W::vec_dot_blocks(weights, activations))
}

/// Views `dst` (a block's output slice, checked by the caller) as a fixed-size array.
#[inline]
pub(crate) fn out_array<const N: usize>(dst: &mut [f32]) -> &mut [f32; N] {
    dst.try_into().expect("callers pass exactly one block's worth of elements")
}

/// Views `src` (a block's input slice, checked by the caller) as a fixed-size array.
#[inline]
pub(crate) fn in_array<const N: usize>(src: &[f32]) -> &[f32; N] {
    src.try_into().expect("callers pass exactly one block's worth of elements")
}

/// The absolute maximum of `values` (NaNs ignored), in 8 independent lanes so that it
/// vectorises; a maximum is exact, so the order does not matter.
#[inline(always)]
pub(crate) fn abs_max(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v.abs());
        }
    }
    let rest = chunks.remainder().iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    lanes.into_iter().fold(rest, f32::max)
}

/// The absolute maximum of `values` and the (signed) value that attains it first, as ggml's
/// `quantize_row_q4_0_ref` and `make_qx_quants` search it (`if (amax < fabsf(v))`): both 0 when
/// every value is zero.
#[inline(always)]
pub(crate) fn signed_absmax(values: &[f32]) -> (f32, f32) {
    let amax = abs_max(values);
    if amax == 0.0 {
        return (0.0, 0.0);
    }
    let max = values.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
    (amax, max)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared helpers for the format modules' tests.
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Uniform values in [-1, 1).
    pub(crate) fn uniform(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    /// Approximately standard normal values (sum of 4 uniforms, rescaled), with occasional
    /// outliers, like real weights.
    pub(crate) fn gaussian(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let s: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum();
                let v = s * (3.0f32 / 4.0).sqrt();
                if rng.gen_range(0..64) == 0 {
                    v * 4.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// Random bytes.
    pub(crate) fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen()).collect()
    }

    /// A random f16 in ±[2^-10, 2^-2): a sane block scale.
    pub(crate) fn scale(rng: &mut StdRng) -> half::f16 {
        let magnitude = rng.gen_range(-10.0f32..-2.0).exp2();
        half::f16::from_f32(if rng.gen() { magnitude } else { -magnitude })
    }

    pub(crate) fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// `(max |a - b| / max |a|, rms(a - b) / rms(a))` per whole slice.
    pub(crate) fn relative_errors(reference: &[f32], approx: &[f32]) -> (f64, f64) {
        let amax = reference.iter().fold(0.0f64, |m, &x| m.max(f64::from(x.abs())));
        let mut max_err = 0.0f64;
        let mut sum_sq_err = 0.0f64;
        let mut sum_sq = 0.0f64;
        for (&r, &a) in reference.iter().zip(approx) {
            let e = f64::from(r) - f64::from(a);
            max_err = max_err.max(e.abs());
            sum_sq_err += e * e;
            sum_sq += f64::from(r) * f64::from(r);
        }
        (max_err / amax, (sum_sq_err / sum_sq).sqrt())
    }

    /// The f64 dot product of two f32 slices.
    pub(crate) fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
    }

    /// Decodes a row of blocks into a new vector.
    pub(crate) fn dequantized<B: super::Block>(blocks: &[B]) -> Vec<f32> {
        let mut out = vec![0.0f32; blocks.len() * B::NUM_ELEMENTS];
        super::dequantize_blocks(blocks, &mut out).expect("sized above");
        out
    }

    /// Max over blocks of (max abs error in the block / max magnitude of the block), and the
    /// RMS error relative to the data's RMS, of quantizing `data` to `B` and back.
    pub(crate) fn round_trip_errors<B: super::Quantize>(data: &[f32]) -> (f64, f64) {
        let blocks: Vec<B> = super::quantize_to_vec(data).expect("whole blocks");
        let back = dequantized(&blocks);
        let mut worst_block = 0.0f64;
        for (x, y) in data.chunks(B::NUM_ELEMENTS).zip(back.chunks(B::NUM_ELEMENTS)) {
            let amax = x.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
            let err = x.iter().zip(y).fold(0.0f64, |m, (&a, &b)| m.max(f64::from(a - b).abs()));
            if amax > 0.0 {
                worst_block = worst_block.max(err / amax);
            } else {
                assert_eq!(err, 0.0, "an all-zero block must decode to zeros");
            }
        }
        let rms = relative_errors(data, &back).1;
        eprintln!("round trip {}: max/block-amax {worst_block:.5}, rms/data-rms {rms:.5}", B::TYPE);
        (worst_block, rms)
    }

    /// [`assert_dot_matches_dequantized`] for Q4_1/Q5_1 against Q8_1, whose `m · s` term uses the
    /// activation block's f16-rounded sum `s`: the dequantized reference differs by up to
    /// `|m · s| · 2⁻¹¹` per block, which is added to the tolerance.
    pub(crate) fn assert_dot_with_block_sum_matches_dequantized<W>(
        weights: &[W],
        activations: &[super::q8_1::BlockQ8_1],
        block_min: impl Fn(&W) -> half::f16,
    ) where
        W: super::VecDot<Activation = super::q8_1::BlockQ8_1>,
    {
        let w = dequantized(weights);
        let a = dequantized(activations);
        let reference = dot_f64(&w, &a);
        let slack: f64 = weights
            .iter()
            .zip(activations)
            .map(|(x, y)| f64::from(block_min(x).to_f32() * y.s.to_f32()).abs() / 2048.0)
            .sum();
        let dot = f64::from(super::vec_dot(weights, activations).expect("same lengths"));
        assert!(
            (dot - reference).abs() <= 1e-5 * abs_dot_f64(&w, &a) + slack,
            "{}: dot {dot} vs dequantized reference {reference} (slack {slack})",
            W::TYPE
        );
    }

    /// Asserts that the kernel's dot product equals the f64 dot product of the dequantized
    /// operands up to f32 rounding: |dot − ref| ≤ 1e-5 · Σ|w·a| (each block's integer sum is
    /// exact; only the f32 scale products and the f32 running sum round, ~2⁻²⁴ each).
    pub(crate) fn assert_dot_matches_dequantized<W: super::VecDot>(
        weights: &[W],
        activations: &[W::Activation],
    ) {
        let w = dequantized(weights);
        let a = dequantized(activations);
        let reference = dot_f64(&w, &a);
        let scale = abs_dot_f64(&w, &a);
        let dot = f64::from(super::vec_dot(weights, activations).expect("same lengths"));
        assert!(
            (dot - reference).abs() <= 1e-5 * scale + 1e-30,
            "{}: dot {dot} vs dequantized reference {reference} (scale {scale})",
            W::TYPE
        );
    }

    /// Σ|a·b| in f64: the scale a dot product's rounding error is measured against.
    pub(crate) fn abs_dot_f64(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs()).sum()
    }
}

#[cfg(test)]
mod absmax_tests {
    use super::*;

    /// ggml's search, element by element.
    fn reference(values: &[f32]) -> (f32, f32) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in values {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        (amax, max)
    }

    #[test]
    fn signed_absmax_equals_the_sequential_search() {
        let cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![0.0; 32],
            vec![-0.0, 0.0, -0.0],
            vec![1.0, -3.0, 3.0, 2.0],
            vec![3.0, -3.0],
            vec![f32::NAN, -2.0, 1.0, f32::NAN],
            (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect(),
            (0..256).map(|i| (i as f32 * 0.37).sin() * 4.0).collect(),
        ];
        for values in cases {
            let (got, want) = (signed_absmax(&values), reference(&values));
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits()),
                (want.0.to_bits(), want.1.to_bits()),
                "{values:?}"
            );
        }
    }
}
