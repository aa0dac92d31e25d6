//! Sampling: turning a sequence's logits into its next token, and deciding when it stops.
//!
//! Owns:
//! - [`SamplingParams`]: per-request parameters (temperature, top-k, top-p, min-p, repetition /
//!   presence / frequency penalties, seed, max tokens, stop strings and token ids, `ignore_eos`,
//!   top-n logprobs), their defaults and validation. The server maps OpenAI and Ollama requests
//!   onto it.
//! - [`Sampler`]: one per sequence, with its own seeded ChaCha20 generator; penalties → top-k →
//!   top-p → min-p → temperature → draw, plus logprobs. [`sample_batch`] runs a batch of rows.
//! - [`StopMatcher`]: stop strings matched across token boundaries in streamed text, holding back
//!   text that may begin a stop string.
//! - [`StopCondition`], [`StopReason`], [`FinishReason`]: max tokens, end-of-generation and stop
//!   token ids and stop strings, combined.
//!
//! Does not own: computing logits (`uma-model`), detokenizing tokens into text pieces
//! (`uma-tokenizer`; this crate only consumes the pieces), which token ids end generation for a
//! model (the caller passes them), scheduling and request state (`uma-engine`), or mapping API
//! fields to parameters (`uma-server`). Grammar constraints are not implemented yet.
#![forbid(unsafe_code)]

mod batch;
mod error;
mod processors;
mod sampler;
mod sampling_params;
mod stop_condition;
mod stop_matcher;
mod token_history;

pub use batch::sample_batch;
pub use error::{Result, SamplingError};
pub use processors::argmax;
pub use sampler::{SampledToken, Sampler};
pub use sampling_params::{
    PenaltyScope, SamplingParams, MAX_STOP_BYTES, MAX_STOP_STRINGS, MAX_STOP_TOKEN_IDS,
    MAX_TOP_LOGPROBS,
};
pub use stop_condition::{FinishReason, StopCondition, StopReason, StopUpdate};
pub use stop_matcher::{StopMatchOutput, StopMatcher};
pub use token_history::TokenHistory;

pub use uma_ids::TokenId;
