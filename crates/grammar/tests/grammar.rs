//! Grammars compiled against the real vocabularies of the test models (Qwen's byte-level BPE and
//! Gemma's SentencePiece), walked token by token.

use serde_json::{json, Value};
use uma_grammar::{Commit, Constraint, GrammarCompiler, GrammarError, GrammarSpec};
use uma_test_models::TestModel;
use uma_tokenizer::Tokenizer;

fn tokenizer(model: TestModel) -> Tokenizer {
    Tokenizer::from_gguf_path(uma_test_models::path(model)).expect("tokenizer")
}

const TEXTS: &[&str] = &[
    "Hello, world!\n",
    "  indented\tcode {\"a\": [1, 2.5e-3]}\n\n",
    "日本語のテキスト、中文，emoji 🦀🎉 and accents: é ü ß",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
];

#[test]
fn token_bytes_spell_the_decoded_text() {
    for model in [TestModel::QwenCoder05b, TestModel::Gemma3_270m] {
        let tokenizer = tokenizer(model);
        for text in TEXTS {
            let ids = tokenizer.encode(text, false, false).unwrap();
            let bytes: Vec<u8> =
                ids.iter().flat_map(|&id| tokenizer.token_bytes(id).unwrap()).collect();
            let decoded = tokenizer.decode(&ids, false).unwrap();
            assert_eq!(String::from_utf8(bytes).unwrap(), decoded, "{model:?}: {text:?}");
        }
    }
}

/// Commits the tokens of `text`, each checked against the mask first; returns what the last
/// commit said, or the index of the first token the grammar refused.
fn walk(constraint: &mut Constraint, tokens: &[u32]) -> Result<Commit, usize> {
    let mut last = Commit::Continue;
    for (index, &token) in tokens.iter().enumerate() {
        let mask = constraint.mask().expect("a mask").expect("an active constraint has a mask");
        if !mask.allows(token) {
            return Err(index);
        }
        last = constraint.commit(token).expect("an allowed token commits");
    }
    Ok(last)
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "role": {"enum": ["admin", "user"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
        },
        "required": ["name", "age", "role"],
        "additionalProperties": false
    })
}

#[test]
fn a_valid_document_passes_and_finishes_an_invalid_one_is_refused() {
    for model in [TestModel::QwenCoder05b, TestModel::Gemma3_270m] {
        let tokenizer = tokenizer(model);
        let compiler = GrammarCompiler::new(&tokenizer).unwrap();
        let grammar = compiler.compile(&GrammarSpec::JsonSchema(person_schema())).unwrap();

        let valid = r#"{"name": "Ada", "age": 36, "role": "admin", "tags": ["x", "y"]}"#;
        let tokens = tokenizer.encode(valid, false, false).unwrap();
        let mut constraint = grammar.start();
        assert_eq!(walk(&mut constraint, &tokens), Ok(Commit::Finished), "{model:?}");
        // Nothing may follow a finished grammar but the end of the turn.
        let eos = tokenizer.end_of_generation_tokens()[0];
        let mask = constraint.mask().unwrap().unwrap();
        assert!(
            mask.allows(eos) && mask.num_allowed() <= tokenizer.end_of_generation_tokens().len()
        );

        // An enum value outside the enum, then a number out of range.
        for invalid in [
            r#"{"name": "Ada", "age": 36, "role": "root"}"#,
            r#"{"name": "Ada", "age": 151, "role": "user"}"#,
            r#"{"name": "Ada", "age": 36, "role": "user", "extra": 1}"#,
        ] {
            let tokens = tokenizer.encode(invalid, false, false).unwrap();
            let refused = walk(&mut grammar.start(), &tokens).unwrap_err();
            let accepted_text = tokenizer.decode(&tokens[..refused], false).unwrap();
            assert!(valid_prefix_of_invalid(&accepted_text, invalid), "{accepted_text}");
        }
    }
}

/// The grammar refuses at the first token that makes the text invalid: never before the field
/// that is wrong.
fn valid_prefix_of_invalid(accepted: &str, invalid: &str) -> bool {
    let wrong_at = ["\"root", "151", "\"extra"]
        .iter()
        .find_map(|bad| invalid.find(bad))
        .expect("a wrong field");
    accepted.len() >= wrong_at.saturating_sub(2) && invalid.starts_with(accepted)
}

/// A seeded walk that picks among the allowed tokens (SplitMix64): what a model sampling at a
/// high temperature might do, constrained.
fn random_walk(constraint: &mut Constraint, tokenizer: &Tokenizer, seed: u64) -> String {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut tokens = Vec::new();
    for _ in 0..400 {
        let mask = constraint.mask().expect("a mask").expect("active");
        let allowed: Vec<u32> =
            (0..tokenizer.vocab_size() as u32).filter(|&t| mask.allows(t)).collect();
        let token = allowed[(next() % allowed.len() as u64) as usize];
        if tokenizer.is_end_of_generation(token) {
            break;
        }
        tokens.push(token);
        if constraint.commit(token).expect("an allowed token commits") == Commit::Finished {
            break;
        }
    }
    tokenizer.decode(&tokens, false).expect("decodes")
}

#[test]
fn random_walks_produce_valid_documents() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let compiler = GrammarCompiler::new(&tokenizer).unwrap();
    let schema = json!({
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "level": {"enum": ["low", "mid", "high"]},
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2}
        },
        "required": ["ok", "level", "count", "flags"],
        "additionalProperties": false
    });
    let grammar = compiler.compile(&GrammarSpec::JsonSchema(schema)).unwrap();
    for seed in 0..8 {
        let text = random_walk(&mut grammar.start(), &tokenizer, seed);
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(value["ok"].is_boolean(), "{text}");
        assert!(["low", "mid", "high"].contains(&value["level"].as_str().unwrap()), "{text}");
        assert!((1..=9).contains(&value["count"].as_i64().unwrap()), "{text}");
        let flags = value["flags"].as_array().unwrap();
        assert!((1..=2).contains(&flags.len()) && flags.iter().all(Value::is_boolean), "{text}");
    }
}

#[test]
fn regex_and_lark_grammars_constrain_too() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let compiler = GrammarCompiler::new(&tokenizer).unwrap();
    let regex = compiler.compile(&GrammarSpec::Regex(r"(yes|no), [0-9]{3}".into())).unwrap();
    for seed in 0..4 {
        let text = random_walk(&mut regex.start(), &tokenizer, seed);
        let (word, digits) = text.split_once(", ").unwrap();
        assert!(["yes", "no"].contains(&word) && digits.len() == 3, "{text}");
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{text}");
    }
    let lark = compiler
        .compile(&GrammarSpec::Lark(r#"start: "answer: " %json {"type": "integer"}"#.into()))
        .unwrap();
    let text = random_walk(&mut lark.start(), &tokenizer, 1);
    let number = text.strip_prefix("answer: ").unwrap();
    assert!(number.parse::<i64>().is_ok(), "{text}");
}

#[test]
fn any_json_object_parses() {
    let tokenizer = tokenizer(TestModel::Gemma3_270m);
    let compiler = GrammarCompiler::new(&tokenizer).unwrap();
    let grammar = compiler.compile(&GrammarSpec::JsonObject).unwrap();
    let text = r#"{"a": [1, {"b": null}], "c": "d"}"#;
    let tokens = tokenizer.encode(text, false, false).unwrap();
    assert_eq!(walk(&mut grammar.start(), &tokens), Ok(Commit::Finished));
    let not_an_object = tokenizer.encode("[1]", false, false).unwrap();
    assert_eq!(walk(&mut grammar.start(), &not_an_object), Err(0));
}

#[test]
fn a_lazy_constraint_waits_for_its_trigger() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let compiler = GrammarCompiler::new(&tokenizer).unwrap();
    let call = json!({
        "type": "object",
        "properties": {"name": {"const": "get_weather"}, "arguments": {"type": "object"}},
        "required": ["name", "arguments"]
    });
    let grammar = compiler
        .compile(&GrammarSpec::Lark(format!("start: \"\\n\" %json {call} \"\\n</tool_call>\"")))
        .unwrap();
    let mut constraint = grammar.start_after("<tool_call>");
    let free = tokenizer.encode("I will look it up. <tool_", false, false).unwrap();
    for &token in &free {
        assert!(constraint.mask().unwrap().is_none());
        assert_eq!(constraint.commit(token).unwrap(), Commit::Continue);
    }
    let rest = tokenizer.encode("call>", false, false).unwrap();
    for &token in &rest {
        constraint.commit(token).unwrap();
    }
    assert!(!constraint.is_dormant());
    let body = "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    let tokens = tokenizer.encode(body, false, false).unwrap();
    assert_eq!(walk(&mut constraint, &tokens), Ok(Commit::Finished));
    // Another function's name is refused.
    let mut constraint = grammar.start_after("<tool_call>");
    let trigger = tokenizer.encode("<tool_call>", false, false).unwrap();
    assert_eq!(trigger.len(), 1, "Qwen spells <tool_call> as one added token");
    constraint.commit(trigger[0]).unwrap();
    let wrong = tokenizer.encode("\n{\"name\": \"delete_all\"", false, false).unwrap();
    assert!(walk(&mut constraint, &wrong).is_err());
}

#[test]
fn bad_grammars_are_errors_and_good_ones_are_cached() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let compiler = GrammarCompiler::new(&tokenizer).unwrap();
    for bad in [
        GrammarSpec::JsonSchema(json!({"type": "no-such-type"})),
        GrammarSpec::JsonSchema(json!({"$ref": "#/$defs/missing"})),
        GrammarSpec::Regex("(unclosed".into()),
        GrammarSpec::Lark("start: undefined_rule".into()),
    ] {
        let error = compiler.compile(&bad).unwrap_err();
        assert!(matches!(error, GrammarError::Invalid { .. }), "{bad:?}: {error}");
    }
    let spec = GrammarSpec::JsonSchema(person_schema());
    compiler.compile(&spec).unwrap();
    compiler.compile(&spec).unwrap();
    assert_eq!(compiler.num_cached(), 1);
}

#[test]
fn the_mask_sets_refused_logits_to_minus_infinity() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let compiler = GrammarCompiler::new(&tokenizer).unwrap();
    let grammar = compiler.compile(&GrammarSpec::Regex("7".into())).unwrap();
    let mask = grammar.start().mask().unwrap().unwrap();
    // Padded like an output head wider than the vocabulary.
    let mut logits = vec![1.0f32; tokenizer.vocab_size() + 64];
    mask.apply(&mut logits);
    let seven = tokenizer.encode("7", false, false).unwrap()[0];
    let finite: Vec<usize> =
        logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, _)| i).collect();
    assert_eq!(finite, vec![seven as usize]);
}
