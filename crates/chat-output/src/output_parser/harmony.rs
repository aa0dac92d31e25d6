//! OpenAI's harmony format (gpt-oss), read as it streams: a series of messages, each a header
//! (`<|start|>assistant<|channel|>final`, recipient and content type optional) then
//! `<|message|>` and its text up to `<|end|>`, `<|call|>` or `<|return|>`.
//!
//! Messages are read as openai-harmony reads them (`StreamableParser`: the header's channel is
//! the word after `<|channel|>`, the recipient `to=NAME` before or after it, the last word a
//! content type; only the three end tokens end a message's text). What it refuses is kept as
//! content here instead: text outside any message, a header that does not parse.

use super::{Flow, Mode, OutputParser, Region, RegionKind, RegionStep};
use crate::call_object::MAX_NAME_BYTES;
use crate::ParseIssue;

const START: &str = "<|start|>";
const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
const CONSTRAIN: &str = "<|constrain|>";
/// What ends a message's text.
const MESSAGE_ENDS: &[&str] = &["<|end|>", "<|call|>", "<|return|>"];
/// What a message header starts with: `<|start|>`, or after the prompt's `<|start|>assistant`
/// the rest of a header (a channel, a recipient, a content type or directly the text).
const HEADER_OPENERS: &[&str] = &[START, CHANNEL, MESSAGE, CONSTRAIN, "to="];
/// Where calls go: `to=functions.NAME`.
const FUNCTIONS: &str = "functions.";
/// A longer header is not one (a name of [`MAX_NAME_BYTES`] and its channel, recipient and
/// content type fit): it bounds what is held before a message's text can begin.
const MAX_HEADER_BYTES: usize = MAX_NAME_BYTES + 256;

/// A message header, as harmony reads it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Header {
    channel: Option<String>,
    recipient: Option<String>,
}

/// Reads a header: the text between `<|start|>` and `<|message|>` when `with_role` (its first
/// word is the role), else what follows the prompt's `<|start|>assistant`. `None` when harmony
/// refuses it (an empty channel, words left over).
fn parse_header(text: &str, with_role: bool) -> Option<Header> {
    let mut text = text.to_owned();
    let mut channel = None;
    if let Some(at) = text.find(CHANNEL) {
        let after = &text[at + CHANNEL.len()..];
        let end = after.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(after.len());
        if end == 0 {
            return None;
        }
        channel = Some(after[..end].to_owned());
        text = format!("{}{}", &text[..at], &after[end..]);
    }
    // `to=functions.f<|constrain|>json` is two words.
    let text = text.trim().replace(CONSTRAIN, &format!(" {CONSTRAIN}"));
    let mut words: Vec<&str> = text.split_ascii_whitespace().collect();
    if !words.is_empty() && (with_role || words[0] == "assistant") {
        words.remove(0);
    }
    let mut recipient = None;
    if let Some(last) = words.pop() {
        if let Some(name) = last.strip_prefix("to=") {
            recipient = Some(name);
        } else if words.is_empty() && !last.starts_with(CONSTRAIN) {
            // A lone word that is no content type names the recipient.
            recipient = Some(last);
        } else if let Some(before) = words.pop() {
            // `last` is the content type; the word before it, if any, is the recipient.
            recipient = Some(before.strip_prefix("to=").unwrap_or(before));
        }
    }
    words.is_empty().then(|| Header { channel, recipient: recipient.map(str::to_owned) })
}

/// Whether `text` (after any `<|start|>`) can be, or begin, a header: short, on one line, and
/// without a message's start or end in it.
fn header_possible(text: &str) -> bool {
    text.len() <= MAX_HEADER_BYTES
        && !text.contains(['\n', '\r'])
        && !text.contains(START)
        && !MESSAGE_ENDS.iter().any(|end| text.contains(end))
}

/// The function a harmony recipient names (`functions.get_weather`), if it is one.
fn function_name(recipient: &str) -> Option<&str> {
    recipient.strip_prefix(FUNCTIONS).filter(|name| {
        !name.is_empty() && name.len() <= MAX_NAME_BYTES && name.chars().all(super::is_name_char)
    })
}

impl OutputParser {
    /// Before a message: whitespace between messages is dropped; a header begins a message;
    /// anything else is text outside a message, read as content.
    pub(super) fn step_harmony_next(&mut self, text: &str, pos: &mut usize, at_end: bool) -> Flow {
        let rest = &text[*pos..];
        let trimmed = rest.trim_start();
        *pos += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            self.mode = Mode::HarmonyNext;
            return Flow::Wait;
        }
        if HEADER_OPENERS.iter().any(|opener| trimmed.starts_with(opener)) {
            self.mode = Mode::HarmonyHeader;
            return Flow::Continue;
        }
        if !at_end && HEADER_OPENERS.iter().any(|opener| opener.starts_with(trimmed)) {
            self.mode = Mode::HarmonyNext;
            return Flow::Wait;
        }
        self.mode = Mode::HarmonyText { reasoning: false };
        Flow::Continue
    }

    /// A header, up to `<|message|>`: decides what the message's text is. A header that is not
    /// one is read as the text of a message (content).
    pub(super) fn step_harmony_header(
        &mut self,
        text: &str,
        pos: &mut usize,
        at_end: bool,
    ) -> Flow {
        let rest = &text[*pos..];
        let with_role = rest.starts_with(START);
        let header_start = if with_role { START.len() } else { 0 };
        // Only as far as a header can reach is looked at (`<|message|>` further on does not end
        // this header).
        let mut reach = rest.len().min(header_start + MAX_HEADER_BYTES + MESSAGE.len());
        while !rest.is_char_boundary(reach) {
            reach -= 1;
        }
        let header_text = &rest[header_start..reach];
        match header_text.find(MESSAGE) {
            Some(at) if header_possible(&header_text[..at]) => {
                if let Some(header) = parse_header(&header_text[..at], with_role) {
                    let raw = &rest[..header_start + at + MESSAGE.len()];
                    let offset = self.consumed + *pos;
                    *pos += raw.len();
                    self.begin_message(header, raw, offset);
                    return Flow::Continue;
                }
            }
            Some(_) => {}
            None => {
                // A possible `<|message|>` at the end is not part of the header.
                let header = &header_text[..super::hold_start(header_text, &[MESSAGE])];
                if !at_end && header_possible(header) {
                    self.mode = Mode::HarmonyHeader;
                    return Flow::Wait;
                }
            }
        }
        self.mode = Mode::HarmonyText { reasoning: false };
        Flow::Continue
    }

    /// The message's text follows its header `raw` (all of it up to `<|message|>`), which
    /// starts at byte `offset` of the output.
    fn begin_message(&mut self, header: Header, raw: &str, offset: usize) {
        let Some(recipient) = header.recipient else {
            let reasoning = header.channel.as_deref() == Some("analysis");
            self.mode = Mode::HarmonyText { reasoning };
            return;
        };
        let name = function_name(&recipient).filter(|_| self.tool_format.is_some());
        if let Some(name) = name {
            let mut region = self.new_region(RegionKind::Harmony, offset, raw);
            self.call_named(&mut region, name.to_owned());
            self.mode = Mode::HarmonyCall(Box::new(region));
            return;
        }
        // Without tools a message to a function is text, as other formats' calls are; with
        // tools, one to anything else (a built-in tool) is a call that cannot be made.
        if self.tool_format.is_some() {
            let reason = format!(
                "the message is addressed to {recipient:?}, not to a function (`to=functions.NAME`)"
            );
            self.output.issues.push(ParseIssue::MalformedToolCall { offset, reason });
        }
        self.emit_content(raw);
        self.mode = Mode::HarmonyText { reasoning: false };
    }

    /// A message's text, up to its end.
    pub(super) fn step_harmony_text(
        &mut self,
        text: &str,
        pos: &mut usize,
        reasoning: bool,
        at_end: bool,
    ) -> Flow {
        let rest = &text[*pos..];
        let (body, end) = message_body(rest, at_end);
        if reasoning {
            self.emit_reasoning(&rest[..body]);
        } else {
            self.emit_content(&rest[..body]);
        }
        *pos += body;
        if let Some(end) = end {
            *pos += end.len();
            if reasoning {
                self.reasoning.separate();
            } else {
                self.content.separate();
            }
            self.mode = Mode::HarmonyNext;
            return Flow::Continue;
        }
        if at_end && reasoning {
            self.output.issues.push(ParseIssue::UnterminatedReasoning);
        }
        self.mode = if at_end { Mode::HarmonyNext } else { Mode::HarmonyText { reasoning } };
        Flow::Wait
    }

    /// A call's text: its arguments object, then only whitespace up to the message's end (or
    /// the end of the output: `<|call|>` ends the generation and may not be in the text).
    pub(super) fn step_harmony_call(
        &mut self,
        mut region: Box<Region>,
        text: &str,
        pos: &mut usize,
        at_end: bool,
    ) -> Flow {
        let rest = &text[*pos..];
        let (body, end) = message_body(rest, at_end);
        for (at, c) in rest[..body].char_indices() {
            let step = if region.completed.is_empty() {
                self.feed_region(&mut region, c)
            } else if c.is_whitespace() {
                RegionStep::Consumed
            } else {
                RegionStep::Failed("text after the tool arguments")
            };
            if let RegionStep::Failed(reason) = step {
                // The rest of the message is text.
                let issue =
                    ParseIssue::MalformedToolCall { offset: region.offset, reason: reason.into() };
                self.fail_region(*region, issue);
                *pos += at;
                self.mode = Mode::HarmonyText { reasoning: false };
                return Flow::Continue;
            }
            region.raw.push(c);
        }
        *pos += body;
        if end.is_none() && !at_end {
            self.mode = Mode::HarmonyCall(region);
            return Flow::Wait;
        }
        let offset = region.offset;
        if region.completed.is_empty() {
            let issue = match end {
                Some(_) => ParseIssue::MalformedToolCall {
                    offset,
                    reason: "the message ended inside the tool arguments".into(),
                },
                None => ParseIssue::UnterminatedToolCall { offset },
            };
            self.fail_region(*region, issue);
            self.content.separate();
        } else {
            // The content around the call is separated as around any message.
            self.output.tool_calls.append(&mut region.completed);
        }
        if let Some(end) = end {
            *pos += end.len();
        }
        self.mode = Mode::HarmonyNext;
        Flow::Continue
    }
}

/// Where the message in `rest` ends: the length of its body that can be emitted (all of it at
/// the end of the output, else up to a possible partial end tag) and the end tag, when seen.
fn message_body(rest: &str, at_end: bool) -> (usize, Option<&'static str>) {
    match super::first_trigger(rest, MESSAGE_ENDS) {
        Some((start, end)) => (start, Some(end)),
        None if at_end => (rest.len(), None),
        None => (super::hold_start(rest, MESSAGE_ENDS), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(channel: Option<&str>, recipient: Option<&str>) -> Option<Header> {
        Some(Header {
            channel: channel.map(str::to_owned),
            recipient: recipient.map(str::to_owned),
        })
    }

    #[test]
    fn headers_read_like_harmony() {
        assert_eq!(parse_header("<|channel|>final", false), header(Some("final"), None));
        assert_eq!(
            parse_header("<|channel|>commentary to=functions.f <|constrain|>json", false),
            header(Some("commentary"), Some("functions.f"))
        );
        // The recipient before the channel, as gpt-oss's template writes past calls.
        assert_eq!(
            parse_header("assistant to=functions.f<|channel|>commentary json", true),
            header(Some("commentary"), Some("functions.f"))
        );
        assert_eq!(
            parse_header(" to=functions.f<|channel|>commentary<|constrain|>json", false),
            header(Some("commentary"), Some("functions.f"))
        );
        assert_eq!(
            parse_header("assistant<|channel|>analysis", true),
            header(Some("analysis"), None)
        );
        // A lone word is a recipient, unless it is a constrained content type.
        assert_eq!(
            parse_header("<|channel|>x functions.f", false),
            header(Some("x"), Some("functions.f"))
        );
        assert_eq!(parse_header("<|constrain|>json", false), header(None, None));
        assert_eq!(parse_header("", false), header(None, None));
        // What harmony refuses.
        assert_eq!(parse_header("<|channel|> final", false), None);
        assert_eq!(parse_header("<|channel|>final a b c", false), None);
    }

    #[test]
    fn headers_are_short_lines_without_message_tokens() {
        assert!(header_possible("<|channel|>commentary to=functions.f <|constrain|>json"));
        assert!(!header_possible("<|channel|>final\n"));
        assert!(!header_possible("<|channel|>final<|end|>"));
        assert!(!header_possible("assistant<|start|>"));
        assert!(!header_possible(&"a".repeat(MAX_HEADER_BYTES + 1)));
    }

    /// Undecided text stays small: at most one header, or a possible end tag.
    #[test]
    fn held_text_is_bounded() {
        use crate::{ReasoningFormat, ToolCallFormat};
        let harmony = || {
            OutputParser::new(Some(ToolCallFormat::Harmony), Some(ReasoningFormat::Harmony), false)
        };
        let mut parser = harmony();
        parser.push("<|start|>assistant<|channel|>final");
        for _ in 0..1_000 {
            parser.push(" x");
            assert!(parser.held_bytes() <= START.len() + MAX_HEADER_BYTES + MESSAGE.len());
        }
        let mut parser = harmony();
        parser.push("<|channel|>analysis<|message|>");
        for _ in 0..1_000 {
            parser.push("text <|en");
            assert!(parser.held_bytes() <= " <|return|>".len(), "{}", parser.held_bytes());
        }
    }

    #[test]
    fn function_names_are_bounded_names() {
        assert_eq!(function_name("functions.get_weather"), Some("get_weather"));
        assert_eq!(function_name("functions."), None);
        assert_eq!(function_name("python"), None);
        assert_eq!(function_name("browser.search"), None);
        assert_eq!(function_name("functions.a b"), None);
        assert_eq!(function_name(&format!("functions.{}", "a".repeat(MAX_NAME_BYTES + 1))), None);
    }
}
