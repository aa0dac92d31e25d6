//! OpenAI's API: the routes (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
//! `/v1/models`), request bodies parsed and checked ([`ChatCompletionRequest`],
//! [`CompletionRequest`] → [`SamplingParams`](uma_sampling::SamplingParams) and
//! [`ChatMessage`](uma_tokenizer::ChatMessage)s), and generations rendered as OpenAI's response
//! bodies and SSE chunks.
//!
//! Does not own: the engine, running a generation (`generation.rs`, shared with the Ollama
//! routes), the error object and statuses (`error.rs`; [`ApiError`] is re-exported here).
//!
//! Unknown request fields are ignored (clients send many); a known field of the wrong type fails
//! to parse, which [`ApiError::from_json_rejection`] turns into a 400 naming the field.

mod answer;
mod chat_request;
mod completion_request;
mod embedding_request;
mod logprobs;
mod request_fields;
mod response;
mod routes;

pub use crate::error::ApiError;
pub use chat_request::{
    ChatCompletionRequest, ContentPart, MessageContent, RequestFunctionCall, RequestMessage,
    RequestToolCall,
};
pub use completion_request::{
    CompletionRequest, PromptInput, Prompts, DEFAULT_COMPLETION_MAX_TOKENS, MAX_COMPLETION_LOGPROBS,
};
pub use embedding_request::{
    EmbeddingInput, EmbeddingItem, EmbeddingRequest, MAX_EMBEDDING_INPUTS,
};
pub use request_fields::{
    StopSequences, StreamOptions, MAX_CHOICES, MAX_STOP_SEQUENCES, MAX_TEMPERATURE,
};
pub(crate) use response::unix_time_now;
pub(crate) use routes::router;
