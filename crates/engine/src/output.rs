//! What a request's stream receives: tokens with their text as it becomes final, then one
//! terminal event.

use std::sync::Arc;

use uma_sampling::FinishReason;

use crate::error::EngineError;
use crate::TokenId;

/// One event on a request's stream.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// A generated token.
    Token(TokenOutput),
    /// The request finished; no more events follow.
    Finished(Completion),
    /// The request failed inside the engine; no more events follow. Shared: a failed step
    /// sends the one error to every request in it.
    Failed(Arc<EngineError>),
}

/// Failures compare by identity (the lower crates' errors are not comparable): a failure
/// equals itself and its clones.
impl PartialEq for StreamEvent {
    fn eq(&self, other: &StreamEvent) -> bool {
        match (self, other) {
            (StreamEvent::Token(a), StreamEvent::Token(b)) => a == b,
            (StreamEvent::Finished(a), StreamEvent::Finished(b)) => a == b,
            (StreamEvent::Failed(a), StreamEvent::Failed(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// One generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenOutput {
    pub token: TokenId,
    /// Text that became final with this token: often the token's own text, empty while a
    /// character or a possible stop string is held back, several tokens' text when released.
    pub text: String,
    /// The token's log-probability, when the request asked for logprobs.
    pub logprob: Option<f32>,
    /// The most likely tokens and their log-probabilities, when asked for.
    pub top_logprobs: Vec<(TokenId, f32)>,
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub finish_reason: FinishReason,
    /// Text released at the end (held-back text that turned out not to start a stop string).
    pub text: String,
    pub usage: Usage,
}

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub num_prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub num_cached_tokens: usize,
    pub num_generated_tokens: usize,
    /// Draft tokens proposed for this request by speculative decoding, and of those, the ones
    /// the model confirmed (each confirmed draft is a generated token that cost no step).
    pub num_drafted_tokens: usize,
    pub num_accepted_draft_tokens: usize,
}
