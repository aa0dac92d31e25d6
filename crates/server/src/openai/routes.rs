//! The handlers of the OpenAI routes: a request is parsed and checked, its prompts tokenized and
//! submitted as a [`Generation`], and the generation answered as OpenAI's body or stream.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use uma_engine::{ModelStatus, TokenId};

use super::answer::{respond, Endpoint};
use super::response::{model_list, model_object, ModelCard, ResponseMeta};
use super::{
    ChatCompletionRequest, CompletionRequest, EmbeddingItem, EmbeddingRequest, PromptInput,
    WithGenerationFields,
};
use crate::embedding;
use crate::error::ApiError;
use crate::generation::{Generation, OutputHandling};
use crate::state::AppState;
use crate::tools::prepare_chat;

/// The OpenAI routes, for the router that adds authentication and limits.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(show_model))
}

fn model_card(state: &AppState, status: &ModelStatus) -> ModelCard {
    ModelCard {
        id: status.entry.name.clone(),
        created: state.started,
        owned_by: "uma".to_owned(),
        residency: status.residency,
        memory_bytes: status.entry.memory_bytes,
        context_length: status.engine.as_ref().map(|engine| engine.config().context_length),
    }
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let cards: Vec<ModelCard> =
        state.models.models().iter().map(|status| model_card(&state, status)).collect();
    Json(model_list(&cards))
}

async fn show_model(
    State(state): State<Arc<AppState>>,
    model: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Path(model) = model.map_err(|rejection| {
        ApiError::invalid_request(format!("Invalid model name in the path: {rejection}"), None)
    })?;
    let models = state.models.models();
    let status = models
        .iter()
        .find(|status| status.entry.name == model)
        .ok_or_else(|| ApiError::not_found_model(&model))?;
    Ok(Json(model_object(&model_card(&state, status))))
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    payload: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = payload?;
    let params = request.sampling_params()?;
    let messages = request.chat_messages()?;
    let options = request.output_options()?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let engine = lease.engine();
    let chat = prepare_chat(engine, messages, options, "messages", "response_format").await?;
    let meta = ResponseMeta::new_chat(request.model.clone());
    let output = OutputHandling { grammar: chat.grammar, parsing: Some(chat.parsing) };
    let generation = Generation::submit(
        engine,
        &state.metrics,
        meta.id.clone(),
        vec![chat.prompt],
        &params,
        request.n(),
        output,
    )?;
    // The requests in flight keep the model resident from here on.
    drop(lease);
    respond(generation, meta, Endpoint::Chat, request.stream(), request.include_usage()).await
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
    let parse_special = request.parse_special == Some(true);
    let mut prompts: Vec<Vec<TokenId>> = Vec::with_capacity(request.prompts().len());
    for prompt in request.prompts() {
        prompts.push(match prompt {
            PromptInput::Text(text) => {
                crate::encode::raw_tokens(engine, text.clone(), parse_special, "prompt").await??
            }
            PromptInput::TokenIds(ids) => match ids.iter().find(|&&id| id as usize >= vocab_size) {
                Some(id) => {
                    return Err(ApiError::invalid_request(
                        format!("Token id {id} is outside the vocabulary of {vocab_size} tokens."),
                        Some("prompt"),
                    ))
                }
                None => ids.clone(),
            },
        });
    }
    let meta = ResponseMeta::new_completion(request.model.clone());
    let generation = Generation::submit(
        engine,
        &state.metrics,
        meta.id.clone(),
        prompts,
        &params,
        request.n(),
        OutputHandling::default(),
    )?;
    drop(lease);
    respond(generation, meta, Endpoint::Text, request.stream(), request.include_usage()).await
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
    embedding::check_serves_embeddings(engine)?;
    let mut inputs = Vec::with_capacity(items.len());
    for item in &items {
        inputs.push(match item {
            EmbeddingItem::Text(text) => {
                crate::encode::raw_tokens(engine, text.clone(), false, "input").await??
            }
            EmbeddingItem::TokenIds(ids) => ids.clone(),
        });
    }
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
