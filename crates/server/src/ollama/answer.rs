//! A [`Generation`] answered the Ollama way: NDJSON lines as the text comes (the default), or
//! one object with the whole text (`"stream": false`); the last line carries the summary
//! (`done_reason`, counts, timings, and `/api/generate`'s `context`).

use std::convert::Infallible;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Map, Value};
use uma_engine::TokenId;

use super::response::{done_reason, timestamp, OllamaError, Timings};
use crate::error::ApiError;
use crate::generation::{ChoiceEvent, Generation};

/// A line (or a whole answer) of `model` with `text` and `done`.
pub(super) fn line(model: &str, kind: &Kind, text: &str, done: bool) -> Map<String, Value> {
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
pub(super) enum Kind {
    /// `/api/generate`: the final object carries `context` (prompt and answer tokens).
    Generate {
        prompt: Vec<TokenId>,
    },
    Chat,
}

/// One generation turned into Ollama's lines.
pub(super) struct Answer {
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
    pub(super) fn new(
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
            ChoiceEvent::Token { token, text, .. } => {
                self.generated.push(token);
                self.first_token.get_or_insert_with(Instant::now);
                Piece::text(text)
            }
            ChoiceEvent::Finished { text, finish_reason, .. } => {
                self.done = true;
                self.generation.log_done();
                let mut pieces = Piece::text(text);
                pieces.push(Piece::Done(finish_reason));
                pieces
            }
            ChoiceEvent::Failed(error) => {
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

    pub(super) async fn respond(self, stream: bool) -> Response {
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
