//! A [`Generation`] answered the Anthropic way: one `message` body, or the SSE events
//! `message_start`, then for each content block `content_block_start`, its
//! `content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason, usage)
//! and `message_stop`; an `error` event if the engine fails mid-stream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive as SseKeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use uma_chat_output::{OutputDelta, ParsedOutput};
use uma_engine::{EngineHandle, TokenId};
use uma_sampling::FinishReason;

use super::response::{
    content_blocks, message_body, new_tool_use_id, usage_json, AnthropicError, StopReason,
};
use crate::error::ApiError;
use crate::generation::{ChoiceEvent, Generation};

/// What the answer needs beyond the generation.
pub(crate) struct MessageMeta {
    pub(crate) id: String,
    /// The model as the client named it.
    pub(crate) model: String,
    pub(crate) max_tokens: u32,
    /// Finds which stop sequence ended the text.
    pub(crate) stops: StopMatcher,
}

/// Tells which stop sequence ended a generation: the engine drops it from the text, so it is
/// found again in the decoded tokens, right after the text (a generation that ended on an
/// end-of-generation token ended its turn, whatever its text).
pub(crate) struct StopMatcher {
    engine: EngineHandle,
    stops: Arc<[String]>,
    tokens: Vec<TokenId>,
}

impl StopMatcher {
    pub(crate) fn new(engine: &EngineHandle, stops: Arc<[String]>) -> StopMatcher {
        StopMatcher { engine: engine.clone(), stops, tokens: Vec::new() }
    }

    fn push(&mut self, token: TokenId) {
        // Only needed with stop sequences; the tokens are at most `max_tokens`.
        if !self.stops.is_empty() {
            self.tokens.push(token);
        }
    }

    /// The stop sequence that ended `text` (the whole generated text), if one did.
    fn matched(&self, text: &str) -> Option<String> {
        let last = *self.tokens.last()?;
        let tokenizer = self.engine.prompts().tokenizer();
        if tokenizer.is_end_of_generation(last) {
            return None;
        }
        let decoded = tokenizer.decode(&self.tokens, false).ok()?;
        if let Some(rest) = decoded.get(text.len()..) {
            if let Some(stop) = self.stops.iter().find(|stop| rest.starts_with(stop.as_str())) {
                return Some(stop.clone());
            }
        }
        // Decoding all tokens at once may space the text differently from the stream.
        self.stops.iter().find(|stop| decoded.contains(stop.as_str())).cloned()
    }
}

/// The whole `message` body, or the SSE stream when `stream`.
pub(crate) async fn respond(
    generation: Generation,
    meta: MessageMeta,
    stream: bool,
) -> Result<Response, AnthropicError> {
    if stream {
        let events = message_events(generation, meta)
            .map(|(name, data)| Ok::<Event, Infallible>(Event::default().event(name).data(data)));
        return Ok(Sse::new(events).keep_alive(SseKeepAlive::default()).into_response());
    }
    let mut generation = generation;
    let mut meta = meta;
    let mut text = String::new();
    let mut ended: Option<(FinishReason, ParsedOutput)> = None;
    while let Some((_, event)) = generation.next_event().await {
        match event {
            ChoiceEvent::Token { token, text: piece, .. } => {
                meta.stops.push(token);
                text.push_str(&piece);
            }
            ChoiceEvent::Finished { text: piece, finish_reason, parsed, .. } => {
                text.push_str(&piece);
                ended = Some((finish_reason, parsed.unwrap_or_default()));
            }
            ChoiceEvent::Failed(error) => return Err(ApiError::from(&*error).into()),
        }
    }
    generation.log_done();
    let usage = generation.usage();
    let (finish_reason, parsed) =
        ended.ok_or_else(|| ApiError::internal("the generation ended without finishing"))?;
    let called = !parsed.tool_calls.is_empty();
    let stop = StopReason::new(
        finish_reason,
        called,
        meta.stops.matched(&text),
        usage.completion_tokens,
        meta.max_tokens,
    );
    let body = message_body(
        &meta.id,
        &meta.model,
        content_blocks(&parsed),
        Some(&stop),
        usage_json(&usage),
    );
    Ok(Json(body).into_response())
}

/// The kind of the content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    /// The tool call of this index (the parser's).
    ToolUse(usize),
}

/// Streaming state: the block being streamed, and what the stop reason needs.
struct StreamState {
    generation: Generation,
    meta: MessageMeta,
    /// `message_start` was sent.
    started: bool,
    /// The index the next content block gets.
    next_block: usize,
    open: Option<(usize, BlockKind)>,
    /// Whitespace-only text not sent yet: it opens no text block on its own (a non-streamed
    /// answer drops whitespace-only text too), but leads the text that follows it.
    pending_space: String,
    text: String,
    called: bool,
    ended: bool,
}

/// The `(event name, data)` pairs of the stream.
fn message_events(
    generation: Generation,
    meta: MessageMeta,
) -> BoxStream<'static, (&'static str, String)> {
    let state = StreamState {
        generation,
        meta,
        started: false,
        next_block: 0,
        open: None,
        pending_space: String::new(),
        text: String::new(),
        called: false,
        ended: false,
    };
    stream::unfold(state, |mut state| async move {
        let events = state.next_events().await?;
        Some((stream::iter(events), state))
    })
    .flatten()
    .boxed()
}

type Events = Vec<(&'static str, String)>;

impl StreamState {
    /// The events the next generation event produces (`None` after `message_stop`).
    async fn next_events(&mut self) -> Option<Events> {
        if self.ended {
            return None;
        }
        let mut events = Vec::new();
        if !self.started {
            // At once, before the first token: the client learns the prompt's size.
            self.started = true;
            let usage = self.generation.usage();
            let message = message_body(
                &self.meta.id,
                &self.meta.model,
                Vec::new(),
                None,
                json!({"input_tokens": usage.prompt_tokens, "output_tokens": 0}),
            );
            events.push(("message_start", json!({"type": "message_start", "message": message})));
            events.push(("ping", json!({"type": "ping"})));
            return Some(serialize(events));
        }
        let Some((_, event)) = self.generation.next_event().await else {
            // Every choice ended without a `Finished` event: not expected, but close cleanly.
            self.ended = true;
            let error =
                AnthropicError(ApiError::internal("the generation ended without finishing"));
            return Some(serialize(vec![("error", error.body())]));
        };
        match event {
            ChoiceEvent::Token { token, text, deltas, .. } => {
                self.meta.stops.push(token);
                self.text.push_str(&text);
                self.deltas(deltas, &mut events);
            }
            ChoiceEvent::Finished { text, finish_reason, deltas, .. } => {
                self.text.push_str(&text);
                self.deltas(deltas, &mut events);
                self.close(&mut events);
                self.generation.log_done();
                let usage = self.generation.usage();
                let stop = StopReason::new(
                    finish_reason,
                    self.called,
                    self.meta.stops.matched(&self.text),
                    usage.completion_tokens,
                    self.meta.max_tokens,
                );
                events.push((
                    "message_delta",
                    json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": stop.reason, "stop_sequence": stop.sequence},
                        "usage": usage_json(&usage),
                    }),
                ));
                events.push(("message_stop", json!({"type": "message_stop"})));
                self.ended = true;
            }
            ChoiceEvent::Failed(error) => {
                tracing::error!(id = %self.generation.id(), "generation failed: {error}");
                events.push(("error", AnthropicError(ApiError::from(&*error)).body()));
                self.ended = true;
            }
        }
        Some(serialize(events))
    }

    /// The block events of the parsed output's deltas.
    fn deltas(&mut self, deltas: Vec<OutputDelta>, events: &mut Vec<(&'static str, Value)>) {
        for delta in deltas {
            match delta {
                OutputDelta::Reasoning(text) if !text.is_empty() => {
                    self.open_block(
                        BlockKind::Thinking,
                        events,
                        || json!({"type": "thinking", "thinking": "", "signature": ""}),
                    );
                    let delta = json!({"type": "thinking_delta", "thinking": text});
                    events.push(self.block_delta(delta));
                }
                OutputDelta::Content(text) if !text.is_empty() => {
                    let open_text = matches!(self.open, Some((_, BlockKind::Text)));
                    if !open_text && text.trim().is_empty() {
                        self.pending_space.push_str(&text);
                        continue;
                    }
                    self.open_block(
                        BlockKind::Text,
                        events,
                        || json!({"type": "text", "text": ""}),
                    );
                    let text = std::mem::take(&mut self.pending_space) + &text;
                    events.push(self.block_delta(json!({"type": "text_delta", "text": text})));
                }
                OutputDelta::ToolCallBegin { index, name } => {
                    self.called = true;
                    self.pending_space.clear();
                    self.open_block(BlockKind::ToolUse(index), events, || {
                        json!({"type": "tool_use", "id": new_tool_use_id(), "name": name,
                               "input": {}})
                    });
                }
                OutputDelta::ToolCallArguments { index, fragment }
                    if !fragment.is_empty() && self.is_open(BlockKind::ToolUse(index)) =>
                {
                    let delta = json!({"type": "input_json_delta", "partial_json": fragment});
                    events.push(self.block_delta(delta));
                }
                // A call that turned out malformed (cut by max_tokens): its block ends as it
                // is, as Anthropic's would; its text follows as text.
                OutputDelta::ToolCallInvalid { index }
                    if self.is_open(BlockKind::ToolUse(index)) =>
                {
                    self.close(events);
                }
                _ => {}
            }
        }
    }

    fn is_open(&self, kind: BlockKind) -> bool {
        self.open.is_some_and(|(_, open)| open == kind)
    }

    /// Opens a block of `kind` (closing the open one) unless one is open.
    fn open_block(
        &mut self,
        kind: BlockKind,
        events: &mut Vec<(&'static str, Value)>,
        block: impl FnOnce() -> Value,
    ) {
        if self.is_open(kind) {
            return;
        }
        self.close(events);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block()}),
        ));
    }

    fn block_delta(&self, delta: Value) -> (&'static str, Value) {
        let index = self.open.map_or(0, |(index, _)| index);
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    fn close(&mut self, events: &mut Vec<(&'static str, Value)>) {
        if let Some((index, _)) = self.open.take() {
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }
}

fn serialize(events: Vec<(&'static str, Value)>) -> Events {
    events.into_iter().map(|(name, data)| (name, data.to_string())).collect()
}
