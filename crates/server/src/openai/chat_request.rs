//! [`ChatCompletionRequest`]: the body of `POST /v1/chat/completions`, and its messages as sent
//! on the wire ([`RequestMessage`]), turned into the tokenizer's [`ChatMessage`]s.
//!
//! The wire messages are their own type because OpenAI's differ from what chat templates take:
//! `content` may be an array of parts (templates want a string), a tool call's `arguments` is a
//! string holding JSON (templates want the object), and `developer` is a newer name for `system`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use uma_sampling::{SamplingParams, MAX_TOP_LOGPROBS};
use uma_tokenizer::{ChatMessage, ToolCall, ToolCallFunction};

use super::request_fields::{generation_fields, GenerationFields, WithGenerationFields};
use crate::error::ApiError;
use crate::tools::{
    function_tool, openai_response_format, openai_tool, openai_tool_choice, template_kwargs,
    tool_list, OutputOptions, ReasoningEffort,
};

/// `POST /v1/chat/completions`. Fields not listed are accepted and ignored.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<RequestMessage>,
    /// `n`, `temperature`, `max_tokens` (deprecated by OpenAI in favour of
    /// `max_completion_tokens`, still sent by most clients), ...
    #[serde(flatten, deserialize_with = "generation_fields")]
    pub generation: GenerationFields,
    pub max_completion_tokens: Option<u32>,
    /// Return the chosen tokens' logprobs.
    pub logprobs: Option<bool>,
    /// Also return the `top_logprobs` most likely tokens at each position (needs `logprobs`).
    pub top_logprobs: Option<u32>,
    /// How long the model stays loaded after this request (an Ollama field uma accepts here too).
    pub keep_alive: Option<crate::keep_alive::KeepAliveField>,
    /// Functions the model may call: `[{"type": "function", "function": {"name",
    /// "description", "parameters"}}]` (checked by [`Self::output_options`]).
    pub tools: Option<serde_json::Value>,
    /// The deprecated form of `tools`: `[{"name", "description", "parameters"}]`.
    pub functions: Option<serde_json::Value>,
    pub tool_choice: Option<serde_json::Value>,
    /// The deprecated form of `tool_choice`.
    pub function_call: Option<serde_json::Value>,
    pub parallel_tool_calls: Option<bool>,
    /// Variables for the chat template (`{"enable_thinking": false}`), as vLLM and llama.cpp's
    /// server take them.
    pub chat_template_kwargs: Option<serde_json::Value>,
    /// `low`, `medium` or `high`: the template's `reasoning_effort` (gpt-oss).
    pub reasoning_effort: Option<serde_json::Value>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema",
    /// "strict"}}`.
    pub response_format: Option<serde_json::Value>,
}

impl WithGenerationFields for ChatCompletionRequest {
    fn generation(&self) -> &GenerationFields {
        &self.generation
    }
}

impl ChatCompletionRequest {
    /// The sampling parameters, with OpenAI's defaults. Checks every generation field (`n`
    /// included); an error is a 400 naming the field.
    pub fn sampling_params(&self) -> Result<SamplingParams, ApiError> {
        if let Some(top_logprobs) = self.top_logprobs {
            if top_logprobs > MAX_TOP_LOGPROBS {
                return Err(ApiError::invalid_request(
                    format!(
                        "`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}, got \
                         {top_logprobs}."
                    ),
                    Some("top_logprobs"),
                ));
            }
            if self.logprobs != Some(true) {
                return Err(ApiError::invalid_request(
                    "`logprobs` must be set to true when `top_logprobs` is given.",
                    Some("top_logprobs"),
                ));
            }
        }
        // `max_completion_tokens` replaces `max_tokens`; when both are sent the newer one wins.
        let max_tokens = match (self.max_completion_tokens, self.generation.max_tokens) {
            (Some(max_tokens), _) => Some((max_tokens, "max_completion_tokens")),
            (None, Some(max_tokens)) => Some((max_tokens, "max_tokens")),
            (None, None) => None,
        };
        self.generation.sampling_params(max_tokens, self.logprobs())
    }

    /// The tools, tool choice and response format; errors name the field.
    pub(crate) fn output_options(&self) -> Result<OutputOptions, ApiError> {
        let (tools, tools_field) = match (&self.tools, &self.functions) {
            (Some(tools), _) if !tools.is_null() => {
                (tool_list(Some(tools), "tools", openai_tool)?, "tools")
            }
            (_, Some(functions)) if !functions.is_null() => {
                (tool_list(Some(functions), "functions", function_tool)?, "functions")
            }
            _ => (Vec::new(), "tools"),
        };
        let (choice, choice_field) = match (&self.tool_choice, &self.function_call) {
            (Some(choice), _) => (choice, "tool_choice"),
            (None, Some(choice)) => (choice, "function_call"),
            (None, None) => (&serde_json::Value::Null, "tool_choice"),
        };
        let options = OutputOptions {
            tools,
            tool_choice: openai_tool_choice(Some(choice), choice_field)?,
            parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
            format: openai_response_format(self.response_format.as_ref(), "response_format")?,
            template_kwargs: template_kwargs(
                self.chat_template_kwargs.as_ref(),
                "chat_template_kwargs",
            )?,
        };
        options.validate(tools_field, choice_field)?;
        let effort = ReasoningEffort::parse(self.reasoning_effort.as_ref(), "reasoning_effort")?;
        Ok(options.with_reasoning_effort(effort))
    }

    /// The conversation for the chat template. Checks roles and content; an error is a 400
    /// naming the message (`messages[2].content`).
    pub fn chat_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid_request(
                "`messages` must hold at least one message.",
                Some("messages"),
            ));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(index, message)| message.to_chat_message(index))
            .collect()
    }

    /// Logprobs to return: `None` for none, `Some(0)` for the chosen token's only, `Some(n)` for
    /// the chosen token's and the `n` most likely tokens'.
    pub fn logprobs(&self) -> Option<u32> {
        (self.logprobs == Some(true)).then(|| self.top_logprobs.unwrap_or(0))
    }
}

/// One message as OpenAI clients send it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RequestMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// `None` (absent or null) only for an assistant message that calls tools.
    pub content: Option<MessageContent>,
    pub name: Option<String>,
    pub tool_calls: Option<Vec<RequestToolCall>>,
    pub tool_call_id: Option<String>,
    /// An assistant message's reasoning as uma (and vLLM, DeepSeek) returned it.
    pub reasoning_content: Option<serde_json::Value>,
    /// The same under OpenRouter's and newer vLLM's name (clients echo both back).
    pub reasoning: Option<serde_json::Value>,
}

/// `content`: a string, or an array of parts of which only `text` parts are supported.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One element of an array `content`. Fields of other part types are ignored.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub part_type: String,
    pub text: Option<String>,
}

/// A tool call in an assistant message of the history.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RequestToolCall {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub call_type: Option<String>,
    pub function: RequestFunctionCall,
}

/// The function of a [`RequestToolCall`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RequestFunctionCall {
    pub name: String,
    /// OpenAI sends a string holding JSON; some clients send the object itself.
    pub arguments: serde_json::Value,
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;

        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = MessageContent;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or an array of content parts")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(value.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageContent, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<ContentPart>()? {
                    parts.push(part);
                }
                Ok(MessageContent::Parts(parts))
            }
        }

        deserializer.deserialize_any(ContentVisitor)
    }
}

impl RequestMessage {
    /// The message for the chat template; `index` is its place in `messages`, for errors.
    fn to_chat_message(&self, index: usize) -> Result<ChatMessage, ApiError> {
        let role = match self.role.as_str() {
            // Chat templates know `system`; `developer` is OpenAI's newer name for it.
            "developer" => "system",
            role @ ("system" | "user" | "assistant" | "tool") => role,
            other => {
                return Err(ApiError::invalid_request(
                    format!(
                        "Unsupported role `{other}` in message {index}: expected system, \
                         developer, user, assistant or tool."
                    ),
                    Some(&format!("messages[{index}].role")),
                ))
            }
        };
        let content = match &self.content {
            Some(content) => Some(content_text(content, index)?),
            None if role == "assistant" => None,
            None => {
                return Err(ApiError::invalid_request(
                    format!("Message {index} (role `{role}`) must have `content`."),
                    Some(&format!("messages[{index}].content")),
                ))
            }
        };
        let tool_calls = self
            .tool_calls
            .as_ref()
            .map(|calls| calls.iter().map(RequestToolCall::to_tool_call).collect());
        Ok(ChatMessage {
            role: role.to_owned(),
            content: content.map(serde_json::Value::String),
            tool_calls,
            tool_call_id: self.tool_call_id.clone(),
            name: self.name.clone(),
            reasoning: [&self.reasoning_content, &self.reasoning]
                .into_iter()
                .find_map(|field| field.as_ref()?.as_str().map(str::to_owned))
                .filter(|_| role == "assistant"),
        })
    }
}

/// The text of `content`: text parts joined by newlines (as vLLM does); other parts are refused
/// rather than dropped, so a client never gets an answer to a question it did not ask.
fn content_text(content: &MessageContent, index: usize) -> Result<String, ApiError> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(text.clone()),
        MessageContent::Parts(parts) => parts,
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (part_index, part) in parts.iter().enumerate() {
        let param = format!("messages[{index}].content[{part_index}]");
        match (part.part_type.as_str(), &part.text) {
            ("text", Some(text)) => texts.push(text.as_str()),
            ("text", None) => {
                return Err(ApiError::invalid_request(
                    format!("Content part {part_index} of message {index} has no `text`."),
                    Some(&format!("{param}.text")),
                ))
            }
            (other, _) => {
                return Err(ApiError::invalid_request(
                    format!(
                        "Content parts of type `{other}` are not supported (message {index}); \
                         only `text` parts are."
                    ),
                    Some(&format!("{param}.type")),
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

impl RequestToolCall {
    fn to_tool_call(&self) -> ToolCall {
        let arguments = match &self.function.arguments {
            // Arguments the model produced may not be valid JSON; the template then gets the
            // string as it was.
            serde_json::Value::String(text) => serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
            other => other.clone(),
        };
        ToolCall {
            id: self.id.clone(),
            call_type: self.call_type.clone().unwrap_or_else(|| "function".to_owned()),
            function: ToolCallFunction { name: self.function.name.clone(), arguments },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolChoice;
    use axum::http::StatusCode;
    use serde_json::json;
    use uma_grammar::GrammarSpec;

    fn parse(body: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    fn with(fields: serde_json::Value) -> ChatCompletionRequest {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (key, value) in fields.as_object().unwrap() {
            body[key] = value.clone();
        }
        parse(body)
    }

    /// The param of the 400 that `fields` cause.
    fn sampling_error_param(fields: serde_json::Value) -> String {
        let error = with(fields.clone()).sampling_params().unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{fields}");
        assert_eq!(error.kind, "invalid_request_error", "{fields}");
        error.param.unwrap_or_else(|| panic!("no param for {fields}"))
    }

    #[test]
    fn tools_choices_and_formats_are_read_and_checked_by_field() {
        let tool = json!({"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
        }});
        let options = with(json!({
            "tools": [tool.clone()],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        }))
        .output_options()
        .unwrap();
        assert_eq!(options.tools.len(), 1);
        assert_eq!(options.tools[0].description.as_deref(), Some("Weather of a city"));
        assert_eq!(options.tool_choice, ToolChoice::Function("get_weather".into()));
        assert!(!options.parallel_tool_calls);
        assert_eq!(options.format, Some(GrammarSpec::JsonSchema(json!({"type": "object"}))));
        // The deprecated `functions` / `function_call` pair.
        let old = with(json!({"functions": [{"name": "f"}], "function_call": {"name": "f"}}));
        let options = old.output_options().unwrap();
        assert_eq!(options.tool_choice, ToolChoice::Function("f".into()));
        assert_eq!(options.tools[0].parameters, json!({"type": "object", "properties": {}}));

        let error_param = |fields: serde_json::Value| {
            with(fields.clone())
                .output_options()
                .err()
                .and_then(|e| e.param)
                .unwrap_or_else(|| panic!("{fields}"))
        };
        let many: Vec<_> = (0..1000)
            .map(|i| json!({"type": "function", "function": {"name": format!("f{i}")}}))
            .collect();
        assert_eq!(error_param(json!({"tools": many})), "tools");
        assert_eq!(
            error_param(
                json!({"tools": [tool.clone()], "tool_choice": {"type": "function", "function": {"name": "nope"}}})
            ),
            "tool_choice"
        );
        assert_eq!(error_param(json!({"tool_choice": "required"})), "tool_choice");
        assert_eq!(
            error_param(json!({"tools": [tool.clone()], "tool_choice": "sometimes"})),
            "tool_choice"
        );
        assert_eq!(error_param(json!({"tools": [tool.clone(), tool.clone()]})), "tools[1].name");
        assert_eq!(
            error_param(json!({"tools": [{"type": "function", "function": {"name": "a b"}}]})),
            "tools[0].name"
        );
        assert_eq!(error_param(json!({"tools": [{"type": "code_interpreter"}]})), "tools[0].type");
        assert_eq!(error_param(json!({"tools": "f"})), "tools");
        assert_eq!(
            error_param(json!({"response_format": {"type": "xml"}})),
            "response_format.type"
        );
        assert_eq!(
            error_param(
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})
            ),
            "response_format.json_schema.schema"
        );
        // Logit bias is still refused by name.
        assert_eq!(sampling_error_param(json!({"logit_bias": {"42": 5}})), "logit_bias");
        // What asks for nothing passes.
        for fields in [
            json!({"tools": []}),
            json!({"tools": null}),
            json!({"tool_choice": "none"}),
            json!({"response_format": {"type": "text"}}),
        ] {
            let options = with(fields.clone()).output_options().unwrap();
            assert!(options.tools.is_empty() && options.format.is_none(), "{fields}");
        }
    }

    #[test]
    fn parses_what_the_openai_python_client_sends() {
        // `client.chat.completions.create(..., stream=True, stream_options={"include_usage":
        // True}, max_completion_tokens=64, logprobs=True, top_logprobs=2, seed=-5,
        // extra_body={"top_k": 20})` plus fields uma ignores.
        let request = parse(json!({
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Hello"},
                    {"type": "text", "text": "there"}
                ]},
            ],
            "model": "qwen3-0.6b",
            "logprobs": true,
            "max_completion_tokens": 64,
            "seed": -5,
            "stream": true,
            "stream_options": {"include_usage": true},
            "top_logprobs": 2,
            "top_k": 20,
            "user": "user-1234",
            "metadata": {"a": "b"},
            "store": false,
            "parallel_tool_calls": true,
            "response_format": {"type": "text"},
            "service_tier": "auto",
            "logit_bias": null,
            "temperature": null,
        }));
        assert_eq!(request.model, "qwen3-0.6b");
        assert!(request.stream());
        assert!(request.include_usage());
        assert_eq!(request.n(), 1);
        assert_eq!(request.logprobs(), Some(2));
        let params = request.sampling_params().unwrap();
        assert_eq!(params.max_tokens, Some(64));
        assert_eq!(params.logprobs, Some(2));
        assert_eq!(params.top_k, 20);
        assert_eq!(params.temperature, 1.0);
        assert_eq!(params.seed, Some(-5_i64 as u64));
        assert_eq!(
            request.chat_messages().unwrap(),
            vec![ChatMessage::system("Be brief."), ChatMessage::user("Hello\nthere")]
        );
    }

    #[test]
    fn defaults() {
        let request = with(json!({}));
        assert!(!request.stream());
        assert!(!request.include_usage());
        assert_eq!(request.n(), 1);
        assert_eq!(request.logprobs(), None);
        assert_eq!(request.sampling_params().unwrap(), SamplingParams::default());
    }

    #[test]
    fn include_usage_needs_streaming() {
        let request = with(json!({"stream": false, "stream_options": {"include_usage": true}}));
        assert!(!request.include_usage());
        let request = with(json!({"stream": true, "stream_options": {"include_usage": false}}));
        assert!(!request.include_usage());
        let request = with(json!({"stream": true}));
        assert!(!request.include_usage());
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let request = with(json!({"max_tokens": 10, "max_completion_tokens": 20}));
        assert_eq!(request.sampling_params().unwrap().max_tokens, Some(20));
        let request = with(json!({"max_tokens": 10}));
        assert_eq!(request.sampling_params().unwrap().max_tokens, Some(10));
        assert_eq!(sampling_error_param(json!({"max_tokens": 0})), "max_tokens");
        assert_eq!(
            sampling_error_param(json!({"max_tokens": 5, "max_completion_tokens": 0})),
            "max_completion_tokens"
        );
    }

    #[test]
    fn logprobs_rules() {
        assert_eq!(with(json!({"logprobs": true})).logprobs(), Some(0));
        assert_eq!(with(json!({"logprobs": false})).logprobs(), None);
        assert_eq!(with(json!({"logprobs": true, "top_logprobs": 20})).logprobs(), Some(20));
        let params = with(json!({"logprobs": true, "top_logprobs": 20})).sampling_params();
        assert_eq!(params.unwrap().logprobs, Some(20));
        assert_eq!(
            sampling_error_param(json!({"logprobs": true, "top_logprobs": 21})),
            "top_logprobs"
        );
        assert_eq!(sampling_error_param(json!({"top_logprobs": 2})), "top_logprobs");
        assert_eq!(
            sampling_error_param(json!({"logprobs": false, "top_logprobs": 0})),
            "top_logprobs"
        );
    }

    #[test]
    fn every_range_is_checked_and_names_its_param() {
        let cases = [
            (json!({"n": 0}), "n"),
            (json!({"n": 17}), "n"),
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"temperature": -0.5}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"top_p": -0.1}), "top_p"),
            (json!({"frequency_penalty": 3}), "frequency_penalty"),
            (json!({"presence_penalty": -2.5}), "presence_penalty"),
            (json!({"top_k": -2}), "top_k"),
            (json!({"min_p": 1.5}), "min_p"),
            (json!({"repetition_penalty": 0}), "repetition_penalty"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"stop": ""}), "stop"),
        ];
        for (fields, param) in cases {
            assert_eq!(sampling_error_param(fields.clone()), param, "{fields}");
        }
    }

    #[test]
    fn range_boundaries_are_accepted() {
        for fields in [
            json!({"n": 16, "temperature": 2, "top_p": 0, "stop": ["a", "b", "c", "d"]}),
            json!({"n": 1, "temperature": 0, "top_p": 1, "frequency_penalty": -2}),
            json!({"presence_penalty": 2, "top_k": 0, "min_p": 1, "max_tokens": 1}),
        ] {
            with(fields.clone())
                .sampling_params()
                .unwrap_or_else(|error| panic!("{fields}: {error}"));
        }
    }

    #[test]
    fn stop_forms() {
        let params = with(json!({"stop": "\n"})).sampling_params().unwrap();
        assert_eq!(*params.stop, vec!["\n".to_string()]);
        let params = with(json!({"stop": ["User:", "###"]})).sampling_params().unwrap();
        assert_eq!(*params.stop, vec!["User:".to_string(), "###".to_string()]);
        let params = with(json!({"stop": null})).sampling_params().unwrap();
        assert!(params.stop.is_empty());
        let params = with(json!({"stop": []})).sampling_params().unwrap();
        assert!(params.stop.is_empty());
    }

    #[test]
    fn wrong_types_do_not_parse() {
        for fields in [
            json!({"temperature": "hot"}),
            json!({"n": -1}),
            json!({"n": 1.5}),
            json!({"stream": "yes"}),
            json!({"logprobs": 3}),
            json!({"stop": 5}),
            json!({"messages": "hi"}),
            json!({"messages": [{"role": "user", "content": 5}]}),
            json!({"messages": [{"content": "hi"}]}),
        ] {
            let mut body = json!({"model": "m", "messages": []});
            for (key, value) in fields.as_object().unwrap() {
                body[key] = value.clone();
            }
            assert!(serde_json::from_value::<ChatCompletionRequest>(body).is_err(), "{fields}");
        }
    }

    #[test]
    fn messages_convert_for_the_template() {
        let request = parse(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "What is the weather?", "name": "ann"},
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}
                }]},
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                {"role": "assistant", "tool_calls": [{
                    "function": {"name": "f", "arguments": "not json"}
                }]},
            ],
        }));
        let messages = request.chat_messages().unwrap();
        assert_eq!(messages[0], ChatMessage::system("s"));
        assert_eq!(messages[1].name.as_deref(), Some("ann"));
        let mut call = ToolCall::function("weather", json!({"city": "Oslo"}));
        call.id = Some("call_1".into());
        assert_eq!(messages[2], ChatMessage::assistant_tool_calls(vec![call]));
        assert_eq!(messages[3], ChatMessage::tool("rain", Some("call_1".into()), None));
        assert_eq!(
            messages[4],
            ChatMessage::assistant_tool_calls(vec![ToolCall::function("f", json!("not json"))])
        );
    }

    #[test]
    fn an_assistant_turns_reasoning_goes_back_to_the_template() {
        let request = parse(json!({
            "model": "m",
            "reasoning_effort": "low",
            "messages": [
                {"role": "user", "content": "Weather?", "reasoning_content": "not a user's"},
                {"role": "assistant", "content": null, "reasoning_content": "Call it.",
                 "tool_calls": [{"id": "c", "type": "function",
                                 "function": {"name": "weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "rain"},
                {"role": "assistant", "content": "Rain.", "reasoning": "It rains."},
            ],
        }));
        let messages = request.chat_messages().unwrap();
        let reasoning: Vec<Option<&str>> =
            messages.iter().map(|m| m.reasoning.as_deref()).collect();
        assert_eq!(reasoning, [None, Some("Call it."), None, Some("It rains.")]);
        let options = request.output_options().unwrap();
        assert_eq!(options.template_kwargs.get("reasoning_effort"), Some(&json!("low")));
        // The request's own template variable wins.
        let both = with(json!({"reasoning_effort": "high",
                               "chat_template_kwargs": {"reasoning_effort": "medium"}}));
        let options = both.output_options().unwrap();
        assert_eq!(options.template_kwargs.get("reasoning_effort"), Some(&json!("medium")));
        let minimal = with(json!({"reasoning_effort": "minimal"})).output_options().unwrap();
        assert_eq!(minimal.template_kwargs.get("reasoning_effort"), Some(&json!("low")));
        // Both names of the reasoning, as clients echo them back, are one message's.
        let echoed = parse(json!({"model": "m", "messages": [
            {"role": "assistant", "content": "a", "reasoning_content": "r", "reasoning": "r"}]}));
        assert_eq!(echoed.chat_messages().unwrap()[0].reasoning.as_deref(), Some("r"));
        for effort in [json!("max"), json!(3)] {
            let error = with(json!({"reasoning_effort": effort})).output_options().unwrap_err();
            assert_eq!(error.param.as_deref(), Some("reasoning_effort"), "{effort}");
        }
    }

    #[test]
    fn message_errors_name_the_message() {
        let cases = [
            (json!([]), "messages"),
            (json!([{"role": "function", "content": "x"}]), "messages[0].role"),
            (json!([{"role": "system", "content": "s"}, {"role": "user"}]), "messages[1].content"),
            (
                json!([{"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}]),
                "messages[0].content[1].type",
            ),
            (
                json!([{"role": "user", "content": [{"type": "text"}]}]),
                "messages[0].content[0].text",
            ),
        ];
        for (messages, param) in cases {
            let request = parse(json!({"model": "m", "messages": messages.clone()}));
            let error = request.chat_messages().unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{messages}");
            assert_eq!(error.param.as_deref(), Some(param), "{messages}");
        }
    }
}
