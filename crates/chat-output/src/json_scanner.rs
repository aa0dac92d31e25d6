//! Incremental JSON validation, one char at a time.
//!
//! Tool-call arguments are streamed while the model writes them, so they cannot wait for a
//! complete document to hand to `serde_json`. The scanner checks each char against the JSON
//! grammar (RFC 8259, the same strictness as `serde_json`: no trailing commas, no control chars
//! in strings, no lone surrogates) and says whether it is part of the text or insignificant
//! whitespace, and whether it belongs to a direct member of the root container. That is all the
//! call parsers need to stream compact argument text and pick out `"name"`.

/// Deeper nesting is refused: it bounds the stack, and stays below `serde_json`'s own limit (128)
/// so that whatever the scanner accepts, `serde_json` accepts too.
pub(crate) const MAX_DEPTH: usize = 64;

/// Keys of the root object longer than this are not kept: no key we look for is that long.
const MAX_KEY_BYTES: usize = 64;

/// What one char was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Part of the JSON text. `member`: part of a direct member of the root container (a value of
    /// the root object, or an element of the root array). `decoded`: for a char inside a string
    /// value, the char it decodes to, once an escape is complete.
    Token { member: bool, decoded: Option<char> },
    /// Whitespace between tokens.
    Whitespace,
    /// The root value was already complete; this char is not part of it.
    EndedBefore,
    /// The char cannot continue valid JSON.
    Error(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Integer,
    Dot,
    Fraction,
    Exponent,
    ExponentSign,
    ExponentDigits,
}

impl Number {
    fn start(c: char) -> Number {
        if c == '-' {
            Number::Minus
        } else if c == '0' {
            Number::Zero
        } else {
            Number::Integer
        }
    }

    fn next(self, c: char) -> Option<Number> {
        let digit = c.is_ascii_digit();
        match self {
            Number::Minus if c == '0' => Some(Number::Zero),
            Number::Minus if digit => Some(Number::Integer),
            Number::Zero | Number::Integer if c == '.' => Some(Number::Dot),
            Number::Zero | Number::Integer | Number::Fraction if c == 'e' || c == 'E' => {
                Some(Number::Exponent)
            }
            Number::Integer if digit => Some(Number::Integer),
            Number::Dot | Number::Fraction if digit => Some(Number::Fraction),
            Number::Exponent if c == '+' || c == '-' => Some(Number::ExponentSign),
            Number::Exponent | Number::ExponentSign | Number::ExponentDigits if digit => {
                Some(Number::ExponentDigits)
            }
            _ => None,
        }
    }

    fn is_complete(self) -> bool {
        matches!(self, Number::Zero | Number::Integer | Number::Fraction | Number::ExponentDigits)
    }
}

/// One step of [`StringDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringStep {
    /// A decoded char of the string's value.
    Char(char),
    /// Part of an escape that is not complete yet.
    Pending,
    /// The closing quote.
    End,
    Error(&'static str),
}

/// Decodes the inside of a JSON string (after the opening quote), char by char.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StringDecoder {
    escape: Escape,
    /// A `\uD800`–`\uDBFF` escape waiting for its low half.
    high_surrogate: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    Backslash,
    Unicode {
        digits: u8,
        value: u32,
    },
}

impl StringDecoder {
    pub(crate) fn feed(&mut self, c: char) -> StringStep {
        match self.escape {
            Escape::None => {
                if self.high_surrogate.is_some() && c != '\\' {
                    return StringStep::Error(
                        "a high surrogate escape is not followed by a low one",
                    );
                }
                match c {
                    '"' => StringStep::End,
                    '\\' => {
                        self.escape = Escape::Backslash;
                        StringStep::Pending
                    }
                    c if u32::from(c) < 0x20 => {
                        StringStep::Error("control character inside a string")
                    }
                    c => StringStep::Char(c),
                }
            }
            Escape::Backslash => {
                if self.high_surrogate.is_some() && c != 'u' {
                    return StringStep::Error(
                        "a high surrogate escape is not followed by a low one",
                    );
                }
                self.escape = Escape::None;
                let decoded = match c {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => {
                        self.escape = Escape::Unicode { digits: 0, value: 0 };
                        return StringStep::Pending;
                    }
                    _ => return StringStep::Error("invalid escape in a string"),
                };
                StringStep::Char(decoded)
            }
            Escape::Unicode { digits, value } => {
                let Some(digit) = c.to_digit(16) else {
                    return StringStep::Error("invalid \\u escape in a string");
                };
                let value = value * 16 + digit;
                if digits < 3 {
                    self.escape = Escape::Unicode { digits: digits + 1, value };
                    return StringStep::Pending;
                }
                self.escape = Escape::None;
                match (self.high_surrogate.take(), value) {
                    (Some(high), 0xDC00..=0xDFFF) => {
                        let code = 0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00);
                        char::from_u32(code)
                            .map_or(StringStep::Error("invalid surrogate pair"), StringStep::Char)
                    }
                    (Some(_), _) => {
                        StringStep::Error("a high surrogate escape is not followed by a low one")
                    }
                    (None, 0xD800..=0xDBFF) => {
                        self.high_surrogate = Some(value);
                        StringStep::Pending
                    }
                    (None, 0xDC00..=0xDFFF) => StringStep::Error("lone low surrogate escape"),
                    (None, value) => char::from_u32(value)
                        .map_or(StringStep::Error("invalid \\u escape"), StringStep::Char),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value must start here (whitespace allowed); `]` too right after `[`.
    Value {
        allow_array_end: bool,
    },
    /// A key must start here; `}` too right after `{`.
    Key {
        allow_object_end: bool,
    },
    InKey(StringDecoder),
    Colon,
    InString(StringDecoder),
    InNumber(Number),
    InLiteral {
        literal: &'static str,
        matched: usize,
    },
    /// After a value inside a container: `,` or the container's closing bracket.
    AfterValue,
    Done,
}

/// Validates one JSON value fed char by char.
#[derive(Debug, Clone)]
pub(crate) struct JsonScanner {
    stack: Vec<Container>,
    state: State,
    /// A direct member of the root container is being scanned.
    in_member: bool,
    /// The key of the root object's member being scanned (empty when it was too long).
    member_key: String,
    member_key_too_long: bool,
}

impl Default for JsonScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonScanner {
    pub(crate) fn new() -> JsonScanner {
        JsonScanner {
            stack: Vec::new(),
            state: State::Value { allow_array_end: false },
            in_member: false,
            member_key: String::new(),
            member_key_too_long: false,
        }
    }

    /// The root value is complete.
    pub(crate) fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// A direct member of the root container is being scanned (its last char included).
    pub(crate) fn in_member(&self) -> bool {
        self.in_member
    }

    /// The key of the root object's current member; `None` when it was longer than any key the
    /// call parsers look for.
    pub(crate) fn member_key(&self) -> Option<&str> {
        (!self.member_key_too_long).then_some(self.member_key.as_str())
    }

    /// Feeds one char. After an error the scanner must not be fed again.
    pub(crate) fn feed(&mut self, c: char) -> Scan {
        match self.state {
            State::Done => Scan::EndedBefore,
            State::Value { allow_array_end } => {
                if is_json_whitespace(c) {
                    Scan::Whitespace
                } else if c == ']' && allow_array_end {
                    self.stack.pop();
                    self.value_completed()
                } else {
                    self.start_value(c)
                }
            }
            State::Key { allow_object_end } => {
                if is_json_whitespace(c) {
                    Scan::Whitespace
                } else if c == '"' {
                    if self.stack.len() == 1 {
                        self.member_key.clear();
                        self.member_key_too_long = false;
                    }
                    self.state = State::InKey(StringDecoder::default());
                    self.token(None)
                } else if c == '}' && allow_object_end {
                    self.stack.pop();
                    self.value_completed()
                } else {
                    Scan::Error("expected a key string")
                }
            }
            State::InKey(mut decoder) => match decoder.feed(c) {
                StringStep::Char(decoded) => {
                    self.state = State::InKey(decoder);
                    if self.stack.len() == 1 && !self.member_key_too_long {
                        if self.member_key.len() + decoded.len_utf8() > MAX_KEY_BYTES {
                            self.member_key_too_long = true;
                            self.member_key.clear();
                        } else {
                            self.member_key.push(decoded);
                        }
                    }
                    self.token(None)
                }
                StringStep::Pending => {
                    self.state = State::InKey(decoder);
                    self.token(None)
                }
                StringStep::End => {
                    self.state = State::Colon;
                    self.token(None)
                }
                StringStep::Error(reason) => Scan::Error(reason),
            },
            State::Colon => {
                if is_json_whitespace(c) {
                    Scan::Whitespace
                } else if c == ':' {
                    self.state = State::Value { allow_array_end: false };
                    self.token(None)
                } else {
                    Scan::Error("expected `:` after a key")
                }
            }
            State::InString(mut decoder) => match decoder.feed(c) {
                StringStep::Char(decoded) => {
                    self.state = State::InString(decoder);
                    self.token(Some(decoded))
                }
                StringStep::Pending => {
                    self.state = State::InString(decoder);
                    self.token(None)
                }
                StringStep::End => self.value_completed(),
                StringStep::Error(reason) => Scan::Error(reason),
            },
            State::InNumber(number) => match number.next(c) {
                Some(next) => {
                    self.state = State::InNumber(next);
                    self.token(None)
                }
                None if number.is_complete() => {
                    // The number ended before this char: close it, then read the char afresh.
                    self.value_completed();
                    self.feed(c)
                }
                None => Scan::Error("invalid number"),
            },
            State::InLiteral { literal, matched } => {
                if literal[matched..].starts_with(c) {
                    let matched = matched + c.len_utf8();
                    if matched == literal.len() {
                        self.value_completed()
                    } else {
                        self.state = State::InLiteral { literal, matched };
                        self.token(None)
                    }
                } else {
                    Scan::Error("invalid literal")
                }
            }
            State::AfterValue => {
                let top = *self.stack.last().expect("AfterValue is only set inside a container");
                match (c, top) {
                    (c, _) if is_json_whitespace(c) => Scan::Whitespace,
                    (',', Container::Object) => {
                        self.state = State::Key { allow_object_end: false };
                        self.token(None)
                    }
                    (',', Container::Array) => {
                        self.state = State::Value { allow_array_end: false };
                        self.token(None)
                    }
                    ('}', Container::Object) | (']', Container::Array) => {
                        self.stack.pop();
                        self.value_completed()
                    }
                    _ => Scan::Error("expected `,` or a closing bracket"),
                }
            }
        }
    }

    fn start_value(&mut self, c: char) -> Scan {
        if self.stack.len() == 1 {
            self.in_member = true;
        }
        match c {
            '{' | '[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Scan::Error("JSON nested too deeply");
                }
                if c == '{' {
                    self.stack.push(Container::Object);
                    self.state = State::Key { allow_object_end: true };
                } else {
                    self.stack.push(Container::Array);
                    self.state = State::Value { allow_array_end: true };
                }
            }
            '"' => self.state = State::InString(StringDecoder::default()),
            '-' | '0'..='9' => self.state = State::InNumber(Number::start(c)),
            't' => self.state = State::InLiteral { literal: "true", matched: 1 },
            'f' => self.state = State::InLiteral { literal: "false", matched: 1 },
            'n' => self.state = State::InLiteral { literal: "null", matched: 1 },
            _ => return Scan::Error("expected a JSON value"),
        }
        self.token(None)
    }

    /// A value (and the char that ended it, if any) is complete: move to what follows it.
    fn value_completed(&mut self) -> Scan {
        let member = self.in_member;
        if self.stack.is_empty() {
            self.state = State::Done;
        } else {
            self.state = State::AfterValue;
            if self.stack.len() == 1 {
                self.in_member = false;
            }
        }
        Scan::Token { member, decoded: None }
    }

    fn token(&self, decoded: Option<char>) -> Scan {
        Scan::Token { member: self.in_member, decoded }
    }
}

/// JSON's four whitespace chars; anything else between tokens is an error.
pub(crate) fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// `text` with insignificant whitespace removed, when it is exactly one JSON object (surrounding
/// whitespace allowed); `Err` with the reason otherwise.
pub(crate) fn compact_object(text: &str) -> Result<String, &'static str> {
    let trimmed = text.trim_matches(is_json_whitespace);
    if !trimmed.starts_with('{') {
        return Err("the arguments are not a JSON object");
    }
    let mut scanner = JsonScanner::new();
    let mut compact = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match scanner.feed(c) {
            Scan::Token { .. } => compact.push(c),
            Scan::Whitespace => {}
            Scan::EndedBefore => return Err("text after the arguments object"),
            Scan::Error(reason) => return Err(reason),
        }
    }
    if scanner.is_complete() {
        Ok(compact)
    } else {
        Err("the arguments object is not complete")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whether the scanner accepts `text` as one complete JSON value with optional surrounding
    /// whitespace, and the text without insignificant whitespace.
    fn scan_all(text: &str) -> Option<String> {
        let mut scanner = JsonScanner::new();
        let mut compact = String::new();
        let mut ended = false;
        for c in text.chars() {
            if ended {
                if !is_json_whitespace(c) {
                    return None;
                }
                continue;
            }
            match scanner.feed(c) {
                Scan::Token { .. } => compact.push(c),
                Scan::Whitespace => {}
                Scan::EndedBefore => {
                    ended = true;
                    if !is_json_whitespace(c) {
                        return None;
                    }
                }
                Scan::Error(_) => return None,
            }
            ended |= scanner.is_complete();
        }
        if !scanner.is_complete() {
            // A root number only completes when something follows it.
            let mut scanner = scanner;
            if !matches!(scanner.feed(' '), Scan::EndedBefore) {
                return None;
            }
        }
        Some(compact)
    }

    #[test]
    fn valid_documents_are_accepted_and_compacted() {
        let cases = [
            (
                r#"{"a": 1, "b" : [true, false, null], "c": {"d": "x y"}}"#,
                r#"{"a":1,"b":[true,false,null],"c":{"d":"x y"}}"#,
            ),
            ("[]", "[]"),
            ("{}", "{}"),
            (" 12.5e-3 ", "12.5e-3"),
            ("-0", "-0"),
            // Syntax only: serde_json refuses this number (beyond f64); the output parser checks.
            ("1e400", "1e400"),
            (r#""\u00e9\ud83d\ude00\n""#, r#""\u00e9\ud83d\ude00\n""#),
            ("[1,[2,[3]],{\"k\":[]}]", "[1,[2,[3]],{\"k\":[]}]"),
        ];
        for (text, compact) in cases {
            assert_eq!(scan_all(text).as_deref(), Some(compact), "{text}");
        }
    }

    #[test]
    fn invalid_documents_are_refused() {
        for text in [
            "{,}",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a":1,,"b":2}"#,
            "[,1]",
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "nul1",
            "\"a\nb\"",
            r#""\x""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "{'a': 1}",
            "[1 2]",
            "{\"a\":1}}",
            "}",
        ] {
            assert_eq!(scan_all(text), None, "{text:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(scan_all(&deep).is_some());
        let too_deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(scan_all(&too_deep), None);
    }

    #[test]
    fn members_and_keys_of_the_root_object_are_reported() {
        let text = r#"{"name": "f", "arguments": {"x": [1, 2]}, "n": 12}"#;
        let mut scanner = JsonScanner::new();
        let mut members: Vec<(String, String)> = Vec::new();
        for c in text.chars() {
            if let Scan::Token { member: true, .. } = scanner.feed(c) {
                let key = scanner.member_key().unwrap_or("?").to_owned();
                match members.last_mut() {
                    Some((last, value)) if *last == key => value.push(c),
                    _ => members.push((key, c.to_string())),
                }
            }
        }
        assert!(scanner.is_complete());
        let expected = [("name", "\"f\""), ("arguments", "{\"x\":[1,2]}"), ("n", "12")];
        let members: Vec<(&str, &str)> =
            members.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(members, expected);
    }

    #[test]
    fn string_values_are_decoded() {
        let mut scanner = JsonScanner::new();
        let decoded: String = r#""a\"\\\/\u00e9\ud83d\ude00\t""#
            .chars()
            .filter_map(|c| match scanner.feed(c) {
                Scan::Token { decoded, .. } => decoded,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(decoded, "a\"\\/é😀\t");
        assert!(scanner.is_complete());
    }

    #[test]
    fn compact_object_requires_one_object() {
        assert_eq!(compact_object(" {\"a\" : [1, 2]}\n").as_deref(), Ok("{\"a\":[1,2]}"));
        assert!(compact_object("[1]").is_err());
        assert!(compact_object("{\"a\":1} x").is_err());
        assert!(compact_object("{\"a\":1").is_err());
        assert!(compact_object("").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The scanner agrees with serde_json on what is valid JSON, and its compact text parses
        /// to the same value.
        #[test]
        fn agrees_with_serde_json(text in r#"[\[\]{}",:0-9.eE+\- a-c\\u\ntrflsn]{0,24}"#) {
            let ours = scan_all(&text);
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            if let Some(valid) = serde_verdict(&theirs) {
                prop_assert_eq!(ours.is_some(), valid, "{:?}", text);
            }
            if let (Some(compact), Ok(value)) = (ours, theirs) {
                let reparsed: serde_json::Value = serde_json::from_str(&compact).unwrap();
                prop_assert_eq!(reparsed, value);
            }
        }

        /// Valid documents with one char inserted or removed: almost valid JSON, where a
        /// validator's mistakes hide (a trailing comma, a missing colon, a stray bracket).
        #[test]
        fn agrees_with_serde_json_on_near_misses(
            value in arbitrary_json(),
            pretty in any::<bool>(),
            position in any::<usize>(),
            insert in proptest::option::of(proptest::sample::select(
                &['{', '}', '[', ']', ',', ':', '"', '\\', '1', '.', 'e', '-', ' ', 'u'][..],
            )),
        ) {
            let mut text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let boundaries: Vec<usize> =
                text.char_indices().map(|(index, _)| index).chain([text.len()]).collect();
            let at = boundaries[position % boundaries.len()];
            match insert {
                Some(c) => text.insert(at, c),
                None if at < text.len() => {
                    text.remove(at);
                }
                None => {}
            }
            let ours = scan_all(&text);
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            if let Some(valid) = serde_verdict(&theirs) {
                prop_assert_eq!(ours.is_some(), valid, "{:?}", text);
            }
        }

        #[test]
        fn agrees_with_serde_json_on_generated_values(value in arbitrary_json()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let expected = serde_json::to_string(&value).unwrap();
            prop_assert_eq!(scan_all(&pretty), Some(expected));
        }
    }

    /// Whether serde_json found the text valid JSON; `None` when it stopped at a number beyond
    /// `f64` (`1e400`), which says nothing about the syntax. The scanner checks syntax only; the
    /// output parser checks each call's arguments with serde_json for that reason.
    fn serde_verdict(result: &serde_json::Result<serde_json::Value>) -> Option<bool> {
        match result {
            Ok(_) => Some(true),
            Err(error) if error.to_string().starts_with("number out of range") => None,
            Err(_) => Some(false),
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1.0e6f64..1.0e6).prop_map(serde_json::Value::from),
            "\\PC{0,8}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("\\PC{0,6}", inner, 0..5)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }
}
