//! The handlers of the Ollama routes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use uma_engine::{KeepAlive, StreamEvent, TokenId};
use uma_tokenizer::ChatMessage;

use super::request::{
    ChatRequest, EmbedRequest, GenerateRequest, LegacyEmbeddingsRequest, Options, ShowRequest,
};
use super::response::{self, done_reason, timestamp, OllamaError, Timings};
use crate::app::AppState;
use crate::embedding;
use crate::generation::{Endpoint, Generation};
use crate::openai::{ApiError, ResponseMeta};

/// The Ollama routes, for the router that adds authentication and limits.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/generate", post(generate))
        .route("/api/chat", post(chat))
        .route("/api/embed", post(embed))
        .route("/api/embeddings", post(legacy_embeddings))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/ps", get(ps))
        .route("/api/version", get(version))
}

type OllamaResult = Result<Response, OllamaError>;

/// The JSON body, whatever its `Content-Type` says: Ollama reads bodies that way, and its
/// documented examples (`curl … -d '{…}'`) send them as form data.
type Payload = Result<Bytes, BytesRejection>;

fn parsed<T: DeserializeOwned>(payload: Payload) -> Result<T, OllamaError> {
    let body = payload.map_err(|rejection| {
        let mut error = ApiError::invalid_request(rejection.body_text(), None);
        error.status = rejection.status();
        error
    })?;
    serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid_request(format!("invalid request body: {error}"), None).into()
    })
}

async fn generate(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let started = Instant::now();
    let request: GenerateRequest = parsed(payload)?;
    request.check_supported()?;
    let keep_alive = request.keep_alive.map(|field| field.0);
    if request.is_load_only() {
        return load_only(&state, &request.model, keep_alive, &Kind::Generate { prompt: vec![] })
            .await;
    }
    let params = Options::sampling_params(request.options.as_ref())?;
    let lease = state.lease(&request.model, keep_alive).await?;
    let loaded = Instant::now();
    let engine = lease.engine();
    let vocab_size = engine.prompts().tokenizer().vocab_size();
    let mut prompt: Vec<TokenId> = request.context.clone().unwrap_or_default();
    if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab_size) {
        let message = format!("context token {id} is outside the vocabulary of {vocab_size}");
        return Err(ApiError::invalid_request(message, Some("context")).into());
    }
    let text = request.prompt.as_deref().unwrap_or("");
    let new_tokens = if request.raw == Some(true) {
        engine.prompts().raw(text)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(text));
        engine.prompts().chat(&messages)
    };
    prompt.extend(new_tokens.map_err(ApiError::from)?);
    let meta = ResponseMeta::new_completion(request.model.clone());
    let prompts = vec![prompt.clone()];
    let generation =
        Generation::submit(engine, &state.metrics, meta, Endpoint::Text, prompts, &params, 1)?;
    drop(lease);
    let answer = Answer::new(generation, request.model, Kind::Generate { prompt }, started, loaded);
    Ok(answer.respond(request.stream.unwrap_or(true)).await)
}

async fn chat(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let started = Instant::now();
    let request: ChatRequest = parsed(payload)?;
    request.check_supported()?;
    let keep_alive = request.keep_alive.map(|field| field.0);
    let messages = request.chat_messages()?;
    if messages.is_empty() {
        // Ollama's way to load a model through the chat route.
        return load_only(&state, &request.model, keep_alive, &Kind::Chat).await;
    }
    let params = Options::sampling_params(request.options.as_ref())?;
    let lease = state.lease(&request.model, keep_alive).await?;
    let loaded = Instant::now();
    let engine = lease.engine();
    let prompt = engine.prompts().chat(&messages).map_err(ApiError::from)?;
    let meta = ResponseMeta::new_chat(request.model.clone());
    let generation =
        Generation::submit(engine, &state.metrics, meta, Endpoint::Chat, vec![prompt], &params, 1)?;
    drop(lease);
    let answer = Answer::new(generation, request.model, Kind::Chat, started, loaded);
    Ok(answer.respond(request.stream.unwrap_or(true)).await)
}

/// Loads `model` (or, with `keep_alive` 0, unloads it once idle) and answers as Ollama does
/// for a request without a prompt or messages.
async fn load_only(
    state: &AppState,
    model: &str,
    keep_alive: Option<KeepAlive>,
    kind: &Kind,
) -> OllamaResult {
    drop(state.lease(model, keep_alive).await?);
    let unloads = keep_alive == Some(KeepAlive::For(Duration::ZERO));
    let mut object = line(model, kind, "", true);
    object.insert("done_reason".into(), json!(if unloads { "unload" } else { "load" }));
    Ok(Json(Value::Object(object)).into_response())
}

/// A line (or a whole answer) of `model` with `text` and `done`.
fn line(model: &str, kind: &Kind, text: &str, done: bool) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("model".into(), json!(model));
    object.insert("created_at".into(), json!(timestamp(SystemTime::now())));
    match kind {
        Kind::Generate { .. } => object.insert("response".into(), json!(text)),
        Kind::Chat => {
            object.insert("message".into(), json!({"role": "assistant", "content": text}))
        }
    };
    object.insert("done".into(), json!(done));
    object
}

/// Which route an answer is for.
enum Kind {
    /// `/api/generate`: the final object carries `context` (prompt and answer tokens).
    Generate {
        prompt: Vec<TokenId>,
    },
    Chat,
}

/// One generation turned into Ollama's lines.
struct Answer {
    generation: Generation,
    model: String,
    kind: Kind,
    generated: Vec<TokenId>,
    started: Instant,
    loaded: Instant,
    first_token: Option<Instant>,
    done: bool,
}

impl Answer {
    fn new(
        generation: Generation,
        model: String,
        kind: Kind,
        started: Instant,
        loaded: Instant,
    ) -> Answer {
        Answer {
            generation,
            model,
            kind,
            generated: Vec::new(),
            started,
            loaded,
            first_token: None,
            done: false,
        }
    }

    fn object(&self, text: &str, done: bool) -> Map<String, Value> {
        line(&self.model, &self.kind, text, done)
    }

    /// The final object's summary: reason, counts, timings, and `/api/generate`'s `context`.
    fn finish(&self, object: &mut Map<String, Value>, reason: uma_sampling::FinishReason) {
        object.insert("done_reason".into(), json!(done_reason(reason)));
        let usage = self.generation.usage();
        Timings {
            started: self.started,
            loaded: self.loaded,
            first_token: self.first_token,
            finished: Instant::now(),
            num_prompt_tokens: usage.prompt_tokens as usize,
            num_generated_tokens: usage.completion_tokens as usize,
        }
        .add_to(object);
        if let Kind::Generate { prompt } = &self.kind {
            let context: Vec<TokenId> = prompt.iter().chain(&self.generated).copied().collect();
            object.insert("context".into(), json!(context));
        }
    }

    /// What the next engine event adds; `None` after the last.
    async fn next_pieces(&mut self) -> Option<Vec<Piece>> {
        if self.done {
            return None;
        }
        let Some((_, event)) = self.generation.next_event().await else {
            self.done = true;
            return None;
        };
        Some(match event {
            StreamEvent::Token(token) => {
                self.generated.push(token.token);
                self.first_token.get_or_insert_with(Instant::now);
                Piece::text(token.text)
            }
            StreamEvent::Finished(completion) => {
                self.done = true;
                self.generation.log_done();
                let mut pieces = Piece::text(completion.text);
                pieces.push(Piece::Done(completion.finish_reason));
                pieces
            }
            StreamEvent::Failed(error) => {
                self.done = true;
                tracing::error!("generation failed: {error}");
                vec![Piece::Failed(ApiError::from(&*error))]
            }
        })
    }

    /// A stream line for each piece.
    fn lines(&self, pieces: Vec<Piece>) -> Vec<Value> {
        pieces
            .into_iter()
            .map(|piece| match piece {
                Piece::Text(text) => Value::Object(self.object(&text, false)),
                Piece::Done(reason) => {
                    let mut last = self.object("", true);
                    self.finish(&mut last, reason);
                    Value::Object(last)
                }
                Piece::Failed(error) => json!({ "error": error.message }),
            })
            .collect()
    }

    async fn respond(self, stream: bool) -> Response {
        if stream {
            let lines = stream::unfold(self, |mut answer| async move {
                let pieces = answer.next_pieces().await?;
                Some((stream::iter(answer.lines(pieces)), answer))
            })
            .flatten()
            .map(|line| Ok::<Bytes, Infallible>(Bytes::from(format!("{line}\n"))));
            return ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines))
                .into_response();
        }
        self.collect().await
    }

    /// The whole answer as one object: the final line, with all the text.
    async fn collect(mut self) -> Response {
        let mut text = String::new();
        while let Some(pieces) = self.next_pieces().await {
            for piece in pieces {
                match piece {
                    Piece::Text(piece) => text.push_str(&piece),
                    Piece::Done(reason) => {
                        let mut whole = self.object(&text, true);
                        self.finish(&mut whole, reason);
                        return Json(Value::Object(whole)).into_response();
                    }
                    Piece::Failed(error) => {
                        return OllamaError(error).into_response();
                    }
                }
            }
        }
        OllamaError(ApiError::internal("the generation ended without a result")).into_response()
    }
}

/// What an engine event contributes to an answer, before it becomes a line or the whole.
enum Piece {
    Text(String),
    Done(uma_sampling::FinishReason),
    Failed(ApiError),
}

impl Piece {
    /// A text piece, or none for empty text (a line would say nothing).
    fn text(text: String) -> Vec<Piece> {
        if text.is_empty() {
            Vec::new()
        } else {
            vec![Piece::Text(text)]
        }
    }
}

/// The tokens of each text, cut to the context when `truncate` (else an error).
fn embedding_inputs(
    engine: &uma_engine::EngineHandle,
    texts: &[String],
    truncate: bool,
) -> Result<Vec<Vec<TokenId>>, OllamaError> {
    let context_length = engine.config().context_length;
    texts
        .iter()
        .map(|text| {
            let mut tokens = embedding::tokenize(engine, text)?;
            if tokens.len() > context_length {
                if !truncate {
                    let message = format!(
                        "the input has {} tokens but the context holds {context_length} \
                         (set \"truncate\": true to cut it)",
                        tokens.len()
                    );
                    return Err(ApiError::invalid_request(message, Some("input")).into());
                }
                tokens.truncate(context_length);
            }
            Ok(tokens)
        })
        .collect()
}

async fn embed(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let started = Instant::now();
    let request: EmbedRequest = parsed(payload)?;
    let texts = request.texts()?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let loaded = Instant::now();
    let inputs = embedding_inputs(lease.engine(), &texts, request.truncate.unwrap_or(true))?;
    let num_tokens: usize = inputs.iter().map(Vec::len).sum();
    let embeddings = embedding::embed_all(lease.engine(), inputs).await?;
    drop(lease);
    let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    Ok(Json(json!({
        "model": request.model,
        "embeddings": embeddings,
        "total_duration": nanos(started.elapsed()),
        "load_duration": nanos(loaded - started),
        "prompt_eval_count": num_tokens,
    }))
    .into_response())
}

async fn legacy_embeddings(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let request: LegacyEmbeddingsRequest = parsed(payload)?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let inputs = embedding_inputs(lease.engine(), &[request.prompt], true)?;
    let mut embeddings = embedding::embed_all(lease.engine(), inputs).await?;
    Ok(Json(json!({ "embedding": embeddings.pop().unwrap_or_default() })).into_response())
}

async fn tags(State(state): State<Arc<AppState>>) -> Json<Value> {
    let models: Vec<Value> = state.models.models().iter().map(response::tag).collect();
    Json(json!({ "models": models }))
}

async fn ps(State(state): State<Arc<AppState>>) -> Json<Value> {
    let models: Vec<Value> = state
        .models
        .models()
        .iter()
        .filter(|status| status.engine.is_some())
        .map(response::running)
        .collect();
    Json(json!({ "models": models }))
}

async fn show(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let request: ShowRequest = parsed(payload)?;
    let Some(name) = request.model.or(request.name) else {
        return Err(ApiError::invalid_request("`model` is required", Some("model")).into());
    };
    let models = state.models.models();
    let status = models.iter().find(|status| status.entry.name == name);
    let status = status.ok_or_else(|| ApiError::not_found_model(&name))?;
    Ok(Json(response::show(status)).into_response())
}

async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}
