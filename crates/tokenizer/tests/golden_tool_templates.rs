//! Conversations with tools, rendered by uma's [`ChatTemplate`] and by Hugging Face
//! `transformers`' `apply_chat_template(..., tools=..., tokenize=False)` for the same inputs: the
//! output must be byte-identical, and a conversation the template refuses in transformers must be
//! refused by uma too.
//!
//! Goldens: `tests/golden/tool_templates/<name>.json` (the shared inputs in `inputs.json`), written
//! by `scripts/golden/tool_templates.py`. `gguf_<stem>.json` uses the template of a test GGUF file,
//! read the way uma reads it ([`ChatTemplate::from_gguf`]); the others use the llama.cpp templates
//! committed in `tests/golden/tool_templates/templates/` (see the README there).
//!
//! Two differences are known and asserted to be exactly what they are (see [`KnownDifference`]);
//! any other difference fails.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::open;
use uma_test_models::TestModel;
use uma_tokenizer::{ChatMessage, ChatTemplate, TemplateOrigin, TokenizerError};

type Map = serde_json::Map<String, serde_json::Value>;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tool_templates")
}

fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); generate it with scripts/golden/tool_templates.py",
            path.display()
        )
    })
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&read_bytes(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The inputs every golden shares: `system`, `tools`, `conversations`.
fn inputs() -> &'static (serde_json::Value, String) {
    static INPUTS: OnceLock<(serde_json::Value, String)> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let path = golden_dir().join("inputs.json");
        let bytes = read_bytes(&path);
        (read_json(&path), sha256_hex(&bytes))
    })
}

/// Where uma knowingly renders differently from transformers. Each is checked to be exactly
/// this difference, so a fix (or any further difference) makes the test fail.
#[derive(Clone, Copy, Debug)]
enum KnownDifference {
    /// `{% for tool in tools %}` with `tools` = None: Python raises `TypeError: 'NoneType' object
    /// is not iterable`; minijinja's for-loop iterates `none` as an empty sequence (its VM does
    /// that before any hook uma could install), so uma renders the conversation.
    IteratesNone,
    /// `"text"|safe + value`: Jinja2's `Markup.__add__` HTML-escapes the plain operand
    /// (`"` becomes `&#34;`) even without autoescaping; minijinja's `+` concatenates plain text.
    MarkupConcatenationEscapes,
}

fn known_difference(name: &str, case: &serde_json::Value) -> Option<KnownDifference> {
    let tools = case["tools"].as_bool().expect("tools is a bool");
    match name {
        // Iterates `tools` unconditionally.
        "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use" if !tools => {
            Some(KnownDifference::IteratesNone)
        }
        // `"Use the function '"|safe + name + "' to '"|safe + description + "'\n"|safe +
        // function|tojson()`.
        "meetkai-functionary-medium-v3.1" if tools => {
            Some(KnownDifference::MarkupConcatenationEscapes)
        }
        _ => None,
    }
}

/// Undoes `markupsafe.escape`.
fn html_unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The messages of a case, as uma's [`ChatMessage`]s. They must serialize back to exactly the
/// JSON transformers was given, or the comparison would not be between the same inputs.
fn messages(case: &serde_json::Value) -> Vec<ChatMessage> {
    let inputs = &inputs().0;
    let mut json = Vec::new();
    if case["system"].as_bool().expect("system is a bool") {
        json.push(inputs["system"].clone());
    }
    let name = case["conversation"].as_str().expect("conversation name");
    let conversation = inputs["conversations"][name].as_array();
    json.extend(conversation.unwrap_or_else(|| panic!("no conversation {name}")).iter().cloned());
    let json = serde_json::Value::Array(json);
    let messages: Vec<ChatMessage> = serde_json::from_value(json.clone()).expect("messages");
    assert_eq!(
        serde_json::to_value(&messages).expect("serializable"),
        json,
        "ChatMessage does not round-trip the golden's messages"
    );
    messages
}

/// Renders every case of `golden` with `template` (its clock set to the golden's) and returns one
/// description per mismatch. `kwargs` are template variables given with every case (special
/// tokens the template does not carry itself), under each case's own kwargs.
fn check_cases(
    golden: &serde_json::Value,
    template: &mut ChatTemplate,
    kwargs: &Map,
) -> Vec<String> {
    let name = golden["name"].as_str().expect("name");
    assert_eq!(
        golden["inputs_sha256"].as_str(),
        Some(inputs().1.as_str()),
        "{name}: generated from other inputs than inputs.json; rerun scripts/golden/tool_templates.py"
    );
    template.set_now(golden["now"].as_i64().expect("now is Unix seconds"));
    let cases = golden["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{name}: no cases");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let messages = messages(case);
        let tools = case["tools"].as_bool().expect("tools").then(|| inputs().0["tools"].clone());
        let add_generation_prompt = case["add_generation_prompt"].as_bool().expect("bool");
        let mut case_kwargs = kwargs.clone();
        case_kwargs.extend(case["kwargs"].as_object().expect("kwargs").clone());
        let label = format!(
            "{name} case {index} ({}, system={}, tools={}, add_generation_prompt={add_generation_prompt}, kwargs={})",
            case["conversation"], case["system"], case["tools"], case["kwargs"]
        );
        let rendered = template.render_with_kwargs(
            &messages,
            tools.as_ref(),
            add_generation_prompt,
            &case_kwargs,
        );
        let error = &case["error"];
        match (case["text"].as_str(), known_difference(name, case), rendered) {
            (Some(want), None, Ok(got)) => {
                // Templates see reasoning under two names: none may show it twice.
                let reasoning = messages.iter().filter_map(|m| m.reasoning.as_deref());
                if let Some(twice) = reasoning.into_iter().find(|r| got.matches(r).count() > 1) {
                    failures.push(format!("{label}: the reasoning {twice:?} is shown twice"));
                }
                if got != want {
                    let at = got.bytes().zip(want.bytes()).take_while(|(a, b)| a == b).count();
                    failures.push(format!(
                        "{label}: text differs at byte {at}\n--- uma:\n{got}\n--- transformers:\n{want}\n==="
                    ));
                }
            }
            (Some(want), Some(KnownDifference::MarkupConcatenationEscapes), Ok(got)) => {
                if got == want || got != html_unescape(want) {
                    failures.push(format!(
                        "{label}: expected to differ only by transformers' HTML escaping\n--- uma:\n{got}\n--- transformers:\n{want}\n==="
                    ));
                }
            }
            (Some(_), Some(KnownDifference::IteratesNone), Ok(_)) => {
                failures
                    .push(format!("{label}: transformers renders it now: update KnownDifference"));
            }
            (Some(_), _, Err(e)) => {
                failures.push(format!("{label}: transformers renders it, uma fails: {e}"));
            }
            (None, Some(KnownDifference::IteratesNone), Ok(_)) => {
                if error["message"] != "'NoneType' object is not iterable" {
                    failures.push(format!("{label}: transformers fails otherwise: {error}"));
                }
            }
            (None, _, Ok(got)) => failures.push(format!(
                "{label}: transformers fails ({}: {}), uma renders:\n{got}\n===",
                error["type"], error["message"]
            )),
            (None, _, Err(e)) => {
                let message = error["message"].as_str().expect("error message");
                match (error["kind"].as_str().expect("error kind"), &e) {
                    // The template's own raise_exception: the same message.
                    ("raised", TokenizerError::TemplateRaised { message: got })
                        if got == message => {}
                    // Any other rendering error (undefined attribute, wrong type) is an error in
                    // uma too, worded by minijinja instead of Python.
                    ("error", TokenizerError::TemplateRender { .. }) => {}
                    (kind, _) => failures.push(format!(
                        "{label}: transformers fails with {kind} {message:?}, uma with {e}"
                    )),
                }
            }
        }
    }
    failures
}

fn report(failures: &[String]) {
    assert!(failures.is_empty(), "{} mismatches\n{}", failures.len(), failures.join("\n"));
}

fn check_gguf(model: TestModel, expected_origin: TemplateOrigin) {
    let golden = read_json(&golden_dir().join(format!("gguf_{}.json", model.stem())));
    let file = open(model);
    let architecture = file
        .metadata()
        .get_str(uma_gguf::keys::GENERAL_ARCHITECTURE)
        .expect("metadata")
        .expect("architecture")
        .to_owned();
    let mut template = ChatTemplate::from_gguf(&file, &architecture).expect("template");
    assert_eq!(template.origin(), expected_origin);
    // uma renders the very template transformers rendered...
    assert_eq!(
        sha256_hex(template.source().as_bytes()),
        golden["template_sha256"].as_str().expect("template_sha256"),
        "the template differs from the one the golden was rendered with"
    );
    // ...with the BOS and EOS texts transformers gives it.
    let special = golden["special_tokens"].as_object().expect("special_tokens");
    assert_eq!(template.bos_token(), special.get("bos_token").and_then(|v| v.as_str()));
    assert_eq!(template.eos_token(), special.get("eos_token").and_then(|v| v.as_str()));
    report(&check_cases(&golden, &mut template, &Map::new()));
}

#[test]
fn qwen_05b_file_template_with_tools_matches_transformers() {
    check_gguf(TestModel::QwenCoder05b, TemplateOrigin::File);
}

#[test]
fn qwen_15b_file_template_with_tools_matches_transformers() {
    check_gguf(TestModel::QwenCoder15b, TemplateOrigin::File);
}

#[test]
fn gemma_builtin_template_ignores_tools_like_transformers() {
    // No tool support: the tool schemas are ignored, and tool messages are refused.
    check_gguf(TestModel::Gemma3_270m, TemplateOrigin::BuiltinGemma3);
}

/// The goldens of the llama.cpp templates: every `*.json` but `gguf_*`, `inputs.json` and
/// `python_compat.json`.
fn llama_cpp_goldens() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden/tool_templates exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".json")
                && !name.starts_with("gguf_")
                && !["inputs.json", "python_compat.json"].contains(&name)
        })
        .collect();
    paths.sort();
    paths
}

/// The template file a llama.cpp golden was rendered from, checked to be unchanged.
fn llama_cpp_template(golden: &serde_json::Value) -> String {
    let file = golden["source"]["file"].as_str().expect("source.file");
    let bytes = read_bytes(&golden_dir().join(file));
    assert_eq!(
        sha256_hex(&bytes),
        golden["template_sha256"].as_str().expect("template_sha256"),
        "{file} changed since its golden was generated"
    );
    String::from_utf8(bytes).expect("templates are UTF-8")
}

fn check_llama_cpp(path: &Path) -> Vec<String> {
    let golden = read_json(path);
    let source = llama_cpp_template(&golden);
    let mut special = golden["special_tokens"].as_object().expect("special_tokens").clone();
    let mut take = |name: &str| special.remove(name).map(|v| v.as_str().expect("text").to_owned());
    let (bos, eos) = (take("bos_token"), take("eos_token"));
    let mut template = match ChatTemplate::new(source, bos, eos) {
        Ok(template) => template,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    // The other special tokens (pad_token, unk_token) are template variables like any other.
    check_cases(&golden, &mut template, &special)
}

#[test]
fn llama_cpp_templates_with_tools_match_transformers() {
    let paths = llama_cpp_goldens();
    assert!(paths.len() >= 20, "expected the llama.cpp goldens, found {}", paths.len());
    let failures: Vec<String> = paths.iter().flat_map(|path| check_llama_cpp(path)).collect();
    report(&failures);
}

#[test]
fn goldens_cover_the_tool_call_shapes() {
    // The goldens are only worth something if transformers rendered (not refused) tool calls,
    // tool results and the no-tools history for the main families.
    for name in [
        "Qwen-Qwen3-0.6B",
        "Qwen-Qwen2.5-7B-Instruct",
        "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
        "mistralai-Mistral-Nemo-Instruct-2407",
        "openai-gpt-oss-120b",
    ] {
        let golden = read_json(&golden_dir().join(format!("{name}.json")));
        let rendered = golden["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .filter(|case| case["conversation"] == "two_calls" && case["text"].is_string())
            .count();
        assert!(rendered >= 1, "{name}: no rendered conversation with two tool calls");
    }
}

#[test]
fn python_behaviours_match_jinja2() {
    // Small templates rendered by transformers' template environment: how Python prints values,
    // the filters, tests, methods and globals templates use (python_compat.json).
    let golden = read_json(&golden_dir().join("python_compat.json"));
    let context = golden["context"].as_object().expect("context");
    let now = golden["now"].as_i64().expect("now");
    let probes = golden["probes"].as_array().expect("probes");
    assert!(probes.len() >= 40);
    let mut failures = Vec::new();
    for probe in probes {
        let source = probe["template"].as_str().expect("template");
        let rendered = ChatTemplate::new(source, None, None).and_then(|mut template| {
            template.set_now(now);
            template.render_with_kwargs(&[], None, false, context)
        });
        let ok = match (probe["text"].as_str(), &rendered) {
            (Some(want), Ok(got)) => got == want,
            (None, Err(TokenizerError::TemplateRaised { message })) => {
                probe["error"]["kind"] == "raised" && probe["error"]["message"] == message.as_str()
            }
            (None, Err(TokenizerError::TemplateRender { .. })) => probe["error"]["kind"] == "error",
            _ => false,
        };
        if !ok {
            let want = probe.get("text").unwrap_or(&probe["error"]);
            failures.push(format!("{source}\n  uma:    {rendered:?}\n  Jinja2: {want}"));
        }
    }
    report(&failures);
}
