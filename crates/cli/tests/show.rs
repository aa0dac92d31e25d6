//! `uma show` against facts read from the same files by the `gguf` Python package
//! (golden files written by `scripts/golden/show_facts.py`).

mod common;

use common::assert_one_line_error;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use uma_test_models::TestModel;

fn uma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uma")).args(args).output().expect("run uma")
}

/// Where each golden key lives in `uma show --json` (uma uses Hugging Face names).
const GOLDEN_TO_UMA: &[(&str, &str)] = &[
    ("architecture", "/architecture"),
    ("name", "/name"),
    ("file_size", "/file_size"),
    ("tensor_count", "/tensor_count"),
    ("parameter_count", "/parameter_count"),
    ("quantization", "/quantization"),
    ("alignment", "/alignment"),
    ("gguf_version", "/gguf_version"),
    ("metadata_count", "/metadata_count"),
    ("block_count", "/model/num_hidden_layers"),
    ("embedding_length", "/model/hidden_size"),
    ("feed_forward_length", "/model/intermediate_size"),
    ("head_count", "/model/num_attention_heads"),
    ("head_count_kv", "/model/num_key_value_heads"),
    ("head_dim", "/model/head_dim"),
    ("value_dim", "/model/value_head_dim"),
    ("context_length", "/model/max_position_embeddings"),
    ("rope_freq_base", "/model/rope_theta"),
    ("rope_dimension_count", "/model/rope_dimension_count"),
    ("rope_scaling_type", "/model/rope_scaling_type"),
    ("sliding_window", "/model/sliding_window"),
    ("kv_cache_bytes_per_token", "/model/kv_cache_bytes_per_token"),
    ("weight_bytes_per_token", "/model/weight_bytes_per_token"),
    ("tokenizer_model", "/tokenizer/model"),
    ("tokenizer_pre", "/tokenizer/pre"),
    ("vocab_size", "/tokenizer/vocab_size"),
    ("bos_token_id", "/tokenizer/bos_token_id"),
    ("eos_token_id", "/tokenizer/eos_token_id"),
    ("chat_template_present", "/tokenizer/chat_template_present"),
];

fn golden(model: TestModel) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/show")
        .join(format!("{}.json", model.stem()));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/golden/make-golden.sh", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

/// Numbers compare by value (the golden file writes 1000000.0 where uma writes 1000000.0 or 1e6).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn json_facts_match_the_gguf_python_package() {
    let mut mismatches = Vec::new();
    for model in TestModel::ALL {
        let path = uma_test_models::path(model);
        let output = uma(&["show", "--json", path.to_str().expect("UTF-8 path")]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
        let golden = golden(model);
        let golden_keys: Vec<&String> = golden.as_object().expect("object").keys().collect();
        for key in &golden_keys {
            assert!(
                GOLDEN_TO_UMA.iter().any(|(g, _)| g == key),
                "golden key {key} is not checked: map it in GOLDEN_TO_UMA"
            );
        }
        for (golden_key, pointer) in GOLDEN_TO_UMA {
            let expected = &golden[golden_key];
            let actual = report.pointer(pointer).unwrap_or(&Value::Null);
            if !same(expected, actual) {
                mismatches
                    .push(format!("{}: {golden_key}: uma {actual}, gguf {expected}", model.stem()));
            }
        }
    }
    assert!(mismatches.is_empty(), "mismatches:\n{}", mismatches.join("\n"));
}

#[test]
fn human_table_shows_the_key_facts() {
    let path = uma_test_models::path(TestModel::Gemma3_270m);
    let output = uma(&["show", path.to_str().expect("UTF-8 path")]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    for expected in [
        "gemma3",
        "Gemma 3 270m",
        "268.10 M",
        "4 (kv heads 1, head dim 256)",
        "18,432 B",
        "246.59 MB",
        "sliding window",
        "none in file",
        "262144 tokens",
        "Q8_0          10     179.82 MB   72.9%",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn errors_are_one_clear_line() {
    let dir = std::env::temp_dir().join(format!("uma-show-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    assert_one_line_error(&uma(&["show", "/nonexistent/model.gguf"]), "No such file");

    let text = dir.join("notes.gguf");
    std::fs::write(&text, "hello, this is not a model\n").expect("write");
    assert_one_line_error(&uma(&["show", text.to_str().expect("UTF-8")]), "not a GGUF file");

    // A real model's header cut short: the error names the offset.
    let real = std::fs::read(uma_test_models::path(TestModel::Gemma3_270m)).expect("read");
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &real[..5000]).expect("write");
    assert_one_line_error(&uma(&["show", "--json", cut.to_str().expect("UTF-8")]), "offset");

    std::fs::remove_dir_all(&dir).expect("cleanup");
}
