//! Response bodies and stream chunks, built from plain data: `chat.completion`,
//! `chat.completion.chunk`, `text_completion`, `model` and `list`, plus request ids.
//!
//! Builders return `serde_json::Value` written with `json!`, so each reads like the API
//! reference. Fields OpenAI always sends are always present (`null` when empty); a chunk's
//! `delta` carries only what the chunk adds.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use uma_sampling::FinishReason;

use super::logprobs::{chat_logprobs, legacy_logprobs};
use crate::generation::{new_request_id, ChoiceOutput, TokenLogprob, Usage};

/// What every response and chunk of one request repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseMeta {
    /// `chatcmpl-...` or `cmpl-...`; the same in every chunk of a stream.
    pub(crate) id: String,
    /// Unix time in seconds at which the request was accepted.
    pub(crate) created: u64,
    /// The model name as the client asked for it.
    pub(crate) model: String,
}

impl ResponseMeta {
    /// A new chat completion: a `chatcmpl-` id, created now.
    pub(crate) fn new_chat(model: impl Into<String>) -> ResponseMeta {
        ResponseMeta {
            id: new_request_id("chatcmpl"),
            created: unix_time_now(),
            model: model.into(),
        }
    }

    /// A new text completion: a `cmpl-` id, created now.
    pub(crate) fn new_completion(model: impl Into<String>) -> ResponseMeta {
        ResponseMeta { id: new_request_id("cmpl"), created: unix_time_now(), model: model.into() }
    }
}

impl Usage {
    /// OpenAI's `usage` object.
    pub(crate) fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": u64::from(self.prompt_tokens) + u64::from(self.completion_tokens),
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            // OpenAI's fields for predicted outputs, which is what speculative drafts are.
            "completion_tokens_details": {
                "accepted_prediction_tokens": self.accepted_draft_tokens,
                "rejected_prediction_tokens": self.rejected_draft_tokens,
            },
        })
    }
}

/// What a chat chunk adds to the assistant message.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ChunkDelta {
    /// `Some("assistant")` in a choice's first chunk only.
    pub(crate) role: Option<String>,
    pub(crate) content: Option<String>,
    /// More of the reasoning (vLLM's and DeepSeek's `reasoning_content`).
    pub(crate) reasoning_content: Option<String>,
    /// OpenAI's incremental `tool_calls` entries (`index`, and `id`, `type`, `function.name` in
    /// a call's first entry, then `function.arguments` pieces).
    pub(crate) tool_calls: Option<Vec<Value>>,
}

impl ChunkDelta {
    /// The first chunk of a choice: the role and empty content, as OpenAI sends it.
    pub(crate) fn role() -> ChunkDelta {
        ChunkDelta {
            role: Some("assistant".to_owned()),
            content: Some(String::new()),
            ..ChunkDelta::default()
        }
    }

    /// More text.
    pub(crate) fn content(text: impl Into<String>) -> ChunkDelta {
        ChunkDelta { content: Some(text.into()), ..ChunkDelta::default() }
    }

    /// Nothing new (the last chunk, which carries only `finish_reason`).
    pub(crate) fn empty() -> ChunkDelta {
        ChunkDelta::default()
    }
}

/// A model as `/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelCard {
    pub(crate) id: String,
    /// Unix time in seconds (the model file's modification time will do).
    pub(crate) created: u64,
    pub(crate) owned_by: String,
    /// uma's extensions: where the model stands (available, loading, resident, or failed:
    /// its engine failed and the next request loads it afresh), what it holds or will hold in
    /// memory, and its context length when resident.
    pub(crate) residency: uma_engine::Residency,
    pub(crate) memory_bytes: u64,
    pub(crate) context_length: Option<usize>,
}

/// The `finish_reason` string. OpenAI has no reason for a cancelled request; vLLM's `abort` tells
/// a client that output was cut short rather than finished.
pub(crate) fn finish_reason_str(finish_reason: FinishReason) -> &'static str {
    match finish_reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "abort",
    }
}

fn finish_reason_json(finish_reason: Option<FinishReason>) -> Value {
    finish_reason.map(finish_reason_str).map_or(Value::Null, Value::from)
}

/// A chat choice's `finish_reason`: `"tool_calls"` when the model stopped after calling tools.
pub(crate) fn chat_finish_reason_json(finish_reason: Option<FinishReason>, called: bool) -> Value {
    match finish_reason {
        Some(FinishReason::Stop) if called => json!("tool_calls"),
        other => finish_reason_json(other),
    }
}

/// A tool call id: `call_` and 24 hex digits, as OpenAI spells them.
pub(crate) fn new_tool_call_id() -> String {
    let id = new_request_id("call");
    format!("call_{}", &id["call-".len()..id.len().min(29)])
}

/// The assistant message of a chat choice: its text, or its parsed reasoning, content and
/// tool calls (`content` is null when the model only called tools, as OpenAI sends it).
fn chat_message(choice: &ChoiceOutput) -> Value {
    let Some(parsed) = &choice.parsed else {
        return json!({"role": "assistant", "content": choice.text});
    };
    let called = !parsed.tool_calls.is_empty();
    let content = if called && parsed.content.trim().is_empty() {
        Value::Null
    } else {
        json!(parsed.content)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if let Some(reasoning) = &parsed.reasoning {
        message["reasoning_content"] = json!(reasoning);
    }
    if called {
        let calls: Vec<Value> = parsed
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": new_tool_call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        message["tool_calls"] = json!(calls);
    }
    message
}

/// The body of a non-streamed chat completion (`object: "chat.completion"`).
pub(crate) fn chat_completion(
    meta: &ResponseMeta,
    choices: &[ChoiceOutput],
    usage: &Usage,
) -> Value {
    let choices: Vec<Value> = choices
        .iter()
        .map(|choice| {
            json!({
                "index": choice.index,
                "message": chat_message(choice),
                "logprobs": choice.logprobs.as_deref().map(chat_logprobs),
                "finish_reason": chat_finish_reason_json(
                    choice.finish_reason,
                    choice.parsed.as_ref().is_some_and(|parsed| !parsed.tool_calls.is_empty()),
                ),
            })
        })
        .collect();
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": usage.to_json(),
    })
}

/// One streamed chat event (`object: "chat.completion.chunk"`) for choice `index`.
pub(crate) fn chat_chunk(
    meta: &ResponseMeta,
    index: u32,
    delta: &ChunkDelta,
    finish_reason: Option<FinishReason>,
    called: bool,
    logprobs: Option<&[TokenLogprob]>,
) -> Value {
    let mut delta_json = json!({});
    if let Some(role) = &delta.role {
        delta_json["role"] = json!(role);
    }
    if let Some(content) = &delta.content {
        delta_json["content"] = json!(content);
    }
    if let Some(reasoning) = &delta.reasoning_content {
        delta_json["reasoning_content"] = json!(reasoning);
    }
    if let Some(tool_calls) = &delta.tool_calls {
        delta_json["tool_calls"] = json!(tool_calls);
    }
    json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": index,
            "delta": delta_json,
            "logprobs": logprobs.map(chat_logprobs),
            "finish_reason": chat_finish_reason_json(finish_reason, called),
        }],
    })
}

/// The last chat event before `[DONE]` when `stream_options.include_usage` is set: no choices,
/// only usage.
pub(crate) fn chat_usage_chunk(meta: &ResponseMeta, usage: &Usage) -> Value {
    usage_chunk(meta, "chat.completion.chunk", usage)
}

fn text_choice_json(choice: &ChoiceOutput, text_offset: usize) -> Value {
    json!({
        "text": choice.text,
        "index": choice.index,
        "logprobs": choice.logprobs.as_deref().map(|tokens| legacy_logprobs(tokens, text_offset)),
        "finish_reason": finish_reason_json(choice.finish_reason),
    })
}

/// The body of a non-streamed text completion (`object: "text_completion"`).
pub(crate) fn text_completion(
    meta: &ResponseMeta,
    choices: &[ChoiceOutput],
    usage: &Usage,
) -> Value {
    let choices: Vec<Value> = choices.iter().map(|choice| text_choice_json(choice, 0)).collect();
    json!({
        "id": meta.id,
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": usage.to_json(),
    })
}

/// One streamed text completion event (also `object: "text_completion"`). `text_offset` is the
/// number of characters of this choice already sent, so logprobs' `text_offset`s continue.
pub(crate) fn text_chunk(meta: &ResponseMeta, choice: &ChoiceOutput, text_offset: usize) -> Value {
    json!({
        "id": meta.id,
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [text_choice_json(choice, text_offset)],
    })
}

/// The last text completion event before `[DONE]` when `stream_options.include_usage` is set.
pub(crate) fn text_usage_chunk(meta: &ResponseMeta, usage: &Usage) -> Value {
    usage_chunk(meta, "text_completion", usage)
}

fn usage_chunk(meta: &ResponseMeta, object: &str, usage: &Usage) -> Value {
    json!({
        "id": meta.id,
        "object": object,
        "created": meta.created,
        "model": meta.model,
        "choices": [],
        "usage": usage.to_json(),
    })
}

/// One model (`GET /v1/models/{model}`).
pub(crate) fn model_object(card: &ModelCard) -> Value {
    json!({
        "id": card.id,
        "object": "model",
        "created": card.created,
        "owned_by": card.owned_by,
        "status": card.residency,
        "memory_bytes": card.memory_bytes,
        "context_length": card.context_length,
    })
}

/// The model list (`GET /v1/models`).
pub(crate) fn model_list(cards: &[ModelCard]) -> Value {
    json!({
        "object": "list",
        "data": cards.iter().map(model_object).collect::<Vec<_>>(),
    })
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_time_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |time| time.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::logprobs::tests::{token, top};
    use uma_chat_output::{ParsedOutput, ParsedToolCall};

    fn meta(id: &str) -> ResponseMeta {
        ResponseMeta { id: id.into(), created: 1_700_000_000, model: "qwen3".into() }
    }

    fn choice(index: u32, text: &str, finish_reason: Option<FinishReason>) -> ChoiceOutput {
        ChoiceOutput { index, text: text.into(), finish_reason, logprobs: None, parsed: None }
    }

    #[test]
    fn a_chat_choice_that_called_tools_says_so() {
        let parsed = ParsedOutput {
            reasoning: Some("The user wants weather.".into()),
            content: "\n".into(),
            tool_calls: vec![ParsedToolCall {
                name: "get_weather".into(),
                arguments: r#"{"city": "Paris"}"#.into(),
            }],
            issues: Vec::new(),
        };
        let choice = ChoiceOutput {
            parsed: Some(parsed),
            ..choice(0, "<think>…</think><tool_call>…</tool_call>", Some(FinishReason::Stop))
        };
        let body = chat_completion(&meta("chatcmpl-1"), &[choice], &USAGE);
        let message = &body["choices"][0]["message"];
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(message["content"], Value::Null);
        assert_eq!(message["reasoning_content"], "The user wants weather.");
        let call = &message["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(
            call["function"],
            json!({"name": "get_weather", "arguments": r#"{"city": "Paris"}"#})
        );
        assert!(call["id"].as_str().is_some_and(|id| id.starts_with("call_") && id.len() == 29));
        // A choice cut by max_tokens keeps its reason.
        let cut =
            chat_chunk(&meta("c"), 0, &ChunkDelta::empty(), Some(FinishReason::Length), true, None);
        assert_eq!(cut["choices"][0]["finish_reason"], "length");
        let called =
            chat_chunk(&meta("c"), 0, &ChunkDelta::empty(), Some(FinishReason::Stop), true, None);
        assert_eq!(called["choices"][0]["finish_reason"], "tool_calls");
    }

    /// gpt-oss's harmony output: the analysis channel is `reasoning_content`, the final channel
    /// the content, a message to `functions.NAME` a tool call.
    #[test]
    fn a_harmony_answer_is_reasoning_content_then_content_or_calls() {
        use uma_chat_output::{ReasoningFormat, ToolCallFormat};
        let parsing = crate::tools::OutputParsing {
            tool_format: Some(ToolCallFormat::Harmony),
            reasoning: Some(ReasoningFormat::Harmony),
            starts_in_reasoning: false,
        };
        let completion = |text: &str| {
            let mut parser = parsing.parser();
            parser.push(text);
            let choice = ChoiceOutput {
                parsed: Some(parser.finish().1),
                ..choice(0, text, Some(FinishReason::Stop))
            };
            chat_completion(&meta("chatcmpl-1"), &[choice], &USAGE)["choices"][0].clone()
        };
        let answer = completion(
            "<|channel|>analysis<|message|>A greeting.<|end|><|start|>assistant\
             <|channel|>final<|message|>Hello!",
        );
        assert_eq!(answer["finish_reason"], "stop");
        assert_eq!(
            answer["message"],
            json!({"role": "assistant", "content": "Hello!", "reasoning_content": "A greeting."})
        );
        let called = completion(
            "<|channel|>analysis<|message|>Weather needed.<|end|><|start|>assistant\
             <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>\
             {\"city\": \"Paris\"}",
        );
        assert_eq!(called["finish_reason"], "tool_calls");
        assert_eq!(called["message"]["content"], Value::Null);
        assert_eq!(called["message"]["reasoning_content"], "Weather needed.");
        assert_eq!(
            called["message"]["tool_calls"][0]["function"],
            json!({"name": "get_weather", "arguments": r#"{"city":"Paris"}"#})
        );
    }

    const USAGE: Usage = Usage {
        prompt_tokens: 12,
        completion_tokens: 5,
        cached_tokens: 8,
        accepted_draft_tokens: 3,
        rejected_draft_tokens: 1,
    };

    #[test]
    fn usage_shape() {
        assert_eq!(
            USAGE.to_json(),
            json!({
                "prompt_tokens": 12,
                "completion_tokens": 5,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 8},
                "completion_tokens_details": {
                    "accepted_prediction_tokens": 3,
                    "rejected_prediction_tokens": 1,
                },
            })
        );
    }

    #[test]
    fn chat_completion_shape() {
        let mut second = choice(1, "Hi there", Some(FinishReason::Length));
        second.logprobs = Some(vec![token("Hi", -0.5, vec![top("Hi", -0.5)])]);
        let choices = [choice(0, "Hello!", Some(FinishReason::Stop)), second];
        assert_eq!(
            chat_completion(&meta("chatcmpl-1"), &choices, &USAGE),
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "qwen3",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello!"},
                        "logprobs": null,
                        "finish_reason": "stop",
                    },
                    {
                        "index": 1,
                        "message": {"role": "assistant", "content": "Hi there"},
                        "logprobs": {"content": [{
                            "token": "Hi", "logprob": -0.5, "bytes": [72, 105],
                            "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}],
                        }]},
                        "finish_reason": "length",
                    },
                ],
                "usage": USAGE.to_json(),
            })
        );
    }

    #[test]
    fn chat_chunk_shapes() {
        let meta = meta("chatcmpl-2");
        let header = json!({
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "qwen3",
        });
        let with_choice = |choice: Value| {
            let mut chunk = header.clone();
            chunk["choices"] = json!([choice]);
            chunk
        };
        assert_eq!(
            chat_chunk(&meta, 0, &ChunkDelta::role(), None, false, None),
            with_choice(json!({
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": null,
                "finish_reason": null,
            }))
        );
        let logprobs = [token("Hel", -0.125, vec![])];
        assert_eq!(
            chat_chunk(&meta, 1, &ChunkDelta::content("Hel"), None, false, Some(&logprobs)),
            with_choice(json!({
                "index": 1,
                "delta": {"content": "Hel"},
                "logprobs": {"content": [
                    {"token": "Hel", "logprob": -0.125, "bytes": [72, 101, 108], "top_logprobs": []}
                ]},
                "finish_reason": null,
            }))
        );
        assert_eq!(
            chat_chunk(&meta, 0, &ChunkDelta::empty(), Some(FinishReason::Stop), false, None),
            with_choice(json!({
                "index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop",
            }))
        );
        let mut usage = header.clone();
        usage["choices"] = json!([]);
        usage["usage"] = USAGE.to_json();
        assert_eq!(chat_usage_chunk(&meta, &USAGE), usage);
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason_str(FinishReason::Stop), "stop");
        assert_eq!(finish_reason_str(FinishReason::Length), "length");
        assert_eq!(finish_reason_str(FinishReason::Cancelled), "abort");
    }

    #[test]
    fn text_completion_shape() {
        let mut first = choice(0, "a b", Some(FinishReason::Length));
        first.logprobs = Some(vec![
            token("a", -0.5, vec![top("a", -0.5), top("x", -1.0)]),
            token(" b", -0.25, vec![top(" b", -0.25), top(" c", -2.0)]),
        ]);
        let choices = [first, choice(1, "zz", Some(FinishReason::Stop))];
        assert_eq!(
            text_completion(&meta("cmpl-1"), &choices, &USAGE),
            json!({
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1_700_000_000,
                "model": "qwen3",
                "choices": [
                    {
                        "text": "a b",
                        "index": 0,
                        "logprobs": {
                            "tokens": ["a", " b"],
                            "token_logprobs": [-0.5, -0.25],
                            "top_logprobs": [{"a": -0.5, "x": -1.0}, {" b": -0.25, " c": -2.0}],
                            "text_offset": [0, 1],
                        },
                        "finish_reason": "length",
                    },
                    {"text": "zz", "index": 1, "logprobs": null, "finish_reason": "stop"},
                ],
                "usage": USAGE.to_json(),
            })
        );
    }

    #[test]
    fn text_chunk_shapes() {
        let meta = meta("cmpl-2");
        let mut piece = choice(3, " b", None);
        piece.logprobs = Some(vec![token(" b", -0.25, vec![])]);
        assert_eq!(
            text_chunk(&meta, &piece, 7),
            json!({
                "id": "cmpl-2",
                "object": "text_completion",
                "created": 1_700_000_000,
                "model": "qwen3",
                "choices": [{
                    "text": " b",
                    "index": 3,
                    "logprobs": {
                        "tokens": [" b"],
                        "token_logprobs": [-0.25],
                        "top_logprobs": [{" b": -0.25}],
                        "text_offset": [7],
                    },
                    "finish_reason": null,
                }],
            })
        );
        assert_eq!(
            text_usage_chunk(&meta, &USAGE),
            json!({
                "id": "cmpl-2",
                "object": "text_completion",
                "created": 1_700_000_000,
                "model": "qwen3",
                "choices": [],
                "usage": USAGE.to_json(),
            })
        );
    }

    #[test]
    fn model_list_shape() {
        let card = ModelCard {
            id: "qwen3".into(),
            created: 1,
            owned_by: "uma".into(),
            residency: uma_engine::Residency::Resident,
            memory_bytes: 7,
            context_length: Some(4096),
        };
        assert_eq!(
            model_list(std::slice::from_ref(&card)),
            json!({
                "object": "list",
                "data": [{
                    "id": "qwen3", "object": "model", "created": 1, "owned_by": "uma",
                    "status": "resident", "memory_bytes": 7, "context_length": 4096,
                }],
            })
        );
        assert_eq!(model_list(&[]), json!({"object": "list", "data": []}));
    }

    #[test]
    fn request_ids_are_prefixed_hex_and_distinct() {
        let first = ResponseMeta::new_chat("m");
        let second = ResponseMeta::new_chat("m");
        assert_ne!(first.id, second.id);
        let hex = first.id.strip_prefix("chatcmpl-").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|character| character.is_ascii_hexdigit()));
        assert!(ResponseMeta::new_completion("m").id.starts_with("cmpl-"));
        assert!(first.created > 1_600_000_000);
    }
}
