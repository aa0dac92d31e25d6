//! The tool-call syntaxes models are trained on, recognised from their chat templates.

use crate::ParsedToolCall;

/// A family of tool-call syntax.
///
/// [`ToolCallFormat::detect`] picks one from the chat template's source; each variant says which
/// template text it was recognised by. [`OutputParser`](crate::OutputParser) parses every
/// variant, and [`ToolCallFormat::syntax`] describes it for a grammar that forces calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ToolCallFormat {
    /// Hermes 2 Pro, Qwen2.5, Qwen2.5-Coder, QwQ and Qwen3: one tagged JSON object per call, any
    /// number of calls one after another, text allowed before them.
    ///
    /// ```text
    /// <tool_call>
    /// {"name": "get_weather", "arguments": {"city": "Paris"}}
    /// </tool_call>
    /// ```
    ///
    /// Recognised by `<tool_call>` in the template (Qwen2.5:
    /// `{{- '<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}`).
    /// Key order is free (Hermes 2 Pro writes `"arguments"` first). A call object without the
    /// tags, bare or in a ```json fence, as the start of the answer is read as a call too:
    /// Qwen2.5-Coder answers that way when the choice is left to it.
    Hermes,
    /// Llama 3.1, 3.2 and 3.3 with JSON ("custom") tools: the answer is a bare JSON object,
    /// optionally after `<|python_tag|>`; several are separated by `;` or whitespace.
    ///
    /// ```text
    /// {"name": "get_weather", "parameters": {"city": "Paris"}}
    /// ```
    ///
    /// Recognised by `ipython<|end_header_id|>` (the tool-result role:
    /// `{{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}`) or `<|python_tag|>`.
    /// `"arguments"` is accepted for `"parameters"`. A bare object is a call only at the start of
    /// the answer, and only when its first key is `"name"` (or `"type": "function"` first), so a
    /// JSON answer or a JSON example in prose stays content. Built-in tools
    /// (`<|python_tag|>brave_search.call(...)`) are not JSON and are reported as malformed.
    Llama3,
    /// Mistral 7B v0.3, Mistral Nemo, Mistral Small 3 and 3.1: `[TOOL_CALLS]` then a JSON array
    /// of calls, each may carry an `"id"` (ignored).
    ///
    /// ```text
    /// [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    /// ```
    ///
    /// Recognised by `[TOOL_CALLS]` without `[ARGS]` in the template (Mistral Small 3.1:
    /// `{{- "[TOOL_CALLS] [" }}`). The parser also accepts [`ToolCallFormat::MistralArgs`]'s form.
    Mistral,
    /// Mistral Small 3.2, Magistral, Devstral, Ministral 3: each call is
    /// `[TOOL_CALLS]name[ARGS]{...}`, optionally with `[CALL_ID]id` before `[ARGS]` (ignored).
    ///
    /// ```text
    /// [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}
    /// ```
    ///
    /// Recognised by `[TOOL_CALLS]` and `[ARGS]` in the template
    /// (`{{- '[TOOL_CALLS]' + tool_call.function.name }}` … `{{- '[ARGS]' + … }}`). The parser
    /// also accepts [`ToolCallFormat::Mistral`]'s array form.
    MistralArgs,
    /// Templates with no tool syntax the parser knows: the whole answer is one JSON object,
    /// which the server constrains the model to write.
    ///
    /// ```text
    /// {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    /// {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    /// {"response": "It is sunny."}
    /// ```
    ///
    /// The `"response"` shape (an answer without a call, as llama.cpp's generic format allows) is
    /// read as content. Also chosen for templates whose own syntax is not parsed: Qwen3-Coder's
    /// XML calls (`<function=…>`), DeepSeek's `<｜tool▁calls▁begin｜>`, Gemma, Phi.
    Generic,
    /// OpenAI's harmony format (gpt-oss): a call is a message to `functions.NAME` whose text is
    /// the arguments object, ended by `<|call|>` (a stop token: one call per generation).
    ///
    /// ```text
    /// <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>
    /// ```
    ///
    /// Recognised by `<|channel|>` in the template (see
    /// [`ReasoningFormat::Harmony`](crate::ReasoningFormat::Harmony)). The recipient may also
    /// come before the channel (` to=functions.get_weather<|channel|>commentary json<|message|>`,
    /// as gpt-oss's template writes past calls), `<|constrain|>json` and the content type are
    /// optional, and a message to anything but a function (`to=python`, `to=browser.search`,
    /// tools the request cannot declare) is reported as malformed.
    Harmony,
}

/// Where a call trigger counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerPosition {
    /// Anywhere in the answer: text before it is content.
    Anywhere,
    /// Only as the first thing of the answer (after leading whitespace and any reasoning block).
    Start,
}

/// Text whose appearance in free text means "a call starts here", for grammars that only
/// constrain output once a call begins (tool_choice `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallTrigger {
    pub text: &'static str,
    pub position: TriggerPosition,
}

/// How all the calls of one answer are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallWrapping {
    /// Calls follow each other, joined by [`CallSyntax::separator`].
    None,
    /// A JSON array of calls: `[call, call]`.
    JsonArray,
    /// A JSON object holding the array of calls under `key`: `{"tool_calls": [call, call]}`.
    JsonObject { key: &'static str },
}

impl CallWrapping {
    /// The literal before the first call.
    pub fn open(self) -> String {
        match self {
            CallWrapping::None => String::new(),
            CallWrapping::JsonArray => "[".to_owned(),
            CallWrapping::JsonObject { key } => format!("{{\"{key}\": ["),
        }
    }

    /// The literal after the last call.
    pub fn close(self) -> &'static str {
        match self {
            CallWrapping::None => "",
            CallWrapping::JsonArray => "]",
            CallWrapping::JsonObject { .. } => "]}",
        }
    }
}

/// The shape of one call between [`CallSyntax::call_open`] and [`CallSyntax::call_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallBody {
    /// `{"<name_key>": "<name>", "<arguments_key>": {<arguments>}}`.
    JsonObject { name_key: &'static str, arguments_key: &'static str },
    /// The bare name, `separator`, then the arguments object: `get_weather[ARGS]{...}`.
    NameThenArguments { separator: &'static str },
}

/// What a grammar builder needs to force a format's calls. The canonical text of calls is
/// `prefix`, `wrapping.open()`, then for each call `call_open` body `call_close` with `separator`
/// between calls, then `wrapping.close()`; [`ToolCallFormat::render`] writes exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallSyntax {
    /// Written once before all the calls (`[TOOL_CALLS]` for [`ToolCallFormat::Mistral`]).
    pub prefix: &'static str,
    pub wrapping: CallWrapping,
    /// The literal that opens one call (e.g. `"<tool_call>\n"`).
    pub call_open: &'static str,
    /// The literal that closes one call (e.g. `"\n</tool_call>"`).
    pub call_close: &'static str,
    /// Between two calls.
    pub separator: &'static str,
    pub body: CallBody,
    /// Texts that start a call in free text.
    pub triggers: &'static [CallTrigger],
    /// Whether one output can hold several calls. Harmony's cannot: `<|call|>`, which ends a
    /// call, ends the generation.
    pub several_calls: bool,
}

impl CallSyntax {
    /// The text before the first call's body: the prefix, the group's opening, the call's
    /// opening (`"<tool_call>\n"`, `"[TOOL_CALLS]["`).
    pub fn lead(&self) -> String {
        format!("{}{}{}", self.prefix, self.wrapping.open(), self.call_open)
    }

    /// The key holding the arguments (`"arguments"`, `"parameters"`), when the body is an object.
    pub fn arguments_key(&self) -> Option<&'static str> {
        match self.body {
            CallBody::JsonObject { arguments_key, .. } => Some(arguments_key),
            CallBody::NameThenArguments { .. } => None,
        }
    }
}

const NAME_ARGUMENTS: CallBody =
    CallBody::JsonObject { name_key: "name", arguments_key: "arguments" };

const HERMES: CallSyntax = CallSyntax {
    prefix: "",
    wrapping: CallWrapping::None,
    call_open: "<tool_call>\n",
    call_close: "\n</tool_call>",
    separator: "\n",
    body: NAME_ARGUMENTS,
    triggers: &[CallTrigger { text: "<tool_call>", position: TriggerPosition::Anywhere }],
    several_calls: true,
};

const LLAMA3: CallSyntax = CallSyntax {
    prefix: "",
    wrapping: CallWrapping::None,
    call_open: "",
    call_close: "",
    separator: "; ",
    body: CallBody::JsonObject { name_key: "name", arguments_key: "parameters" },
    triggers: &[
        CallTrigger { text: "<|python_tag|>", position: TriggerPosition::Anywhere },
        CallTrigger { text: "{", position: TriggerPosition::Start },
    ],
    several_calls: true,
};

const MISTRAL: CallSyntax = CallSyntax {
    prefix: "[TOOL_CALLS]",
    wrapping: CallWrapping::JsonArray,
    call_open: "",
    call_close: "",
    separator: ", ",
    body: NAME_ARGUMENTS,
    triggers: &[CallTrigger { text: "[TOOL_CALLS]", position: TriggerPosition::Anywhere }],
    several_calls: true,
};

const MISTRAL_ARGS: CallSyntax = CallSyntax {
    prefix: "",
    wrapping: CallWrapping::None,
    call_open: "[TOOL_CALLS]",
    call_close: "",
    separator: "",
    body: CallBody::NameThenArguments { separator: "[ARGS]" },
    triggers: &[CallTrigger { text: "[TOOL_CALLS]", position: TriggerPosition::Anywhere }],
    several_calls: true,
};

const GENERIC: CallSyntax = CallSyntax {
    prefix: "",
    wrapping: CallWrapping::JsonObject { key: "tool_calls" },
    call_open: "",
    call_close: "",
    separator: ", ",
    body: NAME_ARGUMENTS,
    triggers: &[CallTrigger { text: "{", position: TriggerPosition::Start }],
    several_calls: true,
};

/// The call a harmony model writes after `<|start|>assistant`; between two calls (rendered
/// calls only: a generation ends at `<|call|>`), the next message's start.
const HARMONY: CallSyntax = CallSyntax {
    prefix: "",
    wrapping: CallWrapping::None,
    call_open: "<|channel|>commentary to=functions.",
    call_close: "",
    separator: "<|call|><|start|>assistant",
    body: CallBody::NameThenArguments { separator: " <|constrain|>json<|message|>" },
    triggers: &[CallTrigger {
        text: "<|channel|>commentary to=functions.",
        position: TriggerPosition::Anywhere,
    }],
    several_calls: false,
};

impl ToolCallFormat {
    /// The format the template's source uses; [`ToolCallFormat::Generic`] when it shows none
    /// the parser knows.
    pub fn detect(template_source: &str) -> ToolCallFormat {
        let has = |needle: &str| template_source.contains(needle);
        if has(crate::reasoning_format::HARMONY_CHANNEL) {
            ToolCallFormat::Harmony
        } else if has("<tool_call>") {
            // Qwen3-Coder also wraps calls in <tool_call>, but as XML, not JSON.
            if has("<function=") {
                ToolCallFormat::Generic
            } else {
                ToolCallFormat::Hermes
            }
        } else if has("[TOOL_CALLS]") {
            if has("[ARGS]") {
                ToolCallFormat::MistralArgs
            } else {
                ToolCallFormat::Mistral
            }
        } else if has("ipython<|end_header_id|>") || has("<|python_tag|>") {
            ToolCallFormat::Llama3
        } else {
            ToolCallFormat::Generic
        }
    }

    /// The literals and shape of this format's calls.
    pub fn syntax(self) -> CallSyntax {
        match self {
            ToolCallFormat::Hermes => HERMES,
            ToolCallFormat::Llama3 => LLAMA3,
            ToolCallFormat::Mistral => MISTRAL,
            ToolCallFormat::MistralArgs => MISTRAL_ARGS,
            ToolCallFormat::Generic => GENERIC,
            ToolCallFormat::Harmony => HARMONY,
        }
    }

    /// The canonical text of `calls` in this format (empty for no calls). Each call's
    /// `arguments` is written as is, so it must be JSON object text.
    pub fn render(self, calls: &[ParsedToolCall]) -> String {
        if calls.is_empty() {
            return String::new();
        }
        let syntax = self.syntax();
        let mut text = String::from(syntax.prefix);
        text.push_str(&syntax.wrapping.open());
        for (position, call) in calls.iter().enumerate() {
            if position > 0 {
                text.push_str(syntax.separator);
            }
            text.push_str(syntax.call_open);
            match syntax.body {
                CallBody::JsonObject { name_key, arguments_key } => {
                    let name = serde_json::Value::from(call.name.as_str()).to_string();
                    text.push_str(&format!(
                        "{{\"{name_key}\": {name}, \"{arguments_key}\": {}}}",
                        call.arguments
                    ));
                }
                CallBody::NameThenArguments { separator } => {
                    text.push_str(&call.name);
                    text.push_str(separator);
                    text.push_str(&call.arguments);
                }
            }
            text.push_str(syntax.call_close);
        }
        text.push_str(syntax.wrapping.close());
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Excerpts of real templates, enough to show what each is recognised by.
    const QWEN2_5: &str = r#"{{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- for tool_call in message.tool_calls %}{{- '<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}{%- endfor %}"#;
    const QWEN3: &str = r#"{%- if message.tool_calls %}{{- '<tool_call>\n{"name": "' }}{%- endif %}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}"#;
    const QWEN3_CODER: &str = r#"{{- '<tool_call>\n<function=' + tool_call.name + '>\n' }}{{- '<parameter=' + args_name + '>\n' }}"#;
    const LLAMA3_1: &str = r#"{{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
{%- elif message.role == "tool" or message.role == "ipython" %}{{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
{{- '<|python_tag|>' + tool_call.name + '.call(' }}"#;
    const LLAMA3_0: &str = r#"{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}{% endfor %}"#;
    const MISTRAL_SMALL_3_1: &str = r#"{{- "[TOOL_CALLS] [" }}{%- for tool_call in tool_calls %}{%- set out = tool_call.function|tojson %}{{- out[:-1] }}"#;
    const MISTRAL_SMALL_3_2: &str = r#"{{- '[TOOL_CALLS]' + tool_call.function.name }}{{- '[CALL_ID]' + tool_call.id }}{{- '[ARGS]' + tool_call['function']['arguments']|tojson }}"#;
    const GPT_OSS: &str = r#"{{- "<|start|>assistant to=" }}{{- "functions." + tool_call.name + "<|channel|>commentary " }}"#;
    const DEEPSEEK_R1: &str = r#"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name']}}{{'<｜Assistant｜><think>\n'}}"#;

    #[test]
    fn formats_are_detected_from_template_sources() {
        assert_eq!(ToolCallFormat::detect(QWEN2_5), ToolCallFormat::Hermes);
        assert_eq!(ToolCallFormat::detect(QWEN3), ToolCallFormat::Hermes);
        assert_eq!(ToolCallFormat::detect(QWEN3_CODER), ToolCallFormat::Generic);
        assert_eq!(ToolCallFormat::detect(LLAMA3_1), ToolCallFormat::Llama3);
        assert_eq!(ToolCallFormat::detect(LLAMA3_0), ToolCallFormat::Generic);
        assert_eq!(ToolCallFormat::detect(MISTRAL_SMALL_3_1), ToolCallFormat::Mistral);
        assert_eq!(ToolCallFormat::detect(MISTRAL_SMALL_3_2), ToolCallFormat::MistralArgs);
        assert_eq!(ToolCallFormat::detect(DEEPSEEK_R1), ToolCallFormat::Generic);
        assert_eq!(ToolCallFormat::detect(GPT_OSS), ToolCallFormat::Harmony);
        assert_eq!(ToolCallFormat::detect(""), ToolCallFormat::Generic);
    }

    #[test]
    fn syntax_literals() {
        let hermes = ToolCallFormat::Hermes.syntax();
        assert_eq!((hermes.call_open, hermes.call_close), ("<tool_call>\n", "\n</tool_call>"));
        assert_eq!(hermes.arguments_key(), Some("arguments"));
        assert_eq!(ToolCallFormat::Llama3.syntax().arguments_key(), Some("parameters"));
        assert_eq!(ToolCallFormat::Mistral.syntax().wrapping, CallWrapping::JsonArray);
        assert_eq!(ToolCallFormat::MistralArgs.syntax().arguments_key(), None);
        let generic = ToolCallFormat::Generic.syntax();
        assert_eq!(generic.wrapping.open(), "{\"tool_calls\": [");
        assert_eq!(generic.wrapping.close(), "]}");
        let harmony = ToolCallFormat::Harmony.syntax();
        assert_eq!(harmony.arguments_key(), None);
        assert_eq!(harmony.lead(), "<|channel|>commentary to=functions.");
        assert!(!harmony.several_calls && generic.several_calls);
    }

    #[test]
    fn render_writes_the_canonical_text() {
        let calls = [
            ParsedToolCall { name: "a".to_owned(), arguments: "{\"x\":1}".to_owned() },
            ParsedToolCall { name: "b".to_owned(), arguments: "{}".to_owned() },
        ];
        assert_eq!(
            ToolCallFormat::Hermes.render(&calls),
            "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\":1}}\n</tool_call>\n\
             <tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>"
        );
        assert_eq!(
            ToolCallFormat::Llama3.render(&calls),
            "{\"name\": \"a\", \"parameters\": {\"x\":1}}; {\"name\": \"b\", \"parameters\": {}}"
        );
        assert_eq!(
            ToolCallFormat::Mistral.render(&calls),
            "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\":1}}, \
             {\"name\": \"b\", \"arguments\": {}}]"
        );
        assert_eq!(
            ToolCallFormat::MistralArgs.render(&calls),
            "[TOOL_CALLS]a[ARGS]{\"x\":1}[TOOL_CALLS]b[ARGS]{}"
        );
        assert_eq!(
            ToolCallFormat::Generic.render(&calls),
            "{\"tool_calls\": [{\"name\": \"a\", \"arguments\": {\"x\":1}}, \
             {\"name\": \"b\", \"arguments\": {}}]}"
        );
        assert_eq!(
            ToolCallFormat::Harmony.render(&calls),
            "<|channel|>commentary to=functions.a <|constrain|>json<|message|>{\"x\":1}\
             <|call|><|start|>assistant\
             <|channel|>commentary to=functions.b <|constrain|>json<|message|>{}"
        );
        assert_eq!(ToolCallFormat::Hermes.render(&[]), "");
    }
}
