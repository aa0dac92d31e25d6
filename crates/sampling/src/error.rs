//! The crate's one error type.

use crate::TokenId;

/// Everything that can go wrong while validating parameters or sampling.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplingError {
    /// A field of [`crate::SamplingParams`] is out of its range. `name` is the field name, so the
    /// server can report it as the offending request parameter.
    #[error("invalid sampling parameter `{name}` = {value}: expected {expected}")]
    InvalidParameter { name: &'static str, value: String, expected: &'static str },

    /// A stop string is empty; it would match before any text.
    #[error("stop string {index} is empty")]
    EmptyStopString { index: usize },

    /// The logits row handed to the sampler has no entries.
    #[error("the logits row is empty")]
    EmptyLogits,

    /// Every logit is `-inf` or NaN, so no token can be chosen.
    #[error("no token can be sampled: every logit is -inf or NaN")]
    NoCandidates,

    /// A token of the history (used for penalties) is not a valid index into the logits row.
    #[error("token {token} in the history is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfVocabulary { token: TokenId, vocab_size: usize },

    /// The batch helper got inconsistent shapes.
    #[error(
        "batch shape mismatch: {num_samplers} samplers, {num_histories} histories, \
         {num_logits} logits (must be a non-zero multiple of the number of samplers)"
    )]
    BatchShape { num_samplers: usize, num_histories: usize, num_logits: usize },

    /// The operating system could not provide entropy to seed an unseeded sampler.
    #[error("cannot seed the sampler from operating-system entropy: {message}")]
    Entropy { message: String },
}

/// `Result` with [`SamplingError`].
pub type Result<T> = std::result::Result<T, SamplingError>;
