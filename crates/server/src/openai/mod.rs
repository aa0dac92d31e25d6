//! OpenAI's wire protocol, without I/O: request bodies parsed and checked
//! ([`ChatCompletionRequest`], [`CompletionRequest`] → [`SamplingParams`](uma_sampling::SamplingParams)
//! and [`ChatMessage`](uma_tokenizer::ChatMessage)s), response bodies and stream chunks built from
//! plain data, and errors as OpenAI's error object ([`ApiError`]).
//!
//! Does not own: routes, the engine, tokenizing, SSE framing (`data: ...\n\n`, `[DONE]`) — the
//! caller serializes each chunk `Value` into one event.
//!
//! Unknown request fields are ignored (clients send many); a known field of the wrong type fails
//! to parse, which [`ApiError::from_json_rejection`] turns into a 400 naming the field.

mod chat_request;
mod completion_request;
mod embedding_request;
mod error;
mod logprobs;
mod request_fields;
mod response;

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
pub use error::ApiError;
pub use logprobs::{TokenLogprob, TopLogprob};
pub use request_fields::{
    StopSequences, StreamOptions, MAX_CHOICES, MAX_STOP_SEQUENCES, MAX_TEMPERATURE,
};
pub use response::{
    chat_chunk, chat_completion, chat_usage_chunk, finish_reason_str, model_list, model_object,
    new_request_id, text_chunk, text_completion, text_usage_chunk, unix_time_now, ChoiceOutput,
    ChunkDelta, ModelCard, ResponseMeta, Usage,
};
