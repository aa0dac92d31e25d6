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
    GenerationFields, StopSequences, StreamOptions, WithGenerationFields, MAX_CHOICES,
    MAX_STOP_SEQUENCES, MAX_TEMPERATURE,
};
pub(crate) use response::unix_time_now;
pub(crate) use routes::router;

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared fields are flattened into each request: a value of the wrong type must still
    /// be a 400 that names its field, as for the requests' own fields.
    #[test]
    fn wrong_types_of_shared_fields_name_the_field() {
        use axum::Json;
        fn param<T: serde::de::DeserializeOwned + std::fmt::Debug>(
            body: &str,
        ) -> (Option<String>, String) {
            let rejection = Json::<T>::from_bytes(body.as_bytes()).expect_err(body);
            let error = ApiError::from(rejection);
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST, "{body}");
            (error.param, error.message)
        }
        let chat = r#""model": "m", "messages": [{"role": "user", "content": "hi"}]"#;
        let completion = r#""model": "m", "prompt": "hi""#;
        for (fields, expected) in [
            (r#""temperature": "hot""#, "temperature"),
            (r#""max_tokens": "many""#, "max_tokens"),
            (r#""n": 1.5"#, "n"),
            (r#""stop": ["a", 1]"#, "stop[1]"),
            (r#""stream_options": {"include_usage": "yes"}"#, "stream_options.include_usage"),
            (r#""top_k": "all""#, "top_k"),
        ] {
            let body = format!("{{{chat}, {fields}}}");
            let (found, message) = param::<ChatCompletionRequest>(&body);
            assert_eq!(found.as_deref(), Some(expected), "{body}: {message}");
            assert!(message.starts_with(&format!("{expected}: invalid type")), "{message}");
            let body = format!("{{{completion}, {fields}}}");
            let (found, _) = param::<CompletionRequest>(&body);
            assert_eq!(found.as_deref(), Some(expected), "{body}");
        }
        // The requests' own fields, around the flattened ones, keep their paths too.
        let body = format!(r#"{{{chat}, "logprobs": 3, "temperature": 1}}"#);
        let (found, _) = param::<ChatCompletionRequest>(&body);
        assert_eq!(found.as_deref(), Some("logprobs"));
    }
}
