//! The crate's one error type.

use uma_gguf::GgmlType;

/// Everything a kernel entry point can refuse.
///
/// Kernels never panic on caller input: lengths and types are checked once at the entry point,
/// and the inner loops rely on those checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The operation is not implemented for this type (e.g. dequantizing an IQ type, or
    /// quantizing to Q3_K).
    #[error("{operation} is not supported for ggml type {ty}")]
    UnsupportedType { ty: GgmlType, operation: &'static str },

    /// An element count that is not a whole number of blocks.
    #[error(
        "{num_elements} elements of {ty} are not a whole number of {block_size}-element blocks"
    )]
    NotWholeBlocks { ty: GgmlType, num_elements: usize, block_size: usize },

    /// Encoded bytes whose length does not match the element count.
    #[error("{num_elements} elements of {ty} take {expected} bytes, got {actual}")]
    ByteLengthMismatch { ty: GgmlType, num_elements: usize, expected: usize, actual: usize },

    /// Encoded bytes that are not a whole number of blocks.
    #[error("{len} bytes are not a whole number of {block_bytes}-byte {ty} blocks")]
    NotWholeBlockBytes { ty: GgmlType, len: usize, block_bytes: usize },

    /// Encoded bytes whose address is not aligned for the block type (use the copying view).
    #[error("{ty} blocks need {align}-byte alignment; the bytes start at an address that is not")]
    Misaligned { ty: GgmlType, align: usize },

    /// Two operands (weights and activations, source and destination) of different lengths.
    #[error("length mismatch: {what} has {actual} elements, expected {expected}")]
    LengthMismatch { what: &'static str, expected: usize, actual: usize },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, KernelError>;
