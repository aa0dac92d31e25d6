//! The reference checks of real models, generic over the backend (the CPU's tests and the
//! GPU's run the same ones):
//! - last-position logits against Hugging Face `transformers` (float32 on the dequantized GGUF
//!   weights, `golden/logits/<stem>.json`): the same argmax, error within a bound;
//! - greedy continuations against llama.cpp (`golden/greedy/<stem>.json`): token for token
//!   until the first near-tie.
//!
//! Both goldens use the same prompts, so one batched prefill serves both checks (prefill of the
//! larger model dominates the test's time).
//!
//! All prompts of a model decode together as one batch (prefill once, then one token per
//! sequence per step, KV cache reused): each sequence's logits are bit-identical to running it
//! alone (`batched.rs`), and the weights are read once per step instead of once per prompt.

use uma_model::backend::Backend;
use uma_model::{Batch, KvCacheType, LogitsRequest, Model, TokenId};
use uma_test_models::TestModel;

use super::*;

/// Tokens that end generation, as llama.cpp's end-of-generation set: the file's EOS and EOT ids
/// and the chat end markers present in the vocabulary.
fn end_of_generation<B: Backend>(model: &Model<B>) -> Vec<TokenId> {
    let metadata = model.file().metadata();
    let mut ids = Vec::new();
    for key in [uma_gguf::keys::TOKENIZER_EOS_ID, uma_gguf::keys::TOKENIZER_EOT_ID] {
        if let Ok(Some(id)) = metadata.get_u32(key) {
            ids.push(id);
        }
    }
    if let Ok(Some(tokens)) = metadata.get_str_array(uma_gguf::keys::TOKENIZER_TOKENS) {
        for (i, t) in tokens.iter().enumerate() {
            if matches!(
                t.as_str(),
                "<|im_end|>" | "<|endoftext|>" | "<end_of_turn>" | "<|eot_id|>" | "<|end|>"
            ) {
                ids.push(i as TokenId);
            }
        }
    }
    ids
}

// Bounds on max |uma − reference| over the golden's top-64 and 1024 sampled ids, relative to the
// reference's logit range (max − min) for that prompt, per model.
//
// uma follows llama.cpp: activations are quantized to Q8_0/Q8_K before every quantized matrix
// product (≈0.4% relative error per element, compounding over layers), the KV cache is f16;
// transformers computes in float32 throughout. Measured worst cases (2026-11-21, printed by the
// test): Qwen2.5-Coder-0.5B 0.80% of the range (8 prompts, 0.48–0.80%), 1.5B 1.07% (0.68–1.07%); Gemma 3 270M 7.0%
// (1.95–7.0%, growing with prompt length: its residual stream has large outliers, so Q8
// activation quantization costs more; greedy decoding agrees with llama.cpp token for token up
// to near-ties, `greedy_reference.rs`, which confirms the arithmetic). Each bound is about 1.7x
// the measured worst (Qwen 2% vs 1.07%, Gemma 12% vs 7.0%), while a real bug (wrong rope pairing, norm, window, scale) moves logits by
// tens of percent of the range; the argmax must match exactly.
const QWEN_MAX_ERROR_OF_RANGE: f32 = 0.02;
const GEMMA_MAX_ERROR_OF_RANGE: f32 = 0.12;
// With the Q8_0 KV cache, keys and values carry Q8_0's rounding too (≈0.4% of each 32-element
// group's largest value). Measured worst (2026-11-21): Qwen 0.5B 2.26% of the range (0.96–2.26%),
// Gemma 5.0% (2.5–5.0%, within its f16 bound). Qwen's bound is again about 1.8x the worst; the
// greedy check against llama.cpp with its own Q8_0 cache holds this configuration as tightly as
// the f16 one.
const QWEN_Q8_0_CACHE_MAX_ERROR_OF_RANGE: f32 = 0.04;

/// Compares each prompt's last-position logits with transformers'; returns the failures.
fn check_logits(
    model: TestModel,
    kv_type: KvCacheType,
    prompts: &[Vec<TokenId>],
    last: &[Vec<f32>],
) -> Vec<String> {
    let max_error_of_range = match (model, kv_type) {
        (TestModel::Gemma3_270m, _) => GEMMA_MAX_ERROR_OF_RANGE,
        (_, KvCacheType::F16) => QWEN_MAX_ERROR_OF_RANGE,
        (_, KvCacheType::Q8_0) => QWEN_Q8_0_CACHE_MAX_ERROR_OF_RANGE,
    };
    let golden = read_golden(&format!("logits/{}.json", model.stem()));
    let prompts_json = golden["prompts"].as_array().expect("prompts");
    let golden_prompts: Vec<Vec<TokenId>> =
        prompts_json.iter().map(|p| ids(&p["token_ids"])).collect();
    assert_eq!(golden_prompts, prompts, "the logits and greedy goldens must share their prompts");
    let mut failures = Vec::new();
    let mut worst = 0.0f32;
    for (p, logits) in prompts_json.iter().zip(last) {
        let name = p["name"].as_str().unwrap_or("?");
        let (min, max) =
            (p["min"].as_f64().expect("min") as f32, p["max"].as_f64().expect("max") as f32);
        let mut error = 0.0f32;
        for entry in p["top"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(p["sample"].as_array().into_iter().flatten())
        {
            let id = entry[0].as_u64().expect("id") as usize;
            let want = entry[1].as_f64().expect("logit") as f32;
            error = error.max((logits[id] - want).abs());
        }
        let relative = error / (max - min);
        worst = worst.max(relative);
        let ours = argmax(logits);
        let want_argmax = p["argmax"].as_u64().expect("argmax") as usize;
        println!(
            "{} {name}: max error {error:.4} = {relative:.4} of range {:.2}; argmax {ours} (ref {want_argmax}), top-2 gap {:.3}",
            model.stem(),
            max - min,
            top2_gap(logits)
        );
        if ours != want_argmax {
            failures.push(format!("{name}: argmax {ours}, reference {want_argmax}"));
        }
        if relative > max_error_of_range {
            failures.push(format!("{name}: error {relative} of range > {max_error_of_range}"));
        }
    }
    println!("{}: worst {worst:.4} of range", model.stem());
    failures
}

/// Checks `m` (test model `model`, on any backend) with a KV cache of `kv_type` against
/// transformers' logits and against llama.cpp's greedy tokens with the same cache type
/// (`greedy/q8_0/` for Q8_0).
pub(crate) fn check_real_model<B: Backend>(m: &Model<B>, model: TestModel, kv_type: KvCacheType) {
    let folder = match kv_type {
        KvCacheType::F16 => "greedy".to_string(),
        other => format!("greedy/{}", other.name()),
    };
    let golden = read_golden(&format!("{folder}/{}.json", model.stem()));
    let margin = golden["near_tie_margin"].as_f64().expect("near_tie_margin") as f32;
    let stops = end_of_generation(m);
    let prompts_json = golden["prompts"].as_array().expect("prompts");
    let prompts: Vec<Vec<TokenId>> = prompts_json.iter().map(|p| ids(&p["prompt_ids"])).collect();
    let references: Vec<Vec<TokenId>> = prompts_json.iter().map(|p| ids(&p["tokens"])).collect();
    let gaps: Vec<Vec<Option<f32>>> = prompts_json
        .iter()
        .map(|p| {
            p["top2_logit_gap"]
                .as_array()
                .map(|a| a.iter().map(|g| g.as_f64().map(|g| g as f32)).collect())
                .unwrap_or_default()
        })
        .collect();
    let max_new = references.iter().map(Vec::len).max().unwrap_or(0);
    let (mut kv, tables, mut last) = prefill_all_with(m, &prompts, max_new, kv_type);
    let logits_failures = check_logits(model, kv_type, &prompts, &last);

    let mut active: Vec<bool> = vec![true; prompts.len()];
    let mut generated: Vec<Vec<TokenId>> = vec![Vec::new(); prompts.len()];
    let mut failures = Vec::new();
    for step in 0..max_new {
        // Compare this step's token of every active sequence.
        for i in 0..prompts.len() {
            if !active[i] {
                continue;
            }
            let name = prompts_json[i]["name"].as_str().unwrap_or("?");
            let ours = argmax(&last[i]) as TokenId;
            let Some(&want) = references[i].get(step) else {
                active[i] = false;
                continue;
            };
            if ours != want {
                let ref_gap = gaps[i].get(step).copied().flatten();
                let our_gap = top2_gap(&last[i]);
                if ref_gap.is_some_and(|g| g < margin) || our_gap < margin {
                    println!(
                        "{} {name}: tolerated divergence at step {step} (uma {ours}, llama.cpp \
                         {want}; top-2 gap llama.cpp {ref_gap:?}, uma {our_gap:.3} < {margin})",
                        model.stem()
                    );
                } else {
                    failures.push(format!(
                        "{name}: step {step}: uma {ours}, llama.cpp {want} (top-2 gap llama.cpp \
                         {ref_gap:?}, uma {our_gap:.3}); agreed on {:?}",
                        generated[i]
                    ));
                }
                active[i] = false;
                continue;
            }
            generated[i].push(ours);
            if stops.contains(&ours) {
                active[i] = false;
            }
        }
        if !active.contains(&true) {
            break;
        }
        // One decode step for every active sequence.
        let positions: Vec<usize> = (0..prompts.len()).map(|i| prompts[i].len() + step).collect();
        let tokens: Vec<[TokenId; 1]> =
            generated.iter().map(|g| [g.last().copied().unwrap_or(0)]).collect();
        let mut batch = Batch::new();
        let mut order = Vec::new();
        for i in (0..prompts.len()).filter(|&i| active[i]) {
            batch.push(&tokens[i], positions[i], &tables[i], LogitsRequest::Last);
            order.push(i);
        }
        let logits = m.forward(&batch, &mut kv).expect("decode step");
        for (k, &i) in order.iter().enumerate() {
            last[i] = logits.last_of(k).expect("asked").to_vec();
        }
    }
    for (i, p) in prompts_json.iter().enumerate() {
        println!(
            "{} ({} cache) {}: {} of {} tokens agree",
            model.stem(),
            kv_type.name(),
            p["name"].as_str().unwrap_or("?"),
            generated[i].len(),
            references[i].len()
        );
    }
    assert!(logits_failures.is_empty(), "{} logits: {logits_failures:#?}", model.stem());
    assert!(failures.is_empty(), "{} greedy: {failures:#?}", model.stem());
}

/// Bound on |uma − reference| per logit, relative to the prompt's logit range (max − min).
///
/// The reference is float32 `transformers` on the dequantized weights. uma differs where it
/// follows llama.cpp: the Q8_0 matrices take Q8_0-quantized activations (≤ 1/254 of each
/// 32-block's max per element), the KV cache is f16 and queries are rounded to f16 for `q·k`
/// (2⁻¹¹ relative). Measured worst case (2026-11-21, printed by the test): llama 0.52%, qwen2
/// 0.47%, qwen3 0.37%, gemma3 0.61% of the range. 1.2% is a 2x margin over the worst, still far
/// below what a real mistake costs (a wrong rope pair, norm, scale or window moves logits by
/// tens of percent of the range).
const TINY_MAX_ERROR_OF_RANGE: f32 = 0.012;

/// Checks the tiny model of `arch` (on any backend) against transformers' logits at every
/// position of the golden prompts.
pub(crate) fn check_tiny_model<B: Backend>(model: &Model<B>, arch: &str) {
    let golden = read_golden(&format!("tiny/{arch}.json"));
    assert_eq!(golden["arch"], arch);
    let mut worst = 0.0f32;
    for prompt in golden["prompts"].as_array().expect("prompts") {
        let tokens = ids(&prompt["token_ids"]);
        let expected = prompt["logits"].as_array().expect("logits");
        let got = all_logits(model, &tokens);
        assert_eq!(got.len(), expected.len(), "{arch}: one logit row per position");
        for (pos, (row, want)) in got.iter().zip(expected).enumerate() {
            let want: Vec<f32> = want
                .as_array()
                .expect("a row")
                .iter()
                .map(|v| v.as_f64().expect("a float") as f32)
                .collect();
            assert_eq!(row.len(), want.len(), "{arch}: vocabulary size");
            let max = want.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let min = want.iter().fold(f32::INFINITY, |m, &v| m.min(v));
            let error = row.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let relative = error / (max - min);
            worst = worst.max(relative);
            assert!(
                relative <= TINY_MAX_ERROR_OF_RANGE,
                "{arch} prompt {tokens:?} position {pos}: max error {error} is {relative} \
                 of the logit range {}",
                max - min
            );
            // Same argmax, unless the reference itself has a near-tie there (its value at
            // uma's argmax within twice the measured error of its maximum).
            let ours = argmax(row);
            assert!(
                ours == argmax(&want) || max - want[ours] <= 2.0 * error,
                "{arch} position {pos}: argmax {ours} vs {} (gap {})",
                argmax(&want),
                max - want[ours]
            );
        }
    }
    println!("{arch}: worst error {worst:.2e} of the logit range");
}
