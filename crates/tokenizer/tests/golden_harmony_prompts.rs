//! gpt-oss prompts: conversations rendered by uma's [`ChatTemplate`] with gpt-oss's chat template
//! (the one its GGUF files carry) must be byte-identical to `transformers`' rendering, and equal
//! to what OpenAI's own harmony renderer (`openai-harmony`) writes for the same conversation but
//! for the template's known departures from it, each checked to be exactly what it is.
//!
//! Goldens: `tests/golden/harmony/prompts.json`, written by `scripts/golden/harmony.py`.

use std::path::PathBuf;

use uma_tokenizer::{ChatMessage, ChatTemplate};

fn golden() -> serde_json::Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/harmony");
    let path = dir.join("prompts.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{} is missing ({e}); generate it with scripts/golden/harmony.py", path.display())
    });
    serde_json::from_slice(&bytes).expect("prompts.json is JSON")
}

fn template(golden: &serde_json::Value) -> ChatTemplate {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/harmony");
    let file = golden["template"].as_str().expect("template path");
    let source = std::fs::read_to_string(dir.join(file)).expect("the gpt-oss template");
    use sha2::Digest;
    let sha256: String =
        sha2::Sha256::digest(source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(Some(sha256.as_str()), golden["template_sha256"].as_str(), "{file} changed");
    let special = &golden["special_tokens"];
    let text = |name: &str| special[name].as_str().map(str::to_owned);
    let mut template =
        ChatTemplate::new(source, text("bos_token"), text("eos_token")).expect("compiles");
    template.set_now(golden["now"].as_i64().expect("now"));
    template
}

/// Where gpt-oss's template writes a prompt otherwise than harmony. Each rewrites harmony's
/// text into the template's, so that the rest must be equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    /// Developer instructions without tools end with a blank line (harmony ends them at the
    /// text).
    InstructionsBlankLine,
    /// A parameter's `// default: x` comment ends with a comma.
    DefaultComma,
    /// A past call's content type is `json`, not `<|constrain|>json`.
    UnconstrainedJson,
    /// A tool's result is written as a JSON string (`|tojson` of the text), not as its text.
    QuotedToolResult,
    /// An object parameter's properties are written inline with the template's whitespace, not
    /// as harmony's indented lines: compared without the tool's type.
    NestedObjectLayout,
}

const TOOL_RESULT_HEADER: &str = " to=assistant<|channel|>commentary<|message|>";

impl Departure {
    fn apply(self, harmony: &str) -> String {
        match self {
            Departure::InstructionsBlankLine => {
                let developer = "<|start|>developer<|message|>";
                let start = harmony.find(developer).expect("a developer message");
                let end = start + harmony[start..].find("<|end|>").expect("its end");
                format!("{}\n\n{}", &harmony[..end], &harmony[end..])
            }
            Departure::DefaultComma => harmony
                .split('\n')
                .map(|line| {
                    if line.contains(" // default: ") && !line.ends_with(',') {
                        format!("{line},")
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Departure::UnconstrainedJson => harmony.replace(
                "<|channel|>commentary <|constrain|>json<|message|>",
                "<|channel|>commentary json<|message|>",
            ),
            Departure::QuotedToolResult => {
                let mut out = String::new();
                let mut rest = harmony;
                while let Some(at) = rest.find(TOOL_RESULT_HEADER) {
                    let body = at + TOOL_RESULT_HEADER.len();
                    let end = body + rest[body..].find("<|end|>").expect("the result's end");
                    out.push_str(&rest[..body]);
                    out.push_str(&serde_json::Value::from(&rest[body..end]).to_string());
                    rest = &rest[end..];
                }
                out + rest
            }
            Departure::NestedObjectLayout => without_tool_types(harmony),
        }
    }
}

/// `text` without the body of each tool's TypeScript type (`type f = (_: {` … `}) => any;`).
fn without_tool_types(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("= (_: {") {
        let end = at + rest[at..].find("}) => any;").expect("the type's end");
        out.push_str(&rest[..at]);
        rest = &rest[end..];
    }
    out + rest
}

fn departures(name: &str) -> &'static [Departure] {
    use Departure::*;
    match name {
        "chat" | "reasoning_effort_high" | "tools_without_system" => &[],
        "system_and_history" | "developer_role" => &[InstructionsBlankLine],
        "tools" => &[DefaultComma],
        "tool_call_history" | "tool_call_with_thinking" | "tool_call_then_answer" => {
            &[DefaultComma, UnconstrainedJson, QuotedToolResult]
        }
        "nested_object_parameter" => &[NestedObjectLayout],
        other => panic!("no departures listed for case {other:?}"),
    }
}

#[test]
fn uma_renders_gpt_oss_prompts_like_transformers_and_harmony() {
    let golden = golden();
    let template = template(&golden);
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let messages: Vec<ChatMessage> =
            serde_json::from_value(case["messages"].clone()).expect("messages");
        assert_eq!(
            serde_json::to_value(&messages).expect("serializable"),
            case["messages"],
            "{name}: ChatMessage does not round-trip the golden's messages"
        );
        let tools = Some(&case["tools"]).filter(|tools| !tools.is_null());
        let kwargs = case["kwargs"].as_object().expect("kwargs");
        let uma = template.render_with_kwargs(&messages, tools, true, kwargs).expect("renders");
        let transformers = case["template"].as_str().expect("template text");
        assert_eq!(uma, transformers, "{name}: uma differs from transformers");

        let harmony = case["harmony"].as_str().expect("harmony text");
        let mut expected = harmony.to_owned();
        let mut got = uma.clone();
        for departure in departures(name) {
            let before = expected.clone();
            expected = departure.apply(&expected);
            if *departure == Departure::NestedObjectLayout {
                got = without_tool_types(&got);
            }
            assert_ne!(expected, before, "{name}: {departure:?} changes nothing: update the list");
        }
        assert_eq!(got, expected, "{name}: the template departs from harmony otherwise");
        assert!(uma.ends_with("<|start|>assistant"), "{name}: the generation prompt");
    }
}
