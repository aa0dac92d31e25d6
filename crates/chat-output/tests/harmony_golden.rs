//! gpt-oss outputs read by OpenAI's own harmony parser (`openai-harmony`) and by uma's
//! [`OutputParser`]: each message harmony finds must come out of uma's parser where uma puts it,
//! in one piece, char by char and cut at every position.
//!
//! Where uma puts a harmony message: a message to `functions.NAME` is a call of `NAME` with the
//! message's text as arguments (compacted); one on the `analysis` channel is reasoning; any
//! other (`final`, a `commentary` preamble) is content. Messages of one kind are joined by a
//! blank line, each trimmed. An output that ends inside an `analysis` message (no stop token)
//! is reported as unterminated reasoning.
//!
//! Goldens: `tests/golden/harmony/outputs.json`, written by `scripts/golden/harmony.py`.

mod common;

use std::path::PathBuf;

use common::{call, parse_every_way, Setup};
use uma_chat_output::{ParseIssue, ParsedOutput, ReasoningFormat, ToolCallFormat};

fn golden_cases() -> Vec<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/harmony/outputs.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{} is missing ({e}); generate it with scripts/golden/harmony.py", path.display())
    });
    let golden: serde_json::Value = serde_json::from_slice(&bytes).expect("outputs.json is JSON");
    golden["cases"].as_array().expect("cases").clone()
}

/// JSON text without its insignificant whitespace (what the parser gives as arguments).
fn compact_json(text: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// What uma must make of the messages harmony read (see the module docs).
fn expected(case: &serde_json::Value) -> ParsedOutput {
    let messages = case["messages"].as_array().expect("messages");
    let (mut reasoning, mut content, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for message in messages {
        let text = message["text"].as_str().expect("text");
        match (message["recipient"].as_str(), message["channel"].as_str()) {
            (Some(recipient), _) => {
                let name = recipient.strip_prefix("functions.").expect("a function");
                calls.push(call(name, &compact_json(text)));
            }
            (None, Some("analysis")) => reasoning.push(text.trim()),
            (None, _) => content.push(text.trim()),
        }
    }
    let join = |parts: Vec<&str>| {
        parts.into_iter().filter(|part| !part.is_empty()).collect::<Vec<_>>().join("\n\n")
    };
    let reasoning = Some(join(reasoning)).filter(|text| !text.is_empty());
    let stopped_in_analysis =
        case["stop"].is_null() && messages.last().is_some_and(|m| m["channel"] == "analysis");
    ParsedOutput {
        reasoning,
        content: join(content),
        tool_calls: calls,
        issues: if stopped_in_analysis { vec![ParseIssue::UnterminatedReasoning] } else { vec![] },
    }
}

const HARMONY: Setup = Setup {
    tool_format: Some(ToolCallFormat::Harmony),
    reasoning: Some(ReasoningFormat::Harmony),
    starts_in_reasoning: false,
};

#[test]
fn uma_reads_gpt_oss_outputs_as_harmony_does() {
    let cases = golden_cases();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    let mut with_calls = 0;
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let text = case["text"].as_str().expect("text");
        let want = expected(case);
        assert_eq!(parse_every_way(HARMONY, text), want, "{name}");
        // Whether or not the stop token made it into the text.
        if let Some(stop) = case["stop"].as_str() {
            assert_eq!(parse_every_way(HARMONY, &format!("{text}{stop}")), want, "{name}+stop");
        }
        if want.tool_calls.is_empty() {
            // Without tools (`uma run`, tool_choice none) an answer reads the same.
            let no_tools = Setup { tool_format: None, ..HARMONY };
            assert_eq!(parse_every_way(no_tools, text), want, "{name} without tools");
        } else {
            with_calls += 1;
        }
    }
    assert!(with_calls >= 4, "the goldens hold {with_calls} calls");
}

#[test]
fn compact_json_drops_only_insignificant_whitespace() {
    assert_eq!(compact_json("{\n  \"a b\": [1, \"x\\\" y\"] }"), "{\"a b\":[1,\"x\\\" y\"]}");
    assert_eq!(compact_json("{\"\\\\\": \" \"}"), "{\"\\\\\":\" \"}");
}
