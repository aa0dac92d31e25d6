//! Realistic model outputs for each format, parsed in one piece and streamed at every split.

mod common;

use common::{call, parse_every_way, stream, Setup};
use uma_chat_output::{
    OutputDelta, OutputParser, ParseIssue, ParsedOutput, ReasoningFormat, ToolCallFormat,
};

fn output(
    reasoning: Option<&str>,
    content: &str,
    calls: Vec<uma_chat_output::ParsedToolCall>,
) -> ParsedOutput {
    ParsedOutput {
        reasoning: reasoning.map(str::to_owned),
        content: content.to_owned(),
        tool_calls: calls,
        issues: Vec::new(),
    }
}

const HERMES: Setup = Setup {
    tool_format: Some(ToolCallFormat::Hermes),
    reasoning: None,
    starts_in_reasoning: false,
};

// ---------------------------------------------------------------------------------------------
// Hermes / Qwen

#[test]
fn qwen2_5_coder_single_call() {
    let text = "<tool_call>\n{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \
                \"San Francisco, CA\", \"unit\": \"celsius\"}}\n</tool_call>";
    assert_eq!(
        parse_every_way(HERMES, text),
        output(
            None,
            "",
            vec![call(
                "get_current_weather",
                r#"{"location":"San Francisco, CA","unit":"celsius"}"#
            )]
        )
    );
}

/// What qwen2.5-coder-1.5b answered with tool_choice auto (uma, 2026-12-05): its call in a
/// ```json fence instead of the tags. A bare object is read as a call too.
#[test]
fn qwen2_5_coder_calls_without_tags() {
    let fenced = "```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n    \"city\": \
                  \"Paris\",\n    \"unit\": \"celsius\"\n  }\n}\n```";
    let expected =
        output(None, "", vec![call("get_weather", r#"{"city":"Paris","unit":"celsius"}"#)]);
    assert_eq!(parse_every_way(HERMES, fenced), expected);
    let bare =
        "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}";
    assert_eq!(parse_every_way(HERMES, bare), expected);
    // Doubled braces, as the example in Qwen2.5's template writes them (seen on the 1.5B model).
    let doubled = format!("{{{bare}}}");
    assert_eq!(parse_every_way(HERMES, &doubled), expected);
    // JSON that is not a call, fenced or bare, stays the answer.
    for answer in ["```json\n{\"city\": \"Paris\"}\n```", "{\"city\": \"Paris\"}"] {
        assert_eq!(parse_every_way(HERMES, answer), output(None, answer, vec![]), "{answer}");
    }
    // Without tools nothing is a call.
    let plain = Setup { tool_format: None, ..HERMES };
    assert_eq!(parse_every_way(plain, fenced).content, fenced);
}

#[test]
fn hermes_text_before_parallel_calls() {
    let text = "I'll check both cities for you.\n\n<tool_call>\n{\"name\": \"get_weather\", \
                \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \
                \"get_weather\", \"arguments\": {\"city\": \"東京\", \"days\": 3}}\n</tool_call>";
    assert_eq!(
        parse_every_way(HERMES, text),
        output(
            None,
            "I'll check both cities for you.",
            vec![
                call("get_weather", r#"{"city":"Paris"}"#),
                call("get_weather", r#"{"city":"東京","days":3}"#),
            ]
        )
    );
}

#[test]
fn hermes_streams_begin_then_argument_fragments() {
    let text = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>";
    let mut parser = HERMES.parser();
    let mut seen = Vec::new();
    for c in text.chars() {
        seen.extend(parser.push(&c.to_string()));
    }
    // The name is announced before any argument text, and arguments arrive piece by piece.
    assert_eq!(seen[0], OutputDelta::ToolCallBegin { index: 0, name: "f".to_owned() });
    let fragments: Vec<&str> = seen[1..]
        .iter()
        .map(|delta| match delta {
            OutputDelta::ToolCallArguments { index: 0, fragment } => fragment.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(fragments, ["{", "\"", "a", "\"", ":", "1", "}"]);
    let (last, parsed) = parser.finish();
    assert!(last.is_empty());
    assert_eq!(parsed.tool_calls, [call("f", r#"{"a":1}"#)]);
}

#[test]
fn hermes_2_pro_arguments_before_name() {
    let text = "<tool_call>\n{\"arguments\": {\"symbol\": \"TSLA\"}, \"name\": \
                \"get_stock_fundamentals\"}\n</tool_call>";
    assert_eq!(
        parse_every_way(HERMES, text),
        output(None, "", vec![call("get_stock_fundamentals", r#"{"symbol":"TSLA"}"#)])
    );
}

#[test]
fn hermes_arguments_as_a_json_string() {
    let text =
        "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"q\\\": \\\"a b\\\"}\"}\n</tool_call>";
    assert_eq!(parse_every_way(HERMES, text), output(None, "", vec![call("f", r#"{"q":"a b"}"#)]));
}

#[test]
fn hermes_unicode_and_escapes_in_arguments() {
    let text = "Voilà 😀\n<tool_call>\n{\"name\": \"translate\", \"arguments\": {\"text\": \
                \"naïve café 😀\", \"quote\": \"\\\"hi\\\"\\n\", \"code\": \"\\u00e9\"}}\n</tool_call>";
    assert_eq!(
        parse_every_way(HERMES, text),
        output(
            None,
            "Voilà 😀",
            vec![call(
                "translate",
                r#"{"text":"naïve café 😀","quote":"\"hi\"\n","code":"\u00e9"}"#
            )]
        )
    );
}

#[test]
fn hermes_text_without_calls_passes_through_and_tag_lookalikes_are_content() {
    let text = "Use <tool> tags, or a <tool_call_x> or even <tool_call without closing.";
    // `<tool_call ` is not `<tool_call>`: content.
    assert_eq!(parse_every_way(HERMES, text), output(None, text, vec![]));
}

#[test]
fn qwen3_thinking_then_tool_call() {
    let text = "<think>\nThe user wants the weather in Paris. I should call get_weather with \
                city=Paris.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \
                {\"city\": \"Paris\"}}\n</tool_call>";
    let setup = HERMES.with_think(false);
    assert_eq!(
        parse_every_way(setup, text),
        output(
            Some("The user wants the weather in Paris. I should call get_weather with city=Paris."),
            "",
            vec![call("get_weather", r#"{"city":"Paris"}"#)]
        )
    );
}

#[test]
fn qwen3_prompt_opened_think_and_calls_inside_reasoning_are_not_calls() {
    // enable_thinking: the prompt ends with `<think>\n`, so the output has no opening tag.
    let text = "Maybe <tool_call>{\"name\": \"x\"}</tool_call> is needed.\n</think>\n\nThe answer \
                is 4.";
    let setup = HERMES.with_think(true);
    assert_eq!(
        parse_every_way(setup, text),
        output(
            Some("Maybe <tool_call>{\"name\": \"x\"}</tool_call> is needed."),
            "The answer is 4.",
            vec![]
        )
    );
}

#[test]
fn deepseek_r1_distill_reasoning_and_repeated_open_tag() {
    let setup = Setup {
        tool_format: None,
        reasoning: Some(ReasoningFormat::Think),
        starts_in_reasoning: true,
    };
    let text = "Okay, so 2 + 2.\nThat is 4.\n</think>\n\n**4**";
    assert_eq!(
        parse_every_way(setup, text),
        output(Some("Okay, so 2 + 2.\nThat is 4."), "**4**", vec![])
    );
    // Some distills write `<think>` again although the prompt opened it.
    let text = "<think>\nHmm.\n</think>\nDone.";
    assert_eq!(parse_every_way(setup, text), output(Some("Hmm."), "Done.", vec![]));
}

#[test]
fn think_is_only_recognised_at_the_start() {
    let setup = Setup {
        tool_format: None,
        reasoning: Some(ReasoningFormat::Think),
        starts_in_reasoning: false,
    };
    let text = "Use the <think> tag like this: <think>x</think>.";
    assert_eq!(parse_every_way(setup, text), output(None, text, vec![]));
    let text = "  <think>a</think>b <think>c</think>";
    assert_eq!(parse_every_way(setup, text), output(Some("a"), "b <think>c</think>", vec![]));
}

#[test]
fn empty_reasoning_is_none() {
    let setup = HERMES.with_think(false);
    assert_eq!(parse_every_way(setup, "<think>\n\n</think>\n\nHi!"), output(None, "Hi!", vec![]));
}

// ---------------------------------------------------------------------------------------------
// Llama 3

const LLAMA3: Setup = Setup {
    tool_format: Some(ToolCallFormat::Llama3),
    reasoning: None,
    starts_in_reasoning: false,
};

#[test]
fn llama3_1_bare_json_call() {
    let text =
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}";
    assert_eq!(
        parse_every_way(LLAMA3, text),
        output(None, "", vec![call("get_weather", r#"{"city":"Paris","unit":"c"}"#)])
    );
}

#[test]
fn llama3_1_python_tag_call() {
    let text = "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
    assert_eq!(
        parse_every_way(LLAMA3, text),
        output(None, "", vec![call("get_weather", r#"{"city":"Paris"}"#)])
    );
    let text =
        "Let me look that up.<|python_tag|>{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}";
    assert_eq!(
        parse_every_way(LLAMA3, text),
        output(None, "Let me look that up.", vec![call("search", r#"{"q":"x"}"#)])
    );
}

#[test]
fn llama3_2_type_function_and_several_calls() {
    let text = "{\"type\": \"function\", \"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \
                \"parameters\": {\"x\": [1, 2]}}\n{\"name\": \"c\", \"parameters\": {}}";
    assert_eq!(
        parse_every_way(LLAMA3, text),
        output(None, "", vec![call("a", "{}"), call("b", r#"{"x":[1,2]}"#), call("c", "{}")])
    );
}

#[test]
fn llama3_json_that_is_not_a_call_is_content() {
    for text in [
        "{\"answer\": 42}",
        "Here is an example: {\"name\": \"x\", \"parameters\": {}}",
        "{name: 1}",
        "{",
    ] {
        assert_eq!(parse_every_way(LLAMA3, text), output(None, text, vec![]), "{text}");
    }
}

#[test]
fn llama3_content_after_calls() {
    let text = "{\"name\": \"a\", \"parameters\": {}}\n\nI called a.";
    assert_eq!(parse_every_way(LLAMA3, text), output(None, "I called a.", vec![call("a", "{}")]));
}

#[test]
fn llama3_builtin_tool_call_is_malformed() {
    let text = "<|python_tag|>brave_search.call(query=\"weather\")";
    let parsed = parse_every_way(LLAMA3, text);
    assert_eq!(parsed.content, text);
    assert!(parsed.tool_calls.is_empty());
    assert!(matches!(parsed.issues[..], [ParseIssue::MalformedToolCall { offset: 0, .. }]));
}

// ---------------------------------------------------------------------------------------------
// Mistral

#[test]
fn mistral_array_with_ids() {
    let setup = Setup::tools(ToolCallFormat::Mistral);
    let text = "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \
                \"id\": \"abc123def\"}, {\"name\": \"get_time\", \"arguments\": {}}]";
    assert_eq!(
        parse_every_way(setup, text),
        output(None, "", vec![call("get_weather", r#"{"city":"Paris"}"#), call("get_time", "{}")])
    );
}

#[test]
fn mistral_named_form_with_and_without_call_id() {
    let text = "Checking.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time\
                [CALL_ID]a1b2c3d4e[ARGS]{}";
    for format in [ToolCallFormat::MistralArgs, ToolCallFormat::Mistral] {
        assert_eq!(
            parse_every_way(Setup::tools(format), text),
            output(
                None,
                "Checking.",
                vec![call("get_weather", r#"{"city":"Paris"}"#), call("get_time", "{}")]
            )
        );
    }
}

#[test]
fn mistral_truncated_array_is_content_and_withdrawn() {
    let setup = Setup::tools(ToolCallFormat::Mistral);
    let text = "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"argu";
    let (deltas, parsed) = stream(setup, &[text]);
    assert_eq!(
        deltas,
        [
            OutputDelta::ToolCallBegin { index: 0, name: "a".to_owned() },
            OutputDelta::ToolCallArguments { index: 0, fragment: "{}".to_owned() },
            OutputDelta::ToolCallBegin { index: 1, name: "b".to_owned() },
            OutputDelta::ToolCallInvalid { index: 0 },
            OutputDelta::ToolCallInvalid { index: 1 },
            OutputDelta::Content(text.to_owned()),
        ]
    );
    assert_eq!(parsed.content, text);
    assert!(parsed.tool_calls.is_empty());
    assert_eq!(parsed.issues, [ParseIssue::UnterminatedToolCall { offset: 0 }]);
    parse_every_way(setup, text);
}

// ---------------------------------------------------------------------------------------------
// Generic

const GENERIC: Setup = Setup {
    tool_format: Some(ToolCallFormat::Generic),
    reasoning: None,
    starts_in_reasoning: false,
};

#[test]
fn generic_tool_calls_and_tool_call() {
    let text =
        "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, \
                {\"name\": \"now\", \"arguments\": {}}]}";
    assert_eq!(
        parse_every_way(GENERIC, text),
        output(None, "", vec![call("get_weather", r#"{"city":"Paris"}"#), call("now", "{}")])
    );
    let text = "{\n  \"tool_call\": {\"name\": \"now\", \"arguments\": {}}\n}";
    assert_eq!(parse_every_way(GENERIC, text), output(None, "", vec![call("now", "{}")]));
    assert_eq!(parse_every_way(GENERIC, "{\"tool_calls\": []}"), output(None, "", vec![]));
}

#[test]
fn generic_response_is_content() {
    let text = "{\"response\": \"It is \\\"sunny\\\" in Paris \\u2600\\ufe0f.\"}";
    assert_eq!(
        parse_every_way(GENERIC, text),
        output(None, "It is \"sunny\" in Paris \u{2600}\u{fe0f}.", vec![])
    );
}

#[test]
fn generic_plain_text_and_other_json_are_content() {
    for text in ["Hello there.", "{\"tool\": 1}", "[1, 2]"] {
        assert_eq!(parse_every_way(GENERIC, text), output(None, text, vec![]), "{text}");
    }
}

#[test]
fn generic_after_reasoning() {
    let setup = GENERIC.with_think(false);
    let text =
        "<think>plan</think>\n{\"tool_call\": {\"name\": \"f\", \"arguments\": {\"a\": true}}}";
    assert_eq!(
        parse_every_way(setup, text),
        output(Some("plan"), "", vec![call("f", r#"{"a":true}"#)])
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed

#[test]
fn invalid_json_in_hermes_call_is_content_with_an_issue() {
    let text = "Sure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": tru}}\n</tool_call>";
    let parsed = parse_every_way(HERMES, text);
    assert_eq!(parsed.content, text);
    assert!(parsed.tool_calls.is_empty());
    assert!(
        matches!(&parsed.issues[..], [ParseIssue::MalformedToolCall { offset: 6, .. }]),
        "{:?}",
        parsed.issues
    );
}

#[test]
fn unclosed_hermes_tag_at_the_end_is_withdrawn() {
    let text = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}";
    let (deltas, parsed) = stream(HERMES, &[text]);
    assert_eq!(
        deltas,
        [
            OutputDelta::ToolCallBegin { index: 0, name: "f".to_owned() },
            OutputDelta::ToolCallArguments { index: 0, fragment: "{\"a\":1}".to_owned() },
            OutputDelta::ToolCallInvalid { index: 0 },
            OutputDelta::Content(text.to_owned()),
        ]
    );
    assert_eq!(parsed.issues, [ParseIssue::UnterminatedToolCall { offset: 0 }]);
    assert_eq!(parsed.content, text);
    parse_every_way(HERMES, text);
}

#[test]
fn a_bad_call_does_not_hide_the_next_good_one() {
    let text =
        "<tool_call>\nnot json\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": \
                {}}\n</tool_call>";
    let parsed = parse_every_way(HERMES, text);
    assert_eq!(parsed.content, "<tool_call>\nnot json\n</tool_call>");
    assert_eq!(parsed.tool_calls, [call("g", "{}")]);
    assert_eq!(parsed.issues.len(), 1);
    // Indices are not reused after a withdrawal.
    let text =
        "<tool_call>{\"name\": \"a\", \"arguments\": {}} x</tool_call><tool_call>{\"name\": \
                \"b\"}</tool_call>";
    let (deltas, parsed) = stream(HERMES, &[text]);
    assert!(deltas.contains(&OutputDelta::ToolCallBegin { index: 1, name: "b".to_owned() }));
    assert_eq!(parsed.tool_calls, [call("b", "{}")]);
}

#[test]
fn missing_name_and_wrong_argument_types_are_malformed() {
    for text in [
        "<tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_cal>",
        "<tool_call>{\"name\": \"f\", \"arguments\": {}}}</tool_call>",
        // Valid JSON syntax, but not an f64: serde_json (and so the server) would refuse it.
        "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1e400}}</tool_call>",
    ] {
        let parsed = parse_every_way(HERMES, text);
        assert_eq!(parsed.content, text);
        assert!(parsed.tool_calls.is_empty());
        assert!(matches!(parsed.issues[..], [ParseIssue::MalformedToolCall { .. }]), "{text}");
    }
}

#[test]
fn unterminated_reasoning_is_reasoning_with_an_issue() {
    let setup = HERMES.with_think(false);
    let parsed = parse_every_way(setup, "<think>\nStill thinking about <tool_call>");
    assert_eq!(parsed.reasoning.as_deref(), Some("Still thinking about <tool_call>"));
    assert_eq!(parsed.content, "");
    assert_eq!(parsed.issues, [ParseIssue::UnterminatedReasoning]);
}

// ---------------------------------------------------------------------------------------------
// Harmony (gpt-oss); what openai-harmony itself reads is in harmony_golden.rs

const HARMONY: Setup = Setup {
    tool_format: Some(ToolCallFormat::Harmony),
    reasoning: Some(ReasoningFormat::Harmony),
    starts_in_reasoning: false,
};

#[test]
fn harmony_streams_reasoning_then_a_call() {
    let text = "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant\
                <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>\
                {\"city\": \"Paris\"}";
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    let (deltas, parsed) = stream(HARMONY, &chars);
    assert_eq!(
        deltas,
        [
            OutputDelta::Reasoning("Need the weather.".to_owned()),
            OutputDelta::ToolCallBegin { index: 0, name: "get_weather".to_owned() },
            OutputDelta::ToolCallArguments {
                index: 0,
                fragment: "{\"city\":\"Paris\"}".to_owned()
            },
        ]
    );
    assert_eq!(
        parsed,
        output(Some("Need the weather."), "", vec![call("get_weather", r#"{"city":"Paris"}"#)])
    );
}

#[test]
fn harmony_holds_only_possible_tags() {
    let mut parser = HARMONY.parser();
    assert_eq!(parser.push("<|chan"), []);
    assert_eq!(parser.push("nel|>final<|mess"), []);
    assert_eq!(parser.push("age|>Hi <|e"), [OutputDelta::Content("Hi".to_owned())]);
    assert_eq!(parser.push("x|>"), [OutputDelta::Content(" <|ex|>".to_owned())]);
    // A plain answer (no header) streams at once.
    let mut parser = HARMONY.parser();
    assert_eq!(parser.push("Hello"), [OutputDelta::Content("Hello".to_owned())]);
}

#[test]
fn harmony_starting_in_reasoning() {
    let setup = Setup { starts_in_reasoning: true, ..HARMONY };
    let text = "Think.<|end|><|start|>assistant<|channel|>final<|message|>Answer.";
    assert_eq!(parse_every_way(setup, text), output(Some("Think."), "Answer.", vec![]));
}

/// What harmony refuses is kept: text outside any message, whitespace between messages, a
/// header that does not parse.
#[test]
fn harmony_text_outside_messages_is_content() {
    assert_eq!(parse_every_way(HARMONY, "  Hello there."), output(None, "Hello there.", vec![]));
    let spaced =
        "<|channel|>final<|message|>a<|end|>\n<|start|>assistant<|channel|>final<|message|>b";
    assert_eq!(parse_every_way(HARMONY, spaced), output(None, "a\n\nb", vec![]));
    let bad_header = "<|channel|>final and more words<|message|>x";
    assert_eq!(parse_every_way(HARMONY, bad_header), output(None, bad_header, vec![]));
    let long_header = format!("<|channel|>final {}<|message|>x", "w".repeat(600));
    assert_eq!(parse_every_way(HARMONY, &long_header).content, long_header);
    let unfinished = "<|channel|>final";
    assert_eq!(parse_every_way(HARMONY, unfinished), output(None, unfinished, vec![]));
}

#[test]
fn harmony_messages_to_other_tools_are_malformed_calls() {
    // gpt-oss's built-in python tool (only offered by the template's `builtin_tools`).
    let text = "<|channel|>analysis to=python code<|message|>print(1)";
    let parsed = parse_every_way(HARMONY, text);
    assert_eq!(parsed.content, text);
    assert!(parsed.tool_calls.is_empty() && parsed.reasoning.is_none());
    assert!(matches!(parsed.issues[..], [ParseIssue::MalformedToolCall { offset: 0, .. }]));
    // Without tools a call is text, as in the other formats.
    let no_tools = Setup { tool_format: None, ..HARMONY };
    let call = "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}";
    assert_eq!(parse_every_way(no_tools, call), output(None, call, vec![]));
}

#[test]
fn harmony_malformed_arguments_are_withdrawn() {
    let header = "<|channel|>commentary to=functions.f <|constrain|>json<|message|>";
    for (arguments, unterminated) in
        [("{\"a\": }", false), ("[1]", false), ("{} trailing", false), ("{\"a\": 1", true)]
    {
        let text = format!(
            "<|channel|>analysis<|message|>Hm.<|end|><|start|>assistant{header}{arguments}"
        );
        let (deltas, _) = stream(HARMONY, &[&text]);
        assert!(deltas.contains(&OutputDelta::ToolCallInvalid { index: 0 }), "{text}");
        let parsed = parse_every_way(HARMONY, &text);
        // The call's message, from its `<|start|>`, is the content.
        let offset = text.find("<|start|>").expect("a second message");
        assert_eq!(
            (parsed.reasoning.as_deref(), &parsed.content[..]),
            (Some("Hm."), &text[offset..])
        );
        assert!(parsed.tool_calls.is_empty());
        match parsed.issues[..] {
            [ParseIssue::UnterminatedToolCall { offset: at }] => {
                assert!(unterminated && at == offset)
            }
            [ParseIssue::MalformedToolCall { offset: at, .. }] => {
                assert!(!unterminated && at == offset)
            }
            _ => panic!("{:?} for {text}", parsed.issues),
        }
    }
    // A message that ends before its arguments do.
    let text =
        format!("{header}{{\"a\": 1<|end|><|start|>assistant<|channel|>final<|message|>Sorry.");
    let parsed = parse_every_way(HARMONY, &text);
    assert_eq!(parsed.content, format!("{header}{{\"a\": 1\n\nSorry."));
    assert!(matches!(parsed.issues[..], [ParseIssue::MalformedToolCall { offset: 0, .. }]));
}

// ---------------------------------------------------------------------------------------------
// Holding back

#[test]
fn possible_tag_starts_are_held_then_released() {
    let mut parser = HERMES.with_think(false).parser();
    assert_eq!(parser.push("<thi"), []);
    assert_eq!(parser.push("nk>Plan"), [OutputDelta::Reasoning("Plan".to_owned())]);
    assert_eq!(parser.push(" </thin"), []);
    assert_eq!(parser.push("king"), [OutputDelta::Reasoning(" </thinking".to_owned())]);
    // The space before a possible tag waits too: it is dropped if a call follows.
    assert_eq!(parser.push("</think>Hello <tool_"), [OutputDelta::Content("Hello".to_owned())]);
    assert_eq!(parser.push("x"), [OutputDelta::Content(" <tool_x".to_owned())]);
    assert_eq!(parser.push(" <"), []);
    let (last, parsed) = parser.finish();
    assert_eq!(last, [OutputDelta::Content(" <".to_owned())]);
    assert_eq!(parsed.content, "Hello <tool_x <");
    assert_eq!(parsed.reasoning.as_deref(), Some("Plan </thinking"));
}

#[test]
fn start_patterns_are_held_until_decided() {
    let mut parser = LLAMA3.parser();
    assert_eq!(parser.push("{\"na"), []);
    assert_eq!(
        parser.push("me\": \"f\", "),
        [OutputDelta::ToolCallBegin { index: 0, name: "f".to_owned() }]
    );
    assert_eq!(
        parser.push("\"parameters\": {\"a\""),
        [OutputDelta::ToolCallArguments { index: 0, fragment: "{\"a\"".to_owned() }]
    );
    let mut parser = LLAMA3.parser();
    assert_eq!(parser.push("{\"ans"), [OutputDelta::Content("{\"ans".to_owned())]);
}

#[test]
fn no_formats_pass_text_through_unchanged() {
    let mut parser = OutputParser::new(None, None, true);
    assert_eq!(parser.push("  <think>\n"), [OutputDelta::Content("  <think>\n".to_owned())]);
    assert_eq!(parser.push(""), []);
    let (last, parsed) = parser.finish();
    assert!(last.is_empty());
    assert_eq!(parsed, output(None, "  <think>\n", vec![]));
}

#[test]
fn render_then_parse_round_trips_for_every_format() {
    let calls = vec![call("get_weather", r#"{"city":"Zürich","days":[1,2]}"#), call("now", "{}")];
    for format in [
        ToolCallFormat::Hermes,
        ToolCallFormat::Llama3,
        ToolCallFormat::Mistral,
        ToolCallFormat::MistralArgs,
        ToolCallFormat::Generic,
        ToolCallFormat::Harmony,
    ] {
        let text = format.render(&calls);
        assert_eq!(
            parse_every_way(Setup::tools(format), &text),
            output(None, "", calls.clone()),
            "{format:?}: {text}"
        );
    }
}
