//! The router: the OpenAI and Ollama routes (each in its own module), `/health`, `/metrics`,
//! the web page (`web`), authentication, body limits and request counts.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use uma_engine::{ModelRegistry, Residency};

use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::state::{AppState, ServerConfig};

/// The application: every route, with authentication and the body limit applied.
pub fn router(models: ModelRegistry, config: ServerConfig) -> Router {
    let max_body_bytes = config.max_body_bytes;
    let serve_web = config.web;
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(AppState {
        models,
        metrics,
        config,
        started: crate::openai::unix_time_now(),
        responses: crate::responses::ResponseStore::default(),
    });
    let api = Router::new()
        .merge(crate::openai::router())
        .merge(crate::ollama::router())
        .merge(crate::anthropic::router())
        .merge(crate::responses::router())
        .merge(crate::web::plan::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read after authentication: a client without the key cannot make the
        // server buffer anything.
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        // The page's files hold no secret: served without the key (its API calls need it).
        .merge(crate::web::router(serve_web))
        .method_not_allowed_fallback(method_not_allowed)
        .merge(api)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .layer(middleware::from_fn(check_request_head))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Longest request target (path and query) uma answers, in bytes: its routes need few.
pub(crate) const MAX_URI_BYTES: usize = 8 << 10;
/// Most header fields, and most bytes of header names and values, a request may send. Below
/// hyper's own limits (`serve` sets them higher), so that clients get uma's JSON error, not
/// hyper's empty answer.
pub(crate) const MAX_HEADERS: usize = 100;
pub(crate) const MAX_HEADER_BYTES: usize = 32 << 10;

/// 414 and 431 as JSON errors, like every other refusal.
async fn check_request_head(request: Request, next: Next) -> Response {
    let uri_bytes = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        let message = format!(
            "The request target is {uri_bytes} bytes; at most {MAX_URI_BYTES} are accepted."
        );
        return ApiError::refused(StatusCode::URI_TOO_LONG, message).into_response();
    }
    let headers = request.headers();
    let header_bytes: usize =
        headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        let message = format!(
            "The request has {} header fields of {header_bytes} bytes; at most {MAX_HEADERS} \
             fields and {MAX_HEADER_BYTES} bytes are accepted.",
            headers.len()
        );
        return ApiError::refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message)
            .into_response();
    }
    next.run(request).await
}

/// Reads the request's whole body before any handler runs: within `body_timeout` (408 after
/// it, the connection closed), and refused with 413 as soon as its declared or received length
/// passes the limit. Every route reads its body whole anyway (JSON); doing it here bounds the
/// time a stalled or dripping body holds a connection.
async fn read_body(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    // Ollama's routes answer errors in Ollama's shape.
    let ollama = request.uri().path().starts_with("/api/");
    let refuse = |error: ApiError| {
        close_after(if ollama {
            crate::ollama::OllamaError(error).into_response()
        } else {
            error.into_response()
        })
    };
    let limit = state.config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return refuse(ApiError::payload_too_large(limit));
    }
    let (parts, body) = request.into_parts();
    let read = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit));
    let bytes = match tokio::time::timeout(state.config.body_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return refuse(ApiError::payload_too_large(limit));
        }
        Ok(Err(error)) => {
            let message = format!("The request body could not be read: {error}.");
            return refuse(ApiError::invalid_request(message, None));
        }
        Err(_) => {
            let seconds = state.config.body_timeout.as_secs();
            let message = format!("The request body did not arrive within {seconds} s.");
            return refuse(ApiError::refused(StatusCode::REQUEST_TIMEOUT, message));
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Marks `response` as the connection's last: the rest of an unread body cannot be skipped.
fn close_after(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// Refuses requests from web pages that are not local or allowed (crate::origin), on every
/// route, `/health` included. Pages that pass get CORS headers (their own origin, never `*`), and their preflight requests
/// an answer; no other origin ever gets one.
async fn check_origin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(error) = state.config.origins.check(request.headers()) {
        return error.into_response();
    }
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    let is_preflight = request.method() == axum::http::Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if is_preflight {
        let asked = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        let methods = header::HeaderValue::from_static("GET, POST, DELETE, OPTIONS");
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        let allowed = asked
            .unwrap_or_else(|| header::HeaderValue::from_static("authorization, content-type"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, header::HeaderValue::from(600));
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, header::HeaderValue::from_static("origin"));
    response
}

/// Counts every response by route and status, refusals included.
async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = metrics::route_label(request.uri().path());
    let response = next.run(request).await;
    state.metrics.count_request(route, response.status().as_u16());
    response
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.render(&state.models) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError::internal("cannot encode the metrics").into_response(),
    }
}

async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.config.api_key {
        // OpenAI's clients send `Authorization: Bearer`, Anthropic's `x-api-key`.
        let headers = request.headers();
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|value| value.to_str().ok()));
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), key.as_bytes())) {
            // Each API's clients read their own error shape.
            if request.uri().path().starts_with("/v1/messages") {
                return crate::anthropic::AnthropicError(ApiError::unauthorized()).into_response();
            }
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Compares without an early exit, so response timing does not reveal how much of a guessed key
/// was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn unknown_route(request: Request) -> ApiError {
    let message = format!("Unknown route: {} {}", request.method(), request.uri().path());
    ApiError::refused(StatusCode::NOT_FOUND, message)
}

/// A known route asked with another method: 405 with the error JSON (axum's is an empty body).
async fn method_not_allowed(request: Request) -> ApiError {
    let message = format!("Method {} is not allowed on {}", request.method(), request.uri().path());
    ApiError::refused(StatusCode::METHOD_NOT_ALLOWED, message)
}

/// The server's state; 503 with `"status": "degraded"` while a model's engine has failed (until
/// a request loads it afresh), so that a supervisor notices.
async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<serde_json::Value>) {
    let statuses = state.models.models();
    let models: Vec<_> = statuses
        .iter()
        .map(|status| {
            let mut model = json!({
                "model": status.entry.name,
                "status": status.residency,
                "memory_bytes": status.entry.memory_bytes,
            });
            if let Some(failure) = &status.failure {
                model["error"] = json!(failure);
            }
            if let Some(engine) = &status.engine {
                model["context_length"] = json!(engine.config().context_length);
                model["kv_cache_bytes"] = json!(engine.kv_cache_bytes());
                model["stats"] = json!(engine.stats());
            }
            model
        })
        .collect();
    let failed = statuses.iter().any(|status| status.residency == Residency::Failed);
    let (code, word) =
        if failed { (StatusCode::SERVICE_UNAVAILABLE, "degraded") } else { (StatusCode::OK, "ok") };
    let body = json!({
        "status": word,
        "memory_budget_bytes": state.models.budget_bytes(),
        "memory_held_bytes": state.models.held_bytes(),
        "models": models,
    });
    (code, Json(body))
}
