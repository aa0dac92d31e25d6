//! The local model store: GGUF files under uma's data folder (`$UMA_HOME`), one folder per model
//! with a manifest (source repository, file, revision, sha256, size, date), names that resolve to
//! files and can never reach outside the store, listing, removal, and atomic installs for
//! downloads.
//!
//! Does not own: downloading (the CLI's `uma pull` writes the partial file and calls
//! [`ModelStore::install`]), or reading GGUF files.
#![forbid(unsafe_code)]

mod error;
mod manifest;
mod model_name;
mod model_store;

pub use error::{Result, StoreError};
pub use manifest::Manifest;
pub use model_name::{ModelName, HUGGING_FACE_PREFIX};
pub use model_store::{ModelStore, StoredModel};
