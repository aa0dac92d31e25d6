//! A [`Generation`] answered the OpenAI way: one `chat.completion` or `text_completion` body, or
//! a stream of SSE chunks (a usage chunk if asked for) ending in `[DONE]`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive as SseKeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use uma_chat_output::OutputDelta;
use uma_sampling::FinishReason;

use super::response::{
    chat_chunk, chat_completion, chat_usage_chunk, new_tool_call_id, text_chunk, text_completion,
    text_usage_chunk, ChunkDelta, ResponseMeta,
};
use crate::error::ApiError;
use crate::generation::{ChoiceEvent, ChoiceOutput, Generation, TokenLogprob};

/// Which API shape the output takes: chat and text completions differ only in how a choice's
/// text becomes JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Text,
}

/// The whole response body, or the SSE stream when `stream`.
pub(crate) async fn respond(
    generation: Generation,
    meta: ResponseMeta,
    endpoint: Endpoint,
    stream: bool,
    include_usage: bool,
) -> Result<Response, ApiError> {
    if !stream {
        let outcome = generation.collect().await.map_err(|error| ApiError::from(&*error))?;
        let body = match endpoint {
            Endpoint::Chat => chat_completion(&meta, &outcome.choices, &outcome.usage),
            Endpoint::Text => text_completion(&meta, &outcome.choices, &outcome.usage),
        };
        return Ok(Json(body).into_response());
    }
    let state = ChunkState {
        generation,
        meta,
        endpoint,
        include_usage,
        text_offsets: HashMap::new(),
        started_choices: Vec::new(),
        called_choices: Vec::new(),
        finished: false,
    };
    let events =
        chunks(state).map(|payload| Ok::<Event, Infallible>(Event::default().data(payload)));
    Ok(Sse::new(events).keep_alive(SseKeepAlive::default()).into_response())
}

/// The stream of SSE `data:` payloads: chunks as tokens arrive, a usage chunk if asked for,
/// then `[DONE]`.
fn chunks(state: ChunkState) -> BoxStream<'static, String> {
    stream::unfold(state, |mut state| async move {
        let payloads = state.next_payloads().await?;
        Some((stream::iter(payloads), state))
    })
    .flatten()
    .boxed()
}

/// Streaming state: which choices have sent their first chunk, and how much text each sent.
struct ChunkState {
    generation: Generation,
    meta: ResponseMeta,
    endpoint: Endpoint,
    include_usage: bool,
    text_offsets: HashMap<u32, usize>,
    started_choices: Vec<u32>,
    /// Choices that began a tool call (they finish with `"tool_calls"`).
    called_choices: Vec<u32>,
    finished: bool,
}

impl ChunkState {
    /// The payloads the next generation event produces (`None` once `[DONE]` was sent).
    async fn next_payloads(&mut self) -> Option<Vec<String>> {
        if self.finished {
            return None;
        }
        let Some((index, event)) = self.generation.next_event().await else {
            self.finished = true;
            let mut payloads = Vec::new();
            if self.include_usage {
                let usage = self.generation.usage();
                let chunk = match self.endpoint {
                    Endpoint::Chat => chat_usage_chunk(&self.meta, &usage),
                    Endpoint::Text => text_usage_chunk(&self.meta, &usage),
                };
                payloads.push(chunk.to_string());
            }
            self.generation.log_done();
            payloads.push("[DONE]".to_owned());
            return Some(payloads);
        };
        let mut payloads = Vec::new();
        if self.endpoint == Endpoint::Chat && !self.started_choices.contains(&index) {
            self.started_choices.push(index);
            payloads.push(self.chunk(index, ChunkDelta::role(), None, None).to_string());
        }
        match event {
            ChoiceEvent::Token { text, logprob, deltas, .. } => {
                let logprobs = logprob.map(|entry| vec![entry]);
                if self.endpoint == Endpoint::Chat && self.generation.parses_output() {
                    let mut chunks = self.parsed_chunks(index, deltas);
                    // The logprobs ride on the token's first chunk (or an empty one).
                    if chunks.is_empty() && logprobs.is_some() {
                        chunks.push(ChunkDelta::empty());
                    }
                    for (position, delta) in chunks.into_iter().enumerate() {
                        let logprobs = if position == 0 { logprobs.as_deref() } else { None };
                        payloads.push(self.chunk(index, delta, None, logprobs).to_string());
                    }
                } else if !text.is_empty() || logprobs.is_some() {
                    // An empty delta says nothing unless it carries a logprob.
                    let chunk =
                        self.chunk(index, ChunkDelta::content(text), None, logprobs.as_deref());
                    payloads.push(chunk.to_string());
                }
            }
            ChoiceEvent::Finished { text, finish_reason, deltas, .. } => {
                if self.endpoint == Endpoint::Chat && self.generation.parses_output() {
                    for delta in self.parsed_chunks(index, deltas) {
                        payloads.push(self.chunk(index, delta, None, None).to_string());
                    }
                    let chunk = self.chunk(index, ChunkDelta::empty(), Some(finish_reason), None);
                    payloads.push(chunk.to_string());
                } else {
                    let delta = if text.is_empty() {
                        ChunkDelta::empty()
                    } else {
                        ChunkDelta::content(text)
                    };
                    let chunk = self.chunk(index, delta, Some(finish_reason), None);
                    payloads.push(chunk.to_string());
                }
            }
            ChoiceEvent::Failed(error) => {
                tracing::error!(id = %self.generation.id(), "generation failed: {error}");
                self.finished = true;
                payloads.push(ApiError::from(&*error).body().to_string());
                payloads.push("[DONE]".to_owned());
            }
        }
        Some(payloads)
    }

    /// The chunk deltas of a chat choice's parsed output deltas: reasoning, content, and
    /// OpenAI's incremental tool calls (a withdrawn call's text follows as content).
    fn parsed_chunks(&mut self, index: u32, deltas: Vec<OutputDelta>) -> Vec<ChunkDelta> {
        let mut chunks = Vec::new();
        for delta in deltas {
            match delta {
                OutputDelta::Content(text) if !text.is_empty() => {
                    chunks.push(ChunkDelta::content(text));
                }
                OutputDelta::Reasoning(text) if !text.is_empty() => chunks
                    .push(ChunkDelta { reasoning_content: Some(text), ..ChunkDelta::default() }),
                OutputDelta::ToolCallBegin { index: call, name } => {
                    if !self.called_choices.contains(&index) {
                        self.called_choices.push(index);
                    }
                    let entry = json!({
                        "index": call,
                        "id": new_tool_call_id(),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    });
                    chunks.push(ChunkDelta {
                        tool_calls: Some(vec![entry]),
                        ..ChunkDelta::default()
                    });
                }
                OutputDelta::ToolCallArguments { index: call, fragment }
                    if !fragment.is_empty() =>
                {
                    let entry = json!({"index": call, "function": {"arguments": fragment}});
                    chunks.push(ChunkDelta {
                        tool_calls: Some(vec![entry]),
                        ..ChunkDelta::default()
                    });
                }
                _ => {}
            }
        }
        chunks
    }

    /// One chunk of choice `index`, counting the text it sends.
    fn chunk(
        &mut self,
        index: u32,
        delta: ChunkDelta,
        finish: Option<FinishReason>,
        logprobs: Option<&[TokenLogprob]>,
    ) -> Value {
        let offset = self.text_offsets.entry(index).or_default();
        let text_offset = *offset;
        *offset += delta.content.as_deref().map_or(0, |text| text.chars().count());
        match self.endpoint {
            Endpoint::Chat => {
                let called = self.called_choices.contains(&index);
                chat_chunk(&self.meta, index, &delta, finish, called, logprobs)
            }
            Endpoint::Text => {
                let choice = ChoiceOutput {
                    index,
                    text: delta.content.unwrap_or_default(),
                    finish_reason: finish,
                    logprobs: logprobs.map(<[TokenLogprob]>::to_vec),
                    parsed: None,
                };
                text_chunk(&self.meta, &choice, text_offset)
            }
        }
    }
}
