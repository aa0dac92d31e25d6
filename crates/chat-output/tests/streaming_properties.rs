//! Properties over random and adversarial text: no panics, streaming at any split equals the
//! one-shot parse, deltas fold to the output, parsed arguments are JSON objects, and rendered
//! calls parse back.

mod common;

use common::{fold, split_at, stream, without_issues, Setup};
use proptest::prelude::*;
use uma_chat_output::{OutputParser, ParsedToolCall, ReasoningFormat, ToolCallFormat};

const TOOL_FORMATS: [ToolCallFormat; 6] = [
    ToolCallFormat::Hermes,
    ToolCallFormat::Llama3,
    ToolCallFormat::Mistral,
    ToolCallFormat::MistralArgs,
    ToolCallFormat::Generic,
    ToolCallFormat::Harmony,
];

const FORMATS: [Option<ToolCallFormat>; 7] = [
    None,
    Some(ToolCallFormat::Hermes),
    Some(ToolCallFormat::Llama3),
    Some(ToolCallFormat::Mistral),
    Some(ToolCallFormat::MistralArgs),
    Some(ToolCallFormat::Generic),
    Some(ToolCallFormat::Harmony),
];

const REASONING_FORMATS: [Option<ReasoningFormat>; 3] =
    [None, Some(ReasoningFormat::Think), Some(ReasoningFormat::Harmony)];

/// The reasoning syntax that goes with a tool-call format, when the model thinks.
fn reasoning_of(format: ToolCallFormat, think: bool) -> Option<ReasoningFormat> {
    match format {
        ToolCallFormat::Harmony => Some(ReasoningFormat::Harmony),
        _ => think.then_some(ReasoningFormat::Think),
    }
}

/// Pieces that exercise every tag, trigger and JSON state, and their near misses.
const FRAGMENTS: &[&str] = &[
    "<tool_call>",
    "</tool_call>",
    "<tool_",
    "</tool",
    "<think>",
    "</think>",
    "<thi",
    "</th",
    "[TOOL_CALLS]",
    "[TOOL_",
    "[ARGS]",
    "[CALL_ID]",
    "abc123def",
    "<|python_tag|>",
    "<|py",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    ";",
    "\\",
    "\\u00e9",
    "\\ud83d",
    "\\ude00",
    "\\n",
    " ",
    "\n",
    "\t",
    "a",
    "1",
    "-",
    ".",
    "e",
    "true",
    "null",
    "é",
    "😀",
    "東",
    "\"name\"",
    "\"arguments\"",
    "\"parameters\"",
    "\"type\"",
    "\"function\"",
    "\"f\"",
    "\"tool_calls\"",
    "\"tool_call\"",
    "\"response\"",
    "\"id\"",
    "{\"name\": \"f\", \"arguments\": {\"a\": [1, \"x\"]}}",
    "{\"name\": \"g\"}",
    "{\"arguments\": {}}",
    "{\"name\": \"f\", \"parameters\": ",
    "get_weather",
    // Harmony (gpt-oss).
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    "<|call|>",
    "<|return|>",
    "<|constrain|>",
    "<|",
    "<|chan",
    "|>",
    "assistant",
    "analysis",
    "final",
    "commentary",
    " to=functions.f",
    "to=",
    "functions.",
    "json",
    "\u{0}",
    "\u{1f}",
];

fn fragment_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40)
        .prop_map(|pieces| pieces.concat())
}

/// Arbitrary text, with a bias towards the characters that matter.
fn noisy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        fragment_text(),
        "[<>{}\\[\\]\"\\\\:,; a-z/|_\n\u{e9}\u{1F600}]{0,60}",
        any::<String>(),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        proptest::sample::select(&FORMATS[..]),
        proptest::sample::select(&REASONING_FORMATS[..]),
        any::<bool>(),
    )
        .prop_map(|(tool_format, reasoning, starts_in_reasoning)| Setup {
            tool_format,
            reasoning,
            starts_in_reasoning,
        })
}

fn cuts(text: &str, raw: &[usize]) -> Vec<usize> {
    let boundaries = common::boundaries(text);
    raw.iter().map(|cut| boundaries[cut % boundaries.len()]).collect()
}

fn check_output_invariants(output: &uma_chat_output::ParsedOutput) -> Result<(), TestCaseError> {
    for call in &output.tool_calls {
        let value: serde_json::Value = serde_json::from_str(&call.arguments)
            .map_err(|error| TestCaseError::fail(format!("{call:?}: {error}")))?;
        prop_assert!(value.is_object(), "{:?}", call);
        prop_assert!(!call.name.is_empty());
        prop_assert!(!call.arguments.contains(['\n', '\t']), "not compact: {:?}", call);
    }
    if let Some(reasoning) = &output.reasoning {
        prop_assert!(!reasoning.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_split_streams_like_one_piece(
        setup in setup(),
        text in noisy_text(),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let one_piece = stream(setup, &[&text]);
        let pieces = split_at(&text, &cuts(&text, &raw_cuts));
        let streamed = stream(setup, &pieces);
        prop_assert_eq!(&streamed, &one_piece, "pieces {:?}", pieces);
        prop_assert_eq!(without_issues(&one_piece.1), fold(&one_piece.0));
        check_output_invariants(&one_piece.1)?;
        if setup.tool_format.is_none() && setup.reasoning.is_none() {
            prop_assert_eq!(&one_piece.1.content, &text);
        }
    }

    /// Valid calls of the parser's format mixed with noise: calls complete, fail and resume
    /// around each other, and streaming must still agree with the one-shot parse.
    #[test]
    fn calls_mixed_with_noise_stream_like_one_piece(
        format in proptest::sample::select(&TOOL_FORMATS[..]),
        think in any::<bool>(),
        segments in proptest::collection::vec(
            prop_oneof![
                fragment_text().prop_map(Segment::Noise),
                (tool_name(), arguments_object()).prop_map(|(name, value)| Segment::Call(
                    ParsedToolCall { name, arguments: serde_json::to_string(&value).unwrap() }
                )),
            ],
            0..6,
        ),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let text: String = segments
            .iter()
            .map(|segment| match segment {
                Segment::Noise(text) => text.clone(),
                Segment::Call(call) => format.render(std::slice::from_ref(call)),
            })
            .collect();
        let setup = Setup {
            tool_format: Some(format),
            reasoning: reasoning_of(format, think),
            starts_in_reasoning: false,
        };
        let one_piece = stream(setup, &[&text]);
        let pieces = split_at(&text, &cuts(&text, &raw_cuts));
        prop_assert_eq!(&stream(setup, &pieces), &one_piece, "pieces {:?}", pieces);
        prop_assert_eq!(without_issues(&one_piece.1), fold(&one_piece.0));
        check_output_invariants(&one_piece.1)?;
        // Only rendered calls (or the complete call among the noise fragments) can come out.
        let rendered = segments.iter().filter(|segment| matches!(segment, Segment::Call(_))).count();
        // A harmony call is a message to `functions.NAME`.
        let noise_calls = match format {
            ToolCallFormat::Harmony => text.matches("functions.").count(),
            _ => text.matches("{\"name\": \"").count(),
        };
        prop_assert!(one_piece.1.tool_calls.len() <= rendered + noise_calls);
    }

    /// Text with none of the characters any tag or JSON starts with is content (trimmed, when
    /// there is a format).
    #[test]
    fn plain_text_is_content(setup in setup(), text in "[a-zA-Z0-9 .,!?'\n\u{e9}\u{4e1c}]{0,80}") {
        let output = OutputParser::parse(setup.tool_format, setup.reasoning, false, &text);
        let passthrough = setup.tool_format.is_none() && setup.reasoning.is_none();
        prop_assert_eq!(output.content, if passthrough { text.as_str() } else { text.trim() });
        prop_assert!(output.tool_calls.is_empty() && output.issues.is_empty());
        prop_assert_eq!(output.reasoning, None);
    }

    /// Calls rendered in their format, after optional reasoning and text, parse back exactly.
    #[test]
    fn rendered_calls_parse_back(
        format in proptest::sample::select(&TOOL_FORMATS[..]),
        calls in proptest::collection::vec((tool_name(), arguments_object(), any::<bool>()), 0..4),
        prose in "[a-zA-Z0-9 .,!?\u{e9}]{0,30}",
        reasoning in proptest::option::of("[a-zA-Z0-9 .,\n]{1,30}"),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let expected: Vec<ParsedToolCall> = calls
            .iter()
            .map(|(name, value, _)| ParsedToolCall {
                name: name.clone(),
                arguments: serde_json::to_string(value).unwrap(),
            })
            .collect();
        // The model may pretty-print its arguments; the parser compacts them.
        let written: Vec<ParsedToolCall> = calls
            .iter()
            .map(|(name, value, pretty)| ParsedToolCall {
                name: name.clone(),
                arguments: if *pretty {
                    serde_json::to_string_pretty(value).unwrap()
                } else {
                    serde_json::to_string(value).unwrap()
                },
            })
            .collect();
        // Text before calls is allowed by every format but the start-anchored ones.
        let anchored = matches!(format, ToolCallFormat::Llama3 | ToolCallFormat::Generic);
        let prose = if anchored && !calls.is_empty() { String::new() } else { prose };
        let (text, setup) = if format == ToolCallFormat::Harmony {
            // Reasoning and text are messages of their own; text before calls is a preamble.
            let mut messages = Vec::new();
            if let Some(reasoning) = &reasoning {
                messages.push(format!("<|channel|>analysis<|message|>{reasoning}"));
            }
            if !prose.is_empty() {
                let channel = if written.is_empty() { "final" } else { "commentary" };
                messages.push(format!("<|channel|>{channel}<|message|>{prose}"));
            }
            if !written.is_empty() {
                messages.push(format.render(&written));
            }
            let setup = Setup { reasoning: Some(ReasoningFormat::Harmony), ..Setup::tools(format) };
            let mut text = messages.join("<|end|><|start|>assistant");
            if written.is_empty() && !text.is_empty() {
                text.push_str("<|end|>");
            }
            (text, setup)
        } else {
            let mut text = String::new();
            if let Some(reasoning) = &reasoning {
                text.push_str(&format!("<think>{reasoning}</think>\n\n"));
            }
            text.push_str(&prose);
            if !prose.is_empty() {
                text.push('\n');
            }
            text.push_str(&format.render(&written));
            (text, Setup::tools(format).with_think(false))
        };
        let one_piece = stream(setup, &[&text]);
        let output = &one_piece.1;
        prop_assert_eq!(&output.tool_calls, &expected, "{}", text);
        prop_assert_eq!(&output.content, prose.trim());
        prop_assert_eq!(output.reasoning.as_deref(), reasoning.as_deref().map(str::trim).filter(|r| !r.is_empty()));
        prop_assert!(output.issues.is_empty(), "{:?}", output.issues);
        let pieces = split_at(&text, &cuts(&text, &raw_cuts));
        prop_assert_eq!(stream(setup, &pieces), one_piece);
    }

    /// A rendered call cut short anywhere never yields a call it did not finish, and keeps all
    /// its text as content.
    #[test]
    fn truncated_calls_are_content(
        format in proptest::sample::select(&TOOL_FORMATS[..]),
        name in tool_name(),
        arguments in arguments_object(),
        cut in any::<usize>(),
    ) {
        let call = ParsedToolCall { name, arguments: serde_json::to_string(&arguments).unwrap() };
        let text = format.render(std::slice::from_ref(&call));
        let boundaries = common::boundaries(&text);
        let end = boundaries[cut % (boundaries.len() - 1)];
        let truncated = &text[..end];
        let output = OutputParser::parse(Some(format), None, false, truncated);
        prop_assert!(output.tool_calls.is_empty(), "{:?}", truncated);
        prop_assert_eq!(output.content, truncated.trim());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Harmony messages in any order, headers written either way (channel or recipient first,
    /// with or without `<|constrain|>`), each land in their place: `analysis` in the reasoning,
    /// `final` and preambles in the content, messages to functions as calls; at any split.
    #[test]
    fn harmony_messages_land_in_their_channels(
        messages in proptest::collection::vec(harmony_message(), 0..6),
        stop in proptest::sample::select(&["", "<|return|>", "<|call|>"][..]),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut text = String::new();
        let (mut reasoning, mut content, mut calls) = (Vec::new(), Vec::new(), Vec::new());
        for (index, message) in messages.iter().enumerate() {
            if index > 0 {
                text.push_str(if matches!(messages[index - 1], HarmonyMessage::Call { .. }) {
                    "<|call|><|start|>assistant"
                } else {
                    "<|end|><|start|>assistant"
                });
            }
            match message {
                HarmonyMessage::Text { channel, text: body } => {
                    text.push_str(&format!("<|channel|>{channel}<|message|>{body}"));
                    let part = body.trim().to_owned();
                    if part.is_empty() {
                    } else if *channel == "analysis" {
                        reasoning.push(part);
                    } else {
                        content.push(part);
                    }
                }
                HarmonyMessage::Call { call, header } => {
                    let name = &call.name;
                    let constrain = "<|constrain|>json<|message|>";
                    text.push_str(&match header {
                        0 => format!("<|channel|>commentary to=functions.{name} {constrain}"),
                        1 => format!(" to=functions.{name}<|channel|>commentary json<|message|>"),
                        _ => format!("<|channel|>commentary to=functions.{name}<|message|>"),
                    });
                    text.push_str(&call.arguments);
                    calls.push(call.clone());
                }
            }
        }
        text.push_str(stop);
        let setup = Setup {
            reasoning: Some(ReasoningFormat::Harmony),
            ..Setup::tools(ToolCallFormat::Harmony)
        };
        let one_piece = stream(setup, &[&text]);
        let output = &one_piece.1;
        prop_assert_eq!(&output.tool_calls, &calls, "{}", text);
        prop_assert_eq!(&output.content, &content.join("\n\n"), "{}", text);
        let want_reasoning = Some(reasoning.join("\n\n")).filter(|r| !r.is_empty());
        prop_assert_eq!(&output.reasoning, &want_reasoning, "{}", text);
        let stopped_in_analysis = stop.is_empty()
            && matches!(messages.last(), Some(HarmonyMessage::Text { channel: "analysis", .. }));
        prop_assert_eq!(output.issues.is_empty(), !stopped_in_analysis, "{:?}", output.issues);
        prop_assert_eq!(without_issues(output), fold(&one_piece.0));
        let pieces = split_at(&text, &cuts(&text, &raw_cuts));
        prop_assert_eq!(stream(setup, &pieces), one_piece);
    }
}

#[derive(Debug, Clone)]
enum HarmonyMessage {
    Text {
        channel: &'static str,
        text: String,
    },
    /// `header`: which way the header is written.
    Call {
        call: ParsedToolCall,
        header: u8,
    },
}

fn harmony_message() -> impl Strategy<Value = HarmonyMessage> {
    prop_oneof![
        (
            proptest::sample::select(&["analysis", "final", "commentary"][..]),
            "[a-zA-Z0-9 .,!?<>|{}\"\n\u{e9}\u{4e1c}]{0,30}",
        )
            .prop_map(|(channel, text)| HarmonyMessage::Text { channel, text }),
        (tool_name(), arguments_object(), 0..3u8).prop_map(|(name, value, header)| {
            let arguments = serde_json::to_string(&value).expect("serializable");
            HarmonyMessage::Call { call: ParsedToolCall { name, arguments }, header }
        }),
    ]
}

#[derive(Debug, Clone)]
enum Segment {
    Noise(String),
    Call(ParsedToolCall),
}

fn tool_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
}

fn arguments_object() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(serde_json::Value::from),
        "\\PC{0,10}".prop_map(serde_json::Value::String),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map("[a-z_]{1,8}", value, 0..4)
        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect()))
}
