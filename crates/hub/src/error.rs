//! Errors of the hub client.

/// Why a hub request or download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error("{url}: HTTP {status}{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status { url: String, status: u16, detail: String },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: unexpected answer: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("{repo} has no GGUF file{}", if .tag.is_empty() { String::new() } else { format!(" matching {:?}", .tag) })]
    NoMatchingFile { repo: String, tag: String, available: Vec<String> },
    #[error("{repo}: {tag:?} matches several GGUF files ({}); name one exactly", .candidates.join(", "))]
    AmbiguousTag { repo: String, tag: String, candidates: Vec<String> },
    #[error(
        "checksum mismatch for {file}: the hub says sha256 {expected}, the download has {actual}"
    )]
    ChecksumMismatch { file: String, expected: String, actual: String },
    #[error("{file}: the transfer ended after {received} of {expected} bytes")]
    Incomplete { file: String, received: u64, expected: u64 },
    #[error("{file}: the hub sent more than the {expected} bytes it listed; stopped")]
    TooLong { file: String, expected: u64 },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, HubError>;
