//! A [`Generation`] answered the Ollama way: NDJSON lines as the output comes (the default), or
//! one object with the whole answer (`"stream": false`); the last line carries the summary
//! (`done_reason`, counts, timings, and `/api/generate`'s `context`).
//!
//! A chat's output (and a templated `/api/generate`'s) arrives parsed: reasoning goes to
//! `thinking` (`message.thinking` on `/api/chat`), the answer to `content` (`response`), and each
//! tool call to `message.tool_calls` as `{"id", "function": {"index", "name", "arguments"}}` with
//! the arguments a JSON object. As Ollama does, a stream sends each tool call whole, in one line,
//! once it is parsed; uma sends it when the parser has settled it (text after it, or the end), so
//! that a call it withdraws as malformed is never sent.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Map, Value};
use uma_chat_output::OutputDelta;
use uma_engine::TokenId;
use uma_sampling::FinishReason;

use super::response::{done_reason, timestamp, OllamaError, Timings};
use crate::error::ApiError;
use crate::generation::{new_request_id, ChoiceEvent, Generation};

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

/// Adds what a line says besides its text: `thinking` (in `message` for a chat, beside
/// `response` for a generation) and a chat's `tool_calls`; empty ones are left out, as Ollama
/// leaves them out.
fn add_output(object: &mut Map<String, Value>, thinking: &str, tool_calls: &[Value]) {
    let target = match object.get_mut("message").and_then(Value::as_object_mut) {
        Some(message) => message,
        None => object,
    };
    if !thinking.is_empty() {
        target.insert("thinking".into(), json!(thinking));
    }
    if !tool_calls.is_empty() {
        target.insert("tool_calls".into(), json!(tool_calls));
    }
}

/// Which route an answer is for.
pub(super) enum Kind {
    /// `/api/generate`: the final object carries `context` (prompt and answer tokens).
    Generate {
        prompt: Vec<TokenId>,
    },
    Chat,
}

/// Whether a reasoning model's thinking is returned.
///
/// `think: false` asks Ollama to turn a model's thinking off, which it does through the chat
/// template: uma passes `enable_thinking: false` (the variable Qwen 3 reads). A template that
/// reads no such variable lets the model think anyway: uma then hides its reasoning, never
/// sending it as `thinking` nor leaving it in the answer's `content`; only the answer is
/// returned, as a client that turned thinking off expects. Absent `think` on a reasoning model returns the
/// thinking, as Ollama does (thinking is on by default for the models that have it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Thinking {
    Shown,
    Hidden,
}

impl Thinking {
    /// What `think` asks for.
    pub(super) fn of(think: Option<bool>) -> Thinking {
        if think == Some(false) {
            Thinking::Hidden
        } else {
            Thinking::Shown
        }
    }
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
    output: OutputPieces,
}

impl Answer {
    pub(super) fn new(
        generation: Generation,
        model: String,
        kind: Kind,
        thinking: Thinking,
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
            output: OutputPieces::new(thinking),
        }
    }

    fn object(&self, text: &str, done: bool) -> Map<String, Value> {
        line(&self.model, &self.kind, text, done)
    }

    /// The final object's summary: reason, counts, timings, and `/api/generate`'s `context`.
    fn finish(&self, object: &mut Map<String, Value>, reason: FinishReason) {
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
        let parsed = self.generation.parses_output();
        Some(match event {
            ChoiceEvent::Token { token, text, deltas, .. } => {
                self.generated.push(token);
                self.first_token.get_or_insert_with(Instant::now);
                if parsed {
                    self.output.pieces(deltas, false)
                } else {
                    Piece::text(text)
                }
            }
            ChoiceEvent::Finished { text, finish_reason, deltas, .. } => {
                self.done = true;
                self.generation.log_done();
                let mut pieces =
                    if parsed { self.output.pieces(deltas, true) } else { Piece::text(text) };
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
                Piece::Thinking(thinking) => {
                    let mut object = self.object("", false);
                    add_output(&mut object, &thinking, &[]);
                    Value::Object(object)
                }
                Piece::ToolCalls(calls) => {
                    let mut object = self.object("", false);
                    add_output(&mut object, "", &calls);
                    Value::Object(object)
                }
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

    /// The whole answer as one object: the final line, with all the text, thinking and calls.
    async fn collect(mut self) -> Response {
        let mut whole = Whole::default();
        while let Some(pieces) = self.next_pieces().await {
            for piece in pieces {
                match whole.add(piece) {
                    Some(Ok(reason)) => {
                        let mut object = self.object(&whole.text, true);
                        add_output(&mut object, &whole.thinking, &whole.tool_calls);
                        self.finish(&mut object, reason);
                        return Json(Value::Object(object)).into_response();
                    }
                    Some(Err(error)) => return OllamaError(error).into_response(),
                    None => {}
                }
            }
        }
        OllamaError(ApiError::internal("the generation ended without a result")).into_response()
    }
}

/// The pieces of a whole answer, gathered.
#[derive(Debug, Default)]
struct Whole {
    text: String,
    thinking: String,
    tool_calls: Vec<Value>,
}

impl Whole {
    /// Adds `piece`; the answer's end (why it ended) or its failure, once they come.
    fn add(&mut self, piece: Piece) -> Option<Result<FinishReason, ApiError>> {
        match piece {
            Piece::Text(text) => self.text.push_str(&text),
            Piece::Thinking(thinking) => self.thinking.push_str(&thinking),
            Piece::ToolCalls(calls) => self.tool_calls.extend(calls),
            Piece::Done(reason) => return Some(Ok(reason)),
            Piece::Failed(error) => return Some(Err(error)),
        }
        None
    }
}

/// What an engine event contributes to an answer, before it becomes a line or the whole.
#[derive(Debug)]
enum Piece {
    /// Answer text (`response`, or `message.content`).
    Text(String),
    /// Reasoning (`thinking`, or `message.thinking`).
    Thinking(String),
    /// Complete tool calls, in Ollama's shape.
    ToolCalls(Vec<Value>),
    Done(FinishReason),
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

/// A tool call begun and not yet sent.
#[derive(Debug)]
struct PendingCall {
    name: String,
    /// The argument fragments so far (JSON text).
    arguments: String,
}

/// Turns a parsed output's deltas into pieces: reasoning (or nothing, when hidden), answer text,
/// and tool calls held until they are settled, then sent whole.
#[derive(Debug)]
struct OutputPieces {
    thinking: Thinking,
    /// Calls begun, by index, not yet settled.
    pending: BTreeMap<usize, PendingCall>,
}

impl OutputPieces {
    fn new(thinking: Thinking) -> OutputPieces {
        OutputPieces { thinking, pending: BTreeMap::new() }
    }

    /// The pieces of `deltas`; `finished`: they are the output's last (every call still held
    /// is complete: the parser withdrew any that was not).
    fn pieces(&mut self, deltas: Vec<OutputDelta>, finished: bool) -> Vec<Piece> {
        let mut pieces = Vec::new();
        for delta in deltas {
            match delta {
                OutputDelta::Content(text) if !text.is_empty() => {
                    // Text after a call means the parser has settled the calls before it.
                    self.send_calls(&mut pieces);
                    pieces.push(Piece::Text(text));
                }
                OutputDelta::Reasoning(text) if !text.is_empty() => {
                    self.send_calls(&mut pieces);
                    if self.thinking == Thinking::Shown {
                        pieces.push(Piece::Thinking(text));
                    }
                }
                OutputDelta::ToolCallBegin { index, name } => {
                    self.pending.insert(index, PendingCall { name, arguments: String::new() });
                }
                OutputDelta::ToolCallArguments { index, fragment } => {
                    if let Some(call) = self.pending.get_mut(&index) {
                        call.arguments.push_str(&fragment);
                    }
                }
                OutputDelta::ToolCallInvalid { index } => {
                    self.pending.remove(&index);
                }
                _ => {}
            }
        }
        if finished {
            self.send_calls(&mut pieces);
        }
        pieces
    }

    /// Sends the calls held, in the order they began.
    fn send_calls(&mut self, pieces: &mut Vec<Piece>) {
        if self.pending.is_empty() {
            return;
        }
        let calls = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(index, call)| tool_call(index, call))
            .collect();
        pieces.push(Piece::ToolCalls(calls));
    }
}

/// One tool call as Ollama returns it: `{"id", "function": {"index", "name", "arguments"}}`,
/// the arguments a JSON object (the parser gives out only arguments that parse).
fn tool_call(index: usize, call: PendingCall) -> Value {
    let arguments = serde_json::from_str::<Value>(&call.arguments)
        .unwrap_or_else(|_| Value::Object(Map::new()));
    json!({
        "id": tool_call_id(),
        "function": {"index": index, "name": call.name, "arguments": arguments},
    })
}

/// `call_` and 8 lowercase letters and digits, as Ollama names its calls.
fn tool_call_id() -> String {
    let unique = new_request_id("c");
    format!("call_{}", &unique[2..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_begin(index: usize, name: &str) -> OutputDelta {
        OutputDelta::ToolCallBegin { index, name: name.to_owned() }
    }

    fn arguments(index: usize, fragment: &str) -> OutputDelta {
        OutputDelta::ToolCallArguments { index, fragment: fragment.to_owned() }
    }

    /// The pieces as (kind, JSON) pairs, ids left out (they are random).
    fn shown(pieces: &[Piece]) -> Vec<(String, Value)> {
        pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => ("text".to_owned(), json!(text)),
                Piece::Thinking(text) => ("thinking".to_owned(), json!(text)),
                Piece::ToolCalls(calls) => {
                    let calls: Vec<Value> =
                        calls.iter().map(|call| call["function"].clone()).collect();
                    ("calls".to_owned(), json!(calls))
                }
                Piece::Done(reason) => ("done".to_owned(), json!(format!("{reason:?}"))),
                Piece::Failed(error) => ("failed".to_owned(), json!(error.message)),
            })
            .collect()
    }

    #[test]
    fn a_call_is_sent_whole_once_settled_with_object_arguments() {
        let mut output = OutputPieces::new(Thinking::Shown);
        // The call's fragments come over several tokens: nothing is sent while it may change.
        assert!(output.pieces(vec![call_begin(0, "get_weather")], false).is_empty());
        assert!(output.pieces(vec![arguments(0, "{\"city\":")], false).is_empty());
        assert!(output.pieces(vec![arguments(0, "\"Paris\"}")], false).is_empty());
        let pieces = output.pieces(vec![], true);
        assert_eq!(
            shown(&pieces),
            [(
                "calls".to_owned(),
                json!([{"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}])
            )]
        );
        let Piece::ToolCalls(calls) = &pieces[0] else { panic!("calls") };
        let id = calls[0]["id"].as_str().expect("an id");
        assert!(id.starts_with("call_") && id.len() == 13, "{id}");
        assert!(calls[0]["function"]["arguments"].is_object());
    }

    #[test]
    fn text_after_calls_settles_them_and_withdrawn_calls_are_never_sent() {
        let mut output = OutputPieces::new(Thinking::Shown);
        let pieces = output.pieces(
            vec![
                call_begin(0, "a"),
                arguments(0, "{}"),
                call_begin(1, "b"),
                arguments(1, "{\"x\":1}"),
                OutputDelta::Content("Done.".into()),
                call_begin(2, "c"),
                arguments(2, "{\"y\":"),
                OutputDelta::ToolCallInvalid { index: 2 },
                OutputDelta::Content("<tool_call>{\"name\": \"c\", \"y\":".into()),
            ],
            false,
        );
        assert_eq!(
            shown(&pieces),
            [
                (
                    "calls".to_owned(),
                    json!([
                        {"index": 0, "name": "a", "arguments": {}},
                        {"index": 1, "name": "b", "arguments": {"x": 1}}
                    ])
                ),
                ("text".to_owned(), json!("Done.")),
                ("text".to_owned(), json!("<tool_call>{\"name\": \"c\", \"y\":")),
            ]
        );
        assert!(output.pieces(vec![], true).is_empty(), "the withdrawn call stays unsent");
    }

    #[test]
    fn reasoning_is_thinking_or_hidden_and_never_content() {
        let deltas = || {
            vec![
                OutputDelta::Reasoning("Paris is in France.".into()),
                OutputDelta::Content("Paris.".into()),
            ]
        };
        let mut shown_output = OutputPieces::new(Thinking::Shown);
        assert_eq!(
            shown(&shown_output.pieces(deltas(), true)),
            [
                ("thinking".to_owned(), json!("Paris is in France.")),
                ("text".to_owned(), json!("Paris.")),
            ]
        );
        let mut hidden = OutputPieces::new(Thinking::of(Some(false)));
        assert_eq!(shown(&hidden.pieces(deltas(), true)), [("text".to_owned(), json!("Paris."))]);
        assert_eq!(Thinking::of(None), Thinking::Shown);
        assert_eq!(Thinking::of(Some(true)), Thinking::Shown);
    }

    #[test]
    fn lines_put_thinking_and_calls_where_ollama_does() {
        let call =
            json!({"id": "call_x", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}});
        let mut chat = line("m", &Kind::Chat, "", false);
        add_output(&mut chat, "hmm", std::slice::from_ref(&call));
        assert_eq!(chat["message"]["thinking"], "hmm");
        assert_eq!(chat["message"]["content"], "");
        assert_eq!(chat["message"]["tool_calls"][0]["function"]["arguments"]["a"], 1);
        assert!(chat.get("thinking").is_none());

        let mut generate = line("m", &Kind::Generate { prompt: vec![] }, "42", true);
        add_output(&mut generate, "six times seven", &[]);
        assert_eq!(generate["thinking"], "six times seven");
        assert_eq!(generate["response"], "42");

        let mut plain = line("m", &Kind::Chat, "hi", true);
        add_output(&mut plain, "", &[]);
        let message = plain["message"].as_object().expect("message");
        assert!(!message.contains_key("thinking") && !message.contains_key("tool_calls"));
    }

    #[test]
    fn a_whole_answer_gathers_every_piece() {
        let mut whole = Whole::default();
        for piece in [
            Piece::Thinking("a".into()),
            Piece::Text("b".into()),
            Piece::ToolCalls(vec![json!(1)]),
            Piece::Text("c".into()),
            Piece::ToolCalls(vec![json!(2)]),
        ] {
            assert!(whole.add(piece).is_none());
        }
        assert!(matches!(whole.add(Piece::Done(FinishReason::Stop)), Some(Ok(FinishReason::Stop))));
        assert_eq!((whole.text.as_str(), whole.thinking.as_str()), ("bc", "a"));
        assert_eq!(whole.tool_calls, [json!(1), json!(2)]);
    }
}
