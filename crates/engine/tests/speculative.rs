//! Speculative decoding changes speed, never output: on the golden prompts of the three test
//! models, greedy and seeded runs with prompt lookup give the tokens, text and logprobs of plain
//! decoding, one request at a time and sixteen at once; sampled tokens at speculated positions
//! follow the model's distribution (a chi-square test over 2,000 samples).
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use uma_engine::{
    EngineConfig, EngineHandle, GenerationRequest, SpeculativeConfig, SpeculativeMode, TokenId,
};
use uma_sampling::SamplingParams;
use uma_test_models::TestModel;

/// Tokens generated per request: enough for the answers to start repeating their prompts.
const MAX_TOKENS: u32 = 48;

/// A stream may wait for a whole batch of requests on a loaded machine.
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);

fn engine(model: TestModel, max_num_seqs: usize, mode: SpeculativeMode) -> EngineHandle {
    engine_with_draft(model, max_num_seqs, mode, None)
}

fn engine_with_draft(
    model: TestModel,
    max_num_seqs: usize,
    mode: SpeculativeMode,
    draft: Option<TestModel>,
) -> EngineHandle {
    let mut config = EngineConfig::new(1024, max_num_seqs);
    config.max_queued_requests = 4096;
    // Every decoding sequence may speculate, however many run.
    config.speculative = SpeculativeConfig {
        mode,
        max_verify_tokens: max_num_seqs * 9,
        draft_model: draft.map(uma_test_models::path),
        // Drafts in every step they can, for the checks to see many of them; whether they pay
        // on this machine is not what these tests are about.
        always_draft: true,
        ..SpeculativeConfig::default()
    };
    EngineHandle::open(&uma_test_models::path(model), "m", config).expect("engine starts")
}

/// The golden prompts' token ids (crates/model/tests/golden/prompts, rendered and tokenized by
/// transformers).
fn golden_prompts(model: TestModel) -> Vec<Vec<TokenId>> {
    let stem = model.file_name().trim_end_matches(".gguf");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../model/tests/golden/prompts/{stem}.json"));
    let text = std::fs::read_to_string(&path).expect("golden prompts");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    json["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|prompt| serde_json::from_value(prompt["token_ids"].clone()).expect("token ids"))
        .collect()
}

/// Every golden prompt greedy with two top logprobs, then every one sampled with its own seed.
fn requests(model: TestModel) -> Vec<GenerationRequest> {
    let prompts = golden_prompts(model);
    let greedy = SamplingParams { logprobs: Some(2), ..greedy(MAX_TOKENS) };
    let mut requests: Vec<GenerationRequest> =
        prompts.iter().map(|prompt| request(prompt.clone(), greedy.clone())).collect();
    for (index, prompt) in prompts.iter().enumerate() {
        requests.push(request(prompt.clone(), seeded(1000 + index as u64, MAX_TOKENS)));
    }
    requests
}

/// Submits every request in `order`, then reads every stream.
fn run_all(engine: &EngineHandle, requests: &[GenerationRequest], order: &[usize]) -> Vec<Run> {
    let streams: Vec<(usize, _)> =
        order.iter().map(|&i| (i, engine.submit(requests[i].clone()).expect("accepted"))).collect();
    let mut runs: Vec<Option<Run>> = vec![None; requests.len()];
    for (i, stream) in streams {
        match read_to_end_within(stream, STREAM_TIMEOUT) {
            Ending::Finished(run) => runs[i] = Some(run),
            other => panic!("request {i}: {other:?}"),
        }
    }
    runs.into_iter().map(|run| run.expect("every request ran")).collect()
}

/// The plain runs of `requests(model)`, computed once per model and shared by the tests that
/// compare against them.
fn plain_runs(model: TestModel) -> &'static [Run] {
    static RUNS: OnceLock<Mutex<HashMap<String, &'static [Run]>>> = OnceLock::new();
    let runs = RUNS.get_or_init(Default::default);
    let mut runs = runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    runs.entry(format!("{model:?}")).or_insert_with(|| {
        let requests = requests(model);
        let all: Vec<usize> = (0..requests.len()).collect();
        let engine = engine(model, 16, SpeculativeMode::Off);
        let plain = run_all(&engine, &requests, &all);
        assert_eq!(wait_idle(&engine).num_drafted_tokens, 0);
        engine.shutdown(Duration::ZERO);
        Vec::leak(plain)
    })
}

fn assert_same_runs(what: &str, got: &[Run], want: &[Run]) {
    assert_eq!(got.len(), want.len());
    for (index, (got, want)) in got.iter().zip(want).enumerate() {
        assert_eq!(got.tokens, want.tokens, "{what}: request {index}: tokens differ");
        assert_eq!(got.text, want.text, "{what}: request {index}: text differs");
        assert_eq!(got.logprobs, want.logprobs, "{what}: request {index}: logprobs differ");
        assert_eq!(got.finish_reason(), want.finish_reason(), "{what}: request {index}");
        let usage = got.completion.usage;
        assert_eq!(usage.num_generated_tokens, got.tokens.len(), "{what}: request {index}");
        assert!(usage.num_accepted_draft_tokens <= usage.num_drafted_tokens);
    }
}

fn check_speculation_is_invisible(
    model: TestModel,
    mode: SpeculativeMode,
    draft: Option<TestModel>,
) {
    let requests = requests(model);
    let all: Vec<usize> = (0..requests.len()).collect();
    let plain = plain_runs(model);

    // Sixteen at once, submitted in reverse.
    let lookup_engine = engine_with_draft(model, 16, mode, draft);
    let reversed: Vec<usize> = all.iter().rev().copied().collect();
    let batched = run_all(&lookup_engine, &requests, &reversed);
    let stats = wait_idle(&lookup_engine);
    lookup_engine.shutdown(Duration::ZERO);
    assert_same_runs(&format!("{model:?}, 16 at once"), &batched, plain);
    let accepted: usize =
        batched.iter().map(|run| run.completion.usage.num_accepted_draft_tokens).sum();
    assert_eq!(stats.num_accepted_draft_tokens, accepted as u64);
    assert!(accepted > 0, "{model:?}: no draft was ever accepted: {stats:#?}");

    // One at a time (the greedy half).
    let greedy = &requests[..requests.len() / 2];
    let alone_engine = engine_with_draft(model, 1, mode, draft);
    let order: Vec<usize> = (0..greedy.len()).collect();
    let alone = run_all(&alone_engine, greedy, &order);
    let stats = wait_idle(&alone_engine);
    alone_engine.shutdown(Duration::ZERO);
    assert_same_runs(&format!("{model:?}, one at a time"), &alone, &plain[..greedy.len()]);
    assert!(stats.num_accepted_draft_tokens > 0);
    let generated: u64 = alone.iter().map(|run| run.tokens.len() as u64).sum();
    let decode_steps = stats.num_steps - greedy.len() as u64;
    eprintln!(
        "{model:?}: one at a time, {generated} tokens in {decode_steps} decode steps ({} drafted, \
         {} accepted)",
        stats.num_drafted_tokens, stats.num_accepted_draft_tokens
    );
    // Each accepted draft is a token that took no step of its own, but for a request that
    // stopped on an accepted draft (its step sent no token after it).
    let steps = decode_steps + greedy.len() as u64;
    let unaccepted = generated - stats.num_accepted_draft_tokens;
    assert!((unaccepted..=unaccepted + greedy.len() as u64).contains(&steps), "{steps} steps");
}

#[test]
fn lookup_gives_plain_output_on_qwen_05b() {
    check_speculation_is_invisible(TestModel::QwenCoder05b, SpeculativeMode::Lookup, None);
}

#[test]
fn lookup_gives_plain_output_on_qwen_15b() {
    check_speculation_is_invisible(TestModel::QwenCoder15b, SpeculativeMode::Lookup, None);
}

#[test]
fn lookup_gives_plain_output_on_gemma3_270m() {
    check_speculation_is_invisible(TestModel::Gemma3_270m, SpeculativeMode::Lookup, None);
}

#[test]
fn the_05b_draft_model_gives_plain_output_on_qwen_15b() {
    check_speculation_is_invisible(
        TestModel::QwenCoder15b,
        SpeculativeMode::Draft,
        Some(TestModel::QwenCoder05b),
    );
}

#[test]
fn a_draft_model_with_another_vocabulary_is_refused_at_load() {
    let mut config = EngineConfig::new(256, 1);
    config.speculative.draft_model = Some(uma_test_models::path(TestModel::Gemma3_270m));
    let path = uma_test_models::path(TestModel::QwenCoder05b);
    let error = EngineHandle::open(&path, "m", config).expect_err("another vocabulary");
    assert!(error.to_string().contains("the draft model does not fit"), "{error}");
}

/// The chi-square distribution's 0.999 quantile for 1 to 4 degrees of freedom (statistical
/// tables; df 2 is exactly -2 ln 0.001).
const CHI_SQUARE_CRITICAL_0_001: [f64; 4] = [10.828, 13.816, 16.266, 18.467];

#[test]
fn sampled_tokens_at_speculated_positions_follow_the_models_distribution() {
    // A text that repeats itself, so prompt lookup drafts from the first decode step on;
    // top-k 5 keeps each position's distribution to five tokens, and temperature 3 spreads it
    // over them. Their probabilities follow exactly from the top-5 logprobs (reported at
    // temperature 1): softmax of logprob / temperature over the five.
    let model = TestModel::QwenCoder05b;
    let engine = engine(model, 64, SpeculativeMode::Lookup);
    let text = "the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the \
                lazy dog. the quick brown";
    let mut prompt = engine.prompts().tokenizer().encode(text, false, false).expect("encodes");
    // Led by newlines to one token past whole KV blocks: after the first request every prompt
    // but its last token comes from the prefix cache.
    let newline = engine.prompts().tokenizer().encode("\n", false, false).expect("encodes")[0];
    while prompt.len() % 16 != 1 {
        prompt.insert(0, newline);
    }
    const TEMPERATURE: f64 = 3.0;
    const SAMPLES: usize = 2000;
    const POSITIONS: usize = 4;
    let requests: Vec<GenerationRequest> = (0..SAMPLES as u64)
        .map(|seed| {
            let params = SamplingParams {
                temperature: TEMPERATURE as f32,
                top_k: 5,
                logprobs: Some(5),
                seed: Some(seed),
                max_tokens: Some(POSITIONS as u32),
                ignore_eos: true,
                ..SamplingParams::default()
            };
            request(prompt.clone(), params)
        })
        .collect();
    let order: Vec<usize> = (0..SAMPLES).collect();
    let runs = run_all(&engine, &requests, &order);
    let stats = wait_idle(&engine);
    engine.shutdown(Duration::ZERO);
    assert!(
        stats.num_drafted_tokens as usize >= SAMPLES,
        "too few positions were speculated: {stats:#?}"
    );

    // Per position after the first (the first comes from the prompt's step, never a draft):
    // observed counts of the sampled token's rank among the five, against the expected counts
    // (each sample's own five probabilities, summed).
    for position in 1..POSITIONS {
        let mut observed = [0.0f64; 5];
        let mut expected = [0.0f64; 5];
        for run in &runs {
            let (_, top) = &run.logprobs[position];
            assert_eq!(top.len(), 5);
            let weights: Vec<f64> =
                top.iter().map(|&(_, logprob)| (logprob as f64 / TEMPERATURE).exp()).collect();
            let total: f64 = weights.iter().sum();
            for (rank, weight) in weights.iter().enumerate() {
                expected[rank] += weight / total;
            }
            let rank = top.iter().position(|&(token, _)| token == run.tokens[position]);
            observed[rank.expect("the sampled token is among the top five")] += 1.0;
        }
        // Ranks expected fewer than 5 times are pooled with the rank before them.
        let (mut cells, mut pooled) = (Vec::new(), (0.0, 0.0));
        for rank in 0..5 {
            pooled = (pooled.0 + observed[rank], pooled.1 + expected[rank]);
            if pooled.1 >= 5.0 {
                cells.push(pooled);
                pooled = (0.0, 0.0);
            }
        }
        if let Some(last) = cells.last_mut() {
            *last = (last.0 + pooled.0, last.1 + pooled.1);
        }
        let statistic: f64 = cells.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
        let df = cells.len() - 1;
        eprintln!("position {position}: observed {observed:?}, expected {expected:.1?}, chi2 {statistic:.2} (df {df})");
        assert!(df >= 1, "position {position}: one token takes everything; pick another prompt");
        assert!(
            statistic < CHI_SQUARE_CRITICAL_0_001[df - 1],
            "position {position}: chi-square {statistic:.2} with {df} degrees of freedom"
        );
    }
}
