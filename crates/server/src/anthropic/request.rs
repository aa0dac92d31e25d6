//! [`MessagesRequest`]: the body of `POST /v1/messages` (and of `/v1/messages/count_tokens`),
//! checked and turned into what the protocol-neutral layers take: the tokenizer's
//! [`ChatMessage`]s, [`OutputOptions`] and [`SamplingParams`].
//!
//! Anthropic's conversation differs from what chat templates take: `system` is a field, not a
//! message; a message's `content` is a string or a list of blocks; the assistant's tool calls are
//! `tool_use` blocks and their results `tool_result` blocks inside the next user message (a
//! template wants `tool` messages). A last assistant message is a prefill: the answer continues
//! it. Blocks uma cannot read (images, documents, server tools' results) are refused with a 400
//! that names them, never dropped.

use serde_json::Value;
use uma_sampling::{SamplingParams, MAX_STOP_BYTES, MAX_STOP_STRINGS};
use uma_tokenizer::{ChatMessage, ToolCall, ToolCallFunction};

use crate::error::ApiError;
use crate::request_checks::{invalid, temperature, tool_name_of};
use crate::tools::{
    function_tool, openai_response_format, tool_list, FunctionTool, OutputOptions, ToolChoice,
};

/// Most messages one request may hold.
pub(crate) const MAX_MESSAGES: usize = 2048;
/// Most content blocks of one message (and of `system`, and of one `tool_result`).
pub(crate) const MAX_BLOCKS: usize = 1024;
/// Longest `tool_use` id (Anthropic's are about 30 characters).
pub(crate) const MAX_TOOL_USE_ID_BYTES: usize = 256;
/// Anthropic's upper bound for `temperature`.
pub(crate) const MAX_TEMPERATURE: f32 = 1.0;

/// `POST /v1/messages`. Fields not listed (`metadata`, `service_tier`, ...) are accepted and
/// ignored; those whose shape varies are kept as JSON and checked by the methods, so that errors
/// name the field.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct MessagesRequest {
    pub(crate) model: String,
    /// Required by `/v1/messages` (checked by [`Self::sampling_params`]); `count_tokens` has none.
    pub(crate) max_tokens: Option<u32>,
    pub(crate) messages: Vec<WireMessage>,
    /// A string, or a list of `text` blocks.
    pub(crate) system: Option<Value>,
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) top_k: Option<i32>,
    pub(crate) stop_sequences: Option<Vec<String>>,
    pub(crate) stream: Option<bool>,
    /// `[{"name", "description", "input_schema"}]`.
    pub(crate) tools: Option<Value>,
    /// `{"type": "auto" | "any" | "tool" | "none", "name", "disable_parallel_tool_use"}`.
    pub(crate) tool_choice: Option<Value>,
    /// `{"type": "enabled", "budget_tokens"}`, `{"type": "disabled"}` or `{"type": "adaptive"}`:
    /// checked, but a model reasons (or not) as its chat template makes it; its reasoning is
    /// returned as `thinking` blocks whenever it reasons.
    pub(crate) thinking: Option<Value>,
    /// `{"format": {"type": "json_schema", "schema"}}`: the answer's text follows the schema.
    pub(crate) output_config: Option<Value>,
    /// How long the model stays loaded after this request (an Ollama field uma accepts here too).
    pub(crate) keep_alive: Option<crate::keep_alive::KeepAliveField>,
}

/// One message as Anthropic clients send it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct WireMessage {
    /// `user` or `assistant`.
    pub(crate) role: String,
    /// A string, or a list of content blocks.
    pub(crate) content: Value,
}

/// The conversation, ready for the template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conversation {
    pub(crate) messages: Vec<ChatMessage>,
    /// The text of a last assistant message: the answer continues it (and does not repeat it).
    pub(crate) prefill: Option<String>,
}

/// The `type` of block `block` (at `field`).
fn block_type<'a>(block: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    block.get("type").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            "A content block must be an object with a string \"type\".",
            &format!("{field}.type"),
        )
    })
}

/// The `text` of a `text` block (at `field`).
fn block_text<'a>(block: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("A text block needs a string \"text\".", &format!("{field}.text")))
}

/// The blocks of a list-valued field, bounded.
fn blocks<'a>(value: &'a Value, field: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match value {
        Value::Array(items) if items.len() > MAX_BLOCKS => Err(invalid(
            format!("At most {MAX_BLOCKS} content blocks are allowed, got {}.", items.len()),
            field,
        )),
        Value::Array(items) => Ok(Some(items)),
        Value::String(_) => Ok(None),
        _ => Err(invalid("Content must be a string or a list of content blocks.", field)),
    }
}

/// A block uma does not read, refused by name.
fn unsupported_block(kind: &str, field: &str, expected: &str) -> ApiError {
    invalid(
        format!("Content blocks of type {kind:?} are not supported here; {expected}."),
        &format!("{field}.type"),
    )
}

/// Text-only content (a string, or `text` blocks joined by newlines): `system` and the content of
/// a `tool_result`.
fn text_content(value: &Value, field: &str) -> Result<String, ApiError> {
    let Some(items) = blocks(value, field)? else {
        return Ok(value.as_str().unwrap_or_default().to_owned());
    };
    let mut texts = Vec::with_capacity(items.len());
    for (index, block) in items.iter().enumerate() {
        let field = format!("{field}[{index}]");
        match block_type(block, &field)? {
            "text" => texts.push(block_text(block, &field)?),
            other => return Err(unsupported_block(other, &field, "only \"text\" blocks are")),
        }
    }
    Ok(texts.join("\n"))
}

impl MessagesRequest {
    /// Whether to stream server-sent events.
    pub(crate) fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The stop sequences, checked (errors name `stop_sequences`).
    pub(crate) fn stop_sequences(&self) -> Result<Vec<String>, ApiError> {
        let stops = self.stop_sequences.clone().unwrap_or_default();
        if stops.len() > MAX_STOP_STRINGS {
            return Err(invalid(
                format!(
                    "At most {MAX_STOP_STRINGS} stop sequences are allowed, got {}.",
                    stops.len()
                ),
                "stop_sequences",
            ));
        }
        for (index, stop) in stops.iter().enumerate() {
            if stop.is_empty() || stop.len() > MAX_STOP_BYTES {
                return Err(invalid(
                    format!("A stop sequence must be 1 to {MAX_STOP_BYTES} bytes long."),
                    &format!("stop_sequences[{index}]"),
                ));
            }
        }
        Ok(stops)
    }

    /// The sampling parameters, with Anthropic's defaults (`temperature` 1) and ranges; errors are
    /// 400s naming the field.
    pub(crate) fn sampling_params(&self) -> Result<SamplingParams, ApiError> {
        let max_tokens = self.max_tokens.ok_or_else(|| {
            invalid("`max_tokens` is required: the most tokens to generate.", "max_tokens")
        })?;
        if max_tokens == 0 {
            return Err(invalid("`max_tokens` must be at least 1.", "max_tokens"));
        }
        let temperature = temperature(self.temperature, MAX_TEMPERATURE)?;
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(invalid(format!("`top_p` must be in (0, 1], got {top_p}."), "top_p"));
        }
        let top_k = self.top_k.unwrap_or(0);
        if top_k < 0 {
            return Err(invalid(format!("`top_k` must be at least 0, got {top_k}."), "top_k"));
        }
        self.thinking_enabled()?;
        let params = SamplingParams {
            temperature,
            top_p,
            top_k,
            max_tokens: Some(max_tokens),
            stop: self.stop_sequences()?.into(),
            ..SamplingParams::default()
        };
        params.validate()?;
        Ok(params)
    }

    /// Whether `thinking` asks for reasoning; checks its shape.
    pub(crate) fn thinking_enabled(&self) -> Result<bool, ApiError> {
        let Some(thinking) = self.thinking.as_ref().filter(|value| !value.is_null()) else {
            return Ok(false);
        };
        match thinking.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let budget = thinking.get("budget_tokens");
                if budget.is_some_and(|budget| budget.as_u64().is_none()) {
                    return Err(invalid(
                        "`budget_tokens` must be a positive integer.",
                        "thinking.budget_tokens",
                    ));
                }
                Ok(true)
            }
            Some("adaptive") => Ok(true),
            Some("disabled") => Ok(false),
            _ => Err(invalid(
                "`thinking.type` must be \"enabled\", \"adaptive\" or \"disabled\".",
                "thinking.type",
            )),
        }
    }

    /// The tools, the tool choice and the output format; errors name the field.
    pub(crate) fn output_options(&self) -> Result<OutputOptions, ApiError> {
        let tools = tool_list(self.tools.as_ref(), "tools", anthropic_tool)?;
        let (tool_choice, parallel_tool_calls) = self.tool_choice()?;
        let format = match self.output_config.as_ref().filter(|value| !value.is_null()) {
            None => None,
            Some(config) if config.is_object() => {
                openai_response_format(config.get("format"), "output_config.format")?
            }
            Some(_) => return Err(invalid("`output_config` must be an object.", "output_config")),
        };
        let thinking = self.thinking.as_ref().filter(|value| !value.is_null());
        let think = thinking.map(|_| self.thinking_enabled()).transpose()?;
        let options = OutputOptions {
            tools,
            tool_choice,
            parallel_tool_calls,
            format,
            template_kwargs: serde_json::Map::new(),
        }
        .with_thinking(think);
        options.validate("tools", "tool_choice")?;
        Ok(options)
    }

    /// Anthropic's `tool_choice`, and whether several calls may be made.
    fn tool_choice(&self) -> Result<(ToolChoice, bool), ApiError> {
        let Some(choice) = self.tool_choice.as_ref().filter(|value| !value.is_null()) else {
            return Ok((ToolChoice::Auto, true));
        };
        let kind = choice.get("type").and_then(Value::as_str).ok_or_else(|| {
            invalid(
                "`tool_choice` must be an object with \"type\": \"auto\", \"any\", \"tool\" or \
                 \"none\".",
                "tool_choice.type",
            )
        })?;
        let parallel = match choice.get("disable_parallel_tool_use") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(disable)) => !disable,
            Some(_) => {
                return Err(invalid(
                    "`disable_parallel_tool_use` must be a boolean.",
                    "tool_choice.disable_parallel_tool_use",
                ))
            }
        };
        let choice = match kind {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => {
                let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid("A tool_choice of type \"tool\" needs a \"name\".", "tool_choice.name")
                })?;
                ToolChoice::Function(name.to_owned())
            }
            other => {
                return Err(invalid(
                    format!(
                        "`tool_choice.type` must be \"auto\", \"any\", \"tool\" or \"none\", got \
                         {other:?}."
                    ),
                    "tool_choice.type",
                ))
            }
        };
        Ok((choice, parallel))
    }

    /// The conversation for the chat template; errors name the message and block
    /// (`messages[2].content[1].type`).
    pub(crate) fn conversation(&self) -> Result<Conversation, ApiError> {
        if self.messages.is_empty() {
            return Err(invalid("`messages` must hold at least one message.", "messages"));
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(invalid(
                format!(
                    "At most {MAX_MESSAGES} messages are allowed, got {}.",
                    self.messages.len()
                ),
                "messages",
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = self.system.as_ref().filter(|value| !value.is_null()) {
            let text = text_content(system, "system")?;
            if !text.is_empty() {
                messages.push(ChatMessage::system(text));
            }
        }
        let last = self.messages.len() - 1;
        let mut prefill = None;
        for (index, message) in self.messages.iter().enumerate() {
            let field = format!("messages[{index}]");
            match message.role.as_str() {
                "user" => user_messages(&message.content, &field, &mut messages)?,
                "assistant" => {
                    let turn = assistant_message(&message.content, &field)?;
                    // A last assistant message without tool calls is a prefill.
                    if index == last && turn.tool_calls.is_none() {
                        prefill = Some(match turn.content {
                            Some(Value::String(text)) => text,
                            _ => String::new(),
                        });
                    } else {
                        messages.push(turn);
                    }
                }
                other => {
                    return Err(invalid(
                        format!("Unsupported role {other:?}: expected \"user\" or \"assistant\"."),
                        &format!("{field}.role"),
                    ))
                }
            }
        }
        Ok(Conversation { messages, prefill: prefill.filter(|text| !text.is_empty()) })
    }
}

/// The messages one user turn becomes: `tool` messages for its `tool_result` blocks, a user
/// message for its text, in the order they come.
fn user_messages(
    content: &Value,
    field: &str,
    messages: &mut Vec<ChatMessage>,
) -> Result<(), ApiError> {
    let content_field = format!("{field}.content");
    let Some(items) = blocks(content, &content_field)? else {
        messages.push(ChatMessage::user(content.as_str().unwrap_or_default()));
        return Ok(());
    };
    let mut texts: Vec<&str> = Vec::new();
    for (index, block) in items.iter().enumerate() {
        let field = format!("{content_field}[{index}]");
        match block_type(block, &field)? {
            "text" => texts.push(block_text(block, &field)?),
            "tool_result" => {
                if !texts.is_empty() {
                    messages.push(ChatMessage::user(texts.join("\n")));
                    texts.clear();
                }
                let id = tool_use_id(block.get("tool_use_id"), &format!("{field}.tool_use_id"))?;
                let mut text = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(value) => text_content(value, &format!("{field}.content"))?,
                };
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                let name = tool_name_of(messages, &id);
                messages.push(ChatMessage::tool(text, Some(id), name));
            }
            other => {
                return Err(unsupported_block(
                    other,
                    &field,
                    "user messages may hold \"text\" and \"tool_result\" blocks",
                ))
            }
        }
    }
    if !texts.is_empty() || items.is_empty() {
        messages.push(ChatMessage::user(texts.join("\n")));
    }
    Ok(())
}

/// An assistant turn: its text, its `thinking` blocks as its reasoning, and its `tool_use`
/// blocks as tool calls. The template decides where reasoning shows (like Anthropic: within the
/// current tool-use turn, not in earlier turns); `redacted_thinking` is left out.
fn assistant_message(content: &Value, field: &str) -> Result<ChatMessage, ApiError> {
    let content_field = format!("{field}.content");
    let Some(items) = blocks(content, &content_field)? else {
        return Ok(ChatMessage::assistant(content.as_str().unwrap_or_default()));
    };
    let mut texts: Vec<&str> = Vec::new();
    let mut thoughts: Vec<&str> = Vec::new();
    let mut calls = Vec::new();
    for (index, block) in items.iter().enumerate() {
        let field = format!("{content_field}[{index}]");
        match block_type(block, &field)? {
            "text" => texts.push(block_text(block, &field)?),
            "thinking" => match block.get("thinking") {
                Some(Value::String(thought)) => thoughts.push(thought),
                _ => return Err(invalid("A thinking block needs a string \"thinking\".", &field)),
            },
            "redacted_thinking" => {}
            "tool_use" => {
                let id = tool_use_id(block.get("id"), &format!("{field}.id"))?;
                let name = block.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid("A tool_use block needs a string \"name\".", &format!("{field}.name"))
                })?;
                let input = match block.get("input") {
                    Some(input @ Value::Object(_)) => input.clone(),
                    _ => {
                        return Err(invalid(
                            "A tool_use block needs an \"input\" object.",
                            &format!("{field}.input"),
                        ))
                    }
                };
                calls.push(ToolCall {
                    id: Some(id),
                    call_type: "function".to_owned(),
                    function: ToolCallFunction { name: name.to_owned(), arguments: input },
                });
            }
            other => {
                return Err(unsupported_block(
                    other,
                    &field,
                    "assistant messages may hold \"text\", \"thinking\" and \"tool_use\" blocks",
                ))
            }
        }
    }
    let text = texts.join("\n");
    Ok(ChatMessage {
        role: "assistant".to_owned(),
        content: (!text.is_empty() || calls.is_empty()).then(|| Value::String(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        reasoning: (!thoughts.is_empty()).then(|| thoughts.join("\n")),
        ..ChatMessage::default()
    })
}

/// A `tool_use` id or `tool_use_id`: a non-empty string, bounded.
fn tool_use_id(value: Option<&Value>, field: &str) -> Result<String, ApiError> {
    match value.and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= MAX_TOOL_USE_ID_BYTES => Ok(id.to_owned()),
        _ => Err(invalid(
            format!("A tool use id must be a string of 1 to {MAX_TOOL_USE_ID_BYTES} bytes."),
            field,
        )),
    }
}

/// A client tool, `{"name", "description", "input_schema"}` (at `field`, `tools[i]`).
fn anthropic_tool(item: &Value, field: &str) -> Result<FunctionTool, ApiError> {
    // Client tools have no type or "custom"; server tools (web search, code execution, ...) run
    // on Anthropic's side.
    match item.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(other) => {
            return Err(invalid(
                format!(
                    "Tools of type {other:?} are not supported: only client tools with an \
                     \"input_schema\"."
                ),
                &format!("{field}.type"),
            ))
        }
    }
    if !item.get("input_schema").is_some_and(Value::is_object) {
        return Err(invalid(
            "A tool needs an \"input_schema\" object (a JSON Schema).",
            &format!("{field}.input_schema"),
        ));
    }
    function_tool(item, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_checks::tests_support::{assert_refused, request_with};
    use serde_json::json;
    use uma_grammar::GrammarSpec;

    fn with(fields: Value) -> MessagesRequest {
        let base = json!({
            "model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]
        });
        request_with(base, &fields)
    }

    fn check_sampling(request: &MessagesRequest) -> Result<(), ApiError> {
        request.sampling_params().map(drop)
    }

    fn check_options(request: &MessagesRequest) -> Result<(), ApiError> {
        request.output_options().map(drop)
    }

    fn check_conversation(request: &MessagesRequest) -> Result<(), ApiError> {
        request.conversation().map(drop)
    }

    #[test]
    fn sampling_fields_take_anthropic_defaults_and_ranges() {
        let params = with(json!({})).sampling_params().unwrap();
        assert_eq!(params.temperature, 1.0);
        assert_eq!(params.max_tokens, Some(16));
        let params = with(json!({
            "temperature": 0, "top_p": 0.5, "top_k": 5, "stop_sequences": ["END"],
            "metadata": {"user_id": "u"}, "thinking": {"type": "enabled", "budget_tokens": 2048}
        }))
        .sampling_params()
        .unwrap();
        assert_eq!((params.temperature, params.top_p, params.top_k), (0.0, 0.5, 5));
        assert_eq!(*params.stop, vec!["END".to_owned()]);
        let refusals = [
            (json!({"max_tokens": null}), "max_tokens"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"temperature": 1.5}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"top_k": -1}), "top_k"),
            (json!({"stop_sequences": [""]}), "stop_sequences[0]"),
            (json!({"stop_sequences": vec!["x"; 17]}), "stop_sequences"),
            (json!({"thinking": {"type": "sometimes"}}), "thinking.type"),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": "lots"}}),
                "thinking.budget_tokens",
            ),
        ];
        assert_refused(with, check_sampling, refusals);
    }

    #[test]
    fn tools_choices_and_formats_are_read_and_checked_by_field() {
        let tool = json!({
            "name": "get_weather", "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"}
        });
        let options = with(json!({
            "tools": [tool.clone()],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        }))
        .output_options()
        .unwrap();
        assert_eq!(options.tools[0].name, "get_weather");
        assert_eq!(options.tools[0].parameters["properties"]["city"]["type"], "string");
        assert_eq!(options.tool_choice, ToolChoice::Function("get_weather".into()));
        assert!(!options.parallel_tool_calls);
        for (choice, expected) in [
            (json!({"type": "auto"}), ToolChoice::Auto),
            (json!({"type": "any"}), ToolChoice::Required),
            (json!({"type": "none"}), ToolChoice::None),
        ] {
            let options =
                with(json!({"tools": [tool.clone()], "tool_choice": choice})).output_options();
            assert_eq!(options.unwrap().tool_choice, expected);
        }
        let format = with(json!({"output_config": {"format": {
            "type": "json_schema", "schema": {"type": "object"}
        }}}))
        .output_options()
        .unwrap()
        .format;
        assert_eq!(format, Some(GrammarSpec::JsonSchema(json!({"type": "object"}))));

        let many: Vec<Value> = (0..1000)
            .map(|i| {
                json!({"name": format!("t{i}"),
            "input_schema": {"type": "object"}})
            })
            .collect();
        let refusals = [
            (json!({"tools": many}), "tools"),
            (json!({"tools": {"name": "x"}}), "tools"),
            (json!({"tools": [{"name": "x"}]}), "tools[0].input_schema"),
            (json!({"tools": [{"name": "x", "input_schema": "object"}]}), "tools[0].input_schema"),
            (
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools[0].type",
            ),
            (json!({"tools": [{"name": "a b", "input_schema": {}}]}), "tools[0].name"),
            (
                json!({"tools": [tool.clone()], "tool_choice": {"type": "tool", "name": "nope"}}),
                "tool_choice",
            ),
            (json!({"tools": [tool.clone()], "tool_choice": {"type": "tool"}}), "tool_choice.name"),
            (json!({"tools": [tool.clone()], "tool_choice": "auto"}), "tool_choice.type"),
            (json!({"tools": [tool.clone()], "tool_choice": {"type": "some"}}), "tool_choice.type"),
            (json!({"tool_choice": {"type": "any"}}), "tool_choice"),
            (json!({"output_config": {"format": {"type": "xml"}}}), "output_config.format.type"),
            (
                json!({"output_config": {"format": {"type": "json_schema"}}}),
                "output_config.format.json_schema.schema",
            ),
        ];
        assert_refused(with, check_options, refusals);
    }

    #[test]
    fn a_conversation_with_tools_becomes_template_messages() {
        let request = with(json!({
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Call the tool.", "signature": "s"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": [{"type": "text", "text": "rain"}]},
                    {"type": "text", "text": "And tomorrow?"}
                ]},
                {"role": "assistant", "content": "Tomorrow it"}
            ]
        }));
        let conversation = request.conversation().unwrap();
        let messages = &conversation.messages;
        assert_eq!(messages[0], ChatMessage::system("Be brief.\nBe kind."));
        assert_eq!(messages[1], ChatMessage::user("Weather in Oslo?"));
        let mut call = ToolCall::function("get_weather", json!({"city": "Oslo"}));
        call.id = Some("toolu_1".into());
        assert_eq!(messages[2].content, Some(json!("Let me check.")));
        assert_eq!(messages[2].tool_calls, Some(vec![call]));
        assert_eq!(messages[2].reasoning.as_deref(), Some("Call the tool."));
        assert_eq!(messages[1].reasoning, None);
        assert_eq!(
            messages[3],
            ChatMessage::tool("rain", Some("toolu_1".into()), Some("get_weather".into()))
        );
        assert_eq!(messages[4], ChatMessage::user("And tomorrow?"));
        assert_eq!(messages.len(), 5);
        assert_eq!(conversation.prefill.as_deref(), Some("Tomorrow it"));

        let error = with(json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": true}
        ]}]}))
        .conversation()
        .unwrap();
        assert_eq!(error.messages[0].content, Some(json!("Error: boom")));
    }

    #[test]
    fn unknown_blocks_and_bad_messages_are_refused_by_field() {
        let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}});
        let many: Vec<Value> =
            (0..MAX_MESSAGES + 1).map(|_| json!({"role": "user", "content": "x"})).collect();
        let refusals = [
            (json!({"messages": []}), "messages"),
            (json!({"messages": many}), "messages"),
            (json!({"messages": [{"role": "system", "content": "x"}]}), "messages[0].role"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, image]}]}),
                "messages[0].content[1].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "document"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"text": "a"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages[0].content[0].text",
            ),
            (json!({"messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}),
                "messages[0].content[0].tool_use_id",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]}),
                "messages[0].content[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]}),
                "messages[0].content[0].input",
            ),
            (json!({"system": [{"type": "image"}]}), "system[0].type"),
            (json!({"system": 5}), "system"),
        ];
        assert_refused(with, check_conversation, refusals);
    }
}
