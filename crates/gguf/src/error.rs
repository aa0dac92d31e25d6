//! The one error type of the crate: every malformed input maps to a variant saying where and what.

use std::path::PathBuf;

use crate::GgmlType;

/// Result of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, GgufError>;

/// What went wrong reading or writing a GGUF file. Offsets are byte offsets from the file start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    // The I/O error is part of the message rather than a `#[source]`, so that printing the error
    // chain does not say it twice.
    #[error("cannot read {}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot write GGUF: {0}")]
    Write(std::io::Error),
    #[error("not a GGUF file: it starts with \"{}\", not \"GGUF\"", escape_bytes(found))]
    BadMagic { found: Vec<u8> },
    #[error("big-endian GGUF files are not supported (version field at offset 4 is byte-swapped)")]
    BigEndian,
    #[error("unsupported GGUF version {version} at offset 4 (supported: 2 and 3)")]
    UnsupportedVersion { version: u32 },
    #[error(
        "file truncated at offset {offset}: {what} needs {needed} bytes, only {available} left"
    )]
    Truncated { offset: u64, what: &'static str, needed: u64, available: u64 },
    #[error(
        "at offset {offset}: {what} count {count} is impossible (at most {limit} fit in the file)"
    )]
    CountTooLarge { offset: u64, what: &'static str, count: u64, limit: u64 },
    #[error("at offset {offset}: string is not valid UTF-8")]
    InvalidUtf8 { offset: u64 },
    #[error("at offset {offset}: unknown metadata value type {type_id}")]
    UnknownValueType { offset: u64, type_id: u32 },
    #[error("at offset {offset}: boolean value {value} is neither 0 nor 1")]
    InvalidBool { offset: u64, value: u8 },
    #[error("at offset {offset}: arrays nested more than {limit} deep")]
    NestingTooDeep { offset: u64, limit: usize },
    #[error("at offset {offset}: metadata key {key:?} appears twice")]
    DuplicateKey { offset: u64, key: String },
    #[error("general.alignment = {value} is not a power of two between 1 and 2^30")]
    BadAlignment { value: u64 },
    #[error("at offset {offset}: tensor {tensor:?} has {num_dims} dimensions (at most 4)")]
    TooManyDimensions { offset: u64, tensor: String, num_dims: u32 },
    #[error("at offset {offset}: tensor {tensor:?} has unknown ggml type id {type_id}")]
    UnknownGgmlType { offset: u64, tensor: String, type_id: u32 },
    #[error(
        "at offset {offset}: tensor {tensor:?} has shape {shape:?} whose element count overflows"
    )]
    ElementCountOverflow { offset: u64, tensor: String, shape: Vec<u64> },
    #[error(
        "at offset {offset}: tensor {tensor:?} of type {ggml_type} has rows of {row_length} elements, \
         not a multiple of the block size {block_size}"
    )]
    PartialBlock {
        offset: u64,
        tensor: String,
        ggml_type: GgmlType,
        row_length: u64,
        block_size: u64,
    },
    #[error("at offset {offset}: tensor {tensor:?} appears twice")]
    DuplicateTensor { offset: u64, tensor: String },
    #[error("tensor {tensor:?}: data offset {data_offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor { tensor: String, data_offset: u64, alignment: u64 },
    #[error(
        "tensor {tensor:?}: data [{start}, {start}+{size}) lies beyond the end of the file ({file_size} bytes)"
    )]
    TensorOutOfBounds { tensor: String, start: u64, size: u64, file_size: u64 },
    #[error("tensors {first:?} and {second:?} overlap in the data section")]
    OverlappingTensors { first: String, second: String },
    #[error("tensor {name:?} not found")]
    TensorNotFound { name: String },
    #[error("metadata key {key:?} is missing")]
    MissingKey { key: String },
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongType { key: String, expected: &'static str, found: &'static str },
    #[error("metadata key {key:?} = {value} is out of range for {expected}")]
    OutOfRange { key: String, value: String, expected: &'static str },
    #[error("cannot write tensor {tensor:?}: {reason}")]
    InvalidTensor { tensor: String, reason: String },
}

/// Bytes as printable ASCII with escapes (`\x7fELF`), for messages about foreign files.
fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect()
}
