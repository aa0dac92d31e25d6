//! The crate's one error type.

use std::path::PathBuf;

use crate::TokenId;

/// Everything that can go wrong building a tokenizer, encoding, decoding or rendering a chat.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The GGUF metadata could not be read (wrong type, out of range).
    #[error("reading GGUF tokenizer metadata: {0}")]
    Gguf(#[from] uma_gguf::GgufError),

    /// A key the tokenizer needs is absent.
    #[error("GGUF file has no `{key}`: it carries no usable tokenizer")]
    MissingKey { key: &'static str },

    /// `tokenizer.ggml.model` names a tokenizer this crate does not build.
    #[error("unsupported tokenizer model `{model}` (supported: gpt2, llama)")]
    UnsupportedModel { model: String },

    /// `tokenizer.ggml.pre` names a pre-tokenizer whose split rule this crate does not know.
    #[error("unsupported pre-tokenizer `{pre}` for a byte-level BPE vocabulary")]
    UnsupportedPreTokenizer { pre: String },

    /// A per-token array does not have one entry per token.
    #[error("`{key}` has {found} entries but the vocabulary has {expected} tokens")]
    LengthMismatch { key: &'static str, expected: usize, found: usize },

    /// A per-token array has an element type the tokenizer cannot use.
    #[error("`{key}` is an array of the wrong element type (expected {expected})")]
    WrongArrayType { key: &'static str, expected: &'static str },

    /// A token id (in the file's metadata or given to decode) is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    TokenIdOutOfRange { id: TokenId, vocab_size: usize },

    /// The `tokenizers` machinery rejected the vocabulary or an input.
    #[error("{context}: {message}")]
    Backend { context: &'static str, message: String },

    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The chat template is not valid Jinja.
    #[error("chat template does not compile: {message}")]
    TemplateSyntax { message: String },

    /// The chat template called `raise_exception(message)`, usually because the conversation breaks
    /// its rules (roles not alternating, a role it does not know).
    #[error("chat template refused the conversation: {message}")]
    TemplateRaised { message: String },

    /// Rendering failed for another reason (undefined value used, wrong type, ...).
    #[error("chat template failed to render: {message}")]
    TemplateRender { message: String },
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, TokenizerError>;

impl TokenizerError {
    pub(crate) fn backend(context: &'static str, error: impl std::fmt::Display) -> Self {
        TokenizerError::Backend { context, message: error.to_string() }
    }
}
