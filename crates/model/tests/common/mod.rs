//! Helpers shared by the model integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use uma_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use uma_model::backend::{Backend, PagedKvCache};
use uma_model::{Batch, BlockId, KvCacheType, LogitsRequest, Model, TokenId};

pub(crate) mod reference;

/// `crates/model/tests/golden/<rel>` (from the model crate's tests and its sibling crates').
pub(crate) fn golden_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/golden").join(rel)
}

/// Reads a golden JSON file; a missing one fails the test naming the file and the script.
pub(crate) fn read_golden(rel: &str) -> serde_json::Value {
    let path = golden_path(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); generate it with scripts/golden/make-reference.sh",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tensor of a rewritten file: name, type, ggml shape, bytes.
pub(crate) type TensorParts = (String, GgmlType, Vec<u64>, Vec<u8>);

/// `file` rewritten: its metadata with `changes` (`None`: removed), and `tensors` made from its
/// tensor list by `edit` (a tensor in, any tensors out).
pub(crate) fn rewritten(
    file: &GgufFile,
    changes: &[(&str, Option<MetadataValue>)],
    edit: &dyn Fn(TensorParts) -> Vec<TensorParts>,
) -> GgufFile {
    let mut writer = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        let value = match changes.iter().find(|(k, _)| *k == key) {
            Some((_, changed)) => changed.clone(),
            None => Some(value.clone()),
        };
        if let Some(value) = value.filter(|_| key != "general.alignment") {
            writer.add_metadata(key, value).expect("metadata");
        }
    }
    for t in file.tensors() {
        let parts = (t.name().to_owned(), t.ggml_type(), t.shape().to_vec(), t.data().to_vec());
        for (name, ty, shape, data) in edit(parts) {
            writer.add_tensor(&name, ty, &shape, data).expect("tensor");
        }
    }
    GgufFile::from_bytes(writer.to_bytes()).expect("valid")
}

/// The tiny model of `arch`, built in memory by `uma_test_models::tiny`.
pub(crate) fn tiny_model(arch: &str) -> Model {
    tiny_model_on(uma_model::CpuBackend, arch)
}

/// [`tiny_model`] on `backend`.
pub(crate) fn tiny_model_on<B: Backend>(backend: B, arch: &str) -> Model<B> {
    let bytes = uma_test_models::tiny::tiny_model_bytes(arch).expect("known tiny architecture");
    let file = Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF"));
    Model::load_with(backend, file).expect("loads")
}

/// A real test model.
pub(crate) fn real_model(model: uma_test_models::TestModel) -> Model {
    real_model_on(uma_model::CpuBackend, model)
}

/// [`real_model`] on `backend`.
pub(crate) fn real_model_on<B: Backend>(backend: B, model: uma_test_models::TestModel) -> Model<B> {
    let file = GgufFile::open(uma_test_models::path(model)).expect("opens");
    Model::load_with(backend, Arc::new(file)).expect("loads")
}

/// Block table `first, first + 1, ...` covering `num_positions`.
pub(crate) fn contiguous_table(
    kv: &impl PagedKvCache,
    first: u32,
    num_positions: usize,
) -> Vec<BlockId> {
    let n = num_positions.div_ceil(kv.block_size()) as u32;
    (first..first + n).map(BlockId).collect()
}

/// Logits of every position of `tokens`, run alone as one prefill.
pub(crate) fn all_logits<B: Backend>(model: &Model<B>, tokens: &[TokenId]) -> Vec<Vec<f32>> {
    let mut kv = model.new_kv_cache(tokens.len().div_ceil(16) + 1).expect("cache");
    let table = contiguous_table(&kv, 0, tokens.len());
    let logits = model
        .forward(&Batch::single(tokens, 0, &table, LogitsRequest::All), &mut kv)
        .expect("forward");
    (0..logits.num_rows()).map(|i| logits.row(i).to_vec()).collect()
}

/// Index of the largest value (the first on ties).
pub(crate) fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Largest minus second largest value.
pub(crate) fn top2_gap(x: &[f32]) -> f32 {
    let best = argmax(x);
    let second = x
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != best)
        .fold(f32::NEG_INFINITY, |m, (_, &v)| m.max(v));
    x[best] - second
}

/// `Vec<u32>` from a JSON array of integers.
pub(crate) fn ids(value: &serde_json::Value) -> Vec<TokenId> {
    value
        .as_array()
        .expect("an array of token ids")
        .iter()
        .map(|v| v.as_u64().expect("a token id") as TokenId)
        .collect()
}

/// Runs every prompt as one sequence of a single batched prefill and returns each prompt's
/// last-position logits (the sequences are independent: see `batched.rs`). `kv` gets enough
/// blocks for `extra` more positions per prompt, and the block tables are returned with it.
pub(crate) fn prefill_all<B: Backend>(
    model: &Model<B>,
    prompts: &[Vec<TokenId>],
    extra: usize,
) -> (B::KvCache, Vec<Vec<BlockId>>, Vec<Vec<f32>>) {
    prefill_all_with(model, prompts, extra, KvCacheType::F16)
}

/// [`prefill_all`] with a KV cache of `kv_type`.
pub(crate) fn prefill_all_with<B: Backend>(
    model: &Model<B>,
    prompts: &[Vec<TokenId>],
    extra: usize,
    kv_type: KvCacheType,
) -> (B::KvCache, Vec<Vec<BlockId>>, Vec<Vec<f32>>) {
    let block_size = uma_model::DEFAULT_BLOCK_SIZE;
    let needed: Vec<usize> =
        prompts.iter().map(|p| (p.len() + extra).div_ceil(block_size)).collect();
    let num_blocks = needed.iter().sum::<usize>().max(1);
    let mut kv = model.new_kv_cache_of_type(num_blocks, kv_type).expect("cache");
    let mut next = 0u32;
    let tables: Vec<Vec<BlockId>> = needed
        .iter()
        .map(|&n| {
            let table = (next..next + n as u32).map(BlockId).collect();
            next += n as u32;
            table
        })
        .collect();
    let mut batch = Batch::new();
    for (p, t) in prompts.iter().zip(&tables) {
        batch.push(p, 0, t, LogitsRequest::Last);
    }
    let logits = model.forward(&batch, &mut kv).expect("prefill");
    let last = (0..prompts.len()).map(|i| logits.last_of(i).expect("asked").to_vec()).collect();
    (kv, tables, last)
}
