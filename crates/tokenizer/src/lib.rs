//! Tokenizers built from GGUF metadata (or a Hugging Face `tokenizer.json`), streaming
//! detokenization, and chat templates.
//!
//! Owns: turning text into token ids and back for byte-level BPE vocabularies (`gpt2` model,
//! pre-tokenizer chosen by `tokenizer.ggml.pre`) and SentencePiece vocabularies (`llama` model:
//! Llama 2, Gemma), special and control tokens, BOS/EOS rules, the set of tokens that end a turn,
//! UTF-8-safe streaming decode ([`StreamDecoder`]), and rendering `tokenizer.chat_template` (or a
//! built-in template) with `minijinja` ([`ChatTemplate`]).
//!
//! Does not own: reading the GGUF file (`uma-gguf`), sampling or stop strings (`uma-sampling`).
//!
//! The BPE machinery is Hugging Face's `tokenizers` crate, assembled the way `transformers` builds a
//! tokenizer from a GGUF file, so ids agree with `transformers` token for token (checked against
//! golden files in `tests/golden/`, produced by `scripts/golden/make-tokenizer-golden.sh`).
//! See `docs/tokenizer.md` for the decisions behind it.
#![forbid(unsafe_code)]

mod chat_message;
mod chat_template;
mod error;
mod gguf_vocabulary;
mod shared_model;
mod stream_decoder;
mod tokenizer;

pub use chat_message::{ChatMessage, ToolCall, ToolCallFunction};
pub use chat_template::{without_reasoning, ChatTemplate, TemplateOrigin};
pub use error::{Result, TokenizerError};
pub use gguf_vocabulary::TokenType;
pub use stream_decoder::StreamDecoder;
pub use tokenizer::{Tokenizer, VocabularyKind};

pub use uma_ids::TokenId;
