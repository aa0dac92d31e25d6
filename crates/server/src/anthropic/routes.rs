//! The handlers of the Anthropic routes: `POST /v1/messages` (a request parsed and checked, its
//! conversation rendered with its tools, submitted as a [`Generation`] and answered as a
//! `message` or its SSE events) and `POST /v1/messages/count_tokens`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use uma_engine::EngineHandle;

use super::answer::{respond, MessageMeta, StopMatcher};
use super::request::{Conversation, MessagesRequest};
use super::response::{new_message_id, AnthropicError};
use crate::error::ApiError;
use crate::generation::{Generation, OutputHandling};
use crate::state::AppState;
use crate::tools::{prepare_chat, OutputOptions, PreparedChat, ToolChoice};

/// The Anthropic routes, for the router that adds authentication and limits.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
}

type Payload = Result<Json<MessagesRequest>, JsonRejection>;

async fn messages(
    State(state): State<Arc<AppState>>,
    payload: Payload,
) -> Result<Response, AnthropicError> {
    let Json(request) = payload?;
    let params = request.sampling_params()?;
    let conversation = request.conversation()?;
    let options = request.output_options()?;
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let engine = lease.engine();
    let chat = prepare(engine, &request, conversation, options).await?;
    let id = new_message_id();
    let output = OutputHandling { grammar: chat.grammar, parsing: Some(chat.parsing) };
    let generation = Generation::submit(
        engine,
        &state.metrics,
        id.clone(),
        vec![chat.prompt],
        &params,
        1,
        output,
    )?;
    let meta = MessageMeta {
        id,
        model: request.model.clone(),
        max_tokens: params.max_tokens.unwrap_or(u32::MAX),
        stops: StopMatcher::new(engine, params.stop.clone()),
    };
    // The request in flight keeps the model resident from here on.
    drop(lease);
    respond(generation, meta, request.stream()).await
}

/// `{"input_tokens": N}`: the prompt the same body would make, tools included.
async fn count_tokens(
    State(state): State<Arc<AppState>>,
    payload: Payload,
) -> Result<Response, AnthropicError> {
    let Json(request) = payload?;
    let conversation = request.conversation()?;
    let options = request.output_options()?;
    // Counting needs the rendered prompt only: no grammar to compile.
    let options = OutputOptions { tool_choice: ToolChoice::None, format: None, ..options };
    let lease = state.lease(&request.model, request.keep_alive.map(|field| field.0)).await?;
    let chat = prepare(lease.engine(), &request, conversation, options).await?;
    Ok(Json(json!({"input_tokens": chat.prompt.len()})).into_response())
}

/// The prompt with its tools (and the prefill's tokens after it), the grammar and the parsing.
async fn prepare(
    engine: &EngineHandle,
    request: &MessagesRequest,
    conversation: Conversation,
    options: OutputOptions,
) -> Result<PreparedChat, AnthropicError> {
    let Conversation { messages, prefill } = conversation;
    if prefill.is_some() {
        // The grammar would start after the prefill, which it never saw.
        let forced = matches!(options.tool_choice, ToolChoice::Required | ToolChoice::Function(_))
            && !options.tools.is_empty();
        if forced || options.format.is_some() {
            let last = format!("messages[{}]", request.messages.len() - 1);
            return Err(ApiError::invalid_request(
                "A last assistant message (a prefill) cannot be combined with a forced tool \
                 call or an output format.",
                Some(&last),
            )
            .into());
        }
    }
    let mut chat =
        prepare_chat(engine, messages, options, "messages", "output_config.format").await?;
    if let Some(prefill) = prefill {
        // The answer continues the prefill: its tokens follow the assistant turn's opening.
        let tokens = crate::encode::raw_tokens(engine, prefill, false, "messages")
            .await?
            .map_err(|error| ApiError::invalid_request(error.to_string(), Some("messages")))?;
        chat.prompt.extend(tokens);
    }
    Ok(chat)
}
