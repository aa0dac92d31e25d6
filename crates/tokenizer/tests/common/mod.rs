//! Shared by the golden tests: loading golden files and the real models' tokenizers once.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::OnceLock;

use uma_gguf::GgufFile;
use uma_test_models::TestModel;
use uma_tokenizer::Tokenizer;

/// A golden file's JSON, or a failure that says how to make it (never a skip).
pub fn golden(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); generate it with scripts/golden/make-tokenizer-golden.sh",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

pub fn open(model: TestModel) -> GgufFile {
    let path = uma_test_models::path(model);
    GgufFile::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The tokenizer of `model`, built once per test binary.
pub fn tokenizer(model: TestModel) -> &'static Tokenizer {
    static QWEN_05B: OnceLock<Tokenizer> = OnceLock::new();
    static QWEN_15B: OnceLock<Tokenizer> = OnceLock::new();
    static GEMMA: OnceLock<Tokenizer> = OnceLock::new();
    let cell = match model {
        TestModel::QwenCoder05b => &QWEN_05B,
        TestModel::QwenCoder15b => &QWEN_15B,
        TestModel::Gemma3_270m => &GEMMA,
    };
    cell.get_or_init(|| {
        Tokenizer::from_gguf(&open(model))
            .unwrap_or_else(|e| panic!("tokenizer of {}: {e}", model.file_name()))
    })
}

pub fn model_by_stem(stem: &str) -> TestModel {
    TestModel::ALL
        .into_iter()
        .find(|m| m.stem() == stem)
        .unwrap_or_else(|| panic!("no test model with stem {stem}"))
}

pub fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("ids are an array")
        .iter()
        .map(|v| u32::try_from(v.as_u64().expect("id is an integer")).expect("id fits u32"))
        .collect()
}
