//! GGUF v2/v3: parse and validate a file's header, metadata and tensor index; map it read-only
//! and hand out zero-copy views of tensor data; and write valid files (tests use the writer to build
//! tiny models of any architecture).
//!
//! Owns: the file format, the ggml type table ([`GgmlType`]), every metadata key string
//! ([`keys`]) and every tensor name ([`tensor_names`]). Does not own: what tensors mean (the
//! `model` crate) or how blocks decode (`kernels`).
//!
//! Every malformed input is a [`GgufError`] naming the byte offset and what was wrong; parsing
//! never panics, never reads out of bounds, and never allocates more than a small multiple of the
//! bytes it has actually parsed.
#![deny(unsafe_code)]

mod cursor;
mod error;
mod file;
mod ggml_type;
pub mod keys;
mod metadata;
mod model_params;
mod parse;
mod tensor;
pub mod tensor_names;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use file::GgufFile;
pub use ggml_type::GgmlType;
pub use metadata::Metadata;
pub use model_params::{ModelParams, RopeScaling, TokenizerParams};
pub use parse::{
    GgufHeader, MAGIC, MAX_ARRAY_LENGTH, MAX_ARRAY_NESTING, MAX_METADATA_ENTRIES, MAX_TENSORS,
};
pub use tensor::{TensorInfo, TensorView};
pub use value::{MetadataArray, MetadataValue, ValueType};
pub use writer::GgufWriter;

/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;
