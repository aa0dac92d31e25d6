//! [`ResponsesRequest`]: the body of `POST /v1/responses`, checked and turned into what the
//! protocol-neutral layers take: the tokenizer's [`ChatMessage`]s, [`OutputOptions`] and
//! [`SamplingParams`].
//!
//! The Responses API's conversation is a list of items rather than messages: messages (whose
//! content is text or a list of `input_text` / `output_text` parts), `function_call` items (the
//! model's calls, which chat templates want inside an assistant message) and
//! `function_call_output` items (their results, `tool` messages for a template). `reasoning`
//! items of earlier turns are accepted and left out of the prompt. Items and parts uma cannot
//! read (images, files, other tools' calls) are refused with a 400 naming them.

use serde_json::Value;
use uma_sampling::SamplingParams;
use uma_tokenizer::{ChatMessage, ToolCall, ToolCallFunction};

use crate::error::ApiError;
use crate::request_checks::{invalid, temperature, tool_name_of};
use crate::tools::{
    function_tool, openai_response_format, openai_tool_choice, tool_list, FunctionTool,
    OutputOptions, ReasoningEffort,
};

/// Most input items one request may send.
pub(crate) const MAX_INPUT_ITEMS: usize = 2048;
/// Most content parts of one message.
pub(crate) const MAX_PARTS: usize = 1024;
/// Longest `call_id` (OpenAI's are about 30 characters).
pub(crate) const MAX_CALL_ID_BYTES: usize = 256;
/// OpenAI's upper bound for `temperature`.
pub(crate) const MAX_TEMPERATURE: f32 = 2.0;

/// `POST /v1/responses`. Fields not listed (`metadata`, `user`, `include`, `truncation`, ...) are
/// accepted and ignored; those whose shape varies are kept as JSON and checked by the methods,
/// so that errors name the field.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct ResponsesRequest {
    pub(crate) model: String,
    /// A string (one user message) or a list of items.
    pub(crate) input: Option<Value>,
    /// A system message put before the conversation (not carried over by
    /// `previous_response_id`, as OpenAI does).
    pub(crate) instructions: Option<String>,
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) stream: Option<bool>,
    /// Keep the response for `previous_response_id` and `GET /v1/responses/{id}` (default true).
    pub(crate) store: Option<bool>,
    pub(crate) previous_response_id: Option<String>,
    /// `[{"type": "function", "name", "description", "parameters", "strict"}]`.
    pub(crate) tools: Option<Value>,
    pub(crate) tool_choice: Option<Value>,
    pub(crate) parallel_tool_calls: Option<bool>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", "name", "schema"}}`.
    pub(crate) text: Option<Value>,
    /// `{"effort", "summary"}`: accepted and echoed; a model reasons as its chat template makes
    /// it, and its reasoning is returned as a `reasoning` item whenever it does.
    pub(crate) reasoning: Option<Value>,
    /// Not supported: refused rather than ignored (the client would wait for a background job,
    /// or for a conversation uma does not keep).
    pub(crate) background: Option<bool>,
    pub(crate) conversation: Option<Value>,
    /// How long the model stays loaded after this request (an Ollama field uma accepts here too).
    pub(crate) keep_alive: Option<crate::keep_alive::KeepAliveField>,
}

impl ResponsesRequest {
    /// Whether to stream server-sent events.
    pub(crate) fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether to keep the response.
    pub(crate) fn store(&self) -> bool {
        self.store.unwrap_or(true)
    }

    /// The sampling parameters, with OpenAI's defaults and ranges; errors are 400s naming the
    /// field. Also refuses what uma does not do (`background`, `conversation`).
    pub(crate) fn sampling_params(&self) -> Result<SamplingParams, ApiError> {
        if self.background == Some(true) {
            return Err(invalid("`background` responses are not supported.", "background"));
        }
        if self.conversation.as_ref().is_some_and(|value| !value.is_null()) {
            return Err(invalid(
                "`conversation` is not supported; use `previous_response_id`.",
                "conversation",
            ));
        }
        if self.max_output_tokens == Some(0) {
            return Err(invalid("`max_output_tokens` must be at least 1.", "max_output_tokens"));
        }
        let temperature = temperature(self.temperature, MAX_TEMPERATURE)?;
        let top_p = match self.top_p {
            // As on the chat route: 0 keeps only the most likely token.
            Some(0.0) => f32::MIN_POSITIVE,
            Some(top_p) if top_p > 0.0 && top_p <= 1.0 => top_p,
            Some(top_p) => {
                return Err(invalid(format!("`top_p` must be in [0, 1], got {top_p}."), "top_p"))
            }
            None => 1.0,
        };
        if self.reasoning.as_ref().is_some_and(|value| !value.is_null() && !value.is_object()) {
            return Err(invalid("`reasoning` must be an object.", "reasoning"));
        }
        let params = SamplingParams {
            temperature,
            top_p,
            max_tokens: self.max_output_tokens,
            ..SamplingParams::default()
        };
        params.validate()?;
        Ok(params)
    }

    /// The tools, the tool choice and the text format; errors name the field.
    pub(crate) fn output_options(&self) -> Result<OutputOptions, ApiError> {
        let tools = tool_list(self.tools.as_ref(), "tools", responses_tool)?;
        let format = match self.text.as_ref().filter(|value| !value.is_null()) {
            None => None,
            Some(text) if text.is_object() => {
                openai_response_format(text.get("format"), "text.format")?
            }
            Some(_) => return Err(invalid("`text` must be an object.", "text")),
        };
        let options = OutputOptions {
            tools,
            tool_choice: openai_tool_choice(self.tool_choice.as_ref(), "tool_choice")?,
            parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
            format,
            ..OutputOptions::default()
        };
        options.validate("tools", "tool_choice")?;
        let effort = self.reasoning.as_ref().and_then(|reasoning| reasoning.get("effort"));
        Ok(options.with_reasoning_effort(ReasoningEffort::parse(effort, "reasoning.effort")?))
    }

    /// The request's own part of the conversation (`previous_response_id`'s history goes
    /// before it): its input items as template messages. `instructions` is not among them.
    pub(crate) fn input_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        let items = match self.input.as_ref() {
            None | Some(Value::Null) => {
                return Err(invalid("`input` is required: a string or a list of items.", "input"))
            }
            Some(Value::String(text)) => return Ok(vec![ChatMessage::user(text.as_str())]),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(invalid("`input` must be a string or a list of items.", "input"))
            }
        };
        if items.is_empty() {
            return Err(invalid("`input` must hold at least one item.", "input"));
        }
        if items.len() > MAX_INPUT_ITEMS {
            return Err(invalid(
                format!("At most {MAX_INPUT_ITEMS} input items are allowed, got {}.", items.len()),
                "input",
            ));
        }
        let mut messages: Vec<ChatMessage> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let field = format!("input[{index}]");
            if !item.is_object() {
                return Err(invalid("An input item must be an object.", &field));
            }
            let kind = match item.get("type") {
                None | Some(Value::Null) if item.get("role").is_some() => "message",
                Some(Value::String(kind)) => kind.as_str(),
                _ => {
                    return Err(invalid(
                        "An input item needs a \"type\" (or a \"role\" for a message).",
                        &format!("{field}.type"),
                    ))
                }
            };
            match kind {
                "message" => {
                    let message = input_message(item, &field)?;
                    match messages.last_mut() {
                        // The answer a reasoning item led to joins it.
                        Some(last) if is_reasoning_only(last) && message.role == "assistant" => {
                            last.content = message.content;
                        }
                        _ => messages.push(message),
                    }
                }
                "function_call" => {
                    let call = function_call(item, &field)?;
                    // A turn's calls belong to its assistant message, which templates render
                    // with them.
                    match messages.last_mut() {
                        Some(last) if last.role == "assistant" => {
                            last.tool_calls.get_or_insert_with(Vec::new).push(call);
                        }
                        _ => messages.push(ChatMessage::assistant_tool_calls(vec![call])),
                    }
                }
                "function_call_output" => {
                    let call_id = call_id(item, &field)?;
                    let output = match item.get("output") {
                        Some(Value::String(text)) => text.clone(),
                        Some(parts @ Value::Array(_)) => {
                            parts_text(parts, &format!("{field}.output"), &["input_text"])?
                        }
                        _ => {
                            return Err(invalid(
                                "A function_call_output needs an \"output\" string.",
                                &format!("{field}.output"),
                            ))
                        }
                    };
                    let name = tool_name_of(&messages, &call_id);
                    messages.push(ChatMessage::tool(output, Some(call_id), name));
                }
                // The reasoning before an answer or calls: an assistant message that the next
                // items of the turn complete.
                "reasoning" => {
                    let text = reasoning_item_text(item, &field)?;
                    match messages.last_mut() {
                        _ if text.is_empty() => {}
                        // Reasoning items in a row are one turn's reasoning.
                        Some(last) if is_reasoning_only(last) => {
                            let joined = last.reasoning.take().unwrap_or_default() + "\n" + &text;
                            last.reasoning = Some(joined);
                        }
                        _ => messages.push(ChatMessage {
                            role: "assistant".to_owned(),
                            reasoning: Some(text),
                            ..ChatMessage::default()
                        }),
                    }
                }
                other => {
                    return Err(invalid(
                        format!(
                            "Input items of type {other:?} are not supported: only message, \
                             function_call, function_call_output and reasoning items."
                        ),
                        &format!("{field}.type"),
                    ))
                }
            }
        }
        // Reasoning that led to nothing (its turn ended elsewhere) has nothing to show.
        messages.retain(|message| !is_reasoning_only(message));
        Ok(messages)
    }
}

/// An assistant message holding reasoning only (a reasoning item not yet completed).
fn is_reasoning_only(message: &ChatMessage) -> bool {
    message.role == "assistant"
        && message.reasoning.is_some()
        && message.content.is_none()
        && message.tool_calls.is_none()
}

/// A reasoning input item's text ([`reasoning_text`]), its part lists bounded and checked: a
/// 400 names the list.
fn reasoning_item_text(item: &Value, field: &str) -> Result<String, ApiError> {
    for (key, kind) in [("content", "reasoning_text"), ("summary", "summary_text")] {
        if let Some(parts) = item.get(key).filter(|parts| !parts.is_null()) {
            parts_text(parts, &format!("{field}.{key}"), &[kind])?;
        }
    }
    Ok(reasoning_text(item))
}

/// A reasoning item's text: its `content` parts (`reasoning_text`), else its `summary` parts.
pub(crate) fn reasoning_text(item: &Value) -> String {
    let texts = |key: &str| -> Vec<&str> {
        let parts = item.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect()
    };
    let content = texts("content");
    if content.is_empty() { texts("summary") } else { content }.join("\n")
}

/// A function tool: `{"type": "function", "name", "description", "parameters", "strict"}`.
fn responses_tool(item: &Value, field: &str) -> Result<FunctionTool, ApiError> {
    match item.get("type").and_then(Value::as_str) {
        Some("function") => {}
        other => {
            return Err(invalid(
                format!(
                    "Only tools of type \"function\" are supported, got {}.",
                    other.map_or("no type".to_owned(), |kind| format!("{kind:?}"))
                ),
                &format!("{field}.type"),
            ))
        }
    }
    if item.get("parameters").is_some_and(|schema| !schema.is_null() && !schema.is_object()) {
        return Err(invalid(
            "A function's \"parameters\" must be a JSON Schema object.",
            &format!("{field}.parameters"),
        ));
    }
    function_tool(item, field)
}

/// A message item: `role` and `content` (a string or parts).
fn input_message(item: &Value, field: &str) -> Result<ChatMessage, ApiError> {
    let role = match item.get("role").and_then(Value::as_str) {
        // Chat templates know `system`; `developer` is OpenAI's newer name for it.
        Some("system" | "developer") => "system",
        Some(role @ ("user" | "assistant")) => role,
        _ => {
            return Err(invalid(
                "A message's \"role\" must be user, assistant, system or developer.",
                &format!("{field}.role"),
            ))
        }
    };
    let accepted: &[&str] =
        if role == "assistant" { &["output_text", "refusal"] } else { &["input_text"] };
    let text = match item.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(parts @ Value::Array(_)) => parts_text(parts, &format!("{field}.content"), accepted)?,
        _ => {
            return Err(invalid(
                "A message needs \"content\": a string or a list of parts.",
                &format!("{field}.content"),
            ))
        }
    };
    Ok(ChatMessage::new(role, text))
}

/// The text of content parts (joined by newlines), each of a type in `accepted`.
fn parts_text(parts: &Value, field: &str, accepted: &[&str]) -> Result<String, ApiError> {
    let parts = parts.as_array().map(Vec::as_slice).unwrap_or_default();
    if parts.len() > MAX_PARTS {
        return Err(invalid(
            format!("At most {MAX_PARTS} content parts are allowed, got {}.", parts.len()),
            field,
        ));
    }
    let mut texts = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let field = format!("{field}[{index}]");
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        if !accepted.contains(&kind) {
            return Err(invalid(
                format!(
                    "Content parts of type {kind:?} are not supported here; only {}.",
                    accepted.join(" and ")
                ),
                &format!("{field}.type"),
            ));
        }
        let key = if kind == "refusal" { "refusal" } else { "text" };
        let text = part.get(key).and_then(Value::as_str).ok_or_else(|| {
            invalid(format!("A {kind} part needs a string {key:?}."), &format!("{field}.{key}"))
        })?;
        texts.push(text);
    }
    Ok(texts.join("\n"))
}

/// A `function_call` item as a tool call of the template (its `call_id` as the call's id).
fn function_call(item: &Value, field: &str) -> Result<ToolCall, ApiError> {
    let call_id = call_id(item, field)?;
    let name = item.get("name").and_then(Value::as_str).ok_or_else(|| {
        invalid("A function_call needs a string \"name\".", &format!("{field}.name"))
    })?;
    let arguments = match item.get("arguments") {
        // Arguments the model produced may not be valid JSON; the template then gets the
        // string as it was.
        Some(Value::String(text)) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        }
        _ => {
            return Err(invalid(
                "A function_call needs an \"arguments\" string.",
                &format!("{field}.arguments"),
            ))
        }
    };
    Ok(ToolCall {
        id: Some(call_id),
        call_type: "function".to_owned(),
        function: ToolCallFunction { name: name.to_owned(), arguments },
    })
}

fn call_id(item: &Value, field: &str) -> Result<String, ApiError> {
    match item.get("call_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= MAX_CALL_ID_BYTES => Ok(id.to_owned()),
        _ => Err(invalid(
            format!("A \"call_id\" must be a string of 1 to {MAX_CALL_ID_BYTES} bytes."),
            &format!("{field}.call_id"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_checks::tests_support::{assert_refused, request_with};
    use crate::tools::ToolChoice;
    use serde_json::json;
    use uma_grammar::GrammarSpec;

    fn with(fields: Value) -> ResponsesRequest {
        request_with(json!({"model": "m", "input": "hi"}), &fields)
    }

    fn check_sampling(request: &ResponsesRequest) -> Result<(), ApiError> {
        request.sampling_params().map(drop)
    }

    fn check_options(request: &ResponsesRequest) -> Result<(), ApiError> {
        request.output_options().map(drop)
    }

    fn check_input(request: &ResponsesRequest) -> Result<(), ApiError> {
        request.input_messages().map(drop)
    }

    #[test]
    fn sampling_fields_and_refusals() {
        let params = with(json!({"max_output_tokens": 32, "temperature": 0, "top_p": 0.5,
                                 "reasoning": {"effort": "low"}, "store": false}))
        .sampling_params()
        .unwrap();
        assert_eq!((params.max_tokens, params.temperature, params.top_p), (Some(32), 0.0, 0.5));
        assert_eq!(with(json!({})).sampling_params().unwrap().max_tokens, None);
        let refusals = [
            (json!({"max_output_tokens": 0}), "max_output_tokens"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"background": true}), "background"),
            (json!({"conversation": "conv_1"}), "conversation"),
            (json!({"reasoning": "high"}), "reasoning"),
        ];
        assert_refused(with, check_sampling, refusals);
    }

    #[test]
    fn tools_choices_and_formats() {
        let tool = json!({"type": "function", "name": "get_weather", "strict": true,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
        let options = with(json!({
            "tools": [tool.clone()],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": false,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"},
                                "strict": true}},
        }))
        .output_options()
        .unwrap();
        assert_eq!(options.tools[0].name, "get_weather");
        assert_eq!(options.tool_choice, ToolChoice::Function("get_weather".into()));
        assert!(!options.parallel_tool_calls);
        assert_eq!(options.format, Some(GrammarSpec::JsonSchema(json!({"type": "object"}))));
        let many: Vec<Value> = (0..1000)
            .map(|i| json!({"type": "function", "name": format!("t{i}"), "parameters": {}}))
            .collect();
        let refusals = [
            (json!({"tools": many}), "tools"),
            (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
            (json!({"tools": [{"name": "f"}]}), "tools[0].type"),
            (json!({"tools": [{"type": "function"}]}), "tools[0].name"),
            (
                json!({"tools": [{"type": "function", "name": "f", "parameters": 1}]}),
                "tools[0].parameters",
            ),
            (
                json!({"tools": [tool.clone()], "tool_choice": {"type": "function", "name": "nope"}}),
                "tool_choice",
            ),
            (json!({"tools": [tool.clone()], "tool_choice": "sometimes"}), "tool_choice"),
            (json!({"text": {"format": {"type": "yaml"}}}), "text.format.type"),
            (
                json!({"text": {"format": {"type": "json_schema", "name": "x"}}}),
                "text.format.json_schema.schema",
            ),
            (json!({"text": "json"}), "text"),
        ];
        assert_refused(with, check_options, refusals);
    }

    #[test]
    fn input_items_become_template_messages() {
        let request = with(json!({"input": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\": \"Oslo\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "noon"}]},
        ]}));
        let messages = request.input_messages().unwrap();
        assert_eq!(messages[0], ChatMessage::system("Be brief."));
        assert_eq!(messages[1], ChatMessage::user("Weather in Oslo?"));
        assert_eq!(messages[2].content, Some(json!("Checking.")));
        let calls = messages[2].tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(calls[0].function.arguments, json!({"city": "Oslo"}));
        assert_eq!(
            messages[3],
            ChatMessage::tool("rain", Some("call_1".into()), Some("get_weather".into()))
        );
        assert_eq!(
            messages[4],
            ChatMessage::tool("noon", Some("call_2".into()), Some("get_time".into()))
        );
        assert_eq!(messages.len(), 5);
        assert_eq!(with(json!({})).input_messages().unwrap(), vec![ChatMessage::user("hi")]);
    }

    #[test]
    fn reasoning_items_go_back_with_the_turn_they_led_to() {
        let reasoning = |text: &str| {
            json!({"type": "reasoning", "id": "rs", "summary": [],
                   "content": [{"type": "reasoning_text", "text": text}]})
        };
        let request = with(json!({"input": [
            {"role": "user", "content": "Weather in Oslo?"},
            reasoning("Oslo:"),
            reasoning("call the tool."),
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
            reasoning("It rains."),
            {"type": "message", "role": "assistant", "content": "Rain."},
            {"role": "user", "content": "Thanks"},
            // Reasoning that led to nothing in the input is left out.
            reasoning("Dangling."),
        ]}));
        let messages = request.input_messages().unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "assistant", "user"]);
        assert_eq!(messages[1].reasoning.as_deref(), Some("Oslo:\ncall the tool."));
        assert_eq!(messages[1].tool_calls.as_ref().map(Vec::len), Some(1));
        assert_eq!(messages[3].reasoning.as_deref(), Some("It rains."));
        assert_eq!(messages[3].content, Some(json!("Rain.")));
        let bad_part = json!({"input": [{"type": "reasoning", "content": [{"type": "image"}]}]});
        let many: Vec<Value> =
            (0..MAX_PARTS + 1).map(|_| json!({"type": "summary_text", "text": "x"})).collect();
        let long = json!({"input": [{"type": "reasoning", "summary": many}]});
        let refusals = [(bad_part, "input[0].content[0].type"), (long, "input[0].summary")];
        assert_refused(with, check_input, refusals);
    }

    #[test]
    fn reasoning_effort_goes_to_the_template() {
        let options = with(json!({"reasoning": {"effort": "high"}})).output_options().unwrap();
        assert_eq!(options.template_kwargs.get("reasoning_effort"), Some(&json!("high")));
        let plain = with(json!({})).output_options().unwrap();
        assert!(plain.template_kwargs.get("reasoning_effort").is_none());
        let refusals = [(json!({"reasoning": {"effort": "extreme"}}), "reasoning.effort")];
        assert_refused(with, check_options, refusals);
    }

    #[test]
    fn unknown_items_and_parts_are_refused_by_field() {
        let many: Vec<Value> =
            (0..MAX_INPUT_ITEMS + 1).map(|_| json!({"role": "user", "content": "x"})).collect();
        let refusals = [
            (json!({"input": null}), "input"),
            (json!({"input": []}), "input"),
            (json!({"input": many}), "input"),
            (json!({"input": 5}), "input"),
            (json!({"input": ["hi"]}), "input[0]"),
            (json!({"input": [{"content": "x"}]}), "input[0].type"),
            (json!({"input": [{"role": "tool", "content": "x"}]}), "input[0].role"),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "a"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}),
                "input[0].content[1].type",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
                "input[0].content[0].text",
            ),
            (json!({"input": [{"role": "user"}]}), "input[0].content"),
            (json!({"input": [{"type": "web_search_call", "id": "ws_1"}]}), "input[0].type"),
            (
                json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
                "input[0].call_id",
            ),
            (
                json!({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
                "input[0].arguments",
            ),
            (
                json!({"input": [{"type": "function_call_output", "call_id": "c"}]}),
                "input[0].output",
            ),
        ];
        assert_refused(with, check_input, refusals);
    }
}
