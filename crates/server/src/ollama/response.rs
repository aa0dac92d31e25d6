//! Ollama's response bodies: stream lines and final summaries of `/api/generate` and
//! `/api/chat`, the model lists of `/api/tags` and `/api/ps`, `/api/show`, and errors
//! (`{"error": "..."}` with the status code).

use std::time::{Duration, Instant, SystemTime};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use uma_chat_output::ReasoningFormat;
use uma_engine::{EngineError, KeepAlive, ModelInfo, ModelStatus};
use uma_sampling::FinishReason;

use crate::error::ApiError;

/// An error as Ollama reports it: `{"error": message}` with the status of the matching
/// OpenAI-route error (and its `Retry-After`).
#[derive(Debug)]
pub(crate) struct OllamaError(pub(crate) ApiError);

impl From<ApiError> for OllamaError {
    fn from(error: ApiError) -> Self {
        OllamaError(error)
    }
}

impl From<EngineError> for OllamaError {
    fn from(error: EngineError) -> Self {
        OllamaError(ApiError::from(error))
    }
}

impl OllamaError {
    /// The message Ollama's one `error` field carries: the error's, naming the request field at
    /// fault when it does not already (Ollama's errors have no separate `param`).
    pub(crate) fn message(&self) -> String {
        match &self.0.param {
            Some(param) if !self.0.message.contains(param.as_str()) => {
                format!("{} (`{param}`)", self.0.message)
            }
            _ => self.0.message.clone(),
        }
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let mut response =
            (self.0.status, Json(json!({ "error": self.message() }))).into_response();
        if let Some(seconds) = self.0.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// RFC 3339 time with nanoseconds, as Ollama writes `created_at` and `modified_at`.
pub(crate) fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Ollama's `done_reason`.
pub(crate) fn done_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

/// The timings and counts of a finished generation (nanoseconds, as Ollama reports them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub(crate) started: Instant,
    /// When the model was ready (resident, or loaded for this request).
    pub(crate) loaded: Instant,
    pub(crate) first_token: Option<Instant>,
    pub(crate) finished: Instant,
    pub(crate) num_prompt_tokens: usize,
    pub(crate) num_generated_tokens: usize,
}

impl Timings {
    /// Adds the summary fields to a final object.
    pub(crate) fn add_to(&self, object: &mut Map<String, Value>) {
        let first = self.first_token.unwrap_or(self.finished);
        object.insert("total_duration".into(), json!(nanos(self.finished - self.started)));
        object.insert("load_duration".into(), json!(nanos(self.loaded - self.started)));
        object.insert("prompt_eval_count".into(), json!(self.num_prompt_tokens));
        object.insert("prompt_eval_duration".into(), json!(nanos(first - self.loaded)));
        object.insert("eval_count".into(), json!(self.num_generated_tokens));
        object.insert("eval_duration".into(), json!(nanos(self.finished - first)));
    }
}

/// `details` of a model in `/api/tags`, `/api/ps` and `/api/show`.
pub(crate) fn details(info: &ModelInfo) -> Value {
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": parameter_size(info.num_parameters),
        "quantization_level": info.quantization,
    })
}

/// `494.03M`, `1.54B`: Ollama's `parameter_size`.
fn parameter_size(num_parameters: u64) -> String {
    let n = num_parameters as f64;
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else {
        format!("{:.2}M", n / 1e6)
    }
}

fn modified_at(info: &ModelInfo) -> String {
    timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(info.modified_unix_secs))
}

/// One model of `/api/tags`: every model this server can serve.
pub(crate) fn tag(status: &ModelStatus) -> Value {
    let info = &status.entry.info;
    json!({
        "name": status.entry.name,
        "model": status.entry.name,
        "modified_at": modified_at(info),
        "size": info.file_bytes,
        "details": details(info),
    })
}

/// When a model idle for `idle_for` at `now` unloads: Ollama's "never" (a date in 2318) for
/// `Forever`, and for any time past it (or past what the clock can hold).
fn expires_at(now: SystemTime, keep_alive: KeepAlive, idle_for: Option<Duration>) -> SystemTime {
    let forever = SystemTime::UNIX_EPOCH + Duration::from_secs(10_999_999_999);
    match keep_alive {
        KeepAlive::Forever => forever,
        KeepAlive::For(keep_alive) => now
            .checked_add(keep_alive.saturating_sub(idle_for.unwrap_or_default()))
            .filter(|at| *at < forever)
            .unwrap_or(forever),
    }
}

/// One model of `/api/ps`: a resident one, with the memory it holds and when it unloads.
pub(crate) fn running(status: &ModelStatus) -> Value {
    let info = &status.entry.info;
    let expires_at = expires_at(SystemTime::now(), status.keep_alive, status.idle_for);
    json!({
        "name": status.entry.name,
        "model": status.entry.name,
        "size": status.entry.memory_bytes,
        "size_vram": 0,
        "expires_at": timestamp(expires_at),
        "details": details(info),
        "context_length": info.context_length,
    })
}

/// `/api/show` of a model.
pub(crate) fn show(status: &ModelStatus) -> Value {
    let info = &status.entry.info;
    let architecture = &info.architecture;
    json!({
        "modelfile": "",
        "parameters": "",
        "template": info.chat_template.clone().unwrap_or_default(),
        "details": details(info),
        "model_info": {
            "general.architecture": architecture,
            "general.parameter_count": info.num_parameters,
            format!("{architecture}.context_length"): info.context_length,
        },
        "capabilities": capabilities(info),
        "modified_at": modified_at(info),
    })
}

/// What `/api/show` says a model can do, as Ollama names it: `completion`, `embedding` for a
/// model with a pooling head, `tools` when its chat template renders tools, and `thinking` when
/// its template has a reasoning block (`think` is accepted for it).
fn capabilities(info: &ModelInfo) -> Vec<&'static str> {
    let mut capabilities = vec!["completion"];
    if info.pooling.is_some() {
        capabilities.push("embedding");
    }
    if let Some(template) = &info.chat_template {
        if template.contains("tools") {
            capabilities.push("tools");
        }
        if ReasoningFormat::detect(template).is_some() {
            capabilities.push("thinking");
        }
    }
    capabilities
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_read_like_ollamas() {
        assert_eq!(parameter_size(494_032_768), "494.03M");
        assert_eq!(parameter_size(1_543_714_304), "1.54B");
    }

    #[test]
    fn errors_name_their_field_once() {
        let unnamed = OllamaError(ApiError::invalid_request(
            "Tool \"f\" is declared twice.",
            Some("tools[1].name"),
        ));
        assert_eq!(unnamed.message(), "Tool \"f\" is declared twice. (`tools[1].name`)");
        let named = OllamaError(ApiError::invalid_request("invalid `format`", Some("format")));
        assert_eq!(named.message(), "invalid `format`");
        let none = OllamaError(ApiError::internal("broken"));
        assert_eq!(none.message(), "broken");
    }

    #[test]
    fn errors_are_one_field_with_the_status_and_retry_after() {
        let response = OllamaError(ApiError::queue_full(3)).into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn a_model_kept_for_ages_expires_at_ollamas_never() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_700_000);
        let never = timestamp(expires_at(now, KeepAlive::Forever, None));
        assert_eq!(never, "2318-07-30T19:33:19.000000000Z");
        for huge in
            [Duration::MAX, Duration::from_secs(1 << 62), Duration::from_secs(10_000_000_000)]
        {
            let at = expires_at(now, KeepAlive::For(huge), Some(Duration::from_secs(5)));
            assert_eq!(timestamp(at), never, "{huge:?}");
        }
        let soon = expires_at(
            now,
            KeepAlive::For(Duration::from_secs(300)),
            Some(Duration::from_secs(60)),
        );
        assert_eq!(soon, now + Duration::from_secs(240));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let time = SystemTime::UNIX_EPOCH + Duration::new(1_763_700_000, 5);
        assert_eq!(timestamp(time), "2025-11-21T04:40:00.000000005Z");
    }
}
