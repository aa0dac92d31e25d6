//! The small JSON file beside each stored model: where it came from and what it should be.

use serde::{Deserialize, Serialize};

/// `manifest.json` of one stored model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The name it is stored under (`name:tag`).
    pub name: String,
    /// The hub repository it was pulled from (`OWNER/REPO`), if any.
    pub source_repo: Option<String>,
    /// The GGUF file's name (inside the model's folder, and in the repository).
    pub file: String,
    /// The repository revision (commit) it was pulled at, if known.
    pub revision: Option<String>,
    /// Hex SHA-256 of the file, as verified when it was stored.
    pub sha256: String,
    pub size: u64,
    /// When it was stored, seconds since the Unix epoch.
    pub stored_at: u64,
}
