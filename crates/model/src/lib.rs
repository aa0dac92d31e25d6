//! Transformer architectures over GGUF weights (in progress).
#![forbid(unsafe_code)]
