//! A client of a Hugging Face-compatible model hub (`$HF_ENDPOINT`, default huggingface.co;
//! `$HF_TOKEN` for private or gated repositories): a repository's files with their sizes and
//! sha256 (from the hub's tree API), the GGUF file a quantization tag names, and downloads that
//! resume an interrupted transfer (HTTP range requests) and hash what they write.
//!
//! Does not own: where files go or when they become visible (the store's atomic install), or
//! how progress is shown (the caller's callback).
#![forbid(unsafe_code)]

mod choose;
mod error;
mod hub;

pub use choose::choose_gguf;
pub use error::{HubError, Result};
pub use hub::{Hub, Progress, RemoteFile, RepositoryFiles, DEFAULT_ENDPOINT};
