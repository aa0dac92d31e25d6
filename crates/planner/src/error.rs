//! The planner's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while planning: bad inputs, unreadable files, unknown names.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlannerError {
    /// The GGUF file could not be parsed or lacks a key the plan needs.
    #[error(transparent)]
    Gguf(#[from] uma_gguf::GgufError),

    /// A file (a machine catalogue) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },

    /// A machine catalogue is not valid TOML or a machine lacks a field.
    #[error("{origin}: invalid machine catalogue: {reason}")]
    InvalidCatalogue { origin: String, reason: String },

    /// No machine of that name in the catalogue.
    #[error("unknown machine {name:?}; known machines: {known}")]
    UnknownMachine { name: String, known: String },

    /// No quantization of that name.
    #[error("unknown quantization {name:?}; known: {known}")]
    UnknownQuantization { name: String, known: String },

    /// No engine of that name in the speed model.
    #[error("unknown engine {name:?}; known engines: {known}")]
    UnknownEngine { name: String, known: String },

    /// The engine does not run on the machine (llama.cpp's Metal backend on an NVIDIA card).
    #[error("engine {engine} does not run on {machine} ({kind}); engines for it: {engines}")]
    EngineNotForMachine { engine: String, machine: String, kind: String, engines: String },

    /// No cluster link of that name (`data/cluster.toml`).
    #[error("unknown link {name:?}; known links: {known}")]
    UnknownLink { name: String, known: String },

    /// The speed model's data is not valid.
    #[error("{origin}: invalid speed model: {reason}")]
    InvalidSpeedModel { origin: String, reason: String },

    /// A number out of its range (a zero layer count, a negative bandwidth, ...).
    #[error("invalid {name}: {reason}")]
    InvalidValue { name: String, reason: String },

    /// The bandwidth probe could not run with these settings.
    #[error("bandwidth probe: {reason}")]
    BandwidthProbe { reason: String },

    /// The probe's buffer could not be allocated.
    #[error(
        "cannot allocate {} MB for the bandwidth probe (give the bandwidth with --bandwidth GB/s)",
        bytes / 1_000_000
    )]
    BandwidthProbeAllocation { bytes: usize },

    /// This machine's memory could not be read.
    #[error("cannot detect this machine's memory: {reason}")]
    MemoryDetection { reason: String },
}

impl PlannerError {
    /// An [`PlannerError::InvalidValue`] for the value called `name`.
    pub(crate) fn invalid(name: impl Into<String>, reason: impl Into<String>) -> PlannerError {
        PlannerError::InvalidValue { name: name.into(), reason: reason.into() }
    }
}

/// The planner's result type.
pub type Result<T> = std::result::Result<T, PlannerError>;
