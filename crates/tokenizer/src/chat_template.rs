//! [`ChatTemplate`]: rendering a conversation into a prompt with the model's Jinja template.
//!
//! The environment reproduces what `transformers`' `apply_chat_template` gives templates (Jinja2
//! in its sandbox), so that a template renders byte-identical text in uma:
//! - `trim_blocks` and `lstrip_blocks`, loop controls, transformers' `{% generation %}` block;
//! - the variables: `messages`, `tools`, `documents`, `add_generation_prompt`, the named special
//!   tokens the tokenizer has (absent ones stay undefined) and the caller's keyword arguments;
//! - Python string/dict methods (`.strip()`, `.startswith()`, `.items()`, `.rsplit()`, ... via
//!   `minijinja-contrib`'s pycompat and a few more), `raise_exception`, `strftime_now`, `cycler`,
//!   `joiner`, and a `tojson` that writes like Python's `json.dumps` (no HTML escaping, `", "` and
//!   `": "` separators, keys in insertion order, `indent`/`separators`/`sort_keys`/`ensure_ascii`);
//! - Python's way of printing values (`None`, `True`, `1e+20`, `{'a': [1, 'x']}`), in `{{ }}` and
//!   in `|string`;
//! - Jinja2's semantics where minijinja's differ: `length` of an undefined value is 0 and of
//!   `none` an error, `none` is not `iterable`, strings and dicts are `sequence`s, booleans are
//!   `number`s, `map`/`select`/`reject`/`selectattr`/`rejectattr` give generators (true even when
//!   empty, no length, not JSON).
//!
//! Known differences, which minijinja gives no hook for: a for-loop over `none` renders nothing
//! (Python raises), `"text"|safe + value` does not HTML-escape `value` (Jinja2's `Markup` does),
//! `~` writes dicts and lists JSON-style, tuples are lists, no `%` string formatting.
//! `tests/golden_tool_templates.rs` checks all of it against transformers.

use std::borrow::Cow;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectExt, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{Environment, ErrorKind, State};
use uma_gguf::{keys, GgufFile};

use crate::chat_message::ChatMessage;
use crate::error::{Result, TokenizerError};

const TEMPLATE_NAME: &str = "chat";
const RAISED_MARKER: &str = "raise_exception: ";
/// Variables the renderer itself sets.
const RESERVED_VARIABLES: [&str; 4] = ["messages", "tools", "documents", "add_generation_prompt"];

/// Google's official Gemma 3 chat template (the `chat_template` of the Gemma 3 instruction-tuned
/// `tokenizer_config.json`), verbatim. GGUF files of Gemma 3 base models carry no template.
pub(crate) const GEMMA3_TEMPLATE: &str = include_str!("templates/gemma3.jinja");
/// ChatML, for files that carry no template and have no built-in one.
pub(crate) const CHATML_TEMPLATE: &str = include_str!("templates/chatml.jinja");

/// Where a template came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// `tokenizer.chat_template` in the file.
    File,
    /// The built-in Gemma 3 template (the file had none).
    BuiltinGemma3,
    /// The built-in ChatML fallback (the file had none, and the architecture has no built-in).
    BuiltinChatMl,
    /// Given by the caller.
    Custom,
}

/// A compiled chat template with the special-token strings it may use.
pub struct ChatTemplate {
    environment: Environment<'static>,
    source: String,
    origin: TemplateOrigin,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// Further named special tokens templates see (`pad_token`, `unk_token`), as transformers
    /// passes every named special token of the tokenizer.
    other_tokens: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("source_len", &self.source.len())
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// The file's `tokenizer.chat_template`, or the built-in one for `architecture` (Gemma 3), or
    /// ChatML. `bos_token`/`eos_token` are the texts of the file's BOS/EOS ids.
    pub fn from_gguf(file: &GgufFile, architecture: &str) -> Result<ChatTemplate> {
        let metadata = file.metadata();
        let tokens = metadata.get_str_array(keys::TOKENIZER_TOKENS)?.unwrap_or(&[]);
        let token_text = |key: &str| -> Result<Option<String>> {
            Ok(metadata.get_u32(key)?.and_then(|id| tokens.get(id as usize)).cloned())
        };
        let bos_token = token_text(keys::TOKENIZER_BOS_ID)?;
        let eos_token = token_text(keys::TOKENIZER_EOS_ID)?;
        let mut other_tokens = Vec::new();
        for (name, key) in
            [("unk_token", keys::TOKENIZER_UNKNOWN_ID), ("pad_token", keys::TOKENIZER_PADDING_ID)]
        {
            if let Some(text) = token_text(key)? {
                other_tokens.push((name, text));
            }
        }
        let (source, origin) = match metadata.get_str(keys::TOKENIZER_CHAT_TEMPLATE)? {
            Some(source) => (source.to_owned(), TemplateOrigin::File),
            None => ChatTemplate::builtin_for(architecture),
        };
        let mut template = ChatTemplate::compile(source, origin, bos_token, eos_token)?;
        template.other_tokens = other_tokens;
        Ok(template)
    }

    /// The template uma uses for `architecture` when a file has none.
    pub fn builtin_for(architecture: &str) -> (String, TemplateOrigin) {
        if architecture.starts_with("gemma") {
            (GEMMA3_TEMPLATE.to_owned(), TemplateOrigin::BuiltinGemma3)
        } else {
            (CHATML_TEMPLATE.to_owned(), TemplateOrigin::BuiltinChatMl)
        }
    }

    /// A template from Jinja source.
    pub fn new(
        source: impl Into<String>,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<ChatTemplate> {
        ChatTemplate::compile(source.into(), TemplateOrigin::Custom, bos_token, eos_token)
    }

    fn compile(
        source: String,
        origin: TemplateOrigin,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<ChatTemplate> {
        let mut environment = Environment::new();
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        environment.set_unknown_method_callback(python_method);
        environment.set_formatter(python_formatter);
        environment.add_filter("tojson", tojson);
        environment.add_filter("string", python_string);
        environment.add_filter("length", length);
        environment.add_filter("count", length);
        // Jinja2's map/select/reject/selectattr/rejectattr return generators: always true in
        // an `if`, without a length, not serializable by tojson.
        environment.add_filter("map", |state: &State, value: Value, args: Rest<Value>| {
            minijinja::filters::map(state, value, args).map(Generator::value)
        });
        environment.add_filter(
            "select",
            |state: &State, value: Value, test: Option<String>, args: Rest<Value>| {
                minijinja::filters::select(state, value, test.map(Cow::Owned), args)
                    .map(Generator::value)
            },
        );
        environment.add_filter(
            "reject",
            |state: &State, value: Value, test: Option<String>, args: Rest<Value>| {
                minijinja::filters::reject(state, value, test.map(Cow::Owned), args)
                    .map(Generator::value)
            },
        );
        environment.add_filter(
            "selectattr",
            |state: &State, value: Value, attr: String, test: Option<String>, args: Rest<Value>| {
                minijinja::filters::selectattr(
                    state,
                    value,
                    Cow::Owned(attr),
                    test.map(Cow::Owned),
                    args,
                )
                .map(Generator::value)
            },
        );
        environment.add_filter(
            "rejectattr",
            |state: &State, value: Value, attr: String, test: Option<String>, args: Rest<Value>| {
                minijinja::filters::rejectattr(
                    state,
                    value,
                    Cow::Owned(attr),
                    test.map(Cow::Owned),
                    args,
                )
                .map(Generator::value)
            },
        );
        environment.add_test("iterable", is_iterable);
        environment.add_test("sequence", is_sequence);
        environment.add_test("number", is_number);
        // Jinja2's cycler takes the items as arguments, minijinja-contrib's as one list.
        environment.add_function("cycler", |items: Rest<Value>| {
            minijinja_contrib::globals::cycler(items.0)
        });
        environment.add_function("joiner", minijinja_contrib::globals::joiner);
        environment.add_function("raise_exception", raise_exception);
        environment.add_function("strftime_now", strftime_now);
        environment
            .add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(&source))
            .map_err(|e| TokenizerError::TemplateSyntax { message: describe(&e) })?;
        Ok(ChatTemplate {
            environment,
            source,
            origin,
            bos_token,
            eos_token,
            other_tokens: Vec::new(),
        })
    }

    /// Renders `messages` (and the tool schemas `tools`, a JSON array, for templates that
    /// support tools). `add_generation_prompt`: end with the opening of an assistant turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_with_kwargs(messages, tools, add_generation_prompt, &serde_json::Map::new())
    }

    /// The prompt for the next answer ([`Self::render_with_kwargs`] with the generation
    /// prompt), with the reasoning given back treated as a hint: a template that refuses the
    /// conversation with it (gpt-oss's raises for reasoning beside an answer in a turn that calls
    /// tools) gets it without. Returns the text and whether reasoning was left out.
    pub fn render_generation_prompt(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(String, bool)> {
        match self.render_with_kwargs(messages, tools, true, kwargs) {
            Err(TokenizerError::TemplateRaised { .. })
                if messages.iter().any(|m| m.reasoning.is_some()) =>
            {
                let text =
                    self.render_with_kwargs(&without_reasoning(messages), tools, true, kwargs)?;
                Ok((text, true))
            }
            result => Ok((result?, false)),
        }
    }

    /// [`render`](Self::render) with extra template variables, like the keyword arguments of
    /// transformers' `apply_chat_template(..., **kwargs)` (llama.cpp's `chat_template_kwargs`):
    /// `enable_thinking`, `reasoning_effort`, ... They override the special tokens of the same
    /// name; `messages`, `tools`, `documents` and `add_generation_prompt` cannot be given here.
    pub fn render_with_kwargs(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let template = self
            .environment
            .get_template(TEMPLATE_NAME)
            .expect("the template was added when the ChatTemplate was built");
        // What transformers gives a template: the named special tokens the tokenizer has (absent
        // ones stay undefined), overridden by the keyword arguments, then the conversation.
        let mut context: std::collections::BTreeMap<String, Value> =
            std::collections::BTreeMap::new();
        let named = [("bos_token", &self.bos_token), ("eos_token", &self.eos_token)];
        for (name, text) in named {
            if let Some(text) = text {
                context.insert(name.to_owned(), Value::from(text.as_str()));
            }
        }
        for (name, text) in &self.other_tokens {
            context.insert((*name).to_owned(), Value::from(text.as_str()));
        }
        for (name, value) in kwargs {
            if RESERVED_VARIABLES.contains(&name.as_str()) {
                return Err(TokenizerError::TemplateRender {
                    message: format!("`{name}` cannot be passed as a template keyword argument"),
                });
            }
            context.insert(name.clone(), Value::from_serialize(value));
        }
        context.insert("messages".to_owned(), template_messages(messages));
        context.insert(
            "tools".to_owned(),
            tools.map(Value::from_serialize).unwrap_or(Value::from(())),
        );
        context.insert("documents".to_owned(), Value::from(()));
        context.insert("add_generation_prompt".to_owned(), Value::from(add_generation_prompt));
        template.render(context).map_err(|error| {
            let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            while let Some(e) = current {
                if let Some(jinja) = e.downcast_ref::<minijinja::Error>() {
                    if let Some(message) =
                        jinja.detail().and_then(|d| d.strip_prefix(RAISED_MARKER))
                    {
                        return TokenizerError::TemplateRaised { message: message.to_owned() };
                    }
                }
                current = e.source();
            }
            TokenizerError::TemplateRender { message: describe(&error) }
        })
    }

    /// Makes `strftime_now` report `unix_seconds` (UTC) instead of the current time, so that a
    /// template that prints today's date renders reproducibly (tests, cached prompts).
    pub fn set_now(&mut self, unix_seconds: i64) {
        self.environment.add_function("strftime_now", move |format: String| {
            strftime_value(&format, unix_seconds)
        });
    }

    /// Whether `rendered` (output of [`render`](Self::render)) already starts with the BOS text,
    /// in which case the caller must encode it without adding another BOS.
    pub fn starts_with_bos(&self, rendered: &str) -> bool {
        self.bos_token.as_deref().is_some_and(|bos| !bos.is_empty() && rendered.starts_with(bos))
    }

    /// The BOS text templates see as `bos_token`.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The EOS text templates see as `eos_token`.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the template came from.
    pub fn origin(&self) -> TemplateOrigin {
        self.origin
    }
}

fn describe(error: &minijinja::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

/// Writes `{{ value }}` as Jinja2 does: Python's `str(value)` (`None`, `True`, `1e+20`,
/// `{'a': [1, 'x']}`), nothing for an undefined value.
fn python_formatter(
    out: &mut minijinja::Output,
    _state: &minijinja::State,
    value: &Value,
) -> std::result::Result<(), minijinja::Error> {
    let write_error =
        |e| minijinja::Error::new(ErrorKind::WriteFailure, "writing output").with_source(e);
    if let Some(text) = value.as_str() {
        return out.write_str(text).map_err(write_error);
    }
    let mut text = String::new();
    python_str(value, &mut text);
    out.write_str(&text).map_err(write_error)
}

/// Jinja2's `string` filter: Python's `str(value)`.
fn python_string(value: Value) -> Value {
    if value.kind() == ValueKind::String {
        return value;
    }
    let mut text = String::new();
    python_str(&value, &mut text);
    Value::from(text)
}

/// Python's `str(value)` for the values templates handle.
fn python_str(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::String => out.push_str(value.as_str().unwrap_or_default()),
        _ => python_repr(value, out),
    }
}

/// Python's `repr(value)`: how values inside a printed list or dict appear.
fn python_repr(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number if !value.is_integer() => match f64::try_from(value.clone()) {
            Ok(f) => out.push_str(&python_float(f, false)),
            Err(_) => out.push_str(&value.to_string()),
        },
        ValueKind::String => python_repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq => {
            out.push('[');
            for (i, item) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(&item, out);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(&key, out);
                out.push_str(": ");
                python_repr(&value.get_item(&key).unwrap_or_default(), out);
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`; backslash escapes
/// for the quote, `\\`, `\n`, `\r`, `\t` and characters Python does not print.
fn python_repr_str(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if python_printable(c) => out.push(c),
            c if u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character: everything but the categories Cc, Cf, Cs,
/// Co, Cn, Zl, Zp and Zs (except the ASCII space). Format characters are the ones listed; of
/// the unassigned code points only the noncharacters are known here.
fn python_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let code = u32::from(c);
    let format_or_private = matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE000..=0xF8FF
            | 0xF0000..=0x10FFFF
            | 0xFDD0..=0xFDEF
    );
    !format_or_private && (code & 0xFFFE) != 0xFFFE
}

/// Methods Jinja2 templates call on Python values: `minijinja-contrib`'s pycompat, plus the
/// string methods it lacks.
fn python_method(
    state: &minijinja::State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> std::result::Result<Value, minijinja::Error> {
    if let Some(text) = value.as_str() {
        match method {
            "rsplit" => {
                let (separator, max_split): (Option<&str>, Option<i64>) =
                    minijinja::value::from_args(args)?;
                return python_rsplit(text, separator, max_split.unwrap_or(-1));
            }
            "removeprefix" => {
                let (prefix,): (&str,) = minijinja::value::from_args(args)?;
                return Ok(Value::from(text.strip_prefix(prefix).unwrap_or(text)));
            }
            "removesuffix" => {
                let (suffix,): (&str,) = minijinja::value::from_args(args)?;
                return Ok(Value::from(text.strip_suffix(suffix).unwrap_or(text)));
            }
            "partition" | "rpartition" => {
                let (separator,): (&str,) = minijinja::value::from_args(args)?;
                if separator.is_empty() {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "empty separator",
                    ));
                }
                let found = if method == "partition" {
                    text.find(separator)
                } else {
                    text.rfind(separator)
                };
                let parts = match found {
                    Some(at) => [&text[..at], separator, &text[at + separator.len()..]],
                    None if method == "partition" => [text, "", ""],
                    None => ["", "", text],
                };
                return Ok(Value::from(parts.map(str::to_owned).to_vec()));
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// Python's `str.rsplit(separator, max_split)`.
fn python_rsplit(
    text: &str,
    separator: Option<&str>,
    max_split: i64,
) -> std::result::Result<Value, minijinja::Error> {
    let limit = usize::try_from(max_split).ok();
    let mut parts: Vec<String> = Vec::new();
    match separator {
        Some("") => {
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "empty separator"));
        }
        Some(separator) => {
            let mut rest = text;
            while limit.is_none_or(|limit| parts.len() < limit) {
                let Some(at) = rest.rfind(separator) else { break };
                parts.push(rest[at + separator.len()..].to_owned());
                rest = &rest[..at];
            }
            parts.push(rest.to_owned());
        }
        None => {
            // Runs of whitespace separate; leading and trailing whitespace give no empty parts.
            let mut rest = text.trim_end();
            while !rest.is_empty() {
                if limit.is_some_and(|limit| parts.len() >= limit) {
                    parts.push(rest.to_owned());
                    break;
                }
                match rest.rfind(char::is_whitespace) {
                    Some(at) => {
                        let width = rest[at..].chars().next().map_or(1, char::len_utf8);
                        parts.push(rest[at + width..].to_owned());
                        rest = rest[..at].trim_end();
                    }
                    None => {
                        parts.push(rest.to_owned());
                        break;
                    }
                }
            }
        }
    }
    parts.reverse();
    Ok(Value::from(parts))
}

/// Jinja2's `sequence` test (`len(value)` and `value[...]` exist): lists, strings, dicts, and
/// undefined values, which Jinja2 gives both; not `none` or numbers.
fn is_sequence(value: Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::String | ValueKind::Map | ValueKind::Undefined
    )
}

/// Jinja2's `number` test (`isinstance(value, numbers.Number)`): Python's booleans are numbers.
fn is_number(value: Value) -> bool {
    matches!(value.kind(), ValueKind::Number | ValueKind::Bool)
}

/// transformers' `{% generation %}...{% endgeneration %}` block (its AssistantTracker
/// extension, which marks assistant text for training masks) renders its body unchanged in a scope
/// of its own (the body is a macro): it becomes `{% with %}...{% endwith %}`, keeping the
/// whitespace-control signs.
fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else { break };
        let inner = &tag[2..end];
        let body = inner.trim_start_matches(['-', '+']).trim_end_matches(['-', '+']);
        let replacement = match body.trim() {
            "generation" => Some("with"),
            "endgeneration" => Some("endwith"),
            _ => None,
        };
        match replacement {
            Some(keyword) => {
                out.push_str("{%");
                out.push_str(&inner.replacen(body.trim(), keyword, 1));
                out.push_str("%}");
            }
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The result of a filter that is a generator in Jinja2 (`map`, `select`, ...): it iterates like
/// the list, but is true even when empty and has no length.
#[derive(Debug)]
struct Generator(Vec<Value>);

impl Generator {
    fn value(items: Vec<Value>) -> Value {
        Value::from_object(Generator(items))
    }
}

impl Object for Generator {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_enumerator(|this| Box::new(this.0.iter().cloned()))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        None
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }
}

/// Jinja2's `length`: `len(value)`, where an undefined value has length 0 and `none` has none.
fn length(value: Value) -> std::result::Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Ok(Value::from(0));
    }
    value.len().map(Value::from).ok_or_else(|| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("object of type {} has no len()", value.kind()),
        )
    })
}

/// Jinja2's `iterable` test (`iter(value)` succeeds): `none` is not iterable, undefined is.
fn is_iterable(value: Value) -> bool {
    !value.is_none() && value.try_iter().is_ok()
}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("{RAISED_MARKER}{message}")))
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`
/// with the same keyword arguments, as transformers installs it.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    check_json_serializable(&value)?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    // json.dumps' defaults: ", " between items without indent, "," with it; ": " after keys.
    let (item_separator, key_separator) = match separators.filter(|s| !s.is_none()) {
        Some(pair) => {
            let pair: Vec<String> = pair
                .try_iter()?
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .unwrap_or_default();
            match <[String; 2]>::try_from(pair) {
                Ok([item, key]) => (item, key),
                Err(_) => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be (item_separator, key_separator)",
                    ))
                }
            }
        }
        None if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
    };
    let writer = PythonJson {
        indent,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
        item_separator,
        key_separator,
    };
    let mut out = String::new();
    writer.write(&json, 0, &mut out);
    Ok(Value::from(out))
}

/// `json.dumps` refuses what is not JSON: an undefined value, a generator.
fn check_json_serializable(value: &Value) -> std::result::Result<(), minijinja::Error> {
    let refuse = |kind: &str| {
        Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: Object of type {kind} is not JSON serializable"),
        ))
    };
    match value.kind() {
        ValueKind::Undefined => refuse("Undefined"),
        ValueKind::Iterable => refuse("generator"),
        ValueKind::Seq => value.try_iter()?.try_for_each(|item| check_json_serializable(&item)),
        ValueKind::Map => value.try_iter()?.try_for_each(|key| {
            check_json_serializable(&key)?;
            check_json_serializable(&value.get_item(&key)?)
        }),
        _ => Ok(()),
    }
}

struct PythonJson {
    indent: Option<usize>,
    ensure_ascii: bool,
    sort_keys: bool,
    item_separator: String,
    key_separator: String,
}

impl PythonJson {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(indent) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(indent * level));
        }
    }

    fn write(&self, value: &serde_json::Value, level: usize, out: &mut String) {
        use serde_json::Value as J;
        match value {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Number(n) => out.push_str(&python_number(n)),
            J::String(s) => self.write_string(s, out),
            J::Array(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_separator);
                    }
                    self.newline(level + 1, out);
                    self.write(item, level + 1, out);
                }
                self.newline(level, out);
                out.push(']');
            }
            J::Object(map) => {
                if map.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_separator);
                    }
                    self.newline(level + 1, out);
                    self.write_string(key, out);
                    out.push_str(&self.key_separator);
                    self.write(item, level + 1, out);
                }
                self.newline(level, out);
                out.push('}');
            }
        }
    }

    fn write_string(&self, s: &str, out: &mut String) {
        let escaped = serde_json::to_string(s).expect("a string always serializes");
        if !self.ensure_ascii {
            out.push_str(&escaped);
            return;
        }
        // ensure_ascii escapes everything outside ' '..='~' (DEL included).
        for c in escaped.chars() {
            if c.is_ascii() && c != '\u{7f}' {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
}

/// A number as Python's `json.dumps` writes it (`1.0`, `1e+20`, `1e-05`).
fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) => python_float(f, true),
        None => n.to_string(),
    }
}

/// A float as Python's `repr` writes it (`1.0`, `1e+20`, `1e-05`, `inf`), or `json.dumps`
/// when `json` (`Infinity`, `NaN`).
fn python_float(f: f64, json: bool) -> String {
    if f.is_nan() {
        return if json { "NaN" } else { "nan" }.to_owned();
    }
    if f.is_infinite() {
        let text = match (json, f > 0.0) {
            (true, true) => "Infinity",
            (true, false) => "-Infinity",
            (false, true) => "inf",
            (false, false) => "-inf",
        };
        return text.to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let formatted = format!("{f:e}");
        let (mantissa, exponent) = formatted.split_once('e').expect("{:e} always has an exponent");
        let exponent: i32 = exponent.parse().expect("{:e} writes an integer exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
    let plain = format!("{f}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// `strftime_now(format)`: the current UTC time, formatted with the common `strftime` codes.
fn strftime_now(format: String) -> std::result::Result<Value, minijinja::Error> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime_value(&format, seconds)
}

fn strftime_value(format: &str, seconds: i64) -> std::result::Result<Value, minijinja::Error> {
    strftime(format, seconds).map(Value::from).map_err(|code| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: unsupported format code %{code}"),
        )
    })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Formats Unix time `seconds` (UTC); `Err(code)` names an unsupported `%` code.
fn strftime(format: &str, seconds: i64) -> std::result::Result<String, char> {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) =
        (second_of_day / 3600, second_of_day % 3600 / 60, second_of_day % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year_march = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year_march + 2) / 153;
    let day = day_of_year_march - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3).
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day_of_year = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let month_name = MONTHS[(month - 1) as usize];
    let weekday_name = WEEKDAYS[weekday];

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(code) = chars.next() else {
            out.push('%');
            break;
        };
        match code {
            'Y' => out.push_str(&year.to_string()),
            'y' => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            'm' => out.push_str(&format!("{month:02}")),
            'd' => out.push_str(&format!("{day:02}")),
            'e' => out.push_str(&format!("{day:>2}")),
            '-' => match chars.next() {
                Some('d') => out.push_str(&day.to_string()),
                Some('m') => out.push_str(&month.to_string()),
                Some(other) => return Err(other),
                None => return Err('-'),
            },
            'j' => out.push_str(&format!("{day_of_year:03}")),
            'B' => out.push_str(month_name),
            'b' | 'h' => out.push_str(&month_name[..3]),
            'A' => out.push_str(weekday_name),
            'a' => out.push_str(&weekday_name[..3]),
            'H' => out.push_str(&format!("{hour:02}")),
            'I' => out.push_str(&format!("{:02}", (hour + 11) % 12 + 1)),
            'p' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            'M' => out.push_str(&format!("{minute:02}")),
            'S' => out.push_str(&format!("{second:02}")),
            '%' => out.push('%'),
            other => return Err(other),
        }
    }
    Ok(out)
}

/// `messages` without the reasoning given back.
pub fn without_reasoning(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    messages.iter().map(|m| ChatMessage { reasoning: None, ..m.clone() }).collect()
}

/// The messages as templates see them: a message's reasoning under both of the names templates
/// read it by (`reasoning_content`, `thinking`).
fn template_messages(messages: &[ChatMessage]) -> Value {
    let values: Vec<Value> = messages
        .iter()
        .map(|message| match &message.reasoning {
            None => Value::from_serialize(message),
            Some(reasoning) => {
                let mut json = serde_json::to_value(message).unwrap_or_default();
                if let Some(object) = json.as_object_mut() {
                    object.insert("thinking".into(), reasoning.as_str().into());
                }
                Value::from_serialize(&json)
            }
        })
        .collect();
    Value::from(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasoning_given_back_is_seen_by_both_names_and_dropped_where_the_template_refuses_it() {
        // gpt-oss's template: the analysis before a call, refused beside an answer text.
        let source =
            include_str!("../tests/golden/tool_templates/templates/openai-gpt-oss-120b.jinja");
        let template =
            ChatTemplate::new(source, None, Some("<|return|>".into())).expect("compiles");
        let call = crate::ToolCall::function("get_weather", json!({"city": "Oslo"}));
        let mut turn = ChatMessage::assistant_tool_calls(vec![call]);
        turn.reasoning = Some("Call get_weather.".into());
        let messages = [
            ChatMessage::user("Weather?"),
            turn.clone(),
            ChatMessage::tool("rain", None, Some("get_weather".into())),
        ];
        let kwargs = serde_json::Map::new();
        let (text, left_out) = template.render_generation_prompt(&messages, None, &kwargs).unwrap();
        assert!(!left_out);
        assert!(text.contains("<|channel|>analysis<|message|>Call get_weather.<|end|>"), "{text}");
        // Reasoning beside an answer text: the template raises, the prompt goes without it.
        let mut both = turn;
        both.content = Some(json!("Checking."));
        let messages = [
            ChatMessage::user("Weather?"),
            both,
            ChatMessage::tool("rain", None, Some("get_weather".into())),
        ];
        let raised = template.render_with_kwargs(&messages, None, true, &kwargs);
        assert!(matches!(raised, Err(TokenizerError::TemplateRaised { .. })), "{raised:?}");
        let (text, left_out) = template.render_generation_prompt(&messages, None, &kwargs).unwrap();
        assert!(
            left_out && !text.contains("Call get_weather.") && text.contains("Checking."),
            "{text}"
        );
        let expected =
            template.render_with_kwargs(&without_reasoning(&messages), None, true, &kwargs);
        assert_eq!(text, expected.unwrap());
        // Qwen3's name for it.
        let qwen = "{% for m in messages %}{{ m.reasoning_content }}|{{ m.thinking }};{% endfor %}";
        let mut message = ChatMessage::assistant("a");
        message.reasoning = Some("r".into());
        assert_eq!(render(qwen, &[message]).unwrap(), "r|r;");
    }

    fn render(source: &str, messages: &[ChatMessage]) -> Result<String> {
        ChatTemplate::new(source, Some("<bos>".into()), Some("<eos>".into()))?
            .render(messages, None, false)
    }

    #[test]
    fn bad_jinja_is_a_syntax_error() {
        let error = ChatTemplate::new("{% for %}", None, None).expect_err("invalid template");
        assert!(matches!(error, TokenizerError::TemplateSyntax { .. }), "{error}");
    }

    #[test]
    fn raise_exception_is_a_typed_error() {
        let error = render("{{ raise_exception('no system role') }}", &[]).expect_err("raises");
        match error {
            TokenizerError::TemplateRaised { message } => assert_eq!(message, "no system role"),
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn gemma_rejects_non_alternating_roles() {
        let template = ChatTemplate::new(GEMMA3_TEMPLATE, Some("<bos>".into()), None)
            .expect("gemma template compiles");
        let error = template
            .render(&[ChatMessage::user("a"), ChatMessage::user("b")], None, false)
            .expect_err("roles do not alternate");
        assert!(matches!(error, TokenizerError::TemplateRaised { .. }), "{error}");
    }

    #[test]
    fn python_string_methods_work() {
        let text = render(
            "{{ messages[0].content.strip().upper() }}|{{ 'a,b'.split(',') | join('+') }}|{{ messages[0].content.startswith(' hi') }}",
            &[ChatMessage::user(" hi there ")],
        )
        .expect("renders");
        assert_eq!(text, "HI THERE|a+b|True");
    }

    #[test]
    fn tojson_writes_like_python_json_dumps() {
        let template = ChatTemplate::new("{{ tools | tojson }}", None, None).expect("compiles");
        let tools = json!([{"name": "f<x>", "b": 1.5, "a": [1, "é"], "z": {}, "n": null}]);
        let text = template.render(&[], Some(&tools), false).expect("renders");
        assert_eq!(text, r#"[{"name": "f<x>", "b": 1.5, "a": [1, "é"], "z": {}, "n": null}]"#);
        let indented = ChatTemplate::new("{{ tools | tojson(indent=2) }}", None, None)
            .expect("compiles")
            .render(&[], Some(&json!({"a": [1, 2]})), false)
            .expect("renders");
        assert_eq!(indented, "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
    }

    #[test]
    fn kwargs_reach_the_template_and_cannot_replace_the_conversation() {
        let template = ChatTemplate::new(
            "{{ enable_thinking }}|{{ bos_token }}|{{ messages | length }}",
            Some("<s>".into()),
            None,
        )
        .expect("compiles");
        let mut kwargs = serde_json::Map::new();
        kwargs.insert("enable_thinking".into(), json!(false));
        kwargs.insert("bos_token".into(), json!("<B>"));
        let text = template
            .render_with_kwargs(&[ChatMessage::user("hi")], None, false, &kwargs)
            .expect("renders");
        assert_eq!(text, "False|<B>|1");
        kwargs.insert("messages".into(), json!([]));
        let error = template
            .render_with_kwargs(&[ChatMessage::user("hi")], None, false, &kwargs)
            .expect_err("messages is reserved");
        assert!(matches!(error, TokenizerError::TemplateRender { .. }), "{error}");
    }

    #[test]
    fn absent_special_tokens_are_undefined() {
        let template = ChatTemplate::new(
            "{{ bos_token is defined }}|{{ eos_token }}",
            None,
            Some("</s>".into()),
        )
        .expect("compiles");
        assert_eq!(template.render(&[], None, false).expect("renders"), "False|</s>");
    }

    #[test]
    fn the_clock_can_be_fixed() {
        let mut template =
            ChatTemplate::new("{{ strftime_now('%d %b %Y') }}", None, None).expect("compiles");
        template.set_now(0);
        assert_eq!(template.render(&[], None, false).expect("renders"), "01 Jan 1970");
    }

    #[test]
    fn generation_blocks_render_their_body_in_their_own_scope() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation -%}b{% endgeneration %}{%+ endgeneration+%}"),
            "a{%- with -%}b{% endwith %}{%+ endwith+%}"
        );
        let template = ChatTemplate::new(
            "{% set x = 1 %}{% generation %}{% set x = 2 %}[{{ x }}]{% endgeneration %}{{ x }}",
            None,
            None,
        )
        .expect("compiles");
        assert_eq!(template.render(&[], None, false).expect("renders"), "[2]1");
    }

    #[test]
    fn python_float_formatting() {
        let number = |f: f64| python_number(&serde_json::Number::from_f64(f).expect("finite"));
        assert_eq!(number(1.0), "1.0");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(1e20), "1e+20");
        assert_eq!(number(1.5e-7), "1.5e-07");
    }

    #[test]
    fn strftime_formats_known_dates() {
        // 2026-11-21 13:05:09 UTC, a Saturday.
        let seconds = 1_795_266_309;
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %a %A %b %B %j %y %I%p %-d %%", seconds),
            Ok("2026-11-21 13:05:09 Sat Saturday Nov November 325 26 01PM 21 %".to_owned())
        );
        assert_eq!(strftime("%d %b %Y", 0), Ok("01 Jan 1970".to_owned()));
        assert_eq!(strftime("%Q", 0), Err('Q'));
    }

    #[test]
    fn gemma_template_is_the_reference_engineers_copy() {
        // scripts/golden/gemma3_chat_template.jinja is written independently from Google's
        // tokenizer_config.json; the built-in must be byte-identical to it.
        let reference =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/golden/gemma3_chat_template.jinja");
        let text =
            std::fs::read_to_string(reference).unwrap_or_else(|e| panic!("read {reference}: {e}"));
        assert_eq!(text, GEMMA3_TEMPLATE);
    }

    #[test]
    fn bos_detection() {
        let template =
            ChatTemplate::new(GEMMA3_TEMPLATE, Some("<bos>".into()), None).expect("compiles");
        let text = template.render(&[ChatMessage::user("hi")], None, true).expect("renders");
        assert_eq!(text, "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
        assert!(template.starts_with_bos(&text));
        let chatml = ChatTemplate::new(CHATML_TEMPLATE, None, None).expect("compiles");
        let text = chatml.render(&[ChatMessage::user("hi")], None, true).expect("renders");
        assert_eq!(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
        assert!(!chatml.starts_with_bos(&text));
    }
}
