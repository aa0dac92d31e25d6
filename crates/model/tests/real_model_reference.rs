//! Real models against references no one here wrote, from `scripts/golden/make-reference.sh`:
//! - last-position logits against Hugging Face `transformers` (float32 on the dequantized GGUF
//!   weights, `tests/golden/logits/<stem>.json`): the same argmax, error within a bound;
//! - greedy continuations against llama.cpp (`tests/golden/greedy/<stem>.json`): token for token
//!   until the first near-tie.
//!
//! The checks live in `common/reference.rs`, generic over the backend: the GPU backend's tests
//! (`crates/gpu/tests/model_reference.rs`) run the same ones.
mod common;

use common::reference::check_real_model;
use uma_model::KvCacheType;
use uma_test_models::TestModel;

fn check(model: TestModel, kv_type: KvCacheType) {
    check_real_model(&common::real_model(model), model, kv_type);
}

#[test]
fn gemma3_270m_matches_transformers_and_llama_cpp() {
    check(TestModel::Gemma3_270m, KvCacheType::F16);
}

#[test]
fn qwen_05b_matches_transformers_and_llama_cpp() {
    check(TestModel::QwenCoder05b, KvCacheType::F16);
}

#[test]
fn qwen_15b_matches_transformers_and_llama_cpp() {
    check(TestModel::QwenCoder15b, KvCacheType::F16);
}

// With the Q8_0 KV cache: the same logits bounds against transformers, and llama.cpp's greedy
// tokens with its own Q8_0 cache (the 1.5B model is left out to keep the test time down; its
// attention shapes are the 0.5B's with more heads).
#[test]
fn gemma3_270m_with_q8_0_cache_matches_transformers_and_llama_cpp() {
    check(TestModel::Gemma3_270m, KvCacheType::Q8_0);
}

#[test]
fn qwen_05b_with_q8_0_cache_matches_transformers_and_llama_cpp() {
    check(TestModel::QwenCoder05b, KvCacheType::Q8_0);
}
