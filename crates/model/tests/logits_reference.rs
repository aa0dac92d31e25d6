//! Real models' last-position logits against Hugging Face `transformers` (float32 on the
//! dequantized GGUF weights): `tests/golden/logits/<stem>.json`, from
//! `scripts/golden/make-reference.sh`.
mod common;

use common::*;
use uma_test_models::TestModel;

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

fn check(model: TestModel) {
    let max_error_of_range = match model {
        TestModel::Gemma3_270m => GEMMA_MAX_ERROR_OF_RANGE,
        _ => QWEN_MAX_ERROR_OF_RANGE,
    };
    let golden = read_golden(&format!("logits/{}.json", model.stem()));
    let m = real_model(model);
    let prompts_json = golden["prompts"].as_array().expect("prompts");
    let prompts: Vec<Vec<u32>> = prompts_json.iter().map(|p| ids(&p["token_ids"])).collect();
    let (_, _, last) = prefill_all(&m, &prompts, 0);
    let mut failures = Vec::new();
    let mut worst = 0.0f32;
    for (p, logits) in prompts_json.iter().zip(&last) {
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
    assert!(failures.is_empty(), "{}: {failures:#?}", model.stem());
}

#[test]
fn gemma3_270m_logits_match_transformers() {
    check(TestModel::Gemma3_270m);
}

#[test]
fn qwen_05b_logits_match_transformers() {
    check(TestModel::QwenCoder05b);
}

#[test]
fn qwen_15b_logits_match_transformers() {
    check(TestModel::QwenCoder15b);
}
