//! Byte-level entry points that pick a format's kernel from a [`GgmlType`].
//!
//! This is the one place that maps a type to its implementation; SIMD variants, once they exist,
//! are chosen here (once, at start-up, by CPU feature detection).

use half::{bf16, f16};
use uma_gguf::GgmlType;

use crate::bytes::{blocks_from_bytes_mut, blocks_from_bytes_or_copy};
use crate::error::{KernelError, Result};
use crate::formats::mxfp4::BlockMXFP4;
use crate::formats::q2_k::BlockQ2_K;
use crate::formats::q3_k::BlockQ3_K;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4_K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5_K;
use crate::formats::q6_k::BlockQ6_K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8_K;
use crate::formats::{self, Block, Quantize, VecDot};

/// Whether [`dequantize`] supports `ty`.
pub fn can_dequantize(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q8_1
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
            | Q8_K
            | MXFP4
    )
}

/// Whether [`quantize`] supports `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q8_1
            | Q4_K
            | Q5_K
            | Q6_K
            | Q8_K
            | MXFP4
    )
}

/// The type activations are quantized to for a dot product with weights of type `ty`, as ggml
/// pairs them (its `vec_dot_type`), or `None` when there is no dot product for `ty`.
///
/// Q4_0, Q5_0, Q8_0, MXFP4 → Q8_0; Q4_1, Q5_1 → Q8_1; the K-quants (Q8_K included) → Q8_K.
/// F32, F16 and BF16 weights take F32 activations (ggml converts activations to F16/BF16 instead; uma converts the weight,
/// which loses nothing).
pub fn vec_dot_type(ty: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    match ty {
        F32 | F16 | BF16 => Some(F32),
        Q4_0 | Q5_0 | Q8_0 | MXFP4 => Some(Q8_0),
        Q4_1 | Q5_1 => Some(Q8_1),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => Some(Q8_K),
        _ => None,
    }
}

/// Decodes `dst.len()` elements of type `ty` from `src` into `dst`, bit-identical to ggml's
/// `dequantize_row_*` and gguf-py's `gguf.quants.dequantize`.
///
/// Errors: [`KernelError::UnsupportedType`]; [`KernelError::NotWholeBlocks`] when `dst.len()` is
/// not a whole number of blocks; [`KernelError::ByteLengthMismatch`] when `src` does not hold
/// exactly that many elements.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    use GgmlType::*;
    match ty {
        F32 => dequantize_as::<f32>(src, dst),
        F16 => dequantize_as::<f16>(src, dst),
        BF16 => dequantize_as::<bf16>(src, dst),
        Q4_0 => dequantize_as::<BlockQ4_0>(src, dst),
        Q4_1 => dequantize_as::<BlockQ4_1>(src, dst),
        Q5_0 => dequantize_as::<BlockQ5_0>(src, dst),
        Q5_1 => dequantize_as::<BlockQ5_1>(src, dst),
        Q8_0 => dequantize_as::<BlockQ8_0>(src, dst),
        Q8_1 => dequantize_as::<BlockQ8_1>(src, dst),
        Q2_K => dequantize_as::<BlockQ2_K>(src, dst),
        Q3_K => dequantize_as::<BlockQ3_K>(src, dst),
        Q4_K => dequantize_as::<BlockQ4_K>(src, dst),
        Q5_K => dequantize_as::<BlockQ5_K>(src, dst),
        Q6_K => dequantize_as::<BlockQ6_K>(src, dst),
        Q8_K => dequantize_as::<BlockQ8_K>(src, dst),
        MXFP4 => dequantize_as::<BlockMXFP4>(src, dst),
        _ => Err(KernelError::UnsupportedType { ty, operation: "dequantize" }),
    }
}

/// Encodes `src` (a whole number of blocks) as type `ty` into `dst`, with ggml's reference
/// quantizers (`quantize_row_*_ref`), byte-identical to gguf-py where it has one.
///
/// Errors as [`dequantize`], with the byte length checked against `dst`.
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    use GgmlType::*;
    match ty {
        F32 => quantize_as::<f32>(src, dst),
        F16 => quantize_as::<f16>(src, dst),
        BF16 => quantize_as::<bf16>(src, dst),
        Q4_0 => quantize_as::<BlockQ4_0>(src, dst),
        Q4_1 => quantize_as::<BlockQ4_1>(src, dst),
        Q5_0 => quantize_as::<BlockQ5_0>(src, dst),
        Q5_1 => quantize_as::<BlockQ5_1>(src, dst),
        Q8_0 => quantize_as::<BlockQ8_0>(src, dst),
        Q8_1 => quantize_as::<BlockQ8_1>(src, dst),
        Q4_K => quantize_as::<BlockQ4_K>(src, dst),
        Q5_K => quantize_as::<BlockQ5_K>(src, dst),
        Q6_K => quantize_as::<BlockQ6_K>(src, dst),
        Q8_K => quantize_as::<BlockQ8_K>(src, dst),
        MXFP4 => quantize_as::<BlockMXFP4>(src, dst),
        _ => Err(KernelError::UnsupportedType { ty, operation: "quantize" }),
    }
}

/// The dot product of a row of `ty` weights with a row of activations of type
/// [`vec_dot_type`]`(ty)` holding as many elements.
///
/// Errors: [`KernelError::UnsupportedType`]; [`KernelError::NotWholeBlockBytes`] when either
/// operand is not a whole number of blocks; [`KernelError::LengthMismatch`] when their element
/// counts differ.
pub fn vec_dot(ty: GgmlType, weights: &[u8], activations: &[u8]) -> Result<f32> {
    use GgmlType::*;
    match ty {
        F32 => vec_dot_as::<f32>(weights, activations),
        F16 => vec_dot_as::<f16>(weights, activations),
        BF16 => vec_dot_as::<bf16>(weights, activations),
        Q4_0 => vec_dot_as::<BlockQ4_0>(weights, activations),
        Q4_1 => vec_dot_as::<BlockQ4_1>(weights, activations),
        Q5_0 => vec_dot_as::<BlockQ5_0>(weights, activations),
        Q5_1 => vec_dot_as::<BlockQ5_1>(weights, activations),
        Q8_0 => vec_dot_as::<BlockQ8_0>(weights, activations),
        Q2_K => vec_dot_as::<BlockQ2_K>(weights, activations),
        Q3_K => vec_dot_as::<BlockQ3_K>(weights, activations),
        Q4_K => vec_dot_as::<BlockQ4_K>(weights, activations),
        Q5_K => vec_dot_as::<BlockQ5_K>(weights, activations),
        Q6_K => vec_dot_as::<BlockQ6_K>(weights, activations),
        Q8_K => vec_dot_as::<BlockQ8_K>(weights, activations),
        MXFP4 => vec_dot_as::<BlockMXFP4>(weights, activations),
        _ => Err(KernelError::UnsupportedType { ty, operation: "vec_dot" }),
    }
}

/// Checks that `bytes` holds exactly `num_elements` elements of `B`.
fn check_bytes<B: Block>(num_elements: usize, bytes: usize) -> Result<()> {
    let expected = formats::num_blocks::<B>(num_elements)? * size_of::<B>();
    if bytes != expected {
        return Err(KernelError::ByteLengthMismatch {
            ty: B::TYPE,
            num_elements,
            expected,
            actual: bytes,
        });
    }
    Ok(())
}

fn dequantize_as<B: Block>(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_bytes::<B>(dst.len(), src.len())?;
    let blocks = blocks_from_bytes_or_copy::<B>(src)?;
    formats::dequantize_blocks(&blocks, dst)
}

fn quantize_as<B: Quantize>(src: &[f32], dst: &mut [u8]) -> Result<()> {
    check_bytes::<B>(src.len(), dst.len())?;
    match blocks_from_bytes_mut::<B>(dst) {
        Ok(blocks) => formats::quantize_blocks(src, blocks),
        Err(KernelError::Misaligned { .. }) => {
            let blocks = formats::quantize_to_vec::<B>(src)?;
            dst.copy_from_slice(bytemuck::cast_slice(&blocks));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn vec_dot_as<W: VecDot>(weights: &[u8], activations: &[u8]) -> Result<f32> {
    let weights = blocks_from_bytes_or_copy::<W>(weights)?;
    let activations = blocks_from_bytes_or_copy::<W::Activation>(activations)?;
    formats::vec_dot(&weights, &activations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_tables_agree_with_dispatch() {
        for ty in GgmlType::all() {
            let n = ty.block_size();
            let mut out = vec![0.0f32; n];
            let bytes = vec![0u8; ty.type_size()];
            assert_eq!(dequantize(ty, &bytes, &mut out).is_ok(), can_dequantize(ty), "{ty}");
            let mut bytes = vec![0u8; ty.type_size()];
            assert_eq!(quantize(ty, &out, &mut bytes).is_ok(), can_quantize(ty), "{ty}");
            match vec_dot_type(ty) {
                Some(act) => {
                    let acts = vec![0u8; act.type_size() * n / act.block_size()];
                    assert_eq!(vec_dot(ty, &bytes, &acts), Ok(0.0), "{ty}");
                }
                None => assert!(vec_dot(ty, &bytes, &[]).is_err(), "{ty}"),
            }
        }
    }

    #[test]
    fn length_errors() {
        let mut out = vec![0.0f32; 64];
        assert_eq!(
            dequantize(GgmlType::Q4_0, &[0u8; 35], &mut out),
            Err(KernelError::ByteLengthMismatch {
                ty: GgmlType::Q4_0,
                num_elements: 64,
                expected: 36,
                actual: 35
            })
        );
        assert!(matches!(
            dequantize(GgmlType::Q4_K, &[0u8; 144], &mut out),
            Err(KernelError::NotWholeBlocks { block_size: 256, .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::IQ2_XXS, &[], &mut []),
            Err(KernelError::UnsupportedType { .. })
        ));
        assert!(matches!(
            vec_dot(GgmlType::Q4_0, &[0u8; 36], &[0u8; 34]),
            Err(KernelError::LengthMismatch { expected: 64, actual: 32, .. })
        ));
    }

    #[test]
    fn unaligned_bytes_are_copied() {
        // A Q8_K block at an odd address still decodes.
        let mut storage = vec![0u8; 293];
        storage[1..5].copy_from_slice(&2.0f32.to_le_bytes());
        storage[5] = 3;
        let mut out = vec![0.0f32; 256];
        dequantize(GgmlType::Q8_K, &storage[1..], &mut out).expect("copies when unaligned");
        assert_eq!(out[0], 6.0);
        let mut unaligned = vec![0u8; 293];
        quantize(GgmlType::Q8_K, &out, &mut unaligned[1..]).expect("copies when unaligned");
        let mut aligned = vec![0u32; 73];
        quantize(GgmlType::Q8_K, &out, bytemuck::cast_slice_mut(&mut aligned)).expect("aligned");
        assert_eq!(&unaligned[1..], bytemuck::cast_slice::<u32, u8>(&aligned));
    }
}
