//! Tiny random models of every architecture against Hugging Face `transformers` logits
//! (`tests/golden/tiny/<arch>.json`, from `scripts/golden/make-reference.sh`), all positions.
mod common;

use common::*;

/// Bound on |uma − reference| per logit, relative to the prompt's logit range (max − min).
///
/// The reference is float32 `transformers` on the dequantized weights. uma differs where it
/// follows llama.cpp: the Q8_0 matrices take Q8_0-quantized activations (≤ 1/254 of each
/// 32-block's max per element), the KV cache is f16 and queries are rounded to f16 for `q·k`
/// (2⁻¹¹ relative). Measured worst case (2026-11-21, printed by the test): llama 0.52%, qwen2
/// 0.47%, qwen3 0.37%, gemma3 0.61% of the range. 1.2% is a 2x margin over the worst, still far
/// below what a real mistake costs (a wrong rope pair, norm, scale or window moves logits by
/// tens of percent of the range).
const MAX_ERROR_OF_RANGE: f32 = 0.012;

#[test]
fn tiny_models_match_transformers() {
    for arch in uma_test_models::tiny::TINY_ARCHS {
        let golden = read_golden(&format!("tiny/{arch}.json"));
        assert_eq!(golden["arch"], arch);
        let model = tiny_model(arch);
        let mut worst = 0.0f32;
        for prompt in golden["prompts"].as_array().expect("prompts") {
            let tokens = ids(&prompt["token_ids"]);
            let expected = prompt["logits"].as_array().expect("logits");
            let got = all_logits(&model, &tokens);
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
                    relative <= MAX_ERROR_OF_RANGE,
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
}
