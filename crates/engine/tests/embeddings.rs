//! Embeddings against Hugging Face transformers (float32, the same GGUF weights dequantized):
//! mean- and last-token-pooled final hidden states of three texts per model
//! (crates/model/tests/golden/embeddings, written by scripts/golden/reference_embeddings.py).
//!
//! uma quantizes activations to 8 bits for its integer kernels (as llama.cpp does), so the
//! vectors differ from the float32 reference by rounding, as the logits do
//! (`crates/model/tests/real_model_reference.rs`). Measured (2026-11-21, printed by the test):
//! cosine 0.99962–0.99977 for Qwen 0.5B mean pooling, 0.99424–0.99973 for last-token pooling
//! (one position: no averaging of the rounding), 0.99814 and up for Gemma 3 270M. The bound,
//! cosine ≥ 0.99, is 1.7× the worst measured distance (1 − 0.99424); a wrong pooling, a missing
//! final norm or a wrong position lands far below it. Different texts must also be further apart
//! than the bound, or the check would not tell them apart.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use uma_engine::{EngineHandle, Pooling, PromptEncoder};
use uma_gguf::GgufFile;
use uma_model::Model;
use uma_test_models::TestModel;

const MIN_COSINE: f64 = 0.99;

fn golden(model: TestModel) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/golden/embeddings")
        .join(format!("{}.json", model.stem()));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("JSON")
}

fn engine(model: TestModel, pooling: Pooling) -> EngineHandle {
    let file = Arc::new(GgufFile::open(uma_test_models::path(model)).expect("opens"));
    let prompts = PromptEncoder::from_gguf(&file).expect("prompts");
    let mut config = common::config(256, 1);
    config.pooling = Some(pooling);
    EngineHandle::start(Model::load(file).expect("loads"), prompts, "embed", config)
        .expect("starts")
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * y).sum();
    let norm_a = a.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    let norm_b = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (norm_a * norm_b)
}

fn check(model: TestModel, pooling: Pooling) {
    let reference = golden(model);
    let engine = engine(model, pooling);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut embeddings = Vec::new();
    for text in reference["texts"].as_array().expect("texts") {
        let wanted: Vec<u32> = serde_json::from_value(text["token_ids"].clone()).expect("ids");
        let tokens =
            engine.prompts().raw(text["text"].as_str().expect("text"), false).expect("tokens");
        assert_eq!(tokens, wanted, "uma's raw tokens differ from the reference's");
        let got = runtime.block_on(engine.embed(tokens)).expect("embedding");
        let want: Vec<f64> = serde_json::from_value(text[pooling.name()].clone()).expect("vector");
        assert_eq!(got.len(), want.len());
        let norm: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "not unit length: {norm}");
        let similarity = cosine(&got, &want);
        println!("{} {}: cosine {similarity:.6}", model.stem(), pooling.name());
        assert!(similarity >= MIN_COSINE, "{} {:?}: cosine {similarity}", model.stem(), pooling);
        embeddings.push(got);
    }
    // Different texts stay clearly apart (the bound above is not met by any vector).
    let apart =
        cosine(&embeddings[0], &embeddings[1].iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    println!("{} {}: cosine between two different texts {apart:.4}", model.stem(), pooling.name());
    assert!(apart < MIN_COSINE, "two different texts embed alike: {apart}");
    engine.shutdown(std::time::Duration::ZERO);
}

#[test]
fn qwen_mean_and_last_pooling_match_transformers() {
    check(TestModel::QwenCoder05b, Pooling::Mean);
    check(TestModel::QwenCoder05b, Pooling::Last);
}

#[test]
fn gemma_mean_pooling_matches_transformers() {
    check(TestModel::Gemma3_270m, Pooling::Mean);
}

#[test]
fn a_model_without_pooling_refuses_embeddings() {
    let engine = common::start(common::config(256, 1));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let refused = runtime.block_on(engine.embed(vec![1, 2, 3]));
    assert!(matches!(refused, Err(uma_engine::EngineError::NoEmbeddings { .. })), "{refused:?}");
    let engine = self::engine(TestModel::QwenCoder05b, Pooling::Mean);
    let too_long = runtime.block_on(engine.embed(vec![1; 257]));
    assert!(matches!(too_long, Err(uma_engine::EngineError::PromptTooLong { .. })), "{too_long:?}");
    let empty = runtime.block_on(engine.embed(vec![]));
    assert!(matches!(empty, Err(uma_engine::EngineError::EmptyPrompt)), "{empty:?}");
}
