//! The handlers of the Responses routes: `POST /v1/responses` (the conversation, continued from
//! `previous_response_id` when given, rendered with its tools, submitted as a [`Generation`] and
//! answered as a response object or its SSE events; kept unless `store` is false),
//! `GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive as SseKeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use uma_sampling::FinishReason;
use uma_tokenizer::ChatMessage;

use super::output::{assistant_turn, new_item_id, usage_json, OutputFold, ResponseMeta, Status};
use super::request::ResponsesRequest;
use super::store::StoredResponse;
use crate::error::ApiError;
use crate::generation::{ChoiceEvent, Generation, OutputHandling};
use crate::state::AppState;
use crate::tools::prepare_chat;

/// The Responses routes, for the router that adds authentication and limits.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/responses", post(create))
        .route("/v1/responses/{id}", get(retrieve).delete(delete))
}

/// 404 for a response that is not kept (never was, deleted, or evicted), naming `param`.
fn not_kept(id: &str, param: Option<&str>) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        ..ApiError::invalid_request(
            format!(
                "No response with id {id:?} is kept: it does not exist, was stored with \
                 `store: false`, was deleted, or was evicted (uma keeps the most recent ones in \
                 memory)."
            ),
            param,
        )
    }
}

async fn create(
    State(state): State<Arc<AppState>>,
    payload: Result<Json<ResponsesRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = payload?;
    let params = request.sampling_params()?;
    let options = request.output_options()?;
    let input = request.input_messages()?;
    let mut history = match &request.previous_response_id {
        Some(id) => {
            state
                .responses
                .get(id)
                .ok_or_else(|| not_kept(id, Some("previous_response_id")))?
                .history
        }
        None => Vec::new(),
    };
    history.extend(input);
    let mut messages = Vec::with_capacity(history.len() + 1);
    if let Some(instructions) = request.instructions.as_ref().filter(|text| !text.is_empty()) {
        messages.push(ChatMessage::system(instructions.as_str()));
    }
    messages.extend(history.iter().cloned());
    let parallel_tool_calls = options.parallel_tool_calls;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let engine = lease.engine();
    let chat = prepare_chat(engine, messages, options, "input", "text.format").await?;
    let meta = ResponseMeta {
        id: new_item_id("resp"),
        created_at: crate::openai::unix_time_now(),
        model: request.model.clone(),
        instructions: request.instructions.clone(),
        max_output_tokens: request.max_output_tokens,
        temperature: request.temperature.unwrap_or(1.0),
        top_p: request.top_p.unwrap_or(1.0),
        tools: request.tools.clone().filter(|tools| !tools.is_null()).unwrap_or_else(|| json!([])),
        tool_choice: request.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        parallel_tool_calls,
        text: request.text.clone().unwrap_or_else(|| json!({"format": {"type": "text"}})),
        reasoning: request
            .reasoning
            .clone()
            .unwrap_or_else(|| json!({"effort": null, "summary": null})),
        previous_response_id: request.previous_response_id.clone(),
        store: request.store(),
    };
    let output = OutputHandling { grammar: chat.grammar, parsing: Some(chat.parsing) };
    let generation = Generation::submit(
        engine,
        &state.metrics,
        meta.id.clone(),
        vec![chat.prompt],
        &params,
        1,
        output,
    )?;
    // The request in flight keeps the model resident from here on.
    drop(lease);
    let answer = Answer { state, meta, history };
    if request.stream() {
        let events = answer.events(generation).map(|data| {
            let name = data["type"].as_str().unwrap_or("message").to_owned();
            Ok::<Event, Infallible>(Event::default().event(name).data(data.to_string()))
        });
        return Ok(Sse::new(events).keep_alive(SseKeepAlive::default()).into_response());
    }
    Ok(Json(answer.collect(generation).await?).into_response())
}

/// What finishing a response needs: where to keep it, its metadata, and the conversation that
/// led to it (without `instructions`).
struct Answer {
    state: Arc<AppState>,
    meta: ResponseMeta,
    history: Vec<ChatMessage>,
}

impl Answer {
    /// The response object once the generation ends.
    async fn collect(self, mut generation: Generation) -> Result<Value, ApiError> {
        let mut fold = OutputFold::new(false, 0);
        let mut finish_reason = None;
        while let Some((_, event)) = generation.next_event().await {
            match event {
                ChoiceEvent::Token { deltas, .. } => fold.push(deltas),
                ChoiceEvent::Finished { deltas, finish_reason: reason, .. } => {
                    fold.push(deltas);
                    finish_reason = Some(reason);
                }
                ChoiceEvent::Failed(error) => return Err(ApiError::from(&*error)),
            }
        }
        generation.log_done();
        Ok(self.finish(&mut fold, finish_reason, &generation))
    }

    /// The final response object: kept (unless `store` is false), then returned.
    fn finish(
        &self,
        fold: &mut OutputFold,
        finish_reason: Option<FinishReason>,
        generation: &Generation,
    ) -> Value {
        let status = match finish_reason {
            Some(FinishReason::Length | FinishReason::Cancelled) | None => Status::Incomplete,
            Some(FinishReason::Stop) => Status::Completed,
        };
        let (items, reasoning_tokens) = fold.finish(status == Status::Incomplete);
        let usage = usage_json(&generation.usage(), reasoning_tokens);
        let body = self.meta.object(status, &items, Some(&usage));
        if self.meta.store {
            let mut history = self.history.clone();
            history.extend(assistant_turn(&items));
            let stored = StoredResponse { history, body: body.clone() };
            self.state.responses.insert(self.meta.id.clone(), stored);
        }
        body
    }

    /// The stream's events: `response.created`, `response.in_progress`, the output's events,
    /// then `response.completed` (or `response.incomplete`), or an `error` event.
    fn events(self, generation: Generation) -> futures_util::stream::BoxStream<'static, Value> {
        let mut fold = OutputFold::new(true, 0);
        let start = self.meta.object(Status::InProgress, &[], None);
        fold.emit(json!({"type": "response.created", "response": start}));
        fold.emit(json!({"type": "response.in_progress", "response": start}));
        let first = fold.take_events();
        let state = Some((self, generation, fold));
        let rest = stream::unfold(state, |state| async move {
            let (answer, mut generation, mut fold) = state?;
            let Some((_, event)) = generation.next_event().await else {
                // Every choice ended without a `Finished` event: not expected; say so.
                let error = ApiError::internal("the generation ended without finishing");
                fold.emit(error_event(&error));
                return Some((fold.take_events(), None));
            };
            match event {
                ChoiceEvent::Token { deltas, .. } => {
                    fold.push(deltas);
                    let events = fold.take_events();
                    Some((events, Some((answer, generation, fold))))
                }
                ChoiceEvent::Finished { deltas, finish_reason, .. } => {
                    fold.push(deltas);
                    generation.log_done();
                    let body = answer.finish(&mut fold, Some(finish_reason), &generation);
                    let kind = if body["status"] == "completed" {
                        "response.completed"
                    } else {
                        "response.incomplete"
                    };
                    fold.emit(json!({"type": kind, "response": body}));
                    Some((fold.take_events(), None))
                }
                ChoiceEvent::Failed(error) => {
                    tracing::error!(id = %generation.id(), "generation failed: {error}");
                    fold.emit(error_event(&ApiError::from(&*error)));
                    Some((fold.take_events(), None))
                }
            }
        });
        stream::iter(first).chain(rest.flat_map(stream::iter)).boxed()
    }
}

/// A stream's `error` event.
fn error_event(error: &ApiError) -> Value {
    json!({"type": "error", "code": error.code, "message": error.message, "param": error.param})
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id).map_err(|rejection| {
        ApiError::invalid_request(format!("Invalid response id in the path: {rejection}"), None)
    })
}

async fn retrieve(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let stored = state.responses.get(&id).ok_or_else(|| not_kept(&id, None))?;
    Ok(Json(stored.body))
}

async fn delete(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    if !state.responses.remove(&id) {
        return Err(not_kept(&id, None));
    }
    Ok(Json(json!({"id": id, "object": "response", "deleted": true})))
}
