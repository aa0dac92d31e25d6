//! [`ApiError`]: every error the server returns, with its status code, as OpenAI's error object
//! (the Ollama routes send the same status with the message as `{"error": ...}`); and the one
//! place that gives each [`EngineError`] its status and error object, whether the engine refused
//! a request or failed it mid-stream.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use uma_engine::EngineError;
use uma_sampling::SamplingError;

/// OpenAI's `type` for a request the client must fix.
const INVALID_REQUEST: &str = "invalid_request_error";

/// An error as OpenAI reports it: `{"error": {"message", "type", "param", "code"}}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// A sentence for a person.
    pub message: String,
    /// OpenAI's error `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`,
    /// `server_error`, ...
    pub kind: &'static str,
    /// The request field at fault (`temperature`, `messages[1].content`), if one is.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`), if there is one.
    pub code: Option<String>,
    /// Sent as the `Retry-After` header (seconds) when set.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
        }
    }

    /// 400: the request is malformed or a value is out of range; `param` names the field.
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> ApiError {
        ApiError {
            param: param.map(str::to_owned),
            ..ApiError::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message)
        }
    }

    /// A request refused with `status` (403, 404, 405, 408, 414, 431, ...), as an
    /// `invalid_request_error` naming no field.
    pub fn refused(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, INVALID_REQUEST, message)
    }

    /// 404: no model by that name is served. OpenAI reports this as an `invalid_request_error`
    /// with code `model_not_found`; clients match on the code.
    pub fn not_found_model(model: &str) -> ApiError {
        ApiError {
            param: Some("model".to_owned()),
            code: Some("model_not_found".to_owned()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                format!("The model `{model}` does not exist."),
            )
        }
    }

    /// 400: the prompt alone does not fit in the model's context.
    pub fn context_length_exceeded(num_prompt_tokens: usize, context_length: usize) -> ApiError {
        ApiError {
            code: Some("context_length_exceeded".to_owned()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                format!(
                    "This model's maximum context length is {context_length} tokens, but the \
                     prompt has {num_prompt_tokens} tokens."
                ),
            )
        }
    }

    /// 429: the model's request queue is full; the client should retry after `retry_after_secs`.
    pub fn queue_full(retry_after_secs: u64) -> ApiError {
        ApiError {
            code: Some("rate_limit_exceeded".to_owned()),
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "The server is busy: too many requests are waiting. Retry in \
                     {retry_after_secs} seconds."
                ),
            )
        }
    }

    /// 413: the request body is larger than the server accepts.
    pub fn payload_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            format!("The request body is larger than the limit of {limit_bytes} bytes."),
        )
    }

    /// 401: a missing or wrong API key.
    pub fn unauthorized() -> ApiError {
        ApiError {
            code: Some("invalid_api_key".to_owned()),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Missing or incorrect API key.",
            )
        }
    }

    /// 500: a bug or an engine failure; the message is shown to the client.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// 503: the server cannot serve now (loading, shutting down, engine stopped).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
    }

    /// The same error, blaming request field `param`.
    pub fn with_param(self, param: &str) -> ApiError {
        ApiError { param: Some(param.to_owned()), ..self }
    }

    /// The error for a body that axum's `Json` extractor rejected: 413 when the body is over the
    /// size limit, otherwise 400. A syntax or type error keeps serde's message, and `param` is the
    /// field it points at (axum reports it as `path: message`).
    pub fn from_json_rejection(rejection: &JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                let detail = source_message(error).unwrap_or_else(|| error.body_text());
                let param = field_path(&detail).map(str::to_owned);
                ApiError { param, ..ApiError::invalid_request(detail, None) }
            }
            JsonRejection::JsonSyntaxError(error) => {
                let detail = source_message(error).unwrap_or_else(|| error.body_text());
                ApiError::invalid_request(
                    format!("The request body is not valid JSON: {detail}"),
                    None,
                )
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::invalid_request(
                "Expected a JSON body with the header `Content-Type: application/json`.",
                None,
            ),
            // The size limit is enforced while buffering, which reports 413 whatever wraps it.
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                "The request body is larger than the server accepts.",
            ),
            other => ApiError::invalid_request(other.body_text(), None),
        }
    }

    /// The JSON body OpenAI sends with an error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// axum's rejection text starts with its own sentence; the wrapped serde error (with the field
/// path) is the part worth showing.
fn source_message(error: &dyn std::error::Error) -> Option<String> {
    error.source().map(ToString::to_string)
}

/// The field path that `serde_path_to_error` puts before the message (`messages[0].content: ...`).
/// serde's own messages start with words separated by spaces (`invalid type: ...`,
/// `missing field ...`), so a prefix without spaces is a path.
fn field_path(message: &str) -> Option<&str> {
    let (prefix, _) = message.split_once(": ")?;
    let is_path = !prefix.is_empty() && prefix != "." && !prefix.contains(char::is_whitespace);
    is_path.then_some(prefix)
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::from_json_rejection(&rejection)
    }
}

impl From<SamplingError> for ApiError {
    fn from(error: SamplingError) -> ApiError {
        match error {
            SamplingError::InvalidParameter { name, .. } => {
                ApiError::invalid_request(error.to_string(), Some(name))
            }
            SamplingError::EmptyStopString { .. } => {
                ApiError::invalid_request("Stop sequences must not be empty.", Some("stop"))
            }
            // The rest happen while sampling, not while validating a request.
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<&EngineError> for ApiError {
    fn from(error: &EngineError) -> ApiError {
        match error {
            EngineError::EmptyPrompt => ApiError::invalid_request("The prompt is empty.", None),
            EngineError::PromptTooLong { num_prompt_tokens, context_length } => {
                ApiError::context_length_exceeded(*num_prompt_tokens, *context_length)
            }
            // One step frees a slot quickly; a second is a polite wait.
            EngineError::QueueFull { .. } => ApiError::queue_full(1),
            EngineError::TooManySequences { .. } => {
                ApiError::invalid_request(format!("{error}."), Some("n"))
            }
            EngineError::InvalidParameters(error) => ApiError::from(error.clone()),
            EngineError::TokenOutOfRange { .. } => {
                ApiError::invalid_request(error.to_string(), Some("prompt"))
            }
            EngineError::ShuttingDown => ApiError::unavailable("The server is shutting down."),
            EngineError::UnknownModel { name } => ApiError::not_found_model(name),
            // Other models' requests will end and free their memory: worth a retry.
            EngineError::NoRoom { .. } => ApiError {
                retry_after_secs: Some(5),
                code: Some("model_memory_busy".to_owned()),
                ..ApiError::unavailable(format!("{error}."))
            },
            EngineError::ModelTooLarge { .. } => ApiError {
                code: Some("model_too_large".to_owned()),
                ..ApiError::invalid_request(format!("{error}."), Some("model"))
            },
            EngineError::NoEmbeddings { .. } => ApiError {
                code: Some("model_not_embedding".to_owned()),
                ..ApiError::invalid_request(format!("{error}."), Some("model"))
            },
            // Failures inside the engine (a step, an embedding, a load) and errors of the
            // model's files: the server's fault, not the client's.
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        ApiError::from(&error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::FromRequest;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use serde_json::json;

    async fn into_parts(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, retry_after, serde_json::from_slice(&bytes).unwrap())
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Target {
        model: String,
        temperature: Option<f32>,
        messages: Option<Vec<Message>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Message {
        content: String,
    }

    fn rejection_of(body: &str) -> JsonRejection {
        Json::<Target>::from_bytes(body.as_bytes()).unwrap_err()
    }

    #[tokio::test]
    async fn response_is_openai_error_object_with_status() {
        let error = ApiError::invalid_request("`n` must be between 1 and 16, got 0", Some("n"));
        let (status, retry_after, body) = into_parts(error).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(retry_after, None);
        assert_eq!(
            body,
            json!({"error": {
                "message": "`n` must be between 1 and 16, got 0",
                "type": "invalid_request_error",
                "param": "n",
                "code": null,
            }})
        );
    }

    #[tokio::test]
    async fn queue_full_sends_retry_after() {
        let (status, retry_after, body) = into_parts(ApiError::queue_full(3)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after.as_deref(), Some("3"));
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    }

    #[tokio::test]
    async fn not_found_model_shape() {
        let (status, _, body) = into_parts(ApiError::not_found_model("llama-9")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error": {
                "message": "The model `llama-9` does not exist.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }})
        );
    }

    #[test]
    fn constructors_have_their_status_type_and_code() {
        let cases = [
            (ApiError::unauthorized(), 401, "authentication_error", Some("invalid_api_key")),
            (ApiError::payload_too_large(1024), 413, "invalid_request_error", None),
            (ApiError::internal("boom"), 500, "server_error", None),
            (ApiError::unavailable("loading"), 503, "server_error", None),
            (
                ApiError::context_length_exceeded(5000, 4096),
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
        ];
        for (error, status, kind, code) in cases {
            assert_eq!(error.status.as_u16(), status, "{error:?}");
            assert_eq!(error.kind, kind, "{error:?}");
            assert_eq!(error.code.as_deref(), code, "{error:?}");
            assert_eq!(error.retry_after_secs, None);
        }
        let context = ApiError::context_length_exceeded(5000, 4096);
        assert_eq!(
            context.message,
            "This model's maximum context length is 4096 tokens, but the prompt has 5000 tokens."
        );
        assert_eq!(context.with_param("messages").param.as_deref(), Some("messages"));
        assert!(ApiError::payload_too_large(1024).message.contains("1024 bytes"));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let error = ApiError::from(rejection_of(r#"{"model": "m", "temperature": "hot"}"#));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.param.as_deref(), Some("temperature"));
        assert!(error.message.starts_with("temperature: invalid type: string"), "{error:?}");

        let error = ApiError::from(rejection_of(r#"{"model": "m", "messages": [{"content": 1}]}"#));
        assert_eq!(error.param.as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn missing_field_has_no_param_but_serde_message() {
        let error = ApiError::from(rejection_of(r#"{"temperature": 1}"#));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.param, None);
        assert!(error.message.starts_with("missing field `model`"), "{error:?}");
    }

    #[test]
    fn syntax_error_is_400() {
        let error = ApiError::from(rejection_of(r#"{"model": "#));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.starts_with("The request body is not valid JSON"), "{error:?}");
    }

    #[tokio::test]
    async fn missing_content_type_is_400() {
        let request = Request::new(Body::from(r#"{"model": "m"}"#));
        let rejection = Json::<Target>::from_request(request, &()).await.unwrap_err();
        let error = ApiError::from(rejection);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("Content-Type: application/json"));
    }

    #[tokio::test]
    async fn body_over_the_limit_is_413() {
        // axum's default body limit is 2 MiB.
        let body = format!(r#"{{"model": "{}"}}"#, "x".repeat(3 << 20));
        let request = Request::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let rejection = Json::<Target>::from_request(request, &()).await.unwrap_err();
        assert_eq!(ApiError::from(rejection).status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn sampling_errors_become_400_with_param() {
        let error = ApiError::from(SamplingError::InvalidParameter {
            name: "top_p",
            value: "0".into(),
            expected: "a number in (0, 1]",
        });
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.param.as_deref(), Some("top_p"));
        let error = ApiError::from(SamplingError::EmptyStopString { index: 0 });
        assert_eq!(error.param.as_deref(), Some("stop"));
        assert_eq!(ApiError::from(SamplingError::EmptyLogits).status, 500);
    }

    #[test]
    fn field_path_only_accepts_paths() {
        assert_eq!(field_path("stop[1]: invalid type"), Some("stop[1]"));
        assert_eq!(field_path("invalid type: string"), None);
        assert_eq!(field_path("missing field `model` at line 1"), None);
    }

    #[test]
    fn engine_errors_map_to_their_status() {
        let cases = [
            (EngineError::EmptyPrompt, StatusCode::BAD_REQUEST),
            (
                EngineError::PromptTooLong { num_prompt_tokens: 9, context_length: 8 },
                StatusCode::BAD_REQUEST,
            ),
            (EngineError::QueueFull { num_in_flight: 3 }, StatusCode::TOO_MANY_REQUESTS),
            (EngineError::TooManySequences { requested: 9, limit: 8 }, StatusCode::BAD_REQUEST),
            (EngineError::ShuttingDown, StatusCode::SERVICE_UNAVAILABLE),
            (EngineError::UnknownModel { name: "m".into() }, StatusCode::NOT_FOUND),
            (
                EngineError::ModelPanicked { detail: "index out of bounds".into() },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(&error).status, status, "{error:?}");
        }
        let failed = ApiError::from(EngineError::ModelPanicked { detail: "boom".into() });
        assert_eq!(failed.message, "internal error in the model: boom");
    }
}
