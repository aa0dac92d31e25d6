//! [`ChatTemplate`]: rendering a conversation into a prompt with the model's Jinja template.
//!
//! The environment reproduces what `transformers`' `apply_chat_template` gives templates:
//! `trim_blocks` and `lstrip_blocks`, loop controls, Python string/dict methods (`.strip()`,
//! `.startswith()`, `.items()`, ... via `minijinja-contrib`'s pycompat), `raise_exception`,
//! `strftime_now`, and a `tojson` that writes like Python's `json.dumps` (no HTML escaping,
//! `", "` and `": "` separators, keys in insertion order).

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};
use uma_gguf::{keys, GgufFile};

use crate::chat_message::ChatMessage;
use crate::error::{Result, TokenizerError};

const TEMPLATE_NAME: &str = "chat";
const RAISED_MARKER: &str = "raise_exception: ";

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
        let (source, origin) = match metadata.get_str(keys::TOKENIZER_CHAT_TEMPLATE)? {
            Some(source) => (source.to_owned(), TemplateOrigin::File),
            None => ChatTemplate::builtin_for(architecture),
        };
        ChatTemplate::compile(source, origin, bos_token, eos_token)
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
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment.add_filter("tojson", tojson);
        environment.add_function("raise_exception", raise_exception);
        environment.add_function("strftime_now", strftime_now);
        environment
            .add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| TokenizerError::TemplateSyntax { message: describe(&e) })?;
        Ok(ChatTemplate { environment, source, origin, bos_token, eos_token })
    }

    /// Renders `messages` (and the tool schemas `tools`, a JSON array, for templates that
    /// support tools). `add_generation_prompt`: end with the opening of an assistant turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .environment
            .get_template(TEMPLATE_NAME)
            .expect("the template was added when the ChatTemplate was built");
        let context = minijinja::context! {
            messages => Value::from_serialize(messages),
            tools => tools.map(Value::from_serialize).unwrap_or(Value::from(())),
            documents => Value::from(()),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        };
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

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("{RAISED_MARKER}{message}")))
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`
/// with the same keyword arguments, as transformers installs it.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let writer = PythonJson {
        indent,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    writer.write(&json, 0, &mut out);
    Ok(Value::from(out))
}

struct PythonJson {
    indent: Option<usize>,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl PythonJson {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(indent) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(indent * level));
        }
    }

    fn item_separator(&self) -> &'static str {
        if self.indent.is_some() {
            ","
        } else {
            ", "
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
                        out.push_str(self.item_separator());
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
                        out.push_str(self.item_separator());
                    }
                    self.newline(level + 1, out);
                    self.write_string(key, out);
                    out.push_str(": ");
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
        for c in escaped.chars() {
            if c.is_ascii() {
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
    let Some(f) = n.as_f64() else { return n.to_string() };
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
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
    strftime(&format, seconds).map(Value::from).map_err(|code| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
