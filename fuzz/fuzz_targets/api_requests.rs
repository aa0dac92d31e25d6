//! Feeds request bodies to the OpenAI, Ollama, Anthropic and Responses routes' parsing and checks
//! (`uma_server::fuzzing`): deserializing, sampling parameters, messages, prompts, inputs,
//! `keep_alive`, error rendering. Any panic, allocation beyond libFuzzer's `-rss_limit_mb` or
//! hang is a bug.
//!
//! The first byte picks the route (`REQUEST_KINDS[selector & 0x3f % len]`) and the mode:
//!
//! - raw (`selector & 0xc0 == 0x40`, so the ASCII characters `@`, `A`, `B`, ...): the rest of
//!   the input is the body as it is. Non-JSON input is covered this way, and the seeds in
//!   `fuzz/seeds/api_requests/` are real request bodies behind such a character.
//! - structured (any other selector): the rest of the input drives an `arbitrary`-derived JSON
//!   document whose keys are mostly the requests' real field names and whose values are of
//!   every JSON kind (boundary, huge, negative and fractional numbers, long and escaped strings,
//!   nesting past serde_json's depth limit up to a bound), written out as JSON text.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use uma_server::fuzzing::REQUEST_KINDS;

/// Field names of the requests and of the objects inside them.
const FIELDS: &[&str] = &[
    // Shared and OpenAI.
    "model",
    "messages",
    "role",
    "content",
    "name",
    "tool_calls",
    "tool_call_id",
    "type",
    "text",
    "function",
    "arguments",
    "id",
    "prompt",
    "suffix",
    "echo",
    "best_of",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "stop_token_ids",
    "logprobs",
    "top_logprobs",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "ignore_eos",
    "logit_bias",
    "stream",
    "stream_options",
    "include_usage",
    "keep_alive",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "response_format",
    "user",
    "input",
    "encoding_format",
    "dimensions",
    "image_url",
    "url",
    // Ollama.
    "options",
    "num_predict",
    "repeat_penalty",
    "repeat_last_n",
    "num_ctx",
    "system",
    "raw",
    "parse_special",
    "context",
    "format",
    "images",
    "truncate",
    "think",
    // Tools, formats and the Anthropic and Responses APIs.
    "parallel_tool_calls",
    "chat_template_kwargs",
    "enable_thinking",
    "json_schema",
    "schema",
    "strict",
    "parameters",
    "description",
    "properties",
    "required",
    "input_schema",
    "tool_use",
    "tool_result",
    "disable_parallel_tool_use",
    "stop_sequences",
    "thinking",
    "budget_tokens",
    "output_config",
    "instructions",
    "previous_response_id",
    "function_call_output",
    "call_id",
    "output",
    "max_output_tokens",
    "store",
    "reasoning",
];

/// String values the routes give a meaning to, and a few awkward ones.
const STRINGS: &[&str] = &[
    "",
    "m",
    "user",
    "system",
    "developer",
    "assistant",
    "tool",
    "function",
    "text",
    "image_url",
    "none",
    "auto",
    "required",
    "json",
    "json_object",
    "float",
    "base64",
    "5m",
    "1h30m",
    "250ms",
    "1.5h",
    "10",
    "-1",
    "0",
    "-1m",
    "3µs",
    "2562047h",
    "1e309",
    "NaN",
    "inf",
    "-inf",
    "\n",
    "{\"a\": 1}",
    "not json",
    "\u{0}",
    "\u{feff}",
    "é",
    "👩‍💻",
];

/// Numbers at the edges of the fields' types and ranges, as JSON text.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "-2",
    "2",
    "4",
    "5",
    "6",
    "16",
    "17",
    "20",
    "21",
    "256",
    "257",
    "1024",
    "2048",
    "2049",
    "0.5",
    "1.5",
    "2.0",
    "2.0000001",
    "-2.0000001",
    "1e-45",
    "1.17549435e-38",
    "3.4028235e38",
    "3.5e38",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "3155760000",
    "3155760001",
    "123456789012345678901234567890123456789",
];

/// Deeper than serde_json's recursion limit (128), so the limit is reached, but bounded.
const MAX_DEPTH: usize = 160;
/// Most bytes of JSON text one input may expand to (long strings are repeated pieces): far past
/// every length limit of the requests, small enough to keep the fuzzer fast.
const MAX_OUTPUT: usize = 64 << 10;

#[derive(Debug, Arbitrary)]
enum Key {
    // Three variants of four draw from the dictionary.
    Field(u8),
    Field2(u8),
    Field3(u8),
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Number {
    Known(u8),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Single(f32),
    /// Digits, fraction and exponent of any length.
    Text {
        negative: bool,
        int: Vec<u8>,
        frac: Option<Vec<u8>>,
        exp: Option<i32>,
    },
}

#[derive(Debug, Arbitrary)]
enum Str {
    Known(u8),
    Any(String),
    /// `\uXXXX` escapes: surrogate pairs, lone surrogates, control characters.
    Escaped(Vec<u16>),
    /// A piece repeated: strings past the length limits (stop strings over 1024 bytes, ...).
    Repeated(Box<Str>, u16),
}

#[derive(Debug, Arbitrary)]
enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(Str),
    Array(Vec<Value>),
    Object(Vec<(Key, Value)>),
}

#[derive(Debug, Arbitrary)]
enum Document {
    /// An object, most of the time: every request is one.
    Object {
        with_model: bool,
        fields: Vec<(Key, Value)>,
    },
    Object2 {
        with_model: bool,
        fields: Vec<(Key, Value)>,
    },
    Any(Value),
}

/// Writes JSON text, within [`MAX_DEPTH`] and [`MAX_OUTPUT`].
struct Writer {
    out: String,
}

impl Writer {
    fn room(&self) -> usize {
        MAX_OUTPUT.saturating_sub(self.out.len())
    }

    fn document(&mut self, document: &Document) {
        match document {
            Document::Object { with_model, fields } | Document::Object2 { with_model, fields } => {
                self.out.push('{');
                if *with_model {
                    self.out.push_str("\"model\":\"m\"");
                }
                for (index, (key, value)) in fields.iter().enumerate() {
                    if index > 0 || *with_model {
                        self.out.push(',');
                    }
                    self.key(key);
                    self.value(value, 1);
                }
                self.out.push('}');
            }
            Document::Any(value) => self.value(value, 0),
        }
    }

    fn key(&mut self, key: &Key) {
        match key {
            Key::Field(i) | Key::Field2(i) | Key::Field3(i) => {
                self.quoted(FIELDS[*i as usize % FIELDS.len()])
            }
            Key::Other(text) => self.quoted(text),
        }
        self.out.push(':');
    }

    fn value(&mut self, value: &Value, depth: usize) {
        match value {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(number) => self.number(number),
            Value::String(text) => {
                self.out.push('"');
                self.string_body(text, 0);
                self.out.push('"');
            }
            Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH || self.room() == 0 => {
                self.out.push_str("null")
            }
            Value::Array(items) => {
                self.out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    self.value(item, depth + 1);
                }
                self.out.push(']');
            }
            Value::Object(fields) => {
                self.out.push('{');
                for (index, (key, value)) in fields.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    self.key(key);
                    self.value(value, depth + 1);
                }
                self.out.push('}');
            }
        }
    }

    fn number(&mut self, number: &Number) {
        use std::fmt::Write as _;
        match number {
            Number::Known(i) => self.out.push_str(NUMBERS[*i as usize % NUMBERS.len()]),
            Number::Int(n) => write!(self.out, "{n}").unwrap(),
            Number::Unsigned(n) => write!(self.out, "{n}").unwrap(),
            // Debug prints finite floats as valid JSON numbers (`1e300`, `0.1`, `-0.0`).
            Number::Float(x) if x.is_finite() => write!(self.out, "{x:?}").unwrap(),
            Number::Single(x) if x.is_finite() => write!(self.out, "{x:?}").unwrap(),
            Number::Float(x) => self.out.push_str(non_finite(x.is_nan(), *x < 0.0)),
            Number::Single(x) => self.out.push_str(non_finite(x.is_nan(), *x < 0.0)),
            Number::Text { negative, int, frac, exp } => {
                if *negative {
                    self.out.push('-');
                }
                let room = self.room().min(4096);
                digits(&mut self.out, int, room, true);
                if let Some(frac) = frac {
                    self.out.push('.');
                    digits(&mut self.out, frac, room, false);
                }
                if let Some(exp) = exp {
                    write!(self.out, "e{exp}").unwrap();
                }
            }
        }
    }

    /// A string's JSON text without the quotes; `depth` bounds nested repetitions.
    fn string_body(&mut self, text: &Str, depth: usize) {
        use std::fmt::Write as _;
        match text {
            Str::Known(i) => escape_into(&mut self.out, STRINGS[*i as usize % STRINGS.len()]),
            Str::Any(text) => escape_into(&mut self.out, text),
            Str::Escaped(units) => {
                for unit in units.iter().take(self.room() / 6) {
                    write!(self.out, "\\u{unit:04x}").unwrap();
                }
            }
            Str::Repeated(piece, count) => {
                if depth >= 4 {
                    return;
                }
                let start = self.out.len();
                self.string_body(piece, depth + 1);
                let piece_text = self.out[start..].to_owned();
                if piece_text.is_empty() {
                    return;
                }
                let times = (*count as usize).min(self.room() / piece_text.len());
                for _ in 1..times {
                    self.out.push_str(&piece_text);
                }
            }
        }
    }

    fn quoted(&mut self, text: &str) {
        self.out.push('"');
        escape_into(&mut self.out, text);
        self.out.push('"');
    }
}

/// What a float out of JSON's range is written as: past f64's range, or `null` for NaN.
fn non_finite(nan: bool, negative: bool) -> &'static str {
    match (nan, negative) {
        (true, _) => "null",
        (false, false) => "1e999",
        (false, true) => "-1e999",
    }
}

/// Decimal digits from bytes; an integer part has no leading zero (JSON forbids it).
fn digits(out: &mut String, bytes: &[u8], room: usize, integer: bool) {
    let bytes = &bytes[..bytes.len().min(room)];
    if bytes.is_empty() {
        out.push('0');
        return;
    }
    for (index, byte) in bytes.iter().enumerate() {
        let digit = byte % 10;
        let digit = if integer && index == 0 && bytes.len() > 1 { digit.max(1) } else { digit };
        out.push(char::from(b'0' + digit));
    }
}

/// JSON string escaping: quotes, backslashes and control characters.
fn escape_into(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (_, run) = REQUEST_KINDS[usize::from(selector & 0x3f) % REQUEST_KINDS.len()];
    if selector & 0xc0 == 0x40 {
        run(rest);
        return;
    }
    let Ok(document) = Document::arbitrary_take_rest(Unstructured::new(rest)) else { return };
    let mut writer = Writer { out: String::new() };
    writer.document(&document);
    run(writer.out.as_bytes());
});
