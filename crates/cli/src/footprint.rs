//! What a model costs at run time, derived from its file: bytes of weights read per decoded token
//! and KV cache bytes per token. (The planner will own these once it exists; they start here
//! because `uma show` is their first user.)

use uma_gguf::{GgufFile, ModelParams};

/// Bytes of the f16 elements the KV cache stores.
const F16_BYTES: u64 = 2;

/// Name of the token embedding table and the output head in GGUF files.
const TOKEN_EMBEDDING: &str = "token_embd.weight";
const OUTPUT_HEAD: &str = "output.weight";

/// Weight bytes one decode step reads: every tensor once, except that the token embedding table
/// is only gathered (one row per token) unless it doubles as the output head (tied embeddings,
/// no `output.weight`), in which case the whole table is read for the logits.
pub(crate) fn weight_bytes_per_token(file: &GgufFile) -> u64 {
    let total: u64 = file.tensor_infos().iter().map(|t| t.size_in_bytes).sum();
    match file.tensor(TOKEN_EMBEDDING) {
        Ok(embedding) if file.has_tensor(OUTPUT_HEAD) => {
            let info = embedding.info();
            let row_bytes = info.size_in_bytes / info.num_rows().max(1);
            total - info.size_in_bytes + row_bytes
        }
        _ => total,
    }
}

/// KV cache bytes per token position with an f16 cache: K and V for every layer and KV head.
/// Sliding-window layers stop growing past their window; this is the figure for positions within
/// it (an upper bound beyond).
pub(crate) fn kv_cache_bytes_per_token(params: &ModelParams) -> u64 {
    params.num_hidden_layers
        * params.num_key_value_heads
        * (params.head_dim + params.value_head_dim)
        * F16_BYTES
}
