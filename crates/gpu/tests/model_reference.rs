//! The GPU backend against the same references as the CPU backend (`crates/model/tests`):
//! tiny models of every architecture against `transformers` at every position, and the real
//! test models against `transformers` logits and llama.cpp's greedy continuations, with both
//! cache types. The checks and their bounds are the CPU's own (`common/reference.rs`); the GPU
//! computes activations in f32 where the CPU quantizes them to Q8 (as llama.cpp does), so its
//! logits sit at least as close to `transformers`, and greedy tokens may part from llama.cpp's
//! only at the near-ties the check prints.
//!
//! Runs on whatever GPU the machine has (lavapipe in CI); with no GPU the tests say so and pass,
//! unless `UMA_REQUIRE_GPU=1` (CI) makes that a failure.
#[path = "../../model/tests/common/mod.rs"]
mod common;

use common::reference::{check_real_model, check_tiny_model};
use uma_gpu::{GpuBackend, REQUIRE_GPU_VARIABLE};
use uma_model::KvCacheType;
use uma_test_models::TestModel;

fn gpu() -> Option<GpuBackend> {
    match GpuBackend::open() {
        Ok(backend) => {
            println!("GPU: {}", backend.context().info());
            Some(backend)
        }
        Err(error) => {
            let required = std::env::var_os(REQUIRE_GPU_VARIABLE).is_some_and(|v| v != "0");
            assert!(!required, "{REQUIRE_GPU_VARIABLE} is set and no GPU opened: {error}");
            eprintln!("SKIPPED: no GPU ({error})");
            None
        }
    }
}

fn check(model: TestModel, kv_type: KvCacheType) {
    let Some(backend) = gpu() else { return };
    check_real_model(&common::real_model_on(backend, model), model, kv_type);
}

#[test]
fn tiny_models_on_the_gpu_match_transformers() {
    let Some(backend) = gpu() else { return };
    for arch in uma_test_models::tiny::TINY_ARCHS {
        check_tiny_model(&common::tiny_model_on(backend.clone(), arch), arch);
    }
}

#[test]
fn gemma3_270m_on_the_gpu_matches_transformers_and_llama_cpp() {
    check(TestModel::Gemma3_270m, KvCacheType::F16);
}

#[test]
fn qwen_05b_on_the_gpu_matches_transformers_and_llama_cpp() {
    check(TestModel::QwenCoder05b, KvCacheType::F16);
}

// The 1.5B model and the 0.5B model's Q8_0 cache take minutes each on lavapipe, a software
// device; CI runs the three checks above (every kernel and cache type the two left out use), and
// a machine with a real GPU runs these too: `cargo test -p uma-gpu --release -- --ignored`.
#[test]
#[ignore = "minutes on a software GPU; run with --ignored where a real GPU is"]
fn qwen_15b_on_the_gpu_matches_transformers_and_llama_cpp() {
    check(TestModel::QwenCoder15b, KvCacheType::F16);
}

#[test]
fn gemma3_270m_on_the_gpu_with_q8_0_cache_matches_transformers_and_llama_cpp() {
    check(TestModel::Gemma3_270m, KvCacheType::Q8_0);
}

#[test]
#[ignore = "minutes on a software GPU; run with --ignored where a real GPU is"]
fn qwen_05b_on_the_gpu_with_q8_0_cache_matches_transformers_and_llama_cpp() {
    check(TestModel::QwenCoder05b, KvCacheType::Q8_0);
}
