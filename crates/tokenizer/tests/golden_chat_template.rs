//! Chat templates rendered by uma against `transformers`' `apply_chat_template` for the same
//! messages (golden files from scripts/golden/make-tokenizer-golden.sh).

mod common;

use common::{golden, open, tokenizer};
use uma_test_models::TestModel;
use uma_tokenizer::{ChatMessage, ChatTemplate, TemplateOrigin};

fn architecture(model: TestModel) -> String {
    let file = open(model);
    file.metadata()
        .get_str(uma_gguf::keys::GENERAL_ARCHITECTURE)
        .expect("metadata")
        .expect("architecture")
        .to_owned()
}

fn check(model: TestModel, expected_origin: TemplateOrigin) {
    let json = golden(&format!("chat_{}.json", model.stem()));
    let file = open(model);
    let template = ChatTemplate::from_gguf(&file, &architecture(model)).expect("template");
    assert_eq!(template.origin(), expected_origin);
    let cases = json["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let messages: Vec<ChatMessage> =
            serde_json::from_value(case["messages"].clone()).expect("messages deserialize");
        let tools = (!case["tools"].is_null()).then(|| case["tools"].clone());
        let add_generation_prompt = case["add_generation_prompt"].as_bool().expect("bool");
        let rendered = template
            .render(&messages, tools.as_ref(), add_generation_prompt)
            .unwrap_or_else(|e| panic!("{}: render: {e}", model.stem()));
        let want = case["text"].as_str().expect("text");
        if rendered != want {
            failures.push(format!("uma:\n{rendered}\n--- transformers:\n{want}\n==="));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} mismatches\n{}",
        model.stem(),
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn qwen_05b_template_matches_transformers() {
    check(TestModel::QwenCoder05b, TemplateOrigin::File);
}

#[test]
fn qwen_15b_template_matches_transformers() {
    // Its template differs from the 0.5B's (literal "{{" in the tool instructions).
    check(TestModel::QwenCoder15b, TemplateOrigin::File);
}

#[test]
fn gemma_builtin_template_matches_transformers() {
    // The Gemma 3 270M file has no template: uma uses the built-in official one.
    check(TestModel::Gemma3_270m, TemplateOrigin::BuiltinGemma3);
}

#[test]
fn gemma_rendered_chat_carries_its_own_bos() {
    let model = TestModel::Gemma3_270m;
    let template = ChatTemplate::from_gguf(&open(model), &architecture(model)).expect("template");
    let rendered = template
        .render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")], None, true)
        .expect("render");
    assert!(template.starts_with_bos(&rendered));
    let tokenizer = tokenizer(model);
    let ids =
        tokenizer.encode(&rendered, !template.starts_with_bos(&rendered), true).expect("encode");
    assert_eq!(ids.iter().filter(|&&id| Some(id) == tokenizer.bos_token_id()).count(), 1);
    assert_eq!(ids[0], 2);
    // <start_of_turn> and <end_of_turn> come out as single control tokens.
    assert_eq!(ids[1], 105);
    assert!(ids.contains(&106));
}

#[test]
fn qwen_rendered_chat_has_no_bos() {
    let model = TestModel::QwenCoder05b;
    let template = ChatTemplate::from_gguf(&open(model), &architecture(model)).expect("template");
    let rendered = template.render(&[ChatMessage::user("Hi")], None, true).expect("render");
    assert!(!template.starts_with_bos(&rendered));
    assert!(rendered.starts_with("<|im_start|>system\n"));
}
