//! Errors of the store.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("invalid model name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("no model named {name} in the store ({root}); `uma list` shows what is there")]
    NotFound { name: String, root: PathBuf },
    #[error("{path} is not a regular file inside the store (a symbolic link or something else)")]
    NotARegularFile { path: PathBuf },
    #[error("{path} leads outside the store (through a symbolic link)")]
    OutsideStore { path: PathBuf },
    #[error("the manifest {path} is unreadable: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

impl StoreError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { what, path, source }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;
