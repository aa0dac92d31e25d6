//! Anthropic's shapes, built from plain data: the `message` body and its content blocks, the stop
//! reason, usage, ids, and the error object (`{"type": "error", "error": {"type", "message"}}`).

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use uma_chat_output::{ParsedOutput, ParsedToolCall};
use uma_engine::EngineError;
use uma_sampling::FinishReason;

use crate::error::ApiError;
use crate::generation::{new_request_id, Usage};

/// An [`ApiError`] answered in Anthropic's shape, with the same status. Anthropic's error has no
/// `param`: the field at fault leads the message instead (`tools[0].input_schema: ...`).
#[derive(Debug)]
pub(crate) struct AnthropicError(pub(crate) ApiError);

impl From<ApiError> for AnthropicError {
    fn from(error: ApiError) -> Self {
        AnthropicError(error)
    }
}

impl From<EngineError> for AnthropicError {
    fn from(error: EngineError) -> Self {
        AnthropicError(ApiError::from(error))
    }
}

impl From<JsonRejection> for AnthropicError {
    fn from(rejection: JsonRejection) -> Self {
        AnthropicError(ApiError::from(rejection))
    }
}

impl AnthropicError {
    /// Anthropic's error `type` for the status.
    pub(crate) fn kind(&self) -> &'static str {
        match self.0.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
            status if status.is_server_error() => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The message, led by the field at fault when it does not name it already.
    pub(crate) fn message(&self) -> String {
        match &self.0.param {
            Some(param) if !self.0.message.contains(param.as_str()) => {
                format!("{param}: {}", self.0.message)
            }
            _ => self.0.message.clone(),
        }
    }

    /// The error body (also the data of a stream's `error` event).
    pub(crate) fn body(&self) -> Value {
        json!({"type": "error", "error": {"type": self.kind(), "message": self.message()}})
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let mut response = (self.0.status, Json(self.body())).into_response();
        if let Some(seconds) = self.0.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `msg_` and 32 hex digits.
pub(crate) fn new_message_id() -> String {
    new_request_id("msg").replacen('-', "_", 1)
}

/// `toolu_` and 24 hex digits.
pub(crate) fn new_tool_use_id() -> String {
    let id = new_request_id("toolu").replacen('-', "_", 1);
    id[..id.len().min(30)].to_owned()
}

/// Why generation stopped, Anthropic's way, and the stop sequence when one ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopReason {
    pub(crate) reason: &'static str,
    pub(crate) sequence: Option<String>,
}

impl StopReason {
    /// `end_turn`, `tool_use`, `stop_sequence` (with `matched`, the sequence that ended the
    /// text), `max_tokens`, or `model_context_window_exceeded` when the context filled up before
    /// `max_tokens`.
    pub(crate) fn new(
        finish_reason: FinishReason,
        called: bool,
        matched: Option<String>,
        output_tokens: u32,
        max_tokens: u32,
    ) -> StopReason {
        let reason = match finish_reason {
            FinishReason::Length if output_tokens < max_tokens => "model_context_window_exceeded",
            FinishReason::Length => "max_tokens",
            FinishReason::Stop if called => "tool_use",
            FinishReason::Stop if matched.is_some() => "stop_sequence",
            FinishReason::Stop | FinishReason::Cancelled => "end_turn",
        };
        let sequence = if reason == "stop_sequence" { matched } else { None };
        StopReason { reason, sequence }
    }
}

/// Anthropic's `usage`: `input_tokens` are the prompt tokens not read from the cache
/// (`cache_read_input_tokens`); uma writes no cache entries on request, so
/// `cache_creation_input_tokens` is 0.
pub(crate) fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens.saturating_sub(usage.cached_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    })
}

/// A tool call as a `tool_use` block; its `input` is the arguments object.
pub(crate) fn tool_use_block(call: &ParsedToolCall) -> Value {
    let input = serde_json::from_str::<Value>(&call.arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({"type": "tool_use", "id": new_tool_use_id(), "name": call.name, "input": input})
}

/// The content blocks of an answer: its reasoning as a `thinking` block, its text (unless only
/// whitespace), its tool calls as `tool_use` blocks.
pub(crate) fn content_blocks(parsed: &ParsedOutput) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(reasoning) = parsed.reasoning.as_ref().filter(|text| !text.is_empty()) {
        // uma signs nothing; the field is there because clients expect it.
        blocks.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    if !parsed.content.trim().is_empty() {
        blocks.push(json!({"type": "text", "text": parsed.content}));
    }
    blocks.extend(parsed.tool_calls.iter().map(tool_use_block));
    blocks
}

/// The `message` object: the body of a non-streamed answer, and (empty, with the prompt's
/// usage) the payload of `message_start`.
pub(crate) fn message_body(
    id: &str,
    model: &str,
    content: Vec<Value>,
    stop: Option<&StopReason>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop.map(|stop| stop.reason),
        "stop_sequence": stop.and_then(|stop| stop.sequence.clone()),
        "usage": usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_anthropics_shape_and_name_the_field() {
        let error = AnthropicError(ApiError::invalid_request(
            "A tool needs an \"input_schema\" object.",
            Some("tools[0].input_schema"),
        ));
        assert_eq!(
            error.body(),
            json!({"type": "error", "error": {
                "type": "invalid_request_error",
                "message": "tools[0].input_schema: A tool needs an \"input_schema\" object.",
            }})
        );
        let named =
            AnthropicError(ApiError::invalid_request("`top_k` must be >= 0", Some("top_k")));
        assert_eq!(named.message(), "`top_k` must be >= 0");
        for (error, kind) in [
            (ApiError::unauthorized(), "authentication_error"),
            (ApiError::not_found_model("m"), "not_found_error"),
            (ApiError::queue_full(1), "rate_limit_error"),
            (ApiError::payload_too_large(1), "request_too_large"),
            (ApiError::unavailable("x"), "overloaded_error"),
            (ApiError::internal("x"), "api_error"),
        ] {
            assert_eq!(AnthropicError(error).kind(), kind);
        }
        let response = AnthropicError(ApiError::queue_full(3)).into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn stop_reasons() {
        let stop = |finish, called, matched: Option<&str>, tokens| {
            StopReason::new(finish, called, matched.map(str::to_owned), tokens, 10)
        };
        assert_eq!(stop(FinishReason::Stop, false, None, 3).reason, "end_turn");
        assert_eq!(stop(FinishReason::Stop, true, None, 3).reason, "tool_use");
        let sequence = stop(FinishReason::Stop, false, Some("END"), 3);
        assert_eq!((sequence.reason, sequence.sequence.as_deref()), ("stop_sequence", Some("END")));
        assert_eq!(stop(FinishReason::Length, false, Some("END"), 10).reason, "max_tokens");
        assert_eq!(stop(FinishReason::Length, false, None, 10).sequence, None);
        assert_eq!(
            stop(FinishReason::Length, false, None, 4).reason,
            "model_context_window_exceeded"
        );
    }

    #[test]
    fn blocks_and_usage() {
        let parsed = ParsedOutput {
            reasoning: Some("Think.".into()),
            content: "\n".into(),
            tool_calls: vec![ParsedToolCall {
                name: "get_weather".into(),
                arguments: r#"{"city": "Oslo"}"#.into(),
            }],
            issues: Vec::new(),
        };
        let blocks = content_blocks(&parsed);
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0], json!({"type": "thinking", "thinking": "Think.", "signature": ""}));
        assert_eq!(blocks[1]["type"], "tool_use");
        assert_eq!(blocks[1]["input"], json!({"city": "Oslo"}));
        assert!(blocks[1]["id"].as_str().is_some_and(|id| id.starts_with("toolu_")));
        let text = ParsedOutput { content: "Hi".into(), ..ParsedOutput::default() };
        assert_eq!(content_blocks(&text), vec![json!({"type": "text", "text": "Hi"})]);
        let usage =
            Usage { prompt_tokens: 12, completion_tokens: 5, cached_tokens: 8, ..Usage::default() };
        assert_eq!(
            usage_json(&usage),
            json!({"input_tokens": 4, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 8, "output_tokens": 5})
        );
        assert!(new_message_id().starts_with("msg_"));
    }
}
