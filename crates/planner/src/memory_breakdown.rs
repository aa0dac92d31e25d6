//! What a model needs in memory to serve a context: weights, KV cache, compute scratch and the
//! runtime's own overhead, and the peak while it loads.

use serde::Serialize;

use crate::model_spec::ModelSpec;
use crate::plan_request::PlanRequest;

/// What the uma process holds besides weights, KV cache and scratch whatever the model: code,
/// thread stacks, allocator arenas, the mapped GGUF header. Fitted with the per-entry figure
/// below to `uma run`'s resident memory on the three test models (`docs/planner.md`).
pub const RUNTIME_OVERHEAD_BASE_BYTES: u64 = 12_000_000;

/// Resident bytes per vocabulary entry once the model is loaded: the tokenizer's strings, id maps
/// both ways, merge ranks (BPE) or scores (SentencePiece), and the parsed GGUF arrays they come
/// from (measured: ~62 MB of overhead for a 151,936-entry BPE vocabulary, ~98 MB for a
/// 262,144-entry SentencePiece one).
pub const RUNTIME_OVERHEAD_BYTES_PER_VOCAB_ENTRY: u64 = 330;

/// The same while the tokenizer is being built, its temporaries alive (measured: the peak of
/// `uma run` on Gemma 3 270M, whose tied 178 MB head is repacked right after).
pub const LOAD_OVERHEAD_BYTES_PER_VOCAB_ENTRY: u64 = 560;

/// Memory of one model serving `num_sequences` contexts, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryBreakdown {
    /// Weights as held in memory ([`ModelSpec::resident_weight_bytes`]) plus the rows of the
    /// mapped token embedding table the context's tokens page in.
    pub weights_bytes: u64,
    /// The part of `weights_bytes` that is embedding rows.
    pub embedding_rows_bytes: u64,
    /// KV cache for every sequence's whole context.
    pub kv_cache_bytes: u64,
    /// Activations of one step's batch of tokens and its logits.
    pub compute_scratch_bytes: u64,
    /// Tokenizer and process ([`RUNTIME_OVERHEAD_BASE_BYTES`], per vocabulary entry), and the
    /// GPU driver ([`PlanRequest::gpu_driver_bytes`]).
    pub runtime_overhead_bytes: u64,
    /// The most held at once while loading, before the KV cache exists: the tokenizer with its
    /// temporaries, the output head repacked and its mapped pages not yet released (or, at the
    /// end, all weights and the largest tensor's pages).
    pub load_peak_bytes: u64,
}

impl MemoryBreakdown {
    /// The breakdown of `model` for `request` (its context and sequences).
    pub fn new(model: &ModelSpec, request: &PlanRequest) -> MemoryBreakdown {
        let context_tokens = request.context_length.saturating_mul(request.num_sequences);
        let embedding_rows_bytes = model.embedding_rows_bytes(context_tokens);
        // A step holds at most the batch budget, and never more tokens than the contexts hold;
        // each sequence in it asks for one row of logits.
        let step_tokens = request.max_num_batched_tokens.min(context_tokens);
        let logits_rows = request.num_sequences.min(step_tokens);
        let runtime_overhead_bytes = RUNTIME_OVERHEAD_BASE_BYTES
            + model.vocab_size * RUNTIME_OVERHEAD_BYTES_PER_VOCAB_ENTRY
            + request.gpu_driver_bytes;
        let head_loading = RUNTIME_OVERHEAD_BASE_BYTES
            + model.vocab_size * LOAD_OVERHEAD_BYTES_PER_VOCAB_ENTRY
            + request.gpu_driver_bytes
            + model.output_head_resident_bytes
            + model.output_head_file_bytes;
        let last_loading =
            runtime_overhead_bytes + model.resident_weight_bytes + model.largest_tensor_file_bytes;
        MemoryBreakdown {
            weights_bytes: model.resident_weight_bytes + embedding_rows_bytes,
            embedding_rows_bytes,
            kv_cache_bytes: model.kv_cache_bytes(
                request.context_length,
                request.num_sequences,
                request.kv_cache_type,
                request.sliding_window_kv,
            ),
            compute_scratch_bytes: step_tokens * model.activation_bytes_per_token()
                + model.logits_bytes(logits_rows),
            runtime_overhead_bytes,
            load_peak_bytes: head_loading.max(last_loading),
        }
    }

    /// The same with a KV pool of `kv_tokens` positions of `kv_bytes_per_token` bytes instead of
    /// the request's contexts: a pool sized on its own (`uma serve --kv-cache-tokens`, or shrunk
    /// to the budget).
    pub fn with_kv_pool(&self, kv_tokens: u64, kv_bytes_per_token: u64) -> MemoryBreakdown {
        MemoryBreakdown { kv_cache_bytes: kv_tokens.saturating_mul(kv_bytes_per_token), ..*self }
    }

    /// What the model holds while it serves: weights, KV cache, scratch and overhead.
    pub fn total_bytes(&self) -> u64 {
        self.weights_bytes
            .saturating_add(self.kv_cache_bytes)
            .saturating_add(self.compute_scratch_bytes)
            .saturating_add(self.runtime_overhead_bytes)
    }

    /// The most the process holds at any time: serving or loading.
    pub fn peak_bytes(&self) -> u64 {
        self.total_bytes().max(self.load_peak_bytes)
    }
}
