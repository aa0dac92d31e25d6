//! The crate's one error type.

use uma_gguf::GgmlType;

/// Everything loading a model or running a forward pass can refuse. A bad file or a bad batch is
/// an error that says what was wrong, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Reading the file or its metadata failed.
    #[error(transparent)]
    Gguf(#[from] uma_gguf::GgufError),

    /// A kernel refused its operands (a bug or an unsupported weight type).
    #[error(transparent)]
    Kernel(#[from] uma_kernels::KernelError),

    /// `general.architecture` names an architecture uma does not implement.
    #[error("unsupported architecture {architecture:?} (supported: llama, qwen2, qwen3, gemma3)")]
    UnsupportedArchitecture { architecture: String },

    /// A hyper-parameter is missing, zero or inconsistent.
    #[error("invalid hyper-parameter {name}: {reason}")]
    InvalidConfig { name: &'static str, reason: String },

    /// A tensor the architecture needs is not in the file.
    #[error("missing tensor {name}")]
    MissingTensor { name: String },

    /// A tensor has another shape than the hyper-parameters imply.
    #[error("tensor {name} has shape {actual:?} (ggml order), expected {expected:?}")]
    WrongShape { name: String, expected: Vec<u64>, actual: Vec<u64> },

    /// A tensor's type is not usable where it is (e.g. a quantized norm, an IQ matrix).
    #[error("tensor {name} has unsupported type {ty} ({reason})")]
    UnsupportedTensorType { name: String, ty: GgmlType, reason: &'static str },

    /// A batch that cannot be run: empty sequence, unknown token, positions past the model's
    /// context, a block table too short, a block id outside the cache.
    #[error("invalid batch (sequence {sequence}): {reason}")]
    InvalidBatch { sequence: usize, reason: String },

    /// The device a backend computes on failed: a lost GPU, device memory that ran out, a
    /// kernel the driver refused.
    #[error("{backend} device error: {error}")]
    Device { backend: &'static str, error: Box<dyn std::error::Error + Send + Sync> },

    /// A KV cache built for another model shape or with impossible sizes.
    #[error("invalid KV cache: {reason}")]
    InvalidKvCache { reason: String },

    /// A backend broke the seam's contract (a bug in uma, never the input's fault).
    #[error("backend error: {reason}")]
    Backend { reason: String },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ModelError>;
