//! Viewing tensor bytes as blocks, without copying when the bytes allow it.
//!
//! GGUF tensor data starts 32-byte aligned and a tensor's rows are contiguous blocks, so a
//! memory-mapped tensor can always be viewed in place (blocks need at most 4-byte alignment:
//! Q8_K's f32). Bytes from elsewhere (a `Vec<u8>`, a sub-slice at an odd offset) may not be
//! aligned; [`blocks_from_bytes_or_copy`] then copies.

use std::borrow::Cow;

use bytemuck::PodCastError;

use crate::error::{KernelError, Result};
use crate::formats::Block;

/// Views `bytes` as blocks of `B`, without copying.
///
/// Fails when `bytes` is not a whole number of blocks, or not aligned for `B`.
pub fn blocks_from_bytes<B: Block>(bytes: &[u8]) -> Result<&[B]> {
    if bytes.is_empty() {
        // An empty slice may carry any dangling address; its alignment is irrelevant.
        return Ok(&[]);
    }
    bytemuck::try_cast_slice(bytes).map_err(|e| cast_error::<B>(e, bytes.len()))
}

/// Views `bytes` as mutable blocks of `B`, without copying (same failures as
/// [`blocks_from_bytes`]).
pub fn blocks_from_bytes_mut<B: Block>(bytes: &mut [u8]) -> Result<&mut [B]> {
    let len = bytes.len();
    bytemuck::try_cast_slice_mut(bytes).map_err(|e| cast_error::<B>(e, len))
}

/// Views `bytes` as blocks of `B`, copying them into an aligned buffer only when they are not
/// aligned for `B`. Fails when `bytes` is not a whole number of blocks.
pub fn blocks_from_bytes_or_copy<B: Block>(bytes: &[u8]) -> Result<Cow<'_, [B]>> {
    if !bytes.len().is_multiple_of(size_of::<B>()) {
        return Err(KernelError::NotWholeBlockBytes {
            ty: B::TYPE,
            len: bytes.len(),
            block_bytes: size_of::<B>(),
        });
    }
    match blocks_from_bytes::<B>(bytes) {
        Ok(blocks) => Ok(Cow::Borrowed(blocks)),
        Err(KernelError::Misaligned { .. }) => Ok(Cow::Owned(bytemuck::pod_collect_to_vec(bytes))),
        Err(e) => Err(e),
    }
}

/// The bytes of `blocks`, as they are stored in a GGUF file (little-endian targets only).
pub fn blocks_as_bytes<B: Block>(blocks: &[B]) -> &[u8] {
    bytemuck::cast_slice(blocks)
}

fn cast_error<B: Block>(error: PodCastError, len: usize) -> KernelError {
    match error {
        PodCastError::TargetAlignmentGreaterAndInputNotAligned
        | PodCastError::AlignmentMismatch => {
            KernelError::Misaligned { ty: B::TYPE, align: align_of::<B>() }
        }
        PodCastError::OutputSliceWouldHaveSlop | PodCastError::SizeMismatch => {
            KernelError::NotWholeBlockBytes { ty: B::TYPE, len, block_bytes: size_of::<B>() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::q4_0::BlockQ4_0;
    use crate::formats::q8_k::BlockQ8_K;

    #[test]
    fn views_and_errors() {
        let storage = vec![0u32; 2 * 292 / 4 + 1]; // 4-byte aligned
        let bytes: &[u8] = bytemuck::cast_slice(&storage);
        assert_eq!(blocks_from_bytes::<BlockQ8_K>(&bytes[..584]).map(<[_]>::len), Ok(2));
        assert!(matches!(
            blocks_from_bytes::<BlockQ8_K>(&bytes[..583]),
            Err(KernelError::NotWholeBlockBytes { len: 583, block_bytes: 292, .. })
        ));
        assert!(matches!(
            blocks_from_bytes::<BlockQ8_K>(&bytes[1..293]),
            Err(KernelError::Misaligned { align: 4, .. })
        ));
        let copied = blocks_from_bytes_or_copy::<BlockQ8_K>(&bytes[1..293]).expect("copies");
        assert!(matches!(copied, Cow::Owned(_)));
        assert_eq!(copied.len(), 1);
        assert!(matches!(
            blocks_from_bytes_or_copy::<BlockQ4_0>(&bytes[1..20]),
            Err(KernelError::NotWholeBlockBytes { .. })
        ));
        let empty = blocks_from_bytes::<BlockQ4_0>(&[]).expect("empty is fine");
        assert!(empty.is_empty());
    }
}
