//! One JSON call object, `{"name": ..., "arguments": {...}}`, read char by char.

use crate::json_scanner::{compact_object, JsonScanner, Scan};

/// Longer names are refused: no tool is named like that, and it bounds what is held before the
/// call can begin.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// Which member of the call object is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    None,
    Name,
    /// `"arguments": {...}`, streamed as it comes.
    ArgumentsObject,
    /// `"arguments": "{...}"` (JSON text in a string, as OpenAI sends it): decoded and checked
    /// when the string ends.
    ArgumentsString,
    /// Any other key (`"type"`, `"id"`): validated and ignored.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arguments {
    Absent,
    Reading,
    Done,
}

/// Reads one call object. Keys may come in any order (Hermes 2 Pro writes `"arguments"` before
/// `"name"`); `"parameters"` (Llama 3) is read like `"arguments"`; a missing arguments key means
/// `{}`; the first of a repeated key wins.
#[derive(Debug, Clone)]
pub(crate) struct CallObjectParser {
    scanner: JsonScanner,
    started: bool,
    member: Member,
    name_buffer: String,
    /// The name, once its string is complete, until taken.
    name: Option<String>,
    name_seen: bool,
    arguments: Arguments,
    arguments_string: String,
    /// Compact arguments text read and not yet taken.
    fragment: String,
}

impl CallObjectParser {
    pub(crate) fn new() -> CallObjectParser {
        CallObjectParser {
            scanner: JsonScanner::new(),
            started: false,
            member: Member::None,
            name_buffer: String::new(),
            name: None,
            name_seen: false,
            arguments: Arguments::Absent,
            arguments_string: String::new(),
            fragment: String::new(),
        }
    }

    /// Whether the opening `{` has been read.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Feeds one char, starting with the opening `{`. `Ok(true)` when this char closed the call
    /// object, which was a valid call. After `Err` or `Ok(true)` the parser must not be fed again.
    pub(crate) fn feed(&mut self, c: char) -> Result<bool, &'static str> {
        if !self.started {
            if c != '{' {
                return Err("a tool call is not a JSON object");
            }
            self.started = true;
        }
        let (member, decoded) = match self.scanner.feed(c) {
            Scan::Token { member, decoded } => (member, decoded),
            Scan::Whitespace => return Ok(false),
            Scan::EndedBefore => return Err("text after the tool call object"),
            Scan::Error(reason) => return Err(reason),
        };
        if member {
            if self.member == Member::None {
                self.member = self.start_member(c)?;
            }
            match self.member {
                Member::Name => {
                    if let Some(decoded) = decoded {
                        if self.name_buffer.len() + decoded.len_utf8() > MAX_NAME_BYTES {
                            return Err("the tool name is too long");
                        }
                        self.name_buffer.push(decoded);
                    }
                }
                Member::ArgumentsObject => self.fragment.push(c),
                Member::ArgumentsString => self.arguments_string.extend(decoded),
                Member::None | Member::Ignored => {}
            }
        }
        if self.member != Member::None && !self.scanner.in_member() {
            self.end_member()?;
        }
        if !self.scanner.is_complete() {
            return Ok(false);
        }
        if !self.name_seen {
            return Err("the tool call has no name");
        }
        if self.arguments == Arguments::Absent {
            self.fragment.push_str("{}");
        }
        Ok(true)
    }

    /// The name, once, as soon as it is complete.
    pub(crate) fn take_name(&mut self) -> Option<String> {
        self.name.take()
    }

    /// Compact arguments text read since the last call (empty when none).
    pub(crate) fn take_fragment(&mut self) -> String {
        std::mem::take(&mut self.fragment)
    }

    fn start_member(&mut self, first: char) -> Result<Member, &'static str> {
        match self.scanner.member_key() {
            Some("name") if !self.name_seen => {
                if first == '"' {
                    Ok(Member::Name)
                } else {
                    Err("the tool name is not a string")
                }
            }
            Some("arguments" | "parameters") if self.arguments == Arguments::Absent => {
                self.arguments = Arguments::Reading;
                match first {
                    '{' => Ok(Member::ArgumentsObject),
                    '"' => Ok(Member::ArgumentsString),
                    _ => Err("the tool arguments are not a JSON object"),
                }
            }
            _ => Ok(Member::Ignored),
        }
    }

    fn end_member(&mut self) -> Result<(), &'static str> {
        match self.member {
            Member::Name => {
                if self.name_buffer.is_empty() {
                    return Err("the tool name is empty");
                }
                self.name_seen = true;
                self.name = Some(std::mem::take(&mut self.name_buffer));
            }
            Member::ArgumentsObject => self.arguments = Arguments::Done,
            Member::ArgumentsString => {
                let compact = compact_object(&self.arguments_string)?;
                self.fragment.push_str(&compact);
                self.arguments_string = String::new();
                self.arguments = Arguments::Done;
            }
            Member::None | Member::Ignored => {}
        }
        self.member = Member::None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, arguments) of a complete call object, or the error.
    fn read(text: &str) -> Result<(String, String), &'static str> {
        let mut parser = CallObjectParser::new();
        let mut name = None;
        let mut arguments = String::new();
        for c in text.chars() {
            let complete = parser.feed(c)?;
            if let Some(taken) = parser.take_name() {
                assert!(name.is_none(), "the name is given once");
                name = Some(taken);
            }
            arguments.push_str(&parser.take_fragment());
            if complete {
                return Ok((name.expect("a complete call has a name"), arguments));
            }
        }
        Err("incomplete")
    }

    fn call(name: &str, arguments: &str) -> Result<(String, String), &'static str> {
        Ok((name.to_owned(), arguments.to_owned()))
    }

    #[test]
    fn reads_name_and_compact_arguments() {
        assert_eq!(
            read(r#"{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}"#),
            call("get_weather", r#"{"city":"Paris","days":[1,2]}"#)
        );
    }

    #[test]
    fn key_order_extra_keys_and_parameters() {
        assert_eq!(
            read(r#"{"arguments": {"q": "x"}, "name": "search"}"#),
            call("search", r#"{"q":"x"}"#)
        );
        assert_eq!(
            read(r#"{"type": "function", "name": "f", "parameters": {"a": 1}, "id": "abc123456"}"#),
            call("f", r#"{"a":1}"#)
        );
    }

    #[test]
    fn missing_arguments_mean_an_empty_object() {
        assert_eq!(read(r#"{"name": "now"}"#), call("now", "{}"));
    }

    #[test]
    fn arguments_in_a_string_are_decoded() {
        assert_eq!(
            read(r#"{"name": "f", "arguments": "{\"a\": [1, \"é\"]}"}"#),
            call("f", r#"{"a":[1,"é"]}"#)
        );
        assert!(read(r#"{"name": "f", "arguments": "not json"}"#).is_err());
    }

    #[test]
    fn escaped_names_are_decoded() {
        assert_eq!(read(r#"{"name": "get\u005fweather"}"#), call("get_weather", "{}"));
    }

    #[test]
    fn malformed_calls_are_errors() {
        for text in [
            r#"{"arguments": {}}"#,
            r#"{"name": 3, "arguments": {}}"#,
            r#"{"name": "", "arguments": {}}"#,
            r#"{"name": "f", "arguments": [1]}"#,
            r#"{"name": "f", "arguments": {"a": tru}}"#,
            r#"{"name": "f" "arguments": {}}"#,
            r#"["f"]"#,
        ] {
            assert!(read(text).is_err(), "{text}");
        }
        let long_name = format!(r#"{{"name": "{}"}}"#, "n".repeat(MAX_NAME_BYTES + 1));
        assert_eq!(read(&long_name), Err("the tool name is too long"));
    }
}
