//! A response's output built from a chat's parsed deltas, the same way whether it is streamed or
//! not: [`OutputFold`] turns reasoning, text and tool calls into output items (`reasoning`,
//! `message` with one `output_text` part, `function_call`) and, when streaming, into the
//! Responses API's events (`response.output_item.added`, `response.output_text.delta`, ...,
//! `response.output_item.done`). Also the response object itself ([`ResponseMeta::object`]),
//! usage and ids.

use serde_json::{json, Value};
use uma_chat_output::OutputDelta;
use uma_tokenizer::{ChatMessage, ToolCall, ToolCallFunction};

use crate::generation::{new_request_id, Usage};

/// `{prefix}_` and 32 hex digits (`resp_`, `msg_`, `fc_`, `rs_`).
pub(crate) fn new_item_id(prefix: &str) -> String {
    new_request_id(prefix).replacen('-', "_", 1)
}

/// What the response object repeats of its request.
#[derive(Debug, Clone)]
pub(crate) struct ResponseMeta {
    pub(crate) id: String,
    pub(crate) created_at: u64,
    pub(crate) model: String,
    pub(crate) instructions: Option<String>,
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) tools: Value,
    pub(crate) tool_choice: Value,
    pub(crate) parallel_tool_calls: bool,
    pub(crate) text: Value,
    pub(crate) reasoning: Value,
    pub(crate) previous_response_id: Option<String>,
    pub(crate) store: bool,
}

/// Where a response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    InProgress,
    Completed,
    /// Cut by `max_output_tokens` (or the context).
    Incomplete,
}

impl ResponseMeta {
    /// The response object (`object: "response"`).
    pub(crate) fn object(&self, status: Status, output: &[Value], usage: Option<&Value>) -> Value {
        let (status, incomplete) = match status {
            Status::InProgress => ("in_progress", Value::Null),
            Status::Completed => ("completed", Value::Null),
            Status::Incomplete => ("incomplete", json!({"reason": "max_output_tokens"})),
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "reasoning": self.reasoning,
            "store": self.store,
            "temperature": self.temperature,
            "text": self.text,
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_p": self.top_p,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
        })
    }
}

/// The Responses API's `usage` (`input_tokens` include the cached ones).
pub(crate) fn usage_json(usage: &Usage, reasoning_tokens: u32) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens),
    })
}

/// The output item being built.
#[derive(Debug)]
enum OpenItem {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    /// The parser's call `index`.
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        index: usize,
    },
}

/// Output items folded from deltas, with the events that stream them.
#[derive(Debug, Default)]
pub(crate) struct OutputFold {
    /// Finished items, in order.
    items: Vec<Value>,
    open: Option<OpenItem>,
    /// Whitespace-only text not placed yet: it opens no message on its own, but leads the text
    /// that follows it.
    pending_space: String,
    /// Tokens that produced reasoning.
    reasoning_tokens: u32,
    /// Events not taken yet (kept only when streaming).
    events: Vec<Value>,
    streaming: bool,
    sequence_number: u64,
}

impl OutputFold {
    /// A fold that also produces events (`streaming`), numbering them from `first_sequence`.
    pub(crate) fn new(streaming: bool, first_sequence: u64) -> OutputFold {
        OutputFold { streaming, sequence_number: first_sequence, ..OutputFold::default() }
    }

    /// Queues `event` (a `type` and its fields) with the next sequence number.
    pub(crate) fn emit(&mut self, mut event: Value) {
        if self.streaming {
            event["sequence_number"] = json!(self.sequence_number);
            self.sequence_number += 1;
            self.events.push(event);
        }
    }

    /// The events queued since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    fn output_index(&self) -> usize {
        self.items.len()
    }

    /// Folds one token's (or the end's) deltas.
    pub(crate) fn push(&mut self, deltas: Vec<OutputDelta>) {
        let mut reasoned = false;
        for delta in deltas {
            match delta {
                OutputDelta::Reasoning(text) if !text.is_empty() => {
                    reasoned = true;
                    if !matches!(self.open, Some(OpenItem::Reasoning { .. })) {
                        self.close();
                        self.open_reasoning();
                    }
                    self.reasoning_delta(text);
                }
                OutputDelta::Content(text) if !text.is_empty() => {
                    let in_message = matches!(self.open, Some(OpenItem::Message { .. }));
                    if !in_message && text.trim().is_empty() {
                        self.pending_space.push_str(&text);
                        continue;
                    }
                    if !in_message {
                        self.close();
                        self.open_message();
                    }
                    let text = std::mem::take(&mut self.pending_space) + &text;
                    self.text_delta(text);
                }
                OutputDelta::ToolCallBegin { index, name } => {
                    self.close();
                    self.pending_space.clear();
                    self.open_call(index, name);
                }
                OutputDelta::ToolCallArguments { index, fragment } if !fragment.is_empty() => {
                    self.arguments_delta(index, fragment);
                }
                // A call that turned out malformed (cut by the token limit): its item ends as
                // it is, marked incomplete; its text follows as text.
                OutputDelta::ToolCallInvalid { index } => {
                    if matches!(&self.open, Some(OpenItem::Call { index: open, .. }) if *open == index)
                    {
                        self.close_as("incomplete");
                    }
                }
                _ => {}
            }
        }
        if reasoned {
            self.reasoning_tokens += 1;
        }
    }

    /// Ends the open item (`incomplete` when the output was cut short); returns every item and
    /// the tokens spent reasoning.
    pub(crate) fn finish(&mut self, cut_short: bool) -> (Vec<Value>, u32) {
        self.close_as(if cut_short { "incomplete" } else { "completed" });
        (self.items.clone(), self.reasoning_tokens)
    }

    fn open_reasoning(&mut self) {
        let id = new_item_id("rs");
        let output_index = self.output_index();
        self.emit(json!({
            "type": "response.output_item.added", "output_index": output_index,
            "item": {"type": "reasoning", "id": id, "summary": [], "content": [],
                     "status": "in_progress"},
        }));
        self.emit(json!({
            "type": "response.content_part.added", "item_id": id, "output_index": output_index,
            "content_index": 0, "part": {"type": "reasoning_text", "text": ""},
        }));
        self.open = Some(OpenItem::Reasoning { id, text: String::new() });
    }

    fn reasoning_delta(&mut self, delta: String) {
        let output_index = self.output_index();
        let Some(OpenItem::Reasoning { id, text }) = &mut self.open else { return };
        text.push_str(&delta);
        let event = json!({
            "type": "response.reasoning_text.delta", "item_id": id, "output_index": output_index,
            "content_index": 0, "delta": delta,
        });
        self.emit(event);
    }

    fn open_message(&mut self) {
        let id = new_item_id("msg");
        let output_index = self.output_index();
        self.emit(json!({
            "type": "response.output_item.added", "output_index": output_index,
            "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant",
                     "content": []},
        }));
        self.emit(json!({
            "type": "response.content_part.added", "item_id": id, "output_index": output_index,
            "content_index": 0, "part": output_text(""),
        }));
        self.open = Some(OpenItem::Message { id, text: String::new() });
    }

    fn text_delta(&mut self, delta: String) {
        let output_index = self.output_index();
        let Some(OpenItem::Message { id, text }) = &mut self.open else { return };
        text.push_str(&delta);
        let event = json!({
            "type": "response.output_text.delta", "item_id": id, "output_index": output_index,
            "content_index": 0, "delta": delta, "logprobs": [],
        });
        self.emit(event);
    }

    fn open_call(&mut self, index: usize, name: String) {
        let id = new_item_id("fc");
        let call_id = new_item_id("call");
        let output_index = self.output_index();
        self.emit(json!({
            "type": "response.output_item.added", "output_index": output_index,
            "item": {"type": "function_call", "id": id, "call_id": call_id, "name": name,
                     "arguments": "", "status": "in_progress"},
        }));
        self.open = Some(OpenItem::Call { id, call_id, name, arguments: String::new(), index });
    }

    fn arguments_delta(&mut self, call: usize, delta: String) {
        let output_index = self.output_index();
        let Some(OpenItem::Call { id, arguments, index, .. }) = &mut self.open else { return };
        if *index != call {
            return;
        }
        arguments.push_str(&delta);
        let event = json!({
            "type": "response.function_call_arguments.delta", "item_id": id,
            "output_index": output_index, "delta": delta,
        });
        self.emit(event);
    }

    fn close(&mut self) {
        self.close_as("completed");
    }

    /// Ends the open item with `status`: its `.done` events, and the item among the output.
    fn close_as(&mut self, status: &str) {
        let Some(open) = self.open.take() else { return };
        let output_index = self.output_index();
        let item = match open {
            OpenItem::Reasoning { id, text } => {
                let part = json!({"type": "reasoning_text", "text": text});
                self.emit(json!({
                    "type": "response.reasoning_text.done", "item_id": id,
                    "output_index": output_index, "content_index": 0, "text": text,
                }));
                self.emit(json!({
                    "type": "response.content_part.done", "item_id": id,
                    "output_index": output_index, "content_index": 0, "part": part,
                }));
                json!({"type": "reasoning", "id": id, "summary": [], "content": [part],
                       "status": status})
            }
            OpenItem::Message { id, text } => {
                self.emit(json!({
                    "type": "response.output_text.done", "item_id": id,
                    "output_index": output_index, "content_index": 0, "text": text,
                    "logprobs": [],
                }));
                self.emit(json!({
                    "type": "response.content_part.done", "item_id": id,
                    "output_index": output_index, "content_index": 0, "part": output_text(&text),
                }));
                json!({"type": "message", "id": id, "status": status, "role": "assistant",
                       "content": [output_text(&text)]})
            }
            OpenItem::Call { id, call_id, name, arguments, .. } => {
                self.emit(json!({
                    "type": "response.function_call_arguments.done", "item_id": id,
                    "output_index": output_index, "name": name, "arguments": arguments,
                }));
                json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                       "arguments": arguments, "status": status})
            }
        };
        self.emit(json!({
            "type": "response.output_item.done", "output_index": output_index, "item": item,
        }));
        self.items.push(item);
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The assistant turn of `output` items, as the next request's history holds it: its text and
/// its function calls (by `call_id`, which the calls' outputs name).
pub(crate) fn assistant_turn(output: &[Value]) -> Option<ChatMessage> {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut reasoning = Vec::new();
    for item in output {
        match item["type"].as_str() {
            Some("reasoning") => reasoning.push(super::request::reasoning_text(item)),
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    text.push_str(part["text"].as_str().unwrap_or_default());
                }
            }
            Some("function_call") => {
                let arguments = item["arguments"].as_str().unwrap_or_default();
                calls.push(ToolCall {
                    id: item["call_id"].as_str().map(str::to_owned),
                    call_type: "function".to_owned(),
                    function: ToolCallFunction {
                        name: item["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: serde_json::from_str(arguments)
                            .unwrap_or_else(|_| Value::String(arguments.to_owned())),
                    },
                });
            }
            _ => {}
        }
    }
    if text.is_empty() && calls.is_empty() {
        return None;
    }
    Some(ChatMessage {
        role: "assistant".to_owned(),
        content: (!text.is_empty() || calls.is_empty()).then(|| Value::String(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        reasoning: (!reasoning.is_empty()).then(|| reasoning.join("\n")),
        ..ChatMessage::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(streaming: bool, steps: &[Vec<OutputDelta>]) -> (Vec<Value>, u32, Vec<Value>) {
        let mut fold = OutputFold::new(streaming, 2);
        let mut events = Vec::new();
        for deltas in steps {
            fold.push(deltas.clone());
            events.extend(fold.take_events());
        }
        let (items, reasoning_tokens) = fold.finish(false);
        events.extend(fold.take_events());
        (items, reasoning_tokens, events)
    }

    fn steps() -> Vec<Vec<OutputDelta>> {
        vec![
            vec![OutputDelta::Reasoning("The user ".into())],
            vec![OutputDelta::Reasoning("wants weather.".into())],
            vec![OutputDelta::Content("\n\n".into())],
            vec![OutputDelta::Content("Checking".into())],
            vec![OutputDelta::Content(".".into())],
            vec![OutputDelta::ToolCallBegin { index: 0, name: "get_weather".into() }],
            vec![OutputDelta::ToolCallArguments { index: 0, fragment: "{\"city\":".into() }],
            vec![OutputDelta::ToolCallArguments { index: 0, fragment: "\"Oslo\"}".into() }],
            vec![OutputDelta::Content("\n".into())],
        ]
    }

    #[test]
    fn reasoning_text_and_calls_become_items() {
        let (items, reasoning_tokens, events) = fold(false, &steps());
        assert!(events.is_empty(), "no events unless streaming");
        assert_eq!(reasoning_tokens, 2);
        let kinds: Vec<&str> = items.iter().map(|item| item["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        assert_eq!(items[0]["content"][0]["text"], "The user wants weather.");
        assert_eq!(items[1]["content"][0]["text"], "\n\nChecking.");
        assert_eq!(items[1]["status"], "completed");
        assert_eq!(items[2]["arguments"], "{\"city\":\"Oslo\"}");
        assert!(items[2]["call_id"].as_str().unwrap().starts_with("call_"));
        let turn = assistant_turn(&items).unwrap();
        assert_eq!(turn.content, Some(json!("\n\nChecking.")));
        let call = &turn.tool_calls.unwrap()[0];
        assert_eq!(call.id.as_deref(), items[2]["call_id"].as_str());
        assert_eq!(call.function.arguments, json!({"city": "Oslo"}));
    }

    #[test]
    fn streamed_events_rebuild_the_same_items_in_order() {
        let (items, _, events) = fold(true, &steps());
        let sequence: Vec<u64> =
            events.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(sequence, (2..2 + events.len() as u64).collect::<Vec<_>>());
        // What a client rebuilds from the events is what the non-streamed response holds.
        let mut rebuilt: Vec<Value> = Vec::new();
        let mut text = String::new();
        let mut arguments = String::new();
        for event in &events {
            match event["type"].as_str().unwrap() {
                "response.output_item.added" => {
                    assert_eq!(event["output_index"], rebuilt.len());
                    rebuilt.push(event["item"].clone());
                }
                "response.output_text.delta" => text.push_str(event["delta"].as_str().unwrap()),
                "response.function_call_arguments.delta" => {
                    arguments.push_str(event["delta"].as_str().unwrap());
                }
                "response.output_item.done" => {
                    let index = event["output_index"].as_u64().unwrap() as usize;
                    rebuilt[index] = event["item"].clone();
                }
                _ => {}
            }
        }
        assert_eq!(text, "\n\nChecking.");
        assert_eq!(arguments, "{\"city\":\"Oslo\"}");
        let ids = |items: &[Value]| -> Vec<String> {
            items
                .iter()
                .map(|item| item["type"].to_string() + &item["status"].to_string())
                .collect()
        };
        assert_eq!(ids(&rebuilt), ids(&items));
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"response.output_item.added"));
        assert_eq!(kinds.last(), Some(&"response.output_item.done"));
        assert!(kinds.contains(&"response.reasoning_text.delta"));
        assert!(kinds.contains(&"response.function_call_arguments.done"));
    }

    #[test]
    fn a_withdrawn_call_ends_incomplete_and_whitespace_alone_makes_no_message() {
        let (items, _, _) = fold(
            false,
            &[
                vec![OutputDelta::Content(" \n".into())],
                vec![OutputDelta::ToolCallBegin { index: 0, name: "f".into() }],
                vec![OutputDelta::ToolCallArguments { index: 0, fragment: "{\"a\"".into() }],
                vec![
                    OutputDelta::ToolCallInvalid { index: 0 },
                    OutputDelta::Content("<tool_call>{\"a\"".into()),
                ],
            ],
        );
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(
            (items[0]["type"].as_str(), items[0]["status"].as_str()),
            (Some("function_call"), Some("incomplete"))
        );
        assert_eq!(items[1]["content"][0]["text"], "<tool_call>{\"a\"");
        let usage =
            Usage { prompt_tokens: 10, completion_tokens: 4, cached_tokens: 6, ..Usage::default() };
        assert_eq!(usage_json(&usage, 1)["total_tokens"], 14);
        assert_eq!(usage_json(&usage, 1)["input_tokens_details"]["cached_tokens"], 6);
        assert_eq!(assistant_turn(&[]), None);
    }
}
