//! The crate's one error type.

/// What can go wrong opening a GPU or computing on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter of a usable backend (Metal, Vulkan, DX12) was found.
    #[error("no GPU found (looked for Metal, Vulkan and DX12 adapters{detail})")]
    NoAdapter { detail: String },

    /// The adapter exists but refused a device with what uma needs.
    #[error("the GPU {adapter} refused a device: {reason}")]
    DeviceRefused { adapter: String, reason: String },

    /// The device was lost (driver reset, GPU removed) or reported an error.
    #[error("the GPU failed: {reason}")]
    DeviceFailed { reason: String },

    /// A kernel did not compile or a buffer could not be created (a bug, or a driver limit).
    #[error("GPU validation error: {reason}")]
    Validation { reason: String },

    /// A tensor or a cache the GPU backend cannot hold.
    #[error("{reason}")]
    Unsupported { reason: String },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, GpuError>;

impl From<GpuError> for uma_model::ModelError {
    fn from(error: GpuError) -> Self {
        uma_model::ModelError::Device { backend: "gpu", error: Box::new(error) }
    }
}
