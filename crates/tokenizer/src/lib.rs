//! Tokenizers built from GGUF metadata, streaming detokenization and chat templates (in progress).
#![forbid(unsafe_code)]
