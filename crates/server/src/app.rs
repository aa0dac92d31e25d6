//! The router: OpenAI routes, `/health`, `/metrics`, authentication, body limits, request counts;
//! and the handlers that turn requests into [`Generation`]s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive as SseKeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::json;
use uma_engine::{KeepAlive, ModelLease, ModelRegistry, ModelStatus, Residency, TokenId};

use crate::embedding;
use crate::generation::{Endpoint, Generation};
use crate::metrics::{self, Metrics};
use crate::openai::{
    self, ApiError, ChatCompletionRequest, CompletionRequest, EmbeddingItem, EmbeddingRequest,
    ModelCard, PromptInput, ResponseMeta,
};

/// How the server behaves, apart from the models it serves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// When set, every route but `/health` and `/metrics` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// How long running requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_key: None,
            max_body_bytes: 8 << 20,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What every handler sees.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) models: ModelRegistry,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: ServerConfig,
    pub(crate) started: u64,
}

impl AppState {
    /// The model `model`, loaded if it is not resident (the request waits for the load), or the
    /// API error saying why not.
    pub(crate) async fn lease(
        &self,
        model: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<ModelLease, ApiError> {
        let models = self.models.clone();
        let name = model.to_owned();
        // Loading reads and repacks weights for seconds: off the async workers.
        tokio::task::spawn_blocking(move || models.acquire(&name, keep_alive))
            .await
            .map_err(|error| ApiError::internal(format!("model lookup failed: {error}")))?
            .map_err(ApiError::from)
    }
}

/// The application: every route, with authentication and the body limit applied.
pub fn router(models: ModelRegistry, config: ServerConfig) -> Router {
    let max_body_bytes = config.max_body_bytes;
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(AppState { models, metrics, config, started: openai::unix_time_now() });
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(show_model))
        .merge(crate::ollama::router())
        .fallback(unknown_route)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .merge(api)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
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
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), key.as_bytes())) {
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
    let mut error = ApiError::invalid_request(
        format!("Unknown route: {} {}", request.method(), request.uri().path()),
        None,
    );
    error.status = StatusCode::NOT_FOUND;
    error
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let models: Vec<_> = state
        .models
        .models()
        .iter()
        .map(|status| {
            let mut model = json!({
                "model": status.entry.name,
                "status": status.residency,
                "memory_bytes": status.entry.memory_bytes,
            });
            if let Some(engine) = &status.engine {
                model["context_length"] = json!(engine.config().context_length);
                model["kv_cache_bytes"] = json!(engine.kv_cache_bytes());
                model["stats"] = json!(engine.stats());
            }
            model
        })
        .collect();
    Json(json!({
        "status": "ok",
        "memory_budget_bytes": state.models.budget_bytes(),
        "memory_held_bytes": state.models.held_bytes(),
        "models": models,
    }))
}

fn model_card(state: &AppState, status: &ModelStatus) -> ModelCard {
    ModelCard {
        id: status.entry.name.clone(),
        created: state.started,
        owned_by: "uma".to_owned(),
        resident: status.residency == Residency::Resident,
        loading: status.residency == Residency::Loading,
        memory_bytes: status.entry.memory_bytes,
        context_length: status.engine.as_ref().map(|engine| engine.config().context_length),
    }
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let cards: Vec<ModelCard> =
        state.models.models().iter().map(|status| model_card(&state, status)).collect();
    Json(openai::model_list(&cards))
}

async fn show_model(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let models = state.models.models();
    let status = models
        .iter()
        .find(|status| status.entry.name == model)
        .ok_or_else(|| ApiError::not_found_model(&model))?;
    Ok(Json(openai::model_object(&model_card(&state, status))))
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    payload: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = payload?;
    let params = request.sampling_params()?;
    let messages = request.chat_messages()?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let engine = lease.engine();
    let prompt = engine
        .prompts()
        .chat(&messages)
        .map_err(|error| ApiError::invalid_request(error.to_string(), Some("messages")))?;
    let meta = ResponseMeta::new_chat(request.model.clone());
    let generation = Generation::submit(
        engine,
        &state.metrics,
        meta,
        Endpoint::Chat,
        vec![prompt],
        &params,
        request.n(),
    )?;
    // The requests in flight keep the model resident from here on.
    drop(lease);
    respond(generation, request.stream(), request.include_usage()).await
}

async fn completions(
    State(state): State<Arc<AppState>>,
    payload: Result<Json<CompletionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = payload?;
    let params = request.sampling_params()?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let engine = lease.engine();
    let vocab_size = engine.prompts().tokenizer().vocab_size();
    let prompts = request
        .prompts()
        .iter()
        .map(|prompt| match prompt {
            PromptInput::Text(text) => engine.prompts().raw(text).map_err(ApiError::from),
            PromptInput::TokenIds(ids) => match ids.iter().find(|&&id| id as usize >= vocab_size) {
                Some(id) => Err(ApiError::invalid_request(
                    format!("Token id {id} is outside the vocabulary of {vocab_size} tokens."),
                    Some("prompt"),
                )),
                None => Ok(ids.clone()),
            },
        })
        .collect::<Result<Vec<Vec<TokenId>>, ApiError>>()?;
    let meta = ResponseMeta::new_completion(request.model.clone());
    let generation = Generation::submit(
        engine,
        &state.metrics,
        meta,
        Endpoint::Text,
        prompts,
        &params,
        request.n(),
    )?;
    drop(lease);
    respond(generation, request.stream(), request.include_usage()).await
}

async fn embeddings(
    State(state): State<Arc<AppState>>,
    payload: Result<Json<EmbeddingRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = payload?;
    let items = request.items()?;
    let base64 = request.base64()?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let engine = lease.engine();
    let inputs = items
        .iter()
        .map(|item| match item {
            EmbeddingItem::Text(text) => embedding::tokenize(engine, text),
            EmbeddingItem::TokenIds(ids) => Ok(ids.clone()),
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
    // The lease lives until the embeddings are done: they are not requests the engine counts.
    let embeddings = embedding::embed_all(engine, inputs).await?;
    drop(lease);
    let width = embeddings.first().map_or(0, Vec::len);
    if let Some(dimensions) = request.dimensions.filter(|&d| d as usize != width) {
        return Err(ApiError::invalid_request(
            format!("`dimensions` must be the model's embedding size, {width}, got {dimensions}."),
            Some("dimensions"),
        ));
    }
    let data: Vec<serde_json::Value> = embeddings
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding =
                if base64 { json!(embedding::base64_floats(vector)) } else { json!(vector) };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
    .into_response())
}

async fn respond(
    generation: Generation,
    stream: bool,
    include_usage: bool,
) -> Result<Response, ApiError> {
    if !stream {
        return Ok(Json(generation.collect().await?).into_response());
    }
    let events = generation
        .into_chunks(include_usage)
        .map(|payload| Ok::<Event, Infallible>(Event::default().data(payload)));
    Ok(Sse::new(events).keep_alive(SseKeepAlive::default()).into_response())
}
