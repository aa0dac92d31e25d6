//! Batched equals sequential: a sequence's logits do not depend on what else is in the batch,
//! on how its prompt was split into chunks, or on sharing prefix KV blocks with another sequence.
//! Every per-token computation is independent of the rest of the batch (matrix rows are the same
//! integer dot products, attention reads only the sequence's own positions), so the logits must
//! be bit-identical, and are asserted so.
mod common;

use common::*;
use uma_model::{Batch, BlockId, LogitsRequest, Model, TokenId};
use uma_test_models::TestModel;

/// Deterministic token ids in `[10, min(vocab, 2000))`.
fn tokens(model: &Model, len: usize, seed: u32) -> Vec<TokenId> {
    let range = model.config().vocab_size.min(2000) as u32 - 10;
    (0..len as u32).map(|i| 10 + (i * 7919 + seed * 104_729 + 13) % range).collect()
}

fn assert_rows_equal(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: logit {i} differs: {} vs {} (alone)", got[i], want[i]);
    }
}

fn check_batched_equals_sequential(model: &Model) {
    let bs = model.new_kv_cache(1).expect("cache").block_size();
    // Three sequences of different lengths: A is prefilled in two chunks, B and C are prefilled
    // then decode one token each, all in shared steps.
    let a = tokens(model, 7, 1);
    let b = tokens(model, 6, 2);
    let c = tokens(model, 10, 3);
    let alone_a = all_logits(model, &a);
    let alone_b = all_logits(model, &b);
    let alone_c = all_logits(model, &c);

    let mut kv = model.new_kv_cache(16).expect("cache");
    let table_a: Vec<BlockId> = vec![BlockId(3)];
    let table_b: Vec<BlockId> = vec![BlockId(0)];
    let table_c: Vec<BlockId> = vec![BlockId(7)];
    assert!(c.len() <= bs, "each sequence fits one block here");
    // Step 1: A's first chunk (no logits), B and C prompts minus their last token (all logits).
    let mut step = Batch::new();
    step.push(&a[..4], 0, &table_a, LogitsRequest::None);
    step.push(&b[..5], 0, &table_b, LogitsRequest::All);
    step.push(&c[..9], 0, &table_c, LogitsRequest::Last);
    let logits = model.forward(&step, &mut kv).expect("step 1");
    assert_eq!(logits.num_rows(), 5 + 1);
    for (i, want) in alone_b.iter().enumerate().take(5) {
        assert_eq!(logits.rows()[i].sequence, 1);
        assert_rows_equal(&format!("step 1 B pos {i}"), logits.row(i), want);
    }
    assert_eq!((logits.rows()[5].sequence, logits.rows()[5].position), (2, 8));
    assert_rows_equal("step 1 C last", logits.row(5), &alone_c[8]);
    // Step 2: A's second chunk, one decode token each for B and C.
    let mut step = Batch::new();
    step.push(&b[5..], 5, &table_b, LogitsRequest::Last);
    step.push(&a[4..], 4, &table_a, LogitsRequest::All);
    step.push(&c[9..], 9, &table_c, LogitsRequest::Last);
    let logits = model.forward(&step, &mut kv).expect("step 2");
    assert_eq!(logits.num_rows(), 1 + 3 + 1);
    assert_rows_equal("step 2 B decode", logits.last_of(0).expect("B"), &alone_b[5]);
    for i in 0..3 {
        assert_rows_equal(&format!("step 2 A pos {}", 4 + i), logits.row(1 + i), &alone_a[4 + i]);
    }
    assert_rows_equal("step 2 C decode", logits.last_of(2).expect("C"), &alone_c[9]);

    // Prefix sharing: D and E share their first block (a full block of a common prefix). D
    // computes it; then D and E continue in one step, each in its own second block.
    let prefix = tokens(model, bs, 4);
    let d: Vec<TokenId> = prefix.iter().copied().chain(tokens(model, 3, 5)).collect();
    let e: Vec<TokenId> = prefix.iter().copied().chain(tokens(model, 4, 6)).collect();
    let alone_d = all_logits(model, &d);
    let alone_e = all_logits(model, &e);
    let table_d = [BlockId(9), BlockId(10)];
    let table_e = [BlockId(9), BlockId(12)];
    model
        .forward(&Batch::single(&d[..bs], 0, &table_d, LogitsRequest::None), &mut kv)
        .expect("prefix");
    let mut step = Batch::new();
    step.push(&d[bs..], bs, &table_d, LogitsRequest::All);
    step.push(&e[bs..], bs, &table_e, LogitsRequest::All);
    let logits = model.forward(&step, &mut kv).expect("shared prefix step");
    for (i, r) in logits.rows().iter().enumerate() {
        let want = if r.sequence == 0 { &alone_d[r.position] } else { &alone_e[r.position] };
        assert_rows_equal(
            &format!("shared prefix seq {} pos {}", r.sequence, r.position),
            logits.row(i),
            want,
        );
    }
    assert_eq!(logits.num_rows(), 3 + 4);
}

#[test]
fn tiny_models_batched_equals_sequential() {
    for arch in uma_test_models::tiny::TINY_ARCHS {
        check_batched_equals_sequential(&tiny_model(arch));
    }
}

#[test]
fn gemma3_270m_batched_equals_sequential() {
    check_batched_equals_sequential(&real_model(TestModel::Gemma3_270m));
}

#[test]
fn qwen_05b_batched_equals_sequential() {
    check_batched_equals_sequential(&real_model(TestModel::QwenCoder05b));
}

#[test]
fn sliding_window_spans_blocks() {
    // The tiny Gemma 3 has a window of 4 and five sliding layers: a 40-token sequence decoded
    // token by token through blocks in scrambled order equals one prefill.
    let model = tiny_model("gemma3");
    let seq = tokens(&model, 40, 8);
    let alone = all_logits(&model, &seq);
    let mut kv = model.new_kv_cache(8).expect("cache");
    let table = [BlockId(6), BlockId(2), BlockId(4)];
    model
        .forward(&Batch::single(&seq[..20], 0, &table, LogitsRequest::None), &mut kv)
        .expect("prefill");
    for p in 20..40 {
        let logits = model
            .forward(&Batch::single(&seq[p..p + 1], p, &table, LogitsRequest::Last), &mut kv)
            .expect("decode");
        assert_rows_equal(&format!("position {p}"), logits.row(0), &alone[p]);
    }
}
