//! The quantized tiny mixture-of-experts models (`uma_test_models::tiny::
//! tiny_quantized_model_bytes`: Q8_0 and Q4_K_M files, gpt-oss's MXFP4_MOE, byte-identical to
//! what `llama-quantize` writes) against llama.cpp on the same files (`tests/golden/tiny_greedy/<arch>-<quant>.json`,
//! from `scripts/golden/make-reference.sh tiny-greedy`):
//! - llama.cpp's greedy tokens, step by step: uma is fed llama.cpp's tokens, its argmax must be
//!   llama.cpp's token except at near-ties, and most steps must agree;
//! - the logits after each prompt, within a bound.
//!
//! The two cannot agree to float rounding. Both run the same quantized arithmetic, but llama.cpp
//! (x86 CPU) accumulates attention's `softmax · V` in f16 and rounds activations to Q8_0 with its
//! AVX2 quantizer (`127 / amax`, ties to even) where uma accumulates in f32 and uses ggml's
//! reference quantizer (`1 / (amax / 127)`, ties away). Those differences are ~1e-3 relative;
//! every later activation quantization turns them into whole-step differences, and an expert
//! picked by a near-tied router turns those into logit differences of tenths, occasionally units.
//! Emulating both llama.cpp behaviours in a throwaway copy of uma (2026-12-05, `golden/
//! STATUS.md`) made 16 of the 24 prompts' logits agree to 1e-5 (6 without); such a remaining
//! case was traced to a single Q8_K rounding flip caused by a 5e-7 difference. What is left is
//! rounding, not a different model.
mod common;

use std::sync::Arc;

use common::*;
use sha2::{Digest, Sha256};
use uma_gguf::GgufFile;
use uma_model::{Batch, LogitsRequest, Model, TokenId};
use uma_test_models::tiny::{tiny_quantized_model_bytes, TinyQuant, TINY_QUANTIZED_ARCHS};

/// Bound on |uma − llama.cpp| over the logits after a prompt (logits of std ≈ 8), for every
/// prompt of a file but one. Measured (2026-12-05) over 184 prompts of the 8 files: median 0.40,
/// 90th percentile 0.58; 5 prompts above 1.0 (worst 6.7), never two in a group of 3 (the two
/// looked at had a router margin of 0.004 and 0.01 at their last token). A bug in the shared
/// arithmetic moves every prompt.
const MAX_LOGIT_ERROR: f32 = 1.0;

/// A step where uma's argmax is not llama.cpp's token is a near-tie, not a failure, when either
/// top-2 logit gap is below this. Measured over 5537 steps (2026-12-05): 195 such steps, the
/// smaller of their two gaps below 0.30 in 90% of them, 3 above 1.0, at most 1.46.
const NEAR_TIE_MARGIN: f32 = 2.0;

/// Steps of a file (3 prompts × up to 32 tokens) whose argmax must be llama.cpp's token, in
/// 96ths (84 of 96 steps; as many 96ths of a file whose prompts end early). Measured: 91 to 95
/// of 96 per file; over 48 such groups of 3 prompts, at most 8 steps differed.
const MIN_AGREED_96THS: usize = 84;

fn check(arch: &str, quant: TinyQuant) {
    let name = format!("{arch}-{}", quant.name().to_lowercase());
    let golden = read_golden(&format!("tiny_greedy/{name}.json"));
    let bytes = tiny_quantized_model_bytes(arch, quant).expect("a quantized tiny architecture");
    let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        golden["gguf_sha256"].as_str(),
        Some(digest.as_str()),
        "{name}: the golden was made from another file; rerun \
         scripts/golden/make-reference.sh tiny-greedy"
    );
    let file = Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF"));
    let model = Model::load_with(uma_model::CpuBackend, file).expect("loads");

    let prompts_json = golden["prompts"].as_array().expect("prompts");
    let prompts: Vec<Vec<TokenId>> = prompts_json.iter().map(|p| ids(&p["prompt_ids"])).collect();
    let references: Vec<Vec<TokenId>> = prompts_json.iter().map(|p| ids(&p["tokens"])).collect();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        let values = v.as_array().expect("an array of numbers");
        values.iter().map(|x| x.as_f64().expect("a number") as f32).collect()
    };
    let gaps: Vec<Vec<f32>> = prompts_json.iter().map(|p| floats(&p["top2_logit_gap"])).collect();
    let max_new = references.iter().map(Vec::len).max().unwrap_or(0);
    let (mut kv, tables, mut last) = prefill_all(&model, &prompts, max_new);

    let logit_errors: Vec<f32> = prompts_json
        .iter()
        .zip(&last)
        .map(|(p, ours)| {
            let want = floats(&p["logits"]);
            assert_eq!(want.len(), ours.len(), "{name}: vocabulary size");
            ours.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        })
        .collect();

    // All prompts decode together, one token per sequence per step (sequences are independent:
    // batched.rs), each fed llama.cpp's tokens: after a near-tie uma stays on llama.cpp's path,
    // so every step is compared.
    let mut agreed = 0;
    let mut near_ties = Vec::new();
    let mut failures = Vec::new();
    for step in 0..max_new {
        let live: Vec<usize> = (0..prompts.len()).filter(|&i| step < references[i].len()).collect();
        for &i in &live {
            let want = references[i][step];
            let (ours, our_gap, ref_gap) =
                (argmax(&last[i]) as TokenId, top2_gap(&last[i]), gaps[i][step]);
            if ours == want {
                agreed += 1;
            } else if our_gap.min(ref_gap) < NEAR_TIE_MARGIN {
                near_ties.push(format!("prompt {i} step {step} (gaps {our_gap:.3}, {ref_gap:.3})"));
            } else {
                failures.push(format!(
                    "prompt {i} step {step}: uma {ours}, llama.cpp {want} (top-2 gaps uma \
                     {our_gap}, llama.cpp {ref_gap})"
                ));
            }
        }
        if step + 1 == max_new {
            break;
        }
        let tokens: Vec<[TokenId; 1]> = live.iter().map(|&i| [references[i][step]]).collect();
        let mut batch = Batch::new();
        for (token, &i) in tokens.iter().zip(&live) {
            batch.push(token, prompts[i].len() + step, &tables[i], LogitsRequest::Last);
        }
        let logits = model.forward(&batch, &mut kv).expect("decode step");
        for (k, &i) in live.iter().enumerate() {
            last[i] = logits.last_of(k).expect("asked").to_vec();
        }
    }
    let steps: usize = references.iter().map(Vec::len).sum();
    println!(
        "{name}: {agreed} of {steps} steps agree; near-ties at {near_ties:?}; logit errors after \
         the prompts {logit_errors:.3?}"
    );
    assert!(failures.is_empty(), "{name}: {failures:#?}");
    let min_agreed = (steps * MIN_AGREED_96THS).div_ceil(96);
    assert!(
        agreed >= min_agreed,
        "{name}: only {agreed} of {steps} steps agree (at least {min_agreed})"
    );
    let outliers = logit_errors.iter().filter(|&&e| e > MAX_LOGIT_ERROR).count();
    assert!(
        outliers <= 1,
        "{name}: {outliers} prompts' logits differ by more than {MAX_LOGIT_ERROR}: \
         {logit_errors:?}"
    );
}

#[test]
fn quantized_tiny_moe_models_are_checked_here() {
    // One test per architecture below; this keeps the list in step with the generator's.
    assert_eq!(
        TINY_QUANTIZED_ARCHS,
        ["qwen3moe", "qwen2moe", "mixtral", "olmoe", "gpt-oss", "deepseek2"]
    );
}

fn check_both(arch: &str) {
    check(arch, TinyQuant::Q8_0);
    check(arch, TinyQuant::Q4_K_M);
}

#[test]
fn qwen3moe_greedy_matches_llama_cpp() {
    check_both("qwen3moe");
}

#[test]
fn qwen2moe_greedy_matches_llama_cpp() {
    check_both("qwen2moe");
}

#[test]
fn mixtral_greedy_matches_llama_cpp() {
    check_both("mixtral");
}

#[test]
fn olmoe_greedy_matches_llama_cpp() {
    check_both("olmoe");
}

/// MXFP4 experts, sinks, alternating windows and YaRN, as gpt-oss ships.
#[test]
fn gpt_oss_greedy_matches_llama_cpp() {
    check("gpt-oss", TinyQuant::MXFP4_MOE);
}

/// Latent attention (Q5_0 `attn_k_b` in Q4_K_M, llama-quantize's fallback), a dense first layer,
/// then sigmoid routing over groups with a selection bias and a shared expert. The most
/// tie-prone router of these models: its golden prompts are its own, chosen where llama.cpp
/// passes these bounds against itself (`tiny_moe_greedy.py` `ARCH_PROMPTS`). Measured
/// (2026-12-05): 91 and 89 of 96 steps agree (Q8_0, Q4_K_M), logit errors at most 0.83.
#[test]
fn deepseek2_greedy_matches_llama_cpp() {
    check_both("deepseek2");
}
