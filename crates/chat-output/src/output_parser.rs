//! Generated text split into reasoning, content and tool calls while it streams.

mod harmony;

use crate::call_object::{CallObjectParser, MAX_NAME_BYTES};
use crate::json_scanner::{JsonScanner, Scan, StringDecoder, StringStep};
use crate::{
    OutputDelta, ParseIssue, ParsedOutput, ParsedToolCall, ReasoningFormat, ToolCallFormat,
};

/// At most this much whitespace is allowed between the tokens of a start pattern (`{ "name"`):
/// it bounds the text held while deciding whether an answer starts with a call.
const MAX_PATTERN_WHITESPACE: usize = 64;

/// Mistral's `[CALL_ID]` ids are 9 chars; anything much longer is not an id.
const MAX_CALL_ID_CHARS: usize = 64;

const TOOL_CALL_OPEN: &str = "<tool_call>";
const TOOL_CALL_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";
const MISTRAL_TOOL_CALLS: &str = "[TOOL_CALLS]";
const MISTRAL_ARGS: &str = "[ARGS]";
const MISTRAL_CALL_ID: &str = "[CALL_ID]";

/// Splits a chat model's output into reasoning, content and tool calls, as it streams.
///
/// Feed each piece of decoded text to [`OutputParser::push`]; it returns what is decided so far.
/// Text that may be the start of a tag or trigger (a trailing `<tool_` or `<thi`) is held back
/// until the next pieces decide it, and released as content if it is not one. At the end,
/// [`OutputParser::finish`] releases what is held and returns the whole parsed output.
///
/// The result does not depend on how the text was split into pieces: the deltas of any split,
/// with adjacent deltas of the same kind merged, are the same. Nothing is dropped except
/// whitespace around structure (around the reasoning block, before and between calls, leading and
/// trailing the answer) and the structural text itself (tags, call JSON). A malformed call is
/// returned as content with a [`ParseIssue`]. The parser holds at most the text of one
/// unfinished call, a few dozen undecided bytes and a run of whitespace waiting for what follows
/// it ([`OutputParser::held_bytes`]); it never panics.
///
/// With neither a tool-call nor a reasoning format, text passes through unchanged as content.
///
/// With harmony as either format ([`ReasoningFormat::Harmony`], [`ToolCallFormat::Harmony`])
/// the text is read as harmony messages: `analysis` ones are reasoning, messages to
/// `functions.NAME` are calls (when there is a tool format; else their text is content), any
/// other message is content; messages of a kind are joined by a blank line. Text outside any
/// message, or under a header that does not parse, is content.
#[derive(Debug)]
pub struct OutputParser {
    tool_format: Option<ToolCallFormat>,
    reasoning_format: Option<ReasoningFormat>,
    /// Received and not yet decided.
    pending: String,
    /// Bytes of text consumed before `pending` (for issue offsets).
    consumed: usize,
    mode: Mode,
    content: TextChannel,
    reasoning: TextChannel,
    /// A reasoning block was opened (or the output started in one): no second one is looked for.
    reasoning_seen: bool,
    next_index: usize,
    output: ParsedOutput,
    /// Deltas decided during the current `push`, adjacent ones of a kind merged.
    deltas: Vec<OutputDelta>,
}

#[derive(Debug)]
enum Mode {
    /// Free text. `at_start`: nothing of the answer has been decided yet, so start-only triggers
    /// (`<think>`, a bare `{"name"`) still count.
    Content { at_start: bool },
    /// Inside a reasoning block. `at_start`: a repeated opening tag may still be skipped.
    Reasoning { at_start: bool },
    /// Inside the text of tool calls.
    Region(Box<Region>),
    /// After a Llama 3 call: `;` and whitespace, then another call or the end.
    Llama3Between,
    /// Harmony: between messages (or at the start of the output): the next message's header,
    /// or text outside any message.
    HarmonyNext,
    /// Harmony: a message header, from `<|start|>` (or the first header token, after the
    /// prompt's `<|start|>assistant`) to `<|message|>`.
    HarmonyHeader,
    /// Harmony: the text of a message, read as reasoning or as content.
    HarmonyText { reasoning: bool },
    /// Harmony: the text of a message to a function: the call's arguments.
    HarmonyCall(Box<Region>),
}

/// Whitespace handling for one text channel (content or reasoning): whitespace that starts the
/// channel, or follows structure, is dropped; whitespace that ends it, or precedes structure, is
/// held until more text shows it is inside the text.
#[derive(Debug)]
struct TextChannel {
    skip_leading: bool,
    held_whitespace: String,
}

impl TextChannel {
    fn new() -> TextChannel {
        TextChannel { skip_leading: true, held_whitespace: String::new() }
    }

    /// The text to send now for `text` arriving on this channel, if any.
    fn accept(&mut self, text: &str) -> Option<String> {
        let mut text = text;
        if self.skip_leading {
            text = text.trim_start();
            if text.is_empty() {
                return None;
            }
            self.skip_leading = false;
        }
        let body_len = text.trim_end().len();
        if body_len == 0 {
            self.held_whitespace.push_str(text);
            return None;
        }
        let mut out = std::mem::take(&mut self.held_whitespace);
        out.push_str(&text[..body_len]);
        self.held_whitespace.push_str(&text[body_len..]);
        Some(out)
    }

    /// Structure (a call) was just read: whitespace around it is not text.
    fn restart(&mut self) {
        self.held_whitespace.clear();
        self.skip_leading = true;
    }

    /// A message of this channel ended (harmony): the next one's text, if any, follows after a
    /// blank line instead of the whitespace around the two.
    fn separate(&mut self) {
        if !self.skip_leading {
            self.held_whitespace = "\n\n".to_owned();
            self.skip_leading = true;
        }
    }
}

/// The text of one group of calls, from its trigger to its end. All or nothing: if any part is
/// malformed, every call begun in it is withdrawn and its whole text becomes content.
#[derive(Debug)]
struct Region {
    kind: RegionKind,
    /// Byte offset of the region in all text given.
    offset: usize,
    /// The region's text so far, returned as content if it fails.
    raw: String,
    state: RegionState,
    /// Indices of the calls begun (announced) in this region.
    begun: Vec<usize>,
    completed: Vec<ParsedToolCall>,
    call: Option<CallInProgress>,
    /// Generic `{"response": ...}` text already sent as content.
    response_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegionKind {
    /// `<tool_call>{...}</tool_call>`.
    Hermes,
    /// A Hermes call object without tags, at the start of the answer.
    HermesBare,
    /// A Hermes call object in a ```json fence, at the start of the answer.
    HermesFenced,
    /// A Hermes call object in doubled braces, at the start of the answer.
    HermesDoubled,
    /// `{...}` or `<|python_tag|>{...}`.
    Llama3,
    /// `[TOOL_CALLS]` then `[{...}, ...]` or `name[ARGS]{...}`.
    Mistral,
    /// `{"tool_calls": [{...}, ...]}` (after the matched `{"tool_calls":`).
    GenericCalls,
    /// `{"tool_call": {...}}` (after `{"tool_call":`).
    GenericCall,
    /// `{"response": "..."}` (after `{"response":`).
    GenericResponse,
    /// A harmony message to `functions.NAME`: its header, then the arguments object.
    Harmony,
}

#[derive(Debug)]
enum RegionState {
    /// Whitespace, then one call object.
    Object(Box<CallObjectParser>),
    /// Whitespace, then `text`; `matched` bytes of it read.
    Literal {
        text: &'static str,
        matched: usize,
        then: AfterLiteral,
    },
    /// Whitespace, then a call object (or `]` when `first`).
    ArrayElement {
        first: bool,
    },
    /// Whitespace, then `,` or `]`.
    ArrayAfterElement,
    /// After `[TOOL_CALLS]`: whitespace, then `[` or a name.
    MistralStart,
    MistralName(String),
    /// After the name (or call id): `[ARGS]`, or `[CALL_ID]` when `call_id_allowed`.
    MistralTag {
        tag: String,
        name: String,
        call_id_allowed: bool,
    },
    MistralCallId {
        name: String,
        length: usize,
    },
    /// The arguments object of a call whose name came before it (Mistral's `[ARGS]`, harmony).
    Arguments(JsonScanner),
    ResponseString(StringDecoder),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterLiteral {
    Done,
    ArrayElement,
    ResponseString,
}

/// The call being read: announced once its name is known; arguments read before that (key
/// order is free) wait in `unsent`.
#[derive(Debug, Default)]
struct CallInProgress {
    index: Option<usize>,
    name: String,
    arguments: String,
    unsent: String,
}

/// What one char did to a region.
enum RegionStep {
    Consumed,
    /// Consumed, and the region is complete.
    Complete,
    /// Not consumed: the region is malformed.
    Failed(&'static str),
}

/// Whether to keep processing in the same `push`.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Wait,
}

/// A token of a start pattern.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Literal(&'static str),
    /// JSON whitespace, possibly none.
    Whitespace,
}

#[derive(Debug, PartialEq, Eq)]
enum PatternMatch {
    /// The pattern matches the first `len` bytes.
    Full(usize),
    /// The text is a proper prefix of a match.
    Partial,
    None,
}

/// What a start pattern leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAction {
    Reasoning,
    /// A region of this kind starts; the matched text is consumed into it when `consume`.
    Region {
        kind: RegionKind,
        consume: bool,
    },
    /// A region of this kind starts after the fence that opens the match (up to the `{` of the
    /// call object, the last one before its `"name"`).
    FencedRegion {
        kind: RegionKind,
    },
}

/// Whether the answer begins with a start pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartMatch {
    Matched(StartAction, usize),
    /// The text so far is a prefix of a match: wait for more.
    Undecided,
    None,
}

use Piece::{Literal as Lit, Whitespace as Ws};

const LLAMA3_START: &[(&[Piece], StartAction)] = &[
    (
        &[Lit("{"), Ws, Lit("\"name\""), Ws, Lit(":")],
        StartAction::Region { kind: RegionKind::Llama3, consume: false },
    ),
    (
        &[Lit("{"), Ws, Lit("\"type\""), Ws, Lit(":"), Ws, Lit("\"function\"")],
        StartAction::Region { kind: RegionKind::Llama3, consume: false },
    ),
];

/// Hermes-format models (Qwen2.5-Coder especially) sometimes answer a call without their tags:
/// a bare call object, one in a ```json fence, or one in doubled braces (`{{"name": …}}`, copied
/// from the literal example in Qwen2.5's template), as the whole start of the answer. Only an
/// object whose first key is `"name"` counts, so a JSON answer stays content.
const HERMES_START: &[(&[Piece], StartAction)] = &[
    (
        &[Lit("{"), Ws, Lit("\"name\""), Ws, Lit(":")],
        StartAction::Region { kind: RegionKind::HermesBare, consume: false },
    ),
    (
        &[Lit("```json"), Ws, Lit("{"), Ws, Lit("\"name\""), Ws, Lit(":")],
        StartAction::FencedRegion { kind: RegionKind::HermesFenced },
    ),
    (
        &[Lit("{{"), Ws, Lit("\"name\""), Ws, Lit(":")],
        StartAction::FencedRegion { kind: RegionKind::HermesDoubled },
    ),
];

// No pattern can fully match text another one fully matches (`"tool_call"` includes its closing
// quote), so the first full match is the only one whatever the split.
const GENERIC_START: &[(&[Piece], StartAction)] = &[
    (
        &[Lit("{"), Ws, Lit("\"tool_calls\""), Ws, Lit(":")],
        StartAction::Region { kind: RegionKind::GenericCalls, consume: true },
    ),
    (
        &[Lit("{"), Ws, Lit("\"tool_call\""), Ws, Lit(":")],
        StartAction::Region { kind: RegionKind::GenericCall, consume: true },
    ),
    (
        &[Lit("{"), Ws, Lit("\"response\""), Ws, Lit(":")],
        StartAction::Region { kind: RegionKind::GenericResponse, consume: true },
    ),
];

impl OutputParser {
    /// A parser for one output. `starts_in_reasoning`: the prompt ended inside an open reasoning
    /// block ([`ReasoningFormat::starts_in_reasoning`]); ignored without a reasoning format.
    pub fn new(
        tool_format: Option<ToolCallFormat>,
        reasoning: Option<ReasoningFormat>,
        starts_in_reasoning: bool,
    ) -> OutputParser {
        let in_reasoning = starts_in_reasoning && reasoning.is_some();
        let harmony = reasoning == Some(ReasoningFormat::Harmony)
            || tool_format == Some(ToolCallFormat::Harmony);
        OutputParser {
            tool_format,
            reasoning_format: reasoning,
            pending: String::new(),
            consumed: 0,
            mode: match (harmony, in_reasoning) {
                (true, reasoning) => {
                    if reasoning {
                        Mode::HarmonyText { reasoning }
                    } else {
                        Mode::HarmonyNext
                    }
                }
                (false, true) => Mode::Reasoning { at_start: true },
                (false, false) => Mode::Content { at_start: true },
            },
            content: TextChannel::new(),
            reasoning: TextChannel::new(),
            reasoning_seen: in_reasoning,
            next_index: 0,
            output: ParsedOutput::default(),
            deltas: Vec::new(),
        }
    }

    /// Parses a complete output at once.
    pub fn parse(
        tool_format: Option<ToolCallFormat>,
        reasoning: Option<ReasoningFormat>,
        starts_in_reasoning: bool,
        text: &str,
    ) -> ParsedOutput {
        let mut parser = OutputParser::new(tool_format, reasoning, starts_in_reasoning);
        parser.push(text);
        parser.finish().1
    }

    /// Feeds the next piece of generated text; returns what it decided.
    pub fn push(&mut self, text: &str) -> Vec<OutputDelta> {
        if self.is_passthrough() {
            if !text.is_empty() {
                self.emit(OutputDelta::Content(text.to_owned()));
            }
        } else {
            self.pending.push_str(text);
            self.run(false);
        }
        std::mem::take(&mut self.deltas)
    }

    /// Ends the output: decides what was held back (an unfinished call becomes content) and
    /// returns the last deltas and the whole parsed output.
    pub fn finish(mut self) -> (Vec<OutputDelta>, ParsedOutput) {
        if !self.is_passthrough() {
            self.run(true);
        }
        (std::mem::take(&mut self.deltas), self.output)
    }

    /// The issues found so far.
    pub fn issues(&self) -> &[ParseIssue] {
        &self.output.issues
    }

    /// Bytes of received text held: not yet decided (a possible tag, an unfinished call), or
    /// whitespace waiting to see whether text follows it.
    pub fn held_bytes(&self) -> usize {
        let region = match &self.mode {
            Mode::Region(region) | Mode::HarmonyCall(region) => region.raw.len(),
            _ => 0,
        };
        self.pending.len()
            + region
            + self.content.held_whitespace.len()
            + self.reasoning.held_whitespace.len()
    }

    fn is_passthrough(&self) -> bool {
        self.tool_format.is_none() && self.reasoning_format.is_none()
    }

    /// Decides as much of `pending` as possible; at the end, all of it.
    fn run(&mut self, at_end: bool) {
        let text = std::mem::take(&mut self.pending);
        let mut pos = 0;
        loop {
            let mode = std::mem::replace(&mut self.mode, Mode::Content { at_start: false });
            let flow = match mode {
                Mode::Content { at_start } => self.step_content(&text, &mut pos, at_start, at_end),
                Mode::Reasoning { at_start } => {
                    self.step_reasoning(&text, &mut pos, at_start, at_end)
                }
                Mode::Region(region) => self.step_region(region, &text, &mut pos, at_end),
                Mode::Llama3Between => self.step_llama3_between(&text, &mut pos, at_end),
                Mode::HarmonyNext => self.step_harmony_next(&text, &mut pos, at_end),
                Mode::HarmonyHeader => self.step_harmony_header(&text, &mut pos, at_end),
                Mode::HarmonyText { reasoning } => {
                    self.step_harmony_text(&text, &mut pos, reasoning, at_end)
                }
                Mode::HarmonyCall(region) => {
                    self.step_harmony_call(region, &text, &mut pos, at_end)
                }
            };
            if flow == Flow::Wait {
                break;
            }
        }
        self.consumed += pos;
        self.pending = text[pos..].to_owned();
    }

    fn step_content(&mut self, text: &str, pos: &mut usize, at_start: bool, at_end: bool) -> Flow {
        if at_start {
            let rest = &text[*pos..];
            let trimmed = rest.trim_start();
            *pos += rest.len() - trimmed.len();
            if trimmed.is_empty() {
                self.mode = Mode::Content { at_start: !at_end };
                return Flow::Wait;
            }
            match self.match_start(trimmed) {
                StartMatch::Matched(StartAction::Reasoning, len) => {
                    *pos += len;
                    self.reasoning_seen = true;
                    self.mode = Mode::Reasoning { at_start: false };
                    return Flow::Continue;
                }
                StartMatch::Matched(StartAction::Region { kind, consume }, len) => {
                    let raw = if consume { &trimmed[..len] } else { "" };
                    let region = self.new_region(kind, self.consumed + *pos, raw);
                    *pos += raw.len();
                    self.mode = Mode::Region(Box::new(region));
                    return Flow::Continue;
                }
                StartMatch::Matched(StartAction::FencedRegion { kind }, len) => {
                    let fence = trimmed[..len].rfind('{').unwrap_or(len);
                    let region = self.new_region(kind, self.consumed + *pos, &trimmed[..fence]);
                    *pos += fence;
                    self.mode = Mode::Region(Box::new(region));
                    return Flow::Continue;
                }
                StartMatch::Undecided if !at_end => {
                    self.mode = Mode::Content { at_start: true };
                    return Flow::Wait;
                }
                // Not a start pattern: an ordinary answer.
                StartMatch::Undecided | StartMatch::None => {}
            }
        }

        let rest = &text[*pos..];
        let triggers = self.anywhere_triggers();
        if let Some((start, trigger)) = first_trigger(rest, triggers) {
            self.emit_content(&rest[..start]);
            let kind = match trigger {
                TOOL_CALL_OPEN => RegionKind::Hermes,
                PYTHON_TAG => RegionKind::Llama3,
                _ => RegionKind::Mistral,
            };
            let region = self.new_region(kind, self.consumed + *pos + start, trigger);
            *pos += start + trigger.len();
            self.mode = Mode::Region(Box::new(region));
            return Flow::Continue;
        }
        let hold = if at_end { rest.len() } else { hold_start(rest, triggers) };
        self.emit_content(&rest[..hold]);
        *pos += hold;
        self.mode = Mode::Content { at_start: false };
        Flow::Wait
    }

    fn step_reasoning(
        &mut self,
        text: &str,
        pos: &mut usize,
        at_start: bool,
        at_end: bool,
    ) -> Flow {
        let Some(format) = self.reasoning_format else {
            // Reasoning mode is only entered with a format; be safe anyway.
            self.mode = Mode::Content { at_start: false };
            return Flow::Continue;
        };
        if at_start {
            // The prompt opened the block and the model may open it again: skip that. Leading
            // whitespace is not reasoning text either way.
            let rest = &text[*pos..];
            let trimmed = rest.trim_start();
            *pos += rest.len() - trimmed.len();
            let open = format.open_tag();
            if trimmed.starts_with(open) {
                *pos += open.len();
            } else if open.starts_with(trimmed) && !at_end {
                self.mode = Mode::Reasoning { at_start: true };
                return Flow::Wait;
            }
        }
        let rest = &text[*pos..];
        let close = format.close_tag();
        if let Some(start) = rest.find(close) {
            self.emit_reasoning(&rest[..start]);
            *pos += start + close.len();
            self.mode = Mode::Content { at_start: true };
            return Flow::Continue;
        }
        if at_end {
            self.emit_reasoning(rest);
            *pos += rest.len();
            self.output.issues.push(ParseIssue::UnterminatedReasoning);
            self.mode = Mode::Content { at_start: false };
            return Flow::Continue;
        }
        let hold = hold_start(rest, &[close]);
        self.emit_reasoning(&rest[..hold]);
        *pos += hold;
        self.mode = Mode::Reasoning { at_start: false };
        Flow::Wait
    }

    fn step_llama3_between(&mut self, text: &str, pos: &mut usize, at_end: bool) -> Flow {
        let rest = &text[*pos..];
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        *pos += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            self.mode =
                if at_end { Mode::Content { at_start: false } } else { Mode::Llama3Between };
            return Flow::Wait;
        }
        if trimmed.starts_with('{') || trimmed.starts_with(PYTHON_TAG) {
            let raw = if trimmed.starts_with(PYTHON_TAG) { PYTHON_TAG } else { "" };
            let region = self.new_region(RegionKind::Llama3, self.consumed + *pos, raw);
            *pos += raw.len();
            self.mode = Mode::Region(Box::new(region));
            return Flow::Continue;
        }
        if PYTHON_TAG.starts_with(trimmed) && !at_end {
            self.mode = Mode::Llama3Between;
            return Flow::Wait;
        }
        self.mode = Mode::Content { at_start: false };
        Flow::Continue
    }

    fn step_region(
        &mut self,
        mut region: Box<Region>,
        text: &str,
        pos: &mut usize,
        at_end: bool,
    ) -> Flow {
        for c in text[*pos..].chars() {
            match self.feed_region(&mut region, c) {
                RegionStep::Consumed => {
                    region.raw.push(c);
                    *pos += c.len_utf8();
                }
                RegionStep::Complete => {
                    *pos += c.len_utf8();
                    let kind = region.kind;
                    self.output.tool_calls.append(&mut region.completed);
                    self.content.restart();
                    self.mode = if kind == RegionKind::Llama3 {
                        Mode::Llama3Between
                    } else {
                        Mode::Content { at_start: false }
                    };
                    return Flow::Continue;
                }
                RegionStep::Failed(reason) => {
                    // The char that broke the call is read again as content.
                    let offset = region.offset;
                    self.fail_region(
                        *region,
                        ParseIssue::MalformedToolCall { offset, reason: reason.to_owned() },
                    );
                    return Flow::Continue;
                }
            }
        }
        if at_end {
            let offset = region.offset;
            self.fail_region(*region, ParseIssue::UnterminatedToolCall { offset });
            return Flow::Continue;
        }
        self.mode = Mode::Region(region);
        Flow::Wait
    }

    fn new_region(&self, kind: RegionKind, offset: usize, raw: &str) -> Region {
        let state = match kind {
            RegionKind::Hermes
            | RegionKind::HermesBare
            | RegionKind::HermesFenced
            | RegionKind::HermesDoubled
            | RegionKind::Llama3
            | RegionKind::GenericCall => RegionState::Object(Box::new(CallObjectParser::new())),
            RegionKind::Mistral => RegionState::MistralStart,
            RegionKind::Harmony => RegionState::Arguments(JsonScanner::new()),
            RegionKind::GenericCalls => {
                RegionState::Literal { text: "[", matched: 0, then: AfterLiteral::ArrayElement }
            }
            RegionKind::GenericResponse => {
                RegionState::Literal { text: "\"", matched: 0, then: AfterLiteral::ResponseString }
            }
        };
        Region {
            kind,
            offset,
            raw: raw.to_owned(),
            state,
            begun: Vec::new(),
            completed: Vec::new(),
            call: None,
            response_sent: false,
        }
    }

    fn feed_region(&mut self, region: &mut Region, c: char) -> RegionStep {
        let state = std::mem::replace(&mut region.state, RegionState::ArrayAfterElement);
        let (state, step) = self.next_region_state(region, state, c);
        region.state = state;
        step
    }

    fn next_region_state(
        &mut self,
        region: &mut Region,
        state: RegionState,
        c: char,
    ) -> (RegionState, RegionStep) {
        use RegionStep::{Complete, Consumed, Failed};
        match state {
            RegionState::Object(mut parser) => {
                if !parser.started() && c.is_whitespace() {
                    return (RegionState::Object(parser), Consumed);
                }
                let complete = match parser.feed(c) {
                    Ok(complete) => complete,
                    Err(reason) => return (RegionState::Object(parser), Failed(reason)),
                };
                if let Some(name) = parser.take_name() {
                    self.call_named(region, name);
                }
                let fragment = parser.take_fragment();
                self.call_fragment(region, &fragment);
                if !complete {
                    return (RegionState::Object(parser), Consumed);
                }
                if let Err(reason) = self.call_complete(region) {
                    return (RegionState::Object(parser), Failed(reason));
                }
                match region.kind {
                    RegionKind::Hermes => (
                        RegionState::Literal {
                            text: TOOL_CALL_CLOSE,
                            matched: 0,
                            then: AfterLiteral::Done,
                        },
                        Consumed,
                    ),
                    RegionKind::Mistral | RegionKind::GenericCalls => {
                        (RegionState::ArrayAfterElement, Consumed)
                    }
                    RegionKind::GenericCall => (
                        RegionState::Literal { text: "}", matched: 0, then: AfterLiteral::Done },
                        Consumed,
                    ),
                    RegionKind::HermesFenced => (
                        RegionState::Literal { text: "```", matched: 0, then: AfterLiteral::Done },
                        Consumed,
                    ),
                    RegionKind::HermesDoubled => (
                        RegionState::Literal { text: "}", matched: 0, then: AfterLiteral::Done },
                        Consumed,
                    ),
                    RegionKind::Llama3
                    | RegionKind::HermesBare
                    | RegionKind::GenericResponse
                    | RegionKind::Harmony => (RegionState::ArrayAfterElement, Complete),
                }
            }
            RegionState::Literal { text, matched, then } => {
                if matched == 0 && c.is_whitespace() {
                    return (RegionState::Literal { text, matched, then }, Consumed);
                }
                if !text[matched..].starts_with(c) {
                    return (
                        RegionState::Literal { text, matched, then },
                        Failed(literal_error(text)),
                    );
                }
                let matched = matched + c.len_utf8();
                if matched < text.len() {
                    return (RegionState::Literal { text, matched, then }, Consumed);
                }
                match then {
                    AfterLiteral::Done => (RegionState::ArrayAfterElement, Complete),
                    AfterLiteral::ArrayElement => {
                        (RegionState::ArrayElement { first: true }, Consumed)
                    }
                    AfterLiteral::ResponseString => {
                        (RegionState::ResponseString(StringDecoder::default()), Consumed)
                    }
                }
            }
            RegionState::ArrayElement { first } => {
                if c.is_whitespace() {
                    (RegionState::ArrayElement { first }, Consumed)
                } else if c == ']' && first {
                    self.array_closed(region)
                } else if c == '{' {
                    self.next_region_state(
                        region,
                        RegionState::Object(Box::new(CallObjectParser::new())),
                        c,
                    )
                } else {
                    (RegionState::ArrayElement { first }, Failed("expected a tool call object"))
                }
            }
            RegionState::ArrayAfterElement => {
                if c.is_whitespace() {
                    (RegionState::ArrayAfterElement, Consumed)
                } else if c == ',' {
                    (RegionState::ArrayElement { first: false }, Consumed)
                } else if c == ']' {
                    self.array_closed(region)
                } else {
                    (
                        RegionState::ArrayAfterElement,
                        Failed("expected `,` or `]` after a tool call"),
                    )
                }
            }
            RegionState::MistralStart => {
                if c.is_whitespace() {
                    (RegionState::MistralStart, Consumed)
                } else if c == '[' {
                    (RegionState::ArrayElement { first: true }, Consumed)
                } else if is_name_char(c) {
                    (RegionState::MistralName(c.to_string()), Consumed)
                } else {
                    (RegionState::MistralStart, Failed("expected `[` or a tool name"))
                }
            }
            RegionState::MistralName(mut name) => {
                if c == '[' {
                    let tag = c.to_string();
                    (RegionState::MistralTag { tag, name, call_id_allowed: true }, Consumed)
                } else if is_name_char(c) && name.len() + c.len_utf8() <= MAX_NAME_BYTES {
                    name.push(c);
                    (RegionState::MistralName(name), Consumed)
                } else {
                    (RegionState::MistralName(name), Failed("invalid tool name"))
                }
            }
            RegionState::MistralTag { mut tag, name, call_id_allowed } => {
                tag.push(c);
                if tag == MISTRAL_ARGS {
                    self.call_named(region, name);
                    (RegionState::Arguments(JsonScanner::new()), Consumed)
                } else if call_id_allowed && tag == MISTRAL_CALL_ID {
                    (RegionState::MistralCallId { name, length: 0 }, Consumed)
                } else if MISTRAL_ARGS.starts_with(tag.as_str())
                    || (call_id_allowed && MISTRAL_CALL_ID.starts_with(tag.as_str()))
                {
                    (RegionState::MistralTag { tag, name, call_id_allowed }, Consumed)
                } else {
                    tag.pop();
                    let state = RegionState::MistralTag { tag, name, call_id_allowed };
                    (state, Failed("expected `[ARGS]` after the tool name"))
                }
            }
            RegionState::MistralCallId { name, length } => {
                if c == '[' {
                    let tag = c.to_string();
                    (RegionState::MistralTag { tag, name, call_id_allowed: false }, Consumed)
                } else if (c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && length < MAX_CALL_ID_CHARS
                {
                    (RegionState::MistralCallId { name, length: length + 1 }, Consumed)
                } else {
                    (RegionState::MistralCallId { name, length }, Failed("invalid call id"))
                }
            }
            RegionState::Arguments(mut scanner) => {
                let fresh = self.call_arguments_empty(region);
                if fresh && c.is_whitespace() {
                    return (RegionState::Arguments(scanner), Consumed);
                }
                if fresh && c != '{' {
                    let reason = "the tool arguments are not a JSON object";
                    return (RegionState::Arguments(scanner), Failed(reason));
                }
                match scanner.feed(c) {
                    Scan::Token { .. } => {
                        self.call_fragment(region, c.encode_utf8(&mut [0; 4]));
                    }
                    Scan::Whitespace => {}
                    Scan::EndedBefore => {
                        let reason = "text after the tool arguments";
                        return (RegionState::Arguments(scanner), Failed(reason));
                    }
                    Scan::Error(reason) => {
                        return (RegionState::Arguments(scanner), Failed(reason));
                    }
                }
                if scanner.is_complete() {
                    match self.call_complete(region) {
                        Ok(()) => (RegionState::ArrayAfterElement, Complete),
                        Err(reason) => (RegionState::Arguments(scanner), Failed(reason)),
                    }
                } else {
                    (RegionState::Arguments(scanner), Consumed)
                }
            }
            RegionState::ResponseString(mut decoder) => match decoder.feed(c) {
                StringStep::Char(decoded) => {
                    region.response_sent |= self.emit_content(decoded.encode_utf8(&mut [0; 4]));
                    (RegionState::ResponseString(decoder), Consumed)
                }
                StringStep::Pending => (RegionState::ResponseString(decoder), Consumed),
                StringStep::End => (
                    RegionState::Literal { text: "}", matched: 0, then: AfterLiteral::Done },
                    Consumed,
                ),
                StringStep::Error(reason) => (RegionState::ResponseString(decoder), Failed(reason)),
            },
        }
    }

    /// `]` of a call array was read.
    fn array_closed(&mut self, region: &Region) -> (RegionState, RegionStep) {
        if region.kind == RegionKind::GenericCalls {
            let state = RegionState::Literal { text: "}", matched: 0, then: AfterLiteral::Done };
            (state, RegionStep::Consumed)
        } else {
            (RegionState::ArrayAfterElement, RegionStep::Complete)
        }
    }

    fn call_named(&mut self, region: &mut Region, name: String) {
        let index = self.next_index;
        self.next_index += 1;
        region.begun.push(index);
        self.emit(OutputDelta::ToolCallBegin { index, name: name.clone() });
        let call = region.call.get_or_insert_with(CallInProgress::default);
        call.index = Some(index);
        call.name = name;
        let unsent = std::mem::take(&mut call.unsent);
        if !unsent.is_empty() {
            self.emit(OutputDelta::ToolCallArguments { index, fragment: unsent });
        }
    }

    fn call_fragment(&mut self, region: &mut Region, fragment: &str) {
        if fragment.is_empty() {
            return;
        }
        let call = region.call.get_or_insert_with(CallInProgress::default);
        call.arguments.push_str(fragment);
        match call.index {
            Some(index) => {
                self.emit(OutputDelta::ToolCallArguments { index, fragment: fragment.to_owned() })
            }
            None => call.unsent.push_str(fragment),
        }
    }

    fn call_arguments_empty(&self, region: &Region) -> bool {
        region.call.as_ref().is_none_or(|call| call.arguments.is_empty())
    }

    /// The call being read is complete. Its arguments were validated char by char; `serde_json`
    /// checks them once more (it also refuses numbers out of `f64` range), so that every call
    /// given out is sure to parse.
    fn call_complete(&mut self, region: &mut Region) -> Result<(), &'static str> {
        let Some(call) = region.call.take() else {
            return Err("a tool call without a name");
        };
        if serde_json::from_str::<serde_json::Value>(&call.arguments).is_err() {
            return Err("the tool arguments do not parse as JSON");
        }
        region.completed.push(ParsedToolCall { name: call.name, arguments: call.arguments });
        Ok(())
    }

    /// Withdraws the region's calls and returns its text as content.
    fn fail_region(&mut self, region: Region, issue: ParseIssue) {
        for &index in &region.begun {
            self.emit(OutputDelta::ToolCallInvalid { index });
        }
        self.output.issues.push(issue);
        // A `{"response": "..."}` whose text was already sent keeps it as the content: repeating
        // the raw JSON after it would say it twice.
        if !region.response_sent {
            self.emit_content(&region.raw);
        }
        self.mode = Mode::Content { at_start: false };
    }

    /// Which start pattern `text` begins with, if it is decided yet.
    fn match_start(&self, text: &str) -> StartMatch {
        // Harmony's reasoning is read by the harmony modes, never as a start pattern.
        let think = self
            .reasoning_format
            .filter(|format| *format == ReasoningFormat::Think && !self.reasoning_seen)
            .map(|_| -> (&'static [Piece], StartAction) {
                (&[Lit("<think>")], StartAction::Reasoning)
            });
        let tools: &[(&[Piece], StartAction)] = match self.tool_format {
            Some(ToolCallFormat::Llama3) => LLAMA3_START,
            Some(ToolCallFormat::Generic) => GENERIC_START,
            Some(ToolCallFormat::Hermes) => HERMES_START,
            _ => &[],
        };
        let mut result = StartMatch::None;
        for (pattern, action) in think.iter().chain(tools) {
            match match_pattern(pattern, text) {
                PatternMatch::Full(len) => return StartMatch::Matched(*action, len),
                PatternMatch::Partial => result = StartMatch::Undecided,
                PatternMatch::None => {}
            }
        }
        result
    }

    fn anywhere_triggers(&self) -> &'static [&'static str] {
        match self.tool_format {
            Some(ToolCallFormat::Hermes) => &[TOOL_CALL_OPEN],
            Some(ToolCallFormat::Llama3) => &[PYTHON_TAG],
            Some(ToolCallFormat::Mistral | ToolCallFormat::MistralArgs) => &[MISTRAL_TOOL_CALLS],
            Some(ToolCallFormat::Generic | ToolCallFormat::Harmony) | None => &[],
        }
    }

    /// Sends `text` on the content channel; whether anything was sent.
    fn emit_content(&mut self, text: &str) -> bool {
        match self.content.accept(text) {
            Some(text) => {
                self.emit(OutputDelta::Content(text));
                true
            }
            None => false,
        }
    }

    fn emit_reasoning(&mut self, text: &str) {
        if let Some(text) = self.reasoning.accept(text) {
            self.emit(OutputDelta::Reasoning(text));
        }
    }

    /// Records `delta` in the output (calls are recorded when their region completes) and queues
    /// it, merged into the previous delta when they are of a kind.
    fn emit(&mut self, delta: OutputDelta) {
        match &delta {
            OutputDelta::Content(text) => self.output.content.push_str(text),
            OutputDelta::Reasoning(text) => {
                self.output.reasoning.get_or_insert_with(String::new).push_str(text)
            }
            _ => {}
        }
        match (self.deltas.last_mut(), delta) {
            (Some(OutputDelta::Content(last)), OutputDelta::Content(text))
            | (Some(OutputDelta::Reasoning(last)), OutputDelta::Reasoning(text)) => {
                last.push_str(&text)
            }
            (
                Some(OutputDelta::ToolCallArguments { index: last_index, fragment: last }),
                OutputDelta::ToolCallArguments { index, fragment },
            ) if *last_index == index => last.push_str(&fragment),
            (_, delta) => self.deltas.push(delta),
        }
    }
}

/// Chars of a bare Mistral tool name.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

fn literal_error(text: &'static str) -> &'static str {
    match text {
        TOOL_CALL_CLOSE => "expected `</tool_call>` after the tool call",
        "}" => "expected `}` closing the tool call object",
        "[" => "expected `[` starting the tool call list",
        _ => "expected a string",
    }
}

/// The trigger that completes first in `text` (earliest end, then earliest start: what a
/// char-by-char stream would see), with its start.
fn first_trigger(text: &str, triggers: &[&'static str]) -> Option<(usize, &'static str)> {
    triggers
        .iter()
        .filter_map(|&trigger| text.find(trigger).map(|start| (start, trigger)))
        .min_by_key(|&(start, trigger)| (start + trigger.len(), start))
}

/// Start of the longest tail of `text` that is a proper prefix of a trigger (`text.len()` when
/// none): that tail must wait for more text.
fn hold_start(text: &str, triggers: &[&str]) -> usize {
    let longest = triggers.iter().map(|trigger| trigger.len()).max().unwrap_or(0);
    let first = text.len().saturating_sub(longest.saturating_sub(1));
    (first..text.len())
        .filter(|&start| text.is_char_boundary(start))
        .find(|&start| triggers.iter().any(|trigger| trigger.starts_with(&text[start..])))
        .unwrap_or(text.len())
}

fn match_pattern(pattern: &[Piece], text: &str) -> PatternMatch {
    let mut pos = 0;
    for piece in pattern {
        let rest = &text[pos..];
        match piece {
            Piece::Whitespace => {
                let trimmed = rest.trim_start_matches(crate::json_scanner::is_json_whitespace);
                let skipped = rest.len() - trimmed.len();
                if skipped > MAX_PATTERN_WHITESPACE {
                    return PatternMatch::None;
                }
                pos += skipped;
                if trimmed.is_empty() {
                    return PatternMatch::Partial;
                }
            }
            Piece::Literal(literal) => {
                if rest.starts_with(literal) {
                    pos += literal.len();
                } else if literal.starts_with(rest) {
                    return PatternMatch::Partial;
                } else {
                    return PatternMatch::None;
                }
            }
        }
    }
    PatternMatch::Full(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_fully_partially_or_not() {
        let name: &[Piece] = &[Lit("{"), Ws, Lit("\"name\""), Ws, Lit(":")];
        assert_eq!(match_pattern(name, "{\"name\": 1"), PatternMatch::Full(8));
        assert_eq!(match_pattern(name, "{ \n \"name\" :"), PatternMatch::Full(12));
        assert_eq!(match_pattern(name, "{ \"na"), PatternMatch::Partial);
        assert_eq!(match_pattern(name, "{"), PatternMatch::Partial);
        assert_eq!(match_pattern(name, "{\"name\" "), PatternMatch::Partial);
        assert_eq!(match_pattern(name, "{\"nam\":"), PatternMatch::None);
        assert_eq!(match_pattern(name, "x"), PatternMatch::None);
        let spaces = format!("{{{}\"name\":", " ".repeat(MAX_PATTERN_WHITESPACE + 1));
        assert_eq!(match_pattern(name, &spaces), PatternMatch::None);
    }

    #[test]
    fn hold_start_keeps_only_a_possible_trigger_start() {
        assert_eq!(hold_start("abc <tool_", &[TOOL_CALL_OPEN]), 4);
        assert_eq!(hold_start("abc <tool_x", &[TOOL_CALL_OPEN]), 11);
        assert_eq!(hold_start("abc", &[]), 3);
        assert_eq!(hold_start("é<", &[TOOL_CALL_OPEN]), "é".len());
    }

    #[test]
    fn first_trigger_is_the_earliest_to_complete() {
        assert_eq!(first_trigger("a<tool_call>b", &[TOOL_CALL_OPEN]), Some((1, TOOL_CALL_OPEN)));
        assert_eq!(first_trigger("abc", &[TOOL_CALL_OPEN]), None);
    }

    /// Undecided text stays small whatever the text, except inside an unfinished call; only a
    /// run of whitespace waiting for what follows can be longer.
    #[test]
    fn held_text_is_bounded_outside_calls() {
        let mut parser =
            OutputParser::new(Some(ToolCallFormat::Hermes), Some(ReasoningFormat::Think), false);
        for _ in 0..10_000 {
            parser.push("lorem <tool ipsum <think> <");
            assert!(parser.held_bytes() <= TOOL_CALL_OPEN.len(), "{}", parser.held_bytes());
        }
        let mut parser = OutputParser::new(Some(ToolCallFormat::Llama3), None, false);
        parser.push("{");
        for _ in 0..1_000 {
            parser.push(" ");
            assert!(parser.pending.len() <= MAX_PATTERN_WHITESPACE + 2);
        }
        let (_, parsed) = parser.finish();
        assert_eq!(parsed.content, "{");
        let mut parser =
            OutputParser::new(Some(ToolCallFormat::Mistral), Some(ReasoningFormat::Think), true);
        for _ in 0..1_000 {
            parser.push(" \n");
            assert!(parser.held_bytes() <= 1);
        }
        for _ in 0..10_000 {
            parser.push("thinking </thin");
            assert!(parser.held_bytes() <= "</think>".len());
        }
        // Whitespace waits until text follows it: it is held, but nothing else is.
        for _ in 0..1_000 {
            parser.push("\n");
        }
        assert_eq!(parser.held_bytes(), 1_000);
        assert_eq!(parser.push("x"), [OutputDelta::Reasoning(format!("{}x", "\n".repeat(1_000)))]);
        assert_eq!(parser.held_bytes(), 0);
    }
}
