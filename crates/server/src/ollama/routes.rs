//! The handlers of the Ollama routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uma_chat_output::ReasoningFormat;
use uma_engine::{EngineError, EngineHandle, KeepAlive, TokenId};
use uma_grammar::{GrammarSpec, OutputGrammar};
use uma_tokenizer::ChatMessage;

use super::answer::{line, Answer, Kind, Thinking};
use super::request::{
    ChatRequest, EmbedRequest, GenerateRequest, LegacyEmbeddingsRequest, Options, ShowRequest,
};
use super::response::{self, OllamaError};
use crate::embedding;
use crate::error::ApiError;
use crate::generation::{new_request_id, Generation, OutputHandling};
use crate::state::AppState;
use crate::tools::{grammar_error, prepare_chat, OutputOptions};

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
    let body = payload
        .map_err(|rejection| ApiError::refused(rejection.status(), rejection.body_text()))?;
    serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid_request(format!("invalid request body: {error}"), None).into()
    })
}

async fn generate(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let started = Instant::now();
    let request: GenerateRequest = parsed(payload)?;
    request.check_supported()?;
    let format = request.output_format()?;
    let think = request.think()?;
    let keep_alive = request.keep_alive.map(|field| field.0);
    if request.is_load_only() {
        return load_only(&state, &request.model, keep_alive, &Kind::Generate { prompt: vec![] })
            .await;
    }
    let params = Options::sampling_params(request.options.as_ref())?;
    let lease = state.lease(&request.model, keep_alive).await?;
    let loaded = Instant::now();
    let engine = lease.engine();
    check_think(engine, &request.model, think)?;
    let vocab_size = engine.prompts().tokenizer().vocab_size();
    let mut prompt: Vec<TokenId> = request.context.clone().unwrap_or_default();
    if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab_size) {
        let message = format!("context token {id} is outside the vocabulary of {vocab_size}");
        return Err(ApiError::invalid_request(message, Some("context")).into());
    }
    let text = request.prompt.clone().unwrap_or_default();
    let output = if request.raw == Some(true) {
        // The prompt as it is, and the answer as generated: no template, nothing parsed out.
        let parse_special = request.parse_special == Some(true);
        let tokens = crate::encode::raw_tokens(engine, text, parse_special, "prompt").await?;
        // A prompt that does not encode is the request's fault (400), as on /v1.
        prompt
            .extend(tokens.map_err(|e| ApiError::invalid_request(e.to_string(), Some("prompt")))?);
        let grammar = match format {
            Some(spec) => Some(compiled_format(engine, spec).await?),
            None => None,
        };
        OutputHandling { grammar, parsing: None }
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(text));
        // Text that cannot fit is the prompt's fault; a template that refuses the conversation
        // is the system message's, when there is one (both 400s, as on /v1).
        let bytes = messages.iter().map(crate::encode::message_bytes).sum();
        crate::encode::check_fits(engine, bytes, "prompt")?;
        let field = if request.system.is_some() { "system" } else { "prompt" };
        let options = OutputOptions { format, ..OutputOptions::default() }
            .with_thinking(think)
            .with_reasoning_effort(request.think_effort());
        let chat = prepare_chat(engine, messages, options, field, "format").await?;
        prompt.extend(chat.prompt);
        OutputHandling { grammar: chat.grammar, parsing: Some(chat.parsing) }
    };
    let id = new_request_id("cmpl");
    let prompts = vec![prompt.clone()];
    let generation = Generation::submit(engine, &state.metrics, id, prompts, &params, 1, output)?;
    drop(lease);
    let kind = Kind::Generate { prompt };
    let answer = Answer::new(generation, request.model, kind, Thinking::of(think), started, loaded);
    Ok(answer.respond(request.stream.unwrap_or(true)).await)
}

async fn chat(State(state): State<Arc<AppState>>, payload: Payload) -> OllamaResult {
    let started = Instant::now();
    let request: ChatRequest = parsed(payload)?;
    request.check_supported()?;
    let think = request.think()?;
    let options = request
        .output_options()?
        .with_thinking(think)
        .with_reasoning_effort(request.think_effort());
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
    check_think(engine, &request.model, think)?;
    // A template that refuses the conversation is the request's fault (400), as on /v1.
    let chat = prepare_chat(engine, messages, options, "messages", "format").await?;
    let id = new_request_id("chatcmpl");
    let output = OutputHandling { grammar: chat.grammar, parsing: Some(chat.parsing) };
    let generation =
        Generation::submit(engine, &state.metrics, id, vec![chat.prompt], &params, 1, output)?;
    drop(lease);
    let answer =
        Answer::new(generation, request.model, Kind::Chat, Thinking::of(think), started, loaded);
    Ok(answer.respond(request.stream.unwrap_or(true)).await)
}

/// `think: true` for a model that does not reason (its template has no reasoning block) is
/// refused as Ollama refuses it: a 400 saying the model "does not support thinking".
fn check_think(engine: &EngineHandle, model: &str, think: Option<bool>) -> Result<(), ApiError> {
    if think == Some(true)
        && ReasoningFormat::detect(engine.prompt_encoder().template_source()).is_none()
    {
        return Err(ApiError::invalid_request(
            format!("{model:?} does not support thinking"),
            Some("think"),
        ));
    }
    Ok(())
}

/// The grammar of `format` for a raw prompt (no template: the answer follows it from its first
/// token), compiled off the async workers; one that does not compile is a 400 naming `format`.
async fn compiled_format(
    engine: &EngineHandle,
    spec: GrammarSpec,
) -> Result<OutputGrammar, ApiError> {
    let compiled = crate::encode::off_the_workers(engine, move |encoder| {
        encoder
            .grammars()
            .and_then(|compiler| compiler.compile(&spec))
            .map_err(EngineError::GrammarFailed)
    })
    .await?;
    match compiled {
        Ok(grammar) => Ok(OutputGrammar { grammar, trigger: None }),
        Err(EngineError::GrammarFailed(error)) => Err(grammar_error(error, "format")),
        Err(other) => Err(ApiError::from(other)),
    }
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

/// The tokens of each text, cut to the context when `truncate` (else an error; text too long
/// to fit is refused before tokenizing).
async fn embedding_inputs(
    engine: &uma_engine::EngineHandle,
    texts: &[String],
    truncate: bool,
) -> Result<Vec<Vec<TokenId>>, OllamaError> {
    embedding::check_serves_embeddings(engine)?;
    let context_length = engine.config().context_length;
    let mut inputs = Vec::with_capacity(texts.len());
    for text in texts {
        let mut text = text.clone();
        inputs.push(if truncate {
            // Only the first context's tokens are kept: the text past what they could span is
            // never tokenized.
            crate::encode::cut_to_fit(engine, &mut text);
            crate::encode::off_the_workers(engine, move |encoder| encoder.raw(&text, false))
                .await??
        } else {
            crate::encode::raw_tokens(engine, text, false, "input").await??
        });
    }
    inputs
        .into_iter()
        .map(|mut tokens| {
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
    let inputs = embedding_inputs(lease.engine(), &texts, request.truncate.unwrap_or(true)).await?;
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
    let inputs = embedding_inputs(lease.engine(), &[request.prompt], true).await?;
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
        // Running models only: not one whose engine failed (it is about to be unloaded).
        .filter(|status| status.residency == uma_engine::Residency::Resident)
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
