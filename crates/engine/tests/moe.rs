//! The engine over mixture-of-experts models (the tiny qwen3moe, qwen2moe, Mixtral, OLMoE,
//! gpt-oss and deepseek2 files): continuous batching, preemption and the prefix cache must be as
//! invisible as on dense models (deepseek2's cache holds latent attention's compressed heads). Each step routes its rows to experts as a group, so a sequence batched with others, or
//! recomputed after preemption, or starting from cached blocks, must still get exactly the tokens
//! it gets alone.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{finish, run_batch, wait_idle, Run};
use uma_engine::{EngineConfig, EngineHandle, GenerationRequest, PromptEncoder};
use uma_gguf::GgufFile;
use uma_model::Model;
use uma_sampling::{FinishReason, SamplingParams};

const MOE_ARCHS: [&str; 6] = ["qwen3moe", "qwen2moe", "mixtral", "olmoe", "gpt-oss", "deepseek2"];

fn start(file: &Arc<GgufFile>, config: EngineConfig) -> EngineHandle {
    let model = Model::load(file.clone()).expect("tiny model loads");
    let prompts = PromptEncoder::from_gguf(file).expect("tiny encoder");
    EngineHandle::start(model, prompts, "tiny-moe", config).expect("engine starts")
}

/// Six prompts of 17 to 32 token ids (so two blocks of 16 each); the last three share their first
/// 24 tokens with the first three, so the prefix cache has something to find. Half greedy, half
/// seeded; 16 tokens each, end of generation ignored.
fn requests(vocab_size: u32) -> Vec<GenerationRequest> {
    let mut state = 0x2545_f491_u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as u32) % vocab_size
    };
    let mut prompts: Vec<Vec<u32>> =
        (0..3).map(|i| (0..17 + 5 * i).map(|_| next()).collect()).collect();
    for i in 0..3 {
        let mut shared: Vec<u32> = prompts[i].iter().copied().take(24).collect();
        shared.extend((0..8).map(|_| next()));
        prompts.push(shared);
    }
    prompts
        .into_iter()
        .enumerate()
        .map(|(i, prompt)| {
            let params = if i % 2 == 0 {
                SamplingParams { max_tokens: Some(16), ..SamplingParams::greedy() }
            } else {
                SamplingParams {
                    temperature: 0.8,
                    seed: Some(i as u64),
                    max_tokens: Some(16),
                    ..SamplingParams::default()
                }
            };
            let params = SamplingParams { ignore_eos: true, ..params };
            GenerationRequest { prompt, params, sampler_stream: 0, grammar: None }
        })
        .collect()
}

fn assert_same(arch: &str, what: &str, got: &[Run], alone: &[Run]) {
    for (i, (got, alone)) in got.iter().zip(alone).enumerate() {
        assert_eq!(
            got.tokens, alone.tokens,
            "{arch} {what}: request {i}: tokens differ from alone"
        );
        assert_eq!(got.finish_reason(), FinishReason::Length, "{arch} {what}: request {i}");
    }
}

#[test]
fn batching_preemption_and_the_prefix_cache_are_invisible_on_moe_models() {
    for arch in MOE_ARCHS {
        let bytes = uma_test_models::tiny::tiny_model_bytes(arch).expect("tiny model");
        let file = Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF"));
        let vocab_size = Model::load(file.clone()).expect("loads").config().vocab_size as u32;
        let requests = requests(vocab_size);

        // Alone: one sequence at a time, nothing cached.
        let mut alone_config = EngineConfig::new(128, 1);
        alone_config.enable_prefix_caching = false;
        let engine = start(&file, alone_config);
        let alone: Vec<Run> =
            requests.iter().map(|r| finish(engine.submit(r.clone()).expect("accepted"))).collect();
        engine.shutdown(Duration::ZERO);

        // Batched, newest first, with the prefix cache on: the later prompts find the earlier
        // ones' blocks.
        let engine = start(&file, EngineConfig::new(128, 6));
        let first: Vec<usize> = (0..3).rev().collect();
        let first_runs = run_batch(&engine, &requests[..3], &first);
        let later_runs = run_batch(&engine, &requests[3..], &[2, 0, 1]);
        let stats = wait_idle(&engine);
        let batched: Vec<Run> = first_runs.into_iter().chain(later_runs).collect();
        assert_same(arch, "batched", &batched, &alone);
        assert!(stats.prefix_cache_hit_tokens >= 3 * 16, "{arch}: no prefix hits: {stats:#?}");
        assert!(stats.num_steps < 6 * 17, "{arch}: not batched: {stats:#?}");
        engine.shutdown(Duration::ZERO);

        // A pool too small for all six: the newest are preempted and recomputed, in chunks of
        // 20 tokens next to other requests' decodes.
        let small = EngineConfig {
            num_kv_cache_tokens: 160,
            block_size: 16,
            max_num_batched_tokens: 20,
            ..EngineConfig::new(128, 6)
        };
        let engine = start(&file, small);
        let order: Vec<usize> = vec![3, 0, 4, 1, 5, 2];
        let preempted = run_batch(&engine, &requests, &order);
        let stats = wait_idle(&engine);
        assert_same(arch, "preempted", &preempted, &alone);
        assert!(stats.num_preemptions > 0, "{arch}: the pool was never short: {stats:#?}");
        assert_eq!(stats.kv_num_free_blocks, 10, "{arch}");
        engine.shutdown(Duration::ZERO);
    }
}

/// Latent attention's cache holds, per token and layer, one compressed head of `kv_lora_rank` +
/// rope values as keys and as values (zero-padded): what the planner counts, and a fraction of
/// what the same model's heads would take uncompressed.
#[test]
fn the_latent_cache_takes_what_the_planner_counts() {
    let bytes = uma_test_models::tiny::tiny_model_bytes("deepseek2").expect("tiny model");
    let file = Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF"));
    let model = Model::load(file.clone()).expect("loads");
    let spec = uma_planner::ModelSpec::from_gguf(&file, "tiny-deepseek2").expect("spec");
    let c = model.config();
    let mla = c.mla.expect("latent attention");
    // F16 only: the tiny model's latent head of 40 is no whole number of Q8_0 groups (DeepSeek's
    // 576 is).
    let kv_type = uma_model::KvCacheType::F16;
    let blocks = 3;
    let cache = model.new_kv_cache_of_type(blocks, kv_type).expect("cache");
    let positions = (blocks * uma_model::DEFAULT_BLOCK_SIZE) as u64;
    let per_token = uma_model::backend::PagedKvCache::size_in_bytes(&cache) as u64 / positions;
    assert_eq!(per_token, spec.kv_bytes_per_token(kv_type));
    // f16: 2 × (32 + 8) values per layer, against 4 heads × (40 + 16) uncompressed.
    let latent = 2 * (mla.kv_lora_rank + c.rope_dimension_count);
    let full =
        c.num_attention_heads * (mla.qk_nope_head_dim + c.rope_dimension_count + mla.v_head_dim);
    assert_eq!(
        spec.kv_bytes_per_token(uma_planner::KvCacheType::F16),
        (c.num_hidden_layers * latent * 2) as u64
    );
    assert!(latent * 2 < full, "{latent} against {full}");
}
