//! Ollama's request bodies (`/api/generate`, `/api/chat`, `/api/show`, `/api/embed`): their
//! `options` turned into [`SamplingParams`] with Ollama's defaults, `format`, `tools` and `think`
//! read into the protocol-neutral [`OutputOptions`], and chat messages (tool calls and tool
//! results included) into the tokenizer's [`ChatMessage`]s.

use serde::Deserialize;
use serde_json::Value;
use uma_grammar::GrammarSpec;
use uma_sampling::SamplingParams;
use uma_tokenizer::{ChatMessage, ToolCall};

use crate::error::ApiError;
use crate::keep_alive::KeepAliveField;
use crate::tools::{openai_tool, tool_list, FunctionTool, OutputOptions, ReasoningEffort};

/// `options`: the sampling fields uma implements. Others Ollama knows (`num_ctx`, `num_gpu`,
/// `mirostat`, ...) are accepted and ignored: they configure Ollama's runner, not the answer,
/// or (mirostat, tfs_z, typical_p) are samplers uma does not have.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Options {
    pub(crate) temperature: Option<f32>,
    pub(crate) top_k: Option<i32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) min_p: Option<f32>,
    pub(crate) seed: Option<i64>,
    /// Tokens to generate; -1 (the default) and -2 mean until the model stops or the context
    /// is full.
    pub(crate) num_predict: Option<i64>,
    pub(crate) stop: Option<Vec<String>>,
    pub(crate) repeat_penalty: Option<f32>,
    pub(crate) repeat_last_n: Option<i32>,
    pub(crate) presence_penalty: Option<f32>,
    pub(crate) frequency_penalty: Option<f32>,
}

impl Options {
    /// The sampling parameters: Ollama's defaults, then these options. An out-of-range value is
    /// a 400 naming the option.
    pub(crate) fn sampling_params(options: Option<&Options>) -> Result<SamplingParams, ApiError> {
        let mut params = SamplingParams::ollama_defaults();
        let Some(options) = options else { return Ok(params) };
        let set = |value: Option<f32>, field: &mut f32| {
            if let Some(value) = value {
                *field = value;
            }
        };
        set(options.temperature, &mut params.temperature);
        set(options.top_p, &mut params.top_p);
        set(options.min_p, &mut params.min_p);
        set(options.repeat_penalty, &mut params.repetition_penalty);
        set(options.presence_penalty, &mut params.presence_penalty);
        set(options.frequency_penalty, &mut params.frequency_penalty);
        if let Some(top_k) = options.top_k {
            params.top_k = top_k;
        }
        if let Some(window) = options.repeat_last_n {
            params.repeat_last_n = window;
        }
        // Two's-complement reinterpretation, as on the OpenAI routes.
        params.seed = options.seed.map(|seed| seed as u64);
        params.max_tokens = match options.num_predict {
            None | Some(-2 | -1) => None,
            Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => {
                return Err(ApiError::invalid_request(
                    format!("options.num_predict must be positive, -1 or -2, got {n}"),
                    Some("options.num_predict"),
                ))
            }
        };
        params.stop = options.stop.clone().unwrap_or_default().into();
        params.validate().map_err(|error| {
            ApiError::invalid_request(format!("invalid options: {error}"), Some("options"))
        })?;
        Ok(params)
    }
}

/// Images: uma serves text models only, and refuses them rather than answer a question about
/// a picture it never saw.
fn refuse_images(images: bool) -> Result<(), ApiError> {
    if images {
        return Err(ApiError::invalid_request("images are not supported by uma", Some("images")));
    }
    Ok(())
}

/// `format`: `"json"` (any JSON object) or a JSON Schema object the answer must follow; absent,
/// `null` or `""` for free text, as Ollama reads it. A schema uma cannot compile is refused
/// later, when it is compiled (a 400 naming `format` too).
pub(crate) fn output_format(format: Option<&Value>) -> Result<Option<GrammarSpec>, ApiError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) if text == "json" => Ok(Some(GrammarSpec::JsonObject)),
        Some(schema @ Value::Object(_)) => Ok(Some(GrammarSpec::JsonSchema(schema.clone()))),
        Some(other) => {
            let shown: String = other.to_string().chars().take(64).collect();
            Err(ApiError::invalid_request(
                format!(
                    "invalid format: {shown}; expected \"json\" or a JSON Schema object in `format`"
                ),
                Some("format"),
            ))
        }
    }
}

/// `think`: `true` or `false`, or one of Ollama's levels `"high"`, `"medium"`, `"low"` (a level
/// means `true`, and is the template's reasoning effort: [`think_effort`]). `None` when absent
/// or `null`.
pub(crate) fn think_field(think: Option<&Value>) -> Result<Option<bool>, ApiError> {
    match think {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(think)) => Ok(Some(*think)),
        Some(Value::String(level)) if ["high", "medium", "low"].contains(&level.as_str()) => {
            Ok(Some(true))
        }
        Some(_) => Err(ApiError::invalid_request(
            "`think` must be true, false, \"high\", \"medium\" or \"low\"",
            Some("think"),
        )),
    }
}

/// The reasoning effort of a `think` level (`"low"`, `"medium"`, `"high"`); `None` for a boolean.
pub(crate) fn think_effort(think: Option<&Value>) -> Option<ReasoningEffort> {
    match think {
        Some(level @ Value::String(_)) => {
            ReasoningEffort::parse(Some(level), "think").ok().flatten()
        }
        _ => None,
    }
}

/// `tools`: Ollama's are OpenAI's function tools (`{"type": "function", "function": {"name",
/// "description", "parameters"}}`). The count is checked before any is read, so a thousand tools
/// cost nothing but the refusal; each error names its field (`tools[2].name`).
pub(crate) fn ollama_tools(tools: Option<&Value>) -> Result<Vec<FunctionTool>, ApiError> {
    tool_list(tools, "tools", openai_tool)
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GenerateRequest {
    pub(crate) model: String,
    pub(crate) prompt: Option<String>,
    pub(crate) system: Option<String>,
    /// Send the prompt as it is, without the chat template.
    pub(crate) raw: Option<bool>,
    /// uma's extension, with `raw`: special-token spellings in the prompt become those tokens.
    pub(crate) parse_special: Option<bool>,
    /// Tokens of an earlier exchange (returned by it), continued by this prompt.
    pub(crate) context: Option<Vec<u32>>,
    pub(crate) stream: Option<bool>,
    pub(crate) options: Option<Options>,
    pub(crate) keep_alive: Option<KeepAliveField>,
    /// `"json"` or a JSON Schema ([`output_format`]).
    pub(crate) format: Option<Value>,
    /// Whether a reasoning model's thinking is returned ([`think_field`]).
    pub(crate) think: Option<Value>,
    pub(crate) images: Option<Vec<Value>>,
}

impl GenerateRequest {
    /// Refuses what uma does not do (images) and fields it cannot read (`format`, `think`).
    pub(crate) fn check_supported(&self) -> Result<(), ApiError> {
        refuse_images(self.images.as_ref().is_some_and(|i| !i.is_empty()))?;
        self.output_format()?;
        self.think()?;
        Ok(())
    }

    /// The format the answer must follow, if any.
    pub(crate) fn output_format(&self) -> Result<Option<GrammarSpec>, ApiError> {
        output_format(self.format.as_ref())
    }

    /// `think`, read.
    pub(crate) fn think(&self) -> Result<Option<bool>, ApiError> {
        think_field(self.think.as_ref())
    }

    /// The reasoning effort of a `think` level.
    pub(crate) fn think_effort(&self) -> Option<ReasoningEffort> {
        think_effort(self.think.as_ref())
    }

    /// No prompt and no context: the request only loads (or, with `keep_alive: 0`, unloads)
    /// the model.
    pub(crate) fn is_load_only(&self) -> bool {
        self.prompt.as_deref().unwrap_or("").is_empty()
            && self.context.as_ref().is_none_or(Vec::is_empty)
    }
}

/// A tool call of an assistant message in the history: `{"function": {"name", "arguments"}}`,
/// the arguments an object (Ollama's shape; a string holding a JSON object is taken too).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageToolCall {
    pub(crate) id: Option<String>,
    pub(crate) function: MessageFunction,
}

/// The function of a [`MessageToolCall`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageFunction {
    pub(crate) name: String,
    pub(crate) arguments: Option<Value>,
}

/// One message of `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    pub(crate) role: String,
    /// Absent or `null` reads as empty, as in Ollama.
    pub(crate) content: Option<String>,
    pub(crate) images: Option<Vec<Value>>,
    /// The tools an assistant message called.
    pub(crate) tool_calls: Option<Vec<MessageToolCall>>,
    /// For a `tool` message: the tool that answered.
    pub(crate) tool_name: Option<String>,
    /// For a `tool` message: the call it answers, when the client keeps ids.
    pub(crate) tool_call_id: Option<String>,
    /// An assistant message's thinking, as Ollama returned it.
    pub(crate) thinking: Option<String>,
}

impl Message {
    /// The message for the chat template; `index` names it in errors.
    fn to_chat_message(&self, index: usize) -> Result<ChatMessage, ApiError> {
        if !matches!(self.role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(ApiError::invalid_request(
                format!("unknown message role {:?} (system, user, assistant or tool)", self.role),
                Some(&format!("messages[{index}].role")),
            ));
        }
        let calls = match &self.tool_calls {
            Some(calls) if !calls.is_empty() => Some(
                calls
                    .iter()
                    .enumerate()
                    .map(|(call_index, call)| {
                        let field = format!("messages[{index}].tool_calls[{call_index}]");
                        call.to_tool_call(&field)
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => None,
        };
        let content = self.content.clone().unwrap_or_default();
        // An assistant turn that only calls tools has no content for the template.
        let content = if content.is_empty() && calls.is_some() { None } else { Some(content) };
        Ok(ChatMessage {
            role: self.role.clone(),
            content: content.map(Value::String),
            tool_calls: calls,
            tool_call_id: self.tool_call_id.clone(),
            name: self.tool_name.clone(),
            reasoning: self.thinking.clone().filter(|_| self.role == "assistant"),
        })
    }
}

impl MessageToolCall {
    fn to_tool_call(&self, field: &str) -> Result<ToolCall, ApiError> {
        let arguments = match &self.function.arguments {
            None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
            Some(object @ Value::Object(_)) => object.clone(),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(object @ Value::Object(_)) => object,
                _ => return Err(arguments_error(field)),
            },
            Some(_) => return Err(arguments_error(field)),
        };
        let mut call = ToolCall::function(self.function.name.clone(), arguments);
        call.id = self.id.clone();
        Ok(call)
    }
}

fn arguments_error(field: &str) -> ApiError {
    let field = format!("{field}.function.arguments");
    ApiError::invalid_request(
        format!("`{field}` must be a JSON object of the arguments"),
        Some(&field),
    )
}

/// `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatRequest {
    pub(crate) model: String,
    #[serde(default)]
    pub(crate) messages: Vec<Message>,
    pub(crate) stream: Option<bool>,
    pub(crate) options: Option<Options>,
    pub(crate) keep_alive: Option<KeepAliveField>,
    /// `"json"` or a JSON Schema ([`output_format`]).
    pub(crate) format: Option<Value>,
    /// Functions the model may call ([`ollama_tools`]).
    pub(crate) tools: Option<Value>,
    /// Whether a reasoning model's thinking is returned ([`think_field`]).
    pub(crate) think: Option<Value>,
}

impl ChatRequest {
    /// Refuses what uma does not do (images) and fields it cannot read (`format`, `tools`,
    /// `think`).
    pub(crate) fn check_supported(&self) -> Result<(), ApiError> {
        let images = self.messages.iter().any(|m| m.images.as_ref().is_some_and(|i| !i.is_empty()));
        refuse_images(images)?;
        self.output_options()?;
        self.think()?;
        Ok(())
    }

    /// The tools and format: the model chooses whether to call a tool (Ollama has no
    /// `tool_choice`), and may call several.
    pub(crate) fn output_options(&self) -> Result<OutputOptions, ApiError> {
        let options = OutputOptions {
            tools: ollama_tools(self.tools.as_ref())?,
            format: output_format(self.format.as_ref())?,
            ..OutputOptions::default()
        };
        options.validate("tools", "tools")?;
        Ok(options)
    }

    /// `think`, read.
    pub(crate) fn think(&self) -> Result<Option<bool>, ApiError> {
        think_field(self.think.as_ref())
    }

    /// The reasoning effort of a `think` level.
    pub(crate) fn think_effort(&self) -> Option<ReasoningEffort> {
        think_effort(self.think.as_ref())
    }

    /// The messages for the chat template.
    pub(crate) fn chat_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        self.messages
            .iter()
            .enumerate()
            .map(|(index, message)| message.to_chat_message(index))
            .collect()
    }
}

/// `input` of `POST /api/embed`: one text or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /api/embed`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EmbedRequest {
    pub(crate) model: String,
    pub(crate) input: EmbedInput,
    /// Cut inputs longer than the context to fit (Ollama's default) instead of failing.
    pub(crate) truncate: Option<bool>,
    pub(crate) keep_alive: Option<KeepAliveField>,
}

impl EmbedRequest {
    pub(crate) fn texts(&self) -> Result<Vec<String>, ApiError> {
        let texts = match &self.input {
            EmbedInput::One(text) => vec![text.clone()],
            EmbedInput::Many(texts) => texts.clone(),
        };
        if texts.is_empty() || texts.iter().any(String::is_empty) {
            return Err(ApiError::invalid_request("`input` needs non-empty texts", Some("input")));
        }
        Ok(texts)
    }
}

/// `POST /api/embeddings`, Ollama's older embedding route: one `prompt`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LegacyEmbeddingsRequest {
    pub(crate) model: String,
    pub(crate) prompt: String,
    pub(crate) keep_alive: Option<KeepAliveField>,
}

/// `POST /api/show`: `model`, or `name` as older clients send it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ShowRequest {
    pub(crate) model: Option<String>,
    pub(crate) name: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn options_start_from_ollama_defaults() {
        let params = Options::sampling_params(None).expect("defaults");
        assert_eq!(params, SamplingParams::ollama_defaults());
        let options = Options {
            temperature: Some(0.0),
            top_k: Some(1),
            num_predict: Some(7),
            stop: Some(vec!["\n".into()]),
            seed: Some(-1),
            repeat_last_n: Some(0),
            ..Options::default()
        };
        let params = Options::sampling_params(Some(&options)).expect("valid");
        assert_eq!((params.temperature, params.top_k, params.max_tokens), (0.0, 1, Some(7)));
        assert_eq!(*params.stop, ["\n"]);
        assert_eq!(params.seed, Some(u64::MAX));
        assert_eq!(params.repeat_last_n, 0);
        assert_eq!(params.top_p, 0.9, "untouched options keep Ollama's defaults");
    }

    #[test]
    fn num_predict_minus_one_and_two_mean_no_limit_and_bad_values_are_refused() {
        for n in [-1, -2] {
            let options = Options { num_predict: Some(n), ..Options::default() };
            assert_eq!(Options::sampling_params(Some(&options)).expect("valid").max_tokens, None);
        }
        let zero = Options { num_predict: Some(0), ..Options::default() };
        let error = Options::sampling_params(Some(&zero)).expect_err("zero");
        assert!(error.message.contains("num_predict"), "{}", error.message);
        let hot = Options { temperature: Some(-1.0), ..Options::default() };
        assert!(Options::sampling_params(Some(&hot)).is_err());
    }

    fn chat(fields: serde_json::Value) -> ChatRequest {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (key, value) in fields.as_object().expect("fields") {
            body[key] = value.clone();
        }
        serde_json::from_value(body).expect("parses")
    }

    /// The field a refused chat request names, checked to be a 400 whose message says it too
    /// (Ollama's errors carry only the message).
    fn refused_field(fields: serde_json::Value) -> String {
        let request = chat(fields.clone());
        let error = request
            .check_supported()
            .and_then(|()| request.chat_messages().map(drop))
            .expect_err("refused");
        assert_eq!(error.status, 400, "{fields}");
        error.param.unwrap_or_else(|| panic!("no field named for {fields}"))
    }

    #[test]
    fn format_is_json_or_a_schema_and_anything_else_is_refused() {
        assert_eq!(output_format(None).expect("absent"), None);
        assert_eq!(output_format(Some(&json!(null))).expect("null"), None);
        assert_eq!(output_format(Some(&json!(""))).expect("empty"), None);
        assert_eq!(
            output_format(Some(&json!("json"))).expect("json"),
            Some(GrammarSpec::JsonObject)
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        assert_eq!(
            output_format(Some(&schema)).expect("schema"),
            Some(GrammarSpec::JsonSchema(schema.clone()))
        );
        for bad in [json!("xml"), json!("JSON"), json!(5), json!(["json"]), json!(true)] {
            let error = output_format(Some(&bad)).expect_err("refused");
            assert_eq!(error.param.as_deref(), Some("format"), "{bad}");
            assert!(error.message.contains("format"), "{}", error.message);
        }
        assert_eq!(refused_field(json!({"format": "yaml"})), "format");
        let generate: GenerateRequest =
            serde_json::from_value(json!({"model": "m", "prompt": "x", "format": 1}))
                .expect("parses");
        assert_eq!(
            generate.check_supported().expect_err("format").param.as_deref(),
            Some("format")
        );
    }

    #[test]
    fn think_is_a_bool_or_a_level() {
        assert_eq!(think_field(None).expect("absent"), None);
        assert_eq!(think_field(Some(&json!(null))).expect("null"), None);
        assert_eq!(think_field(Some(&json!(false))).expect("false"), Some(false));
        assert_eq!(think_field(Some(&json!(true))).expect("true"), Some(true));
        assert_eq!(think_field(Some(&json!("low"))).expect("a level"), Some(true));
        for bad in [json!("maybe"), json!(1), json!({})] {
            assert_eq!(
                think_field(Some(&bad)).expect_err("refused").param.as_deref(),
                Some("think")
            );
        }
        assert_eq!(refused_field(json!({"think": "very"})), "think");
        // A level is also the template's reasoning effort (gpt-oss); a boolean sets none.
        assert_eq!(think_effort(Some(&json!("high"))), Some(ReasoningEffort::High));
        assert_eq!(think_effort(Some(&json!("low"))), Some(ReasoningEffort::Low));
        assert_eq!(think_effort(Some(&json!(true))), None);
        assert_eq!(think_effort(None), None);
    }

    #[test]
    fn tools_are_read_bounded_and_checked_by_field() {
        let tool = json!({"type": "function", "function": {
            "name": "get_weather", "description": "The weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}
        }});
        let options = chat(json!({"tools": [tool.clone()], "format": "json"}))
            .output_options()
            .expect("valid");
        assert_eq!(options.tools.len(), 1);
        assert_eq!(options.tools[0].name, "get_weather");
        assert_eq!(options.tools[0].description.as_deref(), Some("The weather of a city"));
        assert_eq!(options.tools[0].parameters["required"], json!(["city"]));
        assert_eq!(options.format, Some(GrammarSpec::JsonObject));
        assert_eq!(options.tool_choice, crate::tools::ToolChoice::Auto);
        for empty in [json!([]), json!(null)] {
            assert!(chat(json!({"tools": empty})).output_options().expect("none").tools.is_empty());
        }

        let many: Vec<_> = (0..1000)
            .map(|i| json!({"type": "function", "function": {"name": format!("f{i}")}}))
            .collect();
        assert_eq!(refused_field(json!({"tools": many})), "tools");
        assert_eq!(refused_field(json!({"tools": "get_weather"})), "tools");
        assert_eq!(refused_field(json!({"tools": [tool.clone(), tool.clone()]})), "tools[1].name");
        assert_eq!(
            refused_field(json!({"tools": [{"type": "function", "function": {"name": "a b"}}]})),
            "tools[0].name"
        );
        assert_eq!(refused_field(json!({"tools": [{"type": "retrieval"}]})), "tools[0].type");
        assert_eq!(
            refused_field(json!({"tools": [{"function": {"description": "no name"}}]})),
            "tools[0].name"
        );
        assert_eq!(
            refused_field(json!({"tools": [{"function": {"name": "f", "parameters": "x"}}]})),
            "tools[0].parameters"
        );
    }

    #[test]
    fn images_stay_refused() {
        let images = json!({"messages": [{"role": "user", "content": "x", "images": ["aGk="]}]});
        assert_eq!(refused_field(images), "images");
        let generate: GenerateRequest =
            serde_json::from_value(json!({"model": "m", "prompt": "x", "images": ["aGk="]}))
                .expect("parses");
        assert!(generate.check_supported().expect_err("images").message.contains("images"));
    }

    #[test]
    fn tool_calls_and_tool_results_in_the_history_reach_the_template() {
        let request = chat(json!({"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"id": "call_7", "function": {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}}
            ]},
            {"role": "tool", "content": "22 degrees", "tool_name": "get_weather"},
            {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_7"},
            {"role": "assistant", "thinking": "Both answered.", "content": null}
        ]}));
        let messages = request.chat_messages().expect("valid");
        assert_eq!(messages.len(), 5);
        let calls = messages[1].tool_calls.as_ref().expect("calls");
        assert_eq!(messages[1].content, None, "a turn that only calls has no content");
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(calls[0].function.arguments, json!({"city": "Paris"}));
        assert_eq!(calls[1].function.arguments, json!({"tz": "CET"}));
        assert_eq!(calls[1].id.as_deref(), Some("call_7"));
        assert_eq!(messages[2].name.as_deref(), Some("get_weather"));
        assert_eq!(messages[2].text(), Some("22 degrees"));
        assert_eq!(messages[3].tool_call_id.as_deref(), Some("call_7"));
        assert_eq!(messages[4].text(), Some(""));
        assert_eq!(messages[4].reasoning.as_deref(), Some("Both answered."), "given back");
        assert_eq!(messages[0].reasoning, None);

        let bad_arguments = |arguments: serde_json::Value| {
            refused_field(json!({"messages": [{"role": "assistant", "tool_calls": [
                {"function": {"name": "f", "arguments": arguments}}
            ]}]}))
        };
        for arguments in [json!([1]), json!("not json"), json!("[1]"), json!(3)] {
            assert_eq!(bad_arguments(arguments), "messages[0].tool_calls[0].function.arguments");
        }
        let request = chat(json!({"messages": [{"role": "narrator", "content": "x"}]}));
        assert_eq!(
            request.chat_messages().expect_err("role").param.as_deref(),
            Some("messages[0].role")
        );
    }
}
