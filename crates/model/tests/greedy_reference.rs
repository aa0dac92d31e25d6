//! Greedy continuations against llama.cpp (`tests/golden/greedy/<stem>.json`, from
//! `scripts/golden/make-reference.sh`): token for token until the first near-tie.
//!
//! All prompts of a model decode together as one batch (prefill once, then one token per
//! sequence per step, KV cache reused): each sequence's logits are bit-identical to running it
//! alone (`batched.rs`), and the weights are read once per step instead of once per prompt.
mod common;

use common::*;
use uma_model::{Batch, LogitsRequest, Model, TokenId};
use uma_test_models::TestModel;

/// Tokens that end generation, as llama.cpp's end-of-generation set: the file's EOS and EOT ids
/// and the chat end markers present in the vocabulary.
fn end_of_generation(model: &Model) -> Vec<TokenId> {
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

fn check(model: TestModel) {
    let golden = read_golden(&format!("greedy/{}.json", model.stem()));
    let margin = golden["near_tie_margin"].as_f64().expect("near_tie_margin") as f32;
    let m = real_model(model);
    let stops = end_of_generation(&m);
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
    let (mut kv, tables, mut last) = prefill_all(&m, &prompts, max_new);

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
            "{} {}: {} of {} tokens agree",
            model.stem(),
            p["name"].as_str().unwrap_or("?"),
            generated[i].len(),
            references[i].len()
        );
    }
    assert!(failures.is_empty(), "{}: {failures:#?}", model.stem());
}

#[test]
fn gemma3_270m_greedy_matches_llama_cpp() {
    check(TestModel::Gemma3_270m);
}

#[test]
fn qwen_05b_greedy_matches_llama_cpp() {
    check(TestModel::QwenCoder05b);
}

#[test]
fn qwen_15b_greedy_matches_llama_cpp() {
    check(TestModel::QwenCoder15b);
}
