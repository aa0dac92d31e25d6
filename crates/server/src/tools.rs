//! What a chat request asks of its output beyond free text, whatever its API: function tools the
//! model may call and how it must choose among them, a JSON format, and how the answer is read
//! back (tool calls and reasoning parsed out of the text).
//!
//! The APIs' routes turn their own fields into [`OutputOptions`]; [`prepare_chat`] renders the
//! prompt with the tools, compiles the grammar those options need (off the async workers) and
//! says how to parse the output ([`OutputParsing`]).

use serde_json::{json, Value};
use uma_chat_output::{
    CallBody, CallSyntax, OutputParser, ReasoningFormat, ToolCallFormat, TriggerPosition,
};
use uma_engine::{EngineHandle, TokenId};
use uma_grammar::{GrammarError, GrammarSpec, OutputGrammar};
use uma_tokenizer::{ChatMessage, Tokenizer};

use crate::error::ApiError;

/// Most tools one request may declare (OpenAI documents 128).
pub(crate) const MAX_TOOLS: usize = 128;
/// Longest tool name (OpenAI: 64 characters of `a-z A-Z 0-9 _ -`).
pub(crate) const MAX_TOOL_NAME_BYTES: usize = 64;
/// Most template variables one request may set.
pub(crate) const MAX_TEMPLATE_KWARGS: usize = 32;
/// What the template's own variables are: a request cannot set them as keyword arguments.
const RESERVED_TEMPLATE_NAMES: [&str; 4] =
    ["messages", "tools", "documents", "add_generation_prompt"];

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionTool {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    /// The arguments' JSON Schema (an object schema).
    pub(crate) parameters: Value,
}

/// How the model must choose among the tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    /// Never call a tool (the tools are still shown to the model, as OpenAI does).
    None,
    /// Answer in text or call tools, as the model decides.
    #[default]
    Auto,
    /// Call at least one tool.
    Required,
    /// Call this tool.
    Function(String),
}

/// What a chat request asks of its output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputOptions {
    pub(crate) tools: Vec<FunctionTool>,
    pub(crate) tool_choice: ToolChoice,
    /// Whether one answer may hold several calls.
    pub(crate) parallel_tool_calls: bool,
    /// A grammar the answer must follow (a JSON format), when no tool is called.
    pub(crate) format: Option<GrammarSpec>,
    /// Variables for the chat template (`enable_thinking`, ...), as transformers' keyword
    /// arguments of `apply_chat_template`.
    pub(crate) template_kwargs: serde_json::Map<String, Value>,
}

impl Default for OutputOptions {
    fn default() -> OutputOptions {
        OutputOptions {
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel_tool_calls: true,
            format: None,
            template_kwargs: serde_json::Map::new(),
        }
    }
}

impl OutputOptions {
    /// Checks the tools (names, count, duplicates) and the choice against them; errors name
    /// `tools_field` or `choice_field`.
    pub(crate) fn validate(&self, tools_field: &str, choice_field: &str) -> Result<(), ApiError> {
        if self.tools.len() > MAX_TOOLS {
            return Err(ApiError::invalid_request(
                format!("At most {MAX_TOOLS} tools are allowed, got {}.", self.tools.len()),
                Some(tools_field),
            ));
        }
        for (index, tool) in self.tools.iter().enumerate() {
            let valid_name = !tool.name.is_empty()
                && tool.name.len() <= MAX_TOOL_NAME_BYTES
                && tool
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if !valid_name {
                return Err(ApiError::invalid_request(
                    format!(
                        "Tool name {:?} is invalid: 1 to {MAX_TOOL_NAME_BYTES} characters of \
                         a-z, A-Z, 0-9, '_', '-' and '.'.",
                        tool.name
                    ),
                    Some(&format!("{tools_field}[{index}].name")),
                ));
            }
            if self.tools[..index].iter().any(|other| other.name == tool.name) {
                return Err(ApiError::invalid_request(
                    format!("Tool {:?} is declared twice.", tool.name),
                    Some(&format!("{tools_field}[{index}].name")),
                ));
            }
            if !tool.parameters.is_object() {
                return Err(ApiError::invalid_request(
                    "A tool's parameters must be a JSON Schema object.",
                    Some(&format!("{tools_field}[{index}].parameters")),
                ));
            }
        }
        match &self.tool_choice {
            ToolChoice::Function(name) if !self.tools.iter().any(|tool| &tool.name == name) => {
                Err(ApiError::invalid_request(
                    format!("`{choice_field}` names the function {name:?}, which is not among the tools."),
                    Some(choice_field),
                ))
            }
            ToolChoice::Required | ToolChoice::Function(_) if self.tools.is_empty() => {
                Err(ApiError::invalid_request(
                    format!("`{choice_field}` asks for a tool call but no tools were given."),
                    Some(choice_field),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The tools as chat templates take them (`transformers`' format, OpenAI's shape).
    pub(crate) fn template_tools(&self) -> Option<Value> {
        if self.tools.is_empty() {
            return None;
        }
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|tool| {
                let mut function = json!({"name": tool.name});
                if let Some(description) = &tool.description {
                    function["description"] = json!(description);
                }
                function["parameters"] = tool.parameters.clone();
                json!({"type": "function", "function": function})
            })
            .collect();
        Some(Value::Array(tools))
    }

    /// Asks the template to turn the model's thinking on or off (`enable_thinking`, the variable
    /// Qwen 3 and its kin read), unless the request set that variable itself.
    pub(crate) fn with_thinking(mut self, think: Option<bool>) -> OutputOptions {
        if let Some(think) = think {
            self.template_kwargs.entry("enable_thinking").or_insert(Value::Bool(think));
        }
        self
    }

    /// Asks the template for a reasoning effort (`reasoning_effort`, which gpt-oss's harmony
    /// template writes into its system message), unless the request set that variable itself.
    pub(crate) fn with_reasoning_effort(
        mut self,
        effort: Option<ReasoningEffort>,
    ) -> OutputOptions {
        if let Some(effort) = effort {
            self.template_kwargs.entry("reasoning_effort").or_insert(json!(effort.name()));
        }
        self
    }

    /// Whether the answer may contain tool calls.
    fn calls_allowed(&self) -> bool {
        !self.tools.is_empty() && self.tool_choice != ToolChoice::None
    }

    /// The tools a call may name.
    fn callable(&self) -> Vec<&FunctionTool> {
        match &self.tool_choice {
            ToolChoice::Function(name) => self.tools.iter().filter(|t| &t.name == name).collect(),
            _ => self.tools.iter().collect(),
        }
    }
}

/// How hard a reasoning model thinks: OpenAI's `reasoning_effort`, the Responses API's
/// `reasoning.effort`, Ollama's `think` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    /// `low`, `medium` or `high`, and OpenAI's other levels at the nearest of those (`none` and
    /// `minimal` low, `xhigh` high); anything else is a 400 naming `field`.
    pub(crate) fn parse(value: Option<&Value>, field: &str) -> Result<Option<Self>, ApiError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(level)) => match level.as_str() {
                "none" | "minimal" | "low" => Ok(Some(ReasoningEffort::Low)),
                "medium" => Ok(Some(ReasoningEffort::Medium)),
                "high" | "xhigh" => Ok(Some(ReasoningEffort::High)),
                _ => Err(Self::invalid(field)),
            },
            Some(_) => Err(Self::invalid(field)),
        }
    }

    fn invalid(field: &str) -> ApiError {
        let message = format!("`{field}` must be one of none, minimal, low, medium, high, xhigh");
        ApiError::invalid_request(message, Some(field))
    }

    /// The name templates know it by.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// How the text a model generates is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OutputParsing {
    /// `Some` when the request declared tools the model may call.
    pub(crate) tool_format: Option<ToolCallFormat>,
    pub(crate) reasoning: Option<ReasoningFormat>,
    pub(crate) starts_in_reasoning: bool,
}

impl OutputParsing {
    /// How the output of a chat rendered by `template` (its source) into `rendered` is read:
    /// the template's reasoning and tool-call syntax (harmony for gpt-oss, `<think>` and
    /// `<tool_call>` for Qwen, ...), calls only when `calls_allowed`.
    pub(crate) fn of_template(
        template: &str,
        rendered: &str,
        calls_allowed: bool,
    ) -> OutputParsing {
        let reasoning = ReasoningFormat::detect(template);
        let starts_in_reasoning = reasoning.is_some_and(|r| r.starts_in_reasoning(rendered));
        let tool_format = calls_allowed.then(|| ToolCallFormat::detect(template));
        OutputParsing { tool_format, reasoning, starts_in_reasoning }
    }

    /// A parser for one choice.
    pub(crate) fn parser(self) -> OutputParser {
        OutputParser::new(self.tool_format, self.reasoning, self.starts_in_reasoning)
    }
}

/// A chat, ready to submit.
#[derive(Debug)]
pub(crate) struct PreparedChat {
    pub(crate) prompt: Vec<TokenId>,
    pub(crate) grammar: Option<OutputGrammar>,
    pub(crate) parsing: OutputParsing,
}

/// Renders `messages` with the tools of `options`, compiles the grammar the options need, and
/// decides how the output is parsed; all off the async workers. Errors: the prompt's (naming
/// `messages_field`), a format that does not compile (naming `format_field`, the API's name for
/// it), and tool schemas that do not (naming `tools`).
pub(crate) async fn prepare_chat(
    engine: &EngineHandle,
    messages: Vec<ChatMessage>,
    options: OutputOptions,
    messages_field: &'static str,
    format_field: &'static str,
) -> Result<PreparedChat, ApiError> {
    let bytes: usize = messages.iter().map(crate::encode::message_bytes).sum::<usize>()
        + options.template_tools().map_or(0, |tools| tools.to_string().len());
    crate::encode::check_fits(engine, bytes, messages_field)?;
    let prepared = crate::encode::off_the_workers(engine, move |encoder| {
        let tools = options.template_tools();
        let chat = encoder.chat_with_kwargs(&messages, tools.as_ref(), &options.template_kwargs)?;
        let parsing = OutputParsing::of_template(
            encoder.template_source(),
            &chat.rendered,
            options.calls_allowed(),
        );
        let compile = |spec: &GrammarSpec| encoder.grammars()?.compile(spec);
        // The format alone first, even when tool calls take over the grammar: a bad format is
        // the format's fault whatever else the request asks.
        if let Some(format) = &options.format {
            if let Err(error) = compile(format) {
                return Ok(Err(grammar_error(error, format_field)));
            }
        }
        let grammar = match output_grammar(&options, parsing, encoder.tokenizer()) {
            None => None,
            Some((spec, trigger)) => match compile(&spec) {
                Ok(grammar) => Some(OutputGrammar { grammar, trigger }),
                // The format compiled: what fails is the tools' schemas.
                Err(error) => return Ok(Err(grammar_error(error, "tools"))),
            },
        };
        Ok(Ok(PreparedChat { prompt: chat.tokens, grammar, parsing }))
    })
    .await?;
    prepared.map_err(|error| ApiError::invalid_request(error.to_string(), Some(messages_field)))?
}

/// `chat_template_kwargs` (vLLM's and llama.cpp's extension): an object of template variables,
/// at most [`MAX_TEMPLATE_KWARGS`], none of the template's own (`messages`, `tools`, ...).
pub(crate) fn template_kwargs(
    value: Option<&Value>,
    field: &str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let object = match value {
        None | Some(Value::Null) => return Ok(serde_json::Map::new()),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiError::invalid_request(
                format!("`{field}` must be an object."),
                Some(field),
            ))
        }
    };
    if object.len() > MAX_TEMPLATE_KWARGS {
        return Err(ApiError::invalid_request(
            format!("`{field}` may set at most {MAX_TEMPLATE_KWARGS} variables."),
            Some(field),
        ));
    }
    if let Some(name) = object.keys().find(|name| RESERVED_TEMPLATE_NAMES.contains(&name.as_str()))
    {
        return Err(ApiError::invalid_request(
            format!("`{field}` cannot set {name:?}: the request's own fields give it."),
            Some(&format!("{field}.{name}")),
        ));
    }
    Ok(object.clone())
}

/// A grammar that does not compile, as a 400 naming the field that asked for it.
pub(crate) fn grammar_error(error: GrammarError, field: &str) -> ApiError {
    ApiError::invalid_request(
        format!("The requested output format cannot be used: {error}"),
        Some(field),
    )
}

/// The grammar `options` need, and the trigger after which it applies (`None`: from the first
/// token); `None` when the output is free.
fn output_grammar(
    options: &OutputOptions,
    parsing: OutputParsing,
    tokenizer: &Tokenizer,
) -> Option<(GrammarSpec, Option<String>)> {
    // A reasoning model thinks first, freely: the grammar starts after its reasoning block.
    let after_reasoning = parsing
        .reasoning
        .filter(|_| parsing.starts_in_reasoning)
        .map(|reasoning| reasoning.close_tag().to_owned());
    match (&options.tool_choice, parsing.tool_format) {
        (ToolChoice::Required | ToolChoice::Function(_), Some(tool_format)) => {
            let calls = calls_lark(options, tool_format.syntax(), tokenizer, CallsStart::Whole);
            let lark = format!("{}\n{calls}", start_rule("calls", after_reasoning.is_some()));
            Some((GrammarSpec::Lark(lark), after_reasoning))
        }
        (ToolChoice::Auto, Some(tool_format)) => {
            let syntax = tool_format.syntax();
            if tool_format == ToolCallFormat::Generic {
                // The whole answer is one JSON object: calls, or a response in text.
                let calls = calls_lark(options, syntax, tokenizer, CallsStart::Whole);
                let response = json!({
                    "type": "object",
                    "properties": {"response": {"type": "string"}},
                    "required": ["response"],
                    "additionalProperties": false
                });
                let lark = format!("start: calls | %json {response}\n{calls}");
                return Some((GrammarSpec::Lark(lark), after_reasoning));
            }
            // With a format, the answer is either calls or text in the format, from its start.
            if let Some(body) = options.format.as_ref().and_then(format_lark_body) {
                let calls = calls_lark(options, syntax, tokenizer, CallsStart::Whole);
                let start = start_rule(&format!("calls | {body}"), after_reasoning.is_some());
                let lark = format!("{start}\n{calls}");
                return Some((GrammarSpec::Lark(lark), after_reasoning));
            }
            // Free text until the model opens a call, then the call's grammar.
            let lead = syntax.lead();
            let trigger = syntax.triggers.iter().find(|trigger| {
                trigger.position == TriggerPosition::Anywhere && lead.starts_with(trigger.text)
            })?;
            let rest = lead[trigger.text.len()..].to_owned();
            let calls = calls_lark(options, syntax, tokenizer, CallsStart::After(rest));
            Some((
                GrammarSpec::Lark(format!("start: calls\n{calls}")),
                Some(trigger.text.to_owned()),
            ))
        }
        // No call possible: the answer follows the format, if one was asked for.
        _ => options.format.clone().map(|spec| match &after_reasoning {
            Some(_) => (with_leading_space(spec), after_reasoning.clone()),
            None => (spec, None),
        }),
    }
}

/// `spec` after up to four whitespace characters (what models write after `</think>`).
fn with_leading_space(spec: GrammarSpec) -> GrammarSpec {
    match format_lark_body(&spec) {
        Some(body) => GrammarSpec::Lark(start_rule(&body, true)),
        None => spec,
    }
}

/// The Lark start rule: `alternatives`, after up to four whitespace characters when the
/// grammar begins after a reasoning block.
fn start_rule(alternatives: &str, after_reasoning: bool) -> String {
    if after_reasoning {
        format!("start: /[ \\t\\n]{{0,4}}/ ({alternatives})")
    } else {
        format!("start: {alternatives}")
    }
}

/// A format as one Lark term (`None` for a whole Lark grammar, which cannot be nested).
fn format_lark_body(spec: &GrammarSpec) -> Option<String> {
    match spec {
        GrammarSpec::JsonSchema(schema) => Some(format!("%json {schema}")),
        GrammarSpec::JsonObject => Some("%json {\"type\": \"object\"}".to_owned()),
        GrammarSpec::Regex(regex) => Some(format!("/{}/", regex.replace('/', "\\/"))),
        GrammarSpec::Lark(_) => None,
    }
}

/// Where the calls grammar starts.
enum CallsStart {
    /// With the format's prefix and the first call's opening.
    Whole,
    /// After a trigger: with what is left of the opening (`"\n"` after `<tool_call>`).
    After(String),
}

/// The Lark rules `calls` (every call the options allow, in the format's syntax) and `call`.
fn calls_lark(
    options: &OutputOptions,
    syntax: CallSyntax,
    tokenizer: &Tokenizer,
    start: CallsStart,
) -> String {
    let literal = |text: &str| lark_literal(text, tokenizer);
    let lead = match start {
        CallsStart::Whole => syntax.lead(),
        CallsStart::After(rest) => rest,
    };
    let body = match syntax.body {
        CallBody::JsonObject { name_key, arguments_key } => {
            let calls: Vec<Value> = options
                .callable()
                .iter()
                .map(|tool| {
                    json!({
                        "type": "object",
                        "properties": {
                            name_key: {"const": tool.name},
                            arguments_key: tool.parameters,
                        },
                        "required": [name_key, arguments_key],
                        "additionalProperties": false
                    })
                })
                .collect();
            let schema = if calls.len() == 1 { calls[0].clone() } else { json!({"anyOf": calls}) };
            format!("%json {schema}")
        }
        CallBody::NameThenArguments { separator } => options
            .callable()
            .iter()
            .map(|tool| {
                format!("{} {} %json {}", literal(&tool.name), literal(separator), tool.parameters)
            })
            .collect::<Vec<_>>()
            .join(" | "),
    };
    let next_call = format!(
        "{} {} body {}",
        literal(syntax.separator),
        literal(syntax.call_open),
        literal(syntax.call_close)
    );
    // Harmony's `<|call|>` ends the generation: one call per answer, whatever the request says.
    let repeat = if options.parallel_tool_calls && syntax.several_calls {
        format!("({next_call})*")
    } else {
        String::new()
    };
    format!(
        "calls: {} body {} {repeat} {}\nbody: {body}\n",
        literal(&lead),
        literal(syntax.call_close),
        literal(syntax.wrapping.close()),
    )
}

/// `text` as Lark terms: quoted strings, with each special token's spelling in it as `<[id]>`
/// (the grammar must produce that token, not its letters: harmony's
/// `<|channel|>commentary to=functions.` is `<[id]> "commentary to=functions."`); empty text is
/// `""`.
fn lark_literal(text: &str, tokenizer: &Tokenizer) -> String {
    let quoted = |text: &str| Value::from(text).to_string();
    let mut terms = Vec::new();
    let mut rest = text;
    while let Some(spelled) = tokenizer.first_special_spelling(rest) {
        if spelled.start > 0 {
            terms.push(quoted(&rest[..spelled.start]));
        }
        let spelling = &rest[spelled.clone()];
        terms.push(match tokenizer.token_id(spelling) {
            Some(id) => format!("<[{id}]>"),
            None => quoted(spelling),
        });
        rest = &rest[spelled.end..];
    }
    if !rest.is_empty() || terms.is_empty() {
        terms.push(quoted(rest));
    }
    terms.join(" ")
}

/// A list of tools (`tools`, or chat completions' deprecated `functions`): none when absent or
/// null, else an array of at most [`MAX_TOOLS`], each read by `read` (given the item and its
/// field, `tools[i]`). The count is checked first, so that a thousand tools cost nothing but the
/// refusal. Every API reads its tools through this.
pub(crate) fn tool_list(
    value: Option<&Value>,
    field: &str,
    read: impl Fn(&Value, &str) -> Result<FunctionTool, ApiError>,
) -> Result<Vec<FunctionTool>, ApiError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::invalid_request(
                format!("`{field}` must be an array."),
                Some(field),
            ))
        }
    };
    if items.len() > MAX_TOOLS {
        return Err(ApiError::invalid_request(
            format!("At most {MAX_TOOLS} tools are allowed, got {}.", items.len()),
            Some(field),
        ));
    }
    items.iter().enumerate().map(|(index, item)| read(item, &format!("{field}[{index}]"))).collect()
}

/// The OpenAI shape of one tool: `{"type": "function", "function": {"name", "description",
/// "parameters"}}` (`strict` accepted: the schema is enforced either way).
pub(crate) fn openai_tool(value: &Value, field: &str) -> Result<FunctionTool, ApiError> {
    let tool_type = value.get("type").and_then(Value::as_str).unwrap_or("function");
    if tool_type != "function" {
        return Err(ApiError::invalid_request(
            format!("Only tools of type \"function\" are supported, got {tool_type:?}."),
            Some(&format!("{field}.type")),
        ));
    }
    let function = value.get("function").unwrap_or(value);
    function_tool(function, field)
}

/// A function declared as `{"name", "description", "parameters"}` (chat completions' inner
/// object, the Responses API's flat tool, Ollama's).
pub(crate) fn function_tool(function: &Value, field: &str) -> Result<FunctionTool, ApiError> {
    let name = function.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid_request(
            "A function tool needs a \"name\".",
            Some(&format!("{field}.name")),
        )
    })?;
    let description = function.get("description").and_then(Value::as_str).map(str::to_owned);
    let parameters = match function.get("parameters").or_else(|| function.get("input_schema")) {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(parameters) => parameters.clone(),
    };
    Ok(FunctionTool { name: name.to_owned(), description, parameters })
}

/// OpenAI's `tool_choice`: `"none"`, `"auto"`, `"required"`, or
/// `{"type": "function", "function": {"name"}}` (also the Responses API's `{"type": "function",
/// "name"}`).
pub(crate) fn openai_tool_choice(
    value: Option<&Value>,
    field: &str,
) -> Result<ToolChoice, ApiError> {
    let invalid = || {
        ApiError::invalid_request(
            format!("`{field}` must be \"none\", \"auto\", \"required\" or a function to call."),
            Some(field),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" | "any" => Ok(ToolChoice::Required),
            _ => Err(invalid()),
        },
        Some(Value::Object(object)) => {
            let name = object
                .get("function")
                .and_then(|function| function.get("name"))
                .or_else(|| object.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(invalid)?;
            Ok(ToolChoice::Function(name.to_owned()))
        }
        Some(_) => Err(invalid()),
    }
}

/// A JSON format request: `json_object`, or `json_schema` with its `schema` (OpenAI's chat
/// `response_format` nests it under `json_schema`, the Responses API's `text.format` does not).
pub(crate) fn openai_response_format(
    value: Option<&Value>,
    field: &str,
) -> Result<Option<GrammarSpec>, ApiError> {
    let Some(value) = value.filter(|value| !value.is_null()) else { return Ok(None) };
    let format_type = value.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid_request(
            format!("`{field}` needs a \"type\"."),
            Some(&format!("{field}.type")),
        )
    })?;
    match format_type {
        "text" => Ok(None),
        "json_object" => Ok(Some(GrammarSpec::JsonObject)),
        "json_schema" => {
            let holder = value.get("json_schema").unwrap_or(value);
            let schema =
                holder.get("schema").filter(|schema| schema.is_object()).ok_or_else(|| {
                    ApiError::invalid_request(
                        format!("`{field}` of type json_schema needs a \"schema\" object."),
                        Some(&format!("{field}.json_schema.schema")),
                    )
                })?;
            Ok(Some(GrammarSpec::JsonSchema(schema.clone())))
        }
        other => Err(ApiError::invalid_request(
            format!("`{field}` type {other:?} is not supported (text, json_object, json_schema)."),
            Some(&format!("{field}.type")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_kwargs_are_an_object_of_free_names() {
        let kwargs = template_kwargs(Some(&json!({"enable_thinking": false})), "k").unwrap();
        assert_eq!(kwargs.get("enable_thinking"), Some(&json!(false)));
        assert!(template_kwargs(None, "k").unwrap().is_empty());
        let param = |value: Value| template_kwargs(Some(&value), "k").unwrap_err().param;
        assert_eq!(param(json!("yes")).as_deref(), Some("k"));
        assert_eq!(param(json!({"messages": []})).as_deref(), Some("k.messages"));
        let many: serde_json::Map<String, Value> =
            (0..=MAX_TEMPLATE_KWARGS).map(|i| (format!("v{i}"), json!(i))).collect();
        assert_eq!(param(Value::Object(many)).as_deref(), Some("k"));
    }

    #[test]
    fn thinking_sets_enable_thinking_unless_the_request_did() {
        let options = OutputOptions::default().with_thinking(Some(false));
        assert_eq!(options.template_kwargs.get("enable_thinking"), Some(&json!(false)));
        assert!(OutputOptions::default().with_thinking(None).template_kwargs.is_empty());
        let mut kwargs = serde_json::Map::new();
        kwargs.insert("enable_thinking".into(), json!(true));
        let options = OutputOptions { template_kwargs: kwargs, ..OutputOptions::default() }
            .with_thinking(Some(false));
        assert_eq!(options.template_kwargs.get("enable_thinking"), Some(&json!(true)));
    }

    /// gpt-oss's template, as far as it shows its syntax: the generation prompt and a past call.
    const GPT_OSS: &str = r#"{{- "<|start|>assistant to=" }}{{- "functions." + tool_call.name + "<|channel|>commentary " }}{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}"#;

    /// GPT-2's byte-level alphabet: each byte's character in a byte-level vocabulary.
    fn byte_level_char(byte: u8) -> char {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if printable(byte) {
            return char::from(byte);
        }
        let shifted = (0..byte).filter(|&b| !printable(b)).count() as u32;
        char::from_u32(0x100 + shifted).expect("a character")
    }

    /// A stand-in for gpt-oss's vocabulary (no test model has it): every byte as a token, then
    /// harmony's special tokens from id 256 on.
    fn harmony_tokenizer() -> Tokenizer {
        const SPECIAL: [&str; 7] = [
            "<|return|>",
            "<|call|>",
            "<|start|>",
            "<|channel|>",
            "<|message|>",
            "<|end|>",
            "<|constrain|>",
        ];
        let vocab: serde_json::Map<String, Value> =
            (0..=255u8).map(|b| (byte_level_char(b).to_string(), json!(b))).collect();
        let added: Vec<Value> = SPECIAL
            .iter()
            .enumerate()
            .map(|(i, text)| {
                json!({"id": 256 + i, "content": text, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
                                "trim_offsets": true, "use_regex": true});
        let tokenizer = json!({
            "version": "1.0", "added_tokens": added, "normalizer": null,
            "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": []},
        });
        let dir = std::env::temp_dir().join(format!(
            "uma-server-harmony-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, tokenizer.to_string()).expect("write");
        let loaded = Tokenizer::from_tokenizer_json(&path).expect("loads");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        loaded
    }

    fn weather_options(tool_choice: ToolChoice) -> OutputOptions {
        let parameters = json!({"type": "object", "properties": {"city": {"type": "string"}},
                                "required": ["city"], "additionalProperties": false});
        let tool = FunctionTool { name: "get_weather".into(), description: None, parameters };
        OutputOptions { tools: vec![tool], tool_choice, ..OutputOptions::default() }
    }

    /// Commits the tokens of `text` to `constraint`, each allowed by its mask; returns what the
    /// last commit said.
    fn follow(
        constraint: &mut uma_grammar::Constraint,
        tokenizer: &Tokenizer,
        text: &str,
    ) -> uma_grammar::Commit {
        let mut last = uma_grammar::Commit::Continue;
        for id in tokenizer.encode(text, false, true).expect("encodes") {
            if let Some(mask) = constraint.mask().expect("a mask") {
                assert!(mask.allows(id), "{:?} refused in {text:?}", tokenizer.token_text(id));
            }
            last = constraint.commit(id).expect("commits");
        }
        last
    }

    #[test]
    fn harmony_templates_read_analysis_final_and_calls() {
        let rendered = "<|start|>user<|message|>Weather?<|end|><|start|>assistant";
        let parsing = OutputParsing::of_template(GPT_OSS, rendered, true);
        assert_eq!(
            parsing,
            OutputParsing {
                tool_format: Some(ToolCallFormat::Harmony),
                reasoning: Some(ReasoningFormat::Harmony),
                starts_in_reasoning: false,
            }
        );
        let text = "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant\
                    <|channel|>commentary<|message|>Checking.<|end|><|start|>assistant\
                    <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>\
                    {\"city\": \"Paris\"}";
        let mut parser = parsing.parser();
        parser.push(text);
        let parsed = parser.finish().1;
        assert_eq!(parsed.reasoning.as_deref(), Some("Need the weather."));
        assert_eq!(parsed.content, "Checking.");
        assert_eq!(parsed.tool_calls.len(), 1);
        assert_eq!(parsed.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        // tool_choice none: the analysis is still reasoning, a call is text.
        let parsing = OutputParsing::of_template(GPT_OSS, rendered, false);
        assert_eq!(parsing.tool_format, None);
        let mut parser = parsing.parser();
        parser.push(
            "<|channel|>analysis<|message|>Hm.<|end|><|start|>assistant\
             <|channel|>final<|message|>Hi.",
        );
        let parsed = parser.finish().1;
        assert_eq!((parsed.reasoning.as_deref(), &parsed.content[..]), (Some("Hm."), "Hi."));
    }

    #[test]
    fn special_token_spellings_are_tokens_in_grammars() {
        let tokenizer = harmony_tokenizer();
        let literal = |text: &str| lark_literal(text, &tokenizer);
        assert_eq!(
            literal("<|channel|>commentary to=functions."),
            r#"<[259]> "commentary to=functions.""#
        );
        assert_eq!(literal(" <|constrain|>json<|message|>"), r#"" " <[262]> "json" <[260]>"#);
        assert_eq!(literal("<|call|>"), "<[257]>");
        assert_eq!(literal("plain"), r#""plain""#);
        assert_eq!(literal(""), r#""""#);
    }

    #[test]
    fn harmony_calls_are_forced_in_its_syntax_one_per_answer() {
        let tokenizer = harmony_tokenizer();
        let compiler = uma_grammar::GrammarCompiler::new(&tokenizer).expect("compiler");
        let parsing = OutputParsing::of_template(GPT_OSS, "<|start|>assistant", true);
        let call = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>\
                    {\"city\": \"Paris\"}";

        // Required: the call from the first token, `<|channel|>` as the token, not its letters.
        let options = weather_options(ToolChoice::Required);
        let (spec, trigger) = output_grammar(&options, parsing, &tokenizer).expect("a grammar");
        assert_eq!(trigger, None);
        let grammar = compiler.compile(&spec).expect("compiles");
        let mut constraint = OutputGrammar { grammar, trigger }.start();
        let first = constraint.mask().expect("mask").expect("active");
        assert_eq!(first.num_allowed(), 1);
        assert!(first.allows(tokenizer.token_id("<|channel|>").expect("the token")));
        assert_eq!(follow(&mut constraint, &tokenizer, call), uma_grammar::Commit::Finished);

        // Auto: free (reasoning first) until the model opens a call, then the call's grammar.
        let options = weather_options(ToolChoice::Auto);
        let (spec, trigger) = output_grammar(&options, parsing, &tokenizer).expect("a grammar");
        assert_eq!(trigger.as_deref(), Some("<|channel|>commentary to=functions."));
        let grammar = compiler.compile(&spec).expect("compiles");
        let mut constraint = OutputGrammar { grammar, trigger }.start();
        let thinking = "<|channel|>analysis<|message|>Weather.<|end|><|start|>assistant";
        assert_eq!(follow(&mut constraint, &tokenizer, thinking), uma_grammar::Commit::Continue);
        assert!(constraint.is_dormant());
        assert_eq!(follow(&mut constraint, &tokenizer, call), uma_grammar::Commit::Finished);
    }
}
