//! Helpers shared by the integration tests: streaming a text in pieces, merging and folding
//! deltas, and checking that every way of streaming agrees with the one-shot parse.
#![allow(dead_code, unreachable_pub)]

use uma_chat_output::{
    OutputDelta, OutputParser, ParsedOutput, ParsedToolCall, ReasoningFormat, ToolCallFormat,
};

#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub tool_format: Option<ToolCallFormat>,
    pub reasoning: Option<ReasoningFormat>,
    pub starts_in_reasoning: bool,
}

impl Setup {
    pub fn tools(format: ToolCallFormat) -> Setup {
        Setup { tool_format: Some(format), reasoning: None, starts_in_reasoning: false }
    }

    pub fn with_think(self, starts_in_reasoning: bool) -> Setup {
        Setup { reasoning: Some(ReasoningFormat::Think), starts_in_reasoning, ..self }
    }

    pub fn parser(self) -> OutputParser {
        OutputParser::new(self.tool_format, self.reasoning, self.starts_in_reasoning)
    }
}

/// Streams `pieces`; returns all deltas (merged) and the final output.
pub fn stream(setup: Setup, pieces: &[&str]) -> (Vec<OutputDelta>, ParsedOutput) {
    let mut parser = setup.parser();
    let mut deltas = Vec::new();
    for piece in pieces {
        deltas.extend(parser.push(piece));
    }
    let (last, output) = parser.finish();
    deltas.extend(last);
    (merge(deltas), output)
}

/// Adjacent deltas of the same kind (and call) joined.
pub fn merge(deltas: Vec<OutputDelta>) -> Vec<OutputDelta> {
    let mut merged: Vec<OutputDelta> = Vec::new();
    for delta in deltas {
        match (merged.last_mut(), delta) {
            (Some(OutputDelta::Content(last)), OutputDelta::Content(text))
            | (Some(OutputDelta::Reasoning(last)), OutputDelta::Reasoning(text)) => {
                last.push_str(&text)
            }
            (
                Some(OutputDelta::ToolCallArguments { index: last_index, fragment: last }),
                OutputDelta::ToolCallArguments { index, fragment },
            ) if *last_index == index => last.push_str(&fragment),
            (_, delta) => merged.push(delta),
        }
    }
    merged
}

/// What a client accumulating the deltas ends with; panics if the deltas are inconsistent
/// (indices out of order, arguments or withdrawal for a call never begun, empty text deltas).
pub fn fold(deltas: &[OutputDelta]) -> ParsedOutput {
    let mut output = ParsedOutput::default();
    let mut calls: Vec<Option<ParsedToolCall>> = Vec::new();
    for delta in deltas {
        match delta {
            OutputDelta::Content(text) => {
                assert!(!text.is_empty(), "empty content delta");
                output.content.push_str(text);
            }
            OutputDelta::Reasoning(text) => {
                assert!(!text.is_empty(), "empty reasoning delta");
                output.reasoning.get_or_insert_with(String::new).push_str(text);
            }
            OutputDelta::ToolCallBegin { index, name } => {
                assert_eq!(*index, calls.len(), "calls begin in index order");
                calls.push(Some(ParsedToolCall { name: name.clone(), arguments: String::new() }));
            }
            OutputDelta::ToolCallArguments { index, fragment } => {
                let call = calls[*index].as_mut().expect("arguments of a withdrawn call");
                call.arguments.push_str(fragment);
            }
            OutputDelta::ToolCallInvalid { index } => {
                assert!(calls[*index].take().is_some(), "withdrawn twice");
            }
        }
    }
    output.tool_calls = calls.into_iter().flatten().collect();
    output
}

/// The output without its issues (deltas do not carry them).
pub fn without_issues(output: &ParsedOutput) -> ParsedOutput {
    ParsedOutput { issues: Vec::new(), ..output.clone() }
}

/// Char boundaries of `text`, both ends included.
pub fn boundaries(text: &str) -> Vec<usize> {
    text.char_indices().map(|(index, _)| index).chain([text.len()]).collect()
}

/// `text` cut at `cuts` (byte offsets on char boundaries, any order, duplicates allowed).
pub fn split_at<'a>(text: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut cuts: Vec<usize> = cuts.to_vec();
    cuts.push(0);
    cuts.push(text.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|pair| &text[pair[0]..pair[1]]).collect()
}

/// Parses `text` in one piece, char by char, and cut at every single position; asserts that all
/// agree (merged deltas and output) and that the deltas fold to the output. Returns the output.
pub fn parse_every_way(setup: Setup, text: &str) -> ParsedOutput {
    let (deltas, output) = stream(setup, &[text]);
    assert_eq!(without_issues(&output), fold(&deltas), "deltas fold to the output for {text:?}");
    assert_eq!(
        output,
        OutputParser::parse(setup.tool_format, setup.reasoning, setup.starts_in_reasoning, text)
    );

    let chars: Vec<String> = text.chars().map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    let by_char = stream(setup, &chars);
    assert_eq!(by_char, (deltas.clone(), output.clone()), "char by char: {text:?}");

    for cut in boundaries(text) {
        let pieces = split_at(text, &[cut]);
        assert_eq!(
            stream(setup, &pieces),
            (deltas.clone(), output.clone()),
            "split at byte {cut}: {pieces:?}"
        );
    }
    output
}

pub fn call(name: &str, arguments: &str) -> ParsedToolCall {
    ParsedToolCall { name: name.to_owned(), arguments: arguments.to_owned() }
}
