//! How an engine is sized: context, parallel sequences, step size, KV pool, queue.

use crate::error::{EngineError, Result};

/// Limits of one engine (one model).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most token positions of one sequence (prompt and reply).
    pub context_length: usize,
    /// Sequences computed together (running, holding KV blocks).
    pub max_num_seqs: usize,
    /// Tokens computed per step: decode tokens of running sequences plus chunks of prompts. Larger
    /// steps prefill faster; smaller ones keep the gaps between a stream's tokens short.
    pub max_num_batched_tokens: usize,
    /// Token positions the KV pool holds, across all sequences (rounded up to whole blocks).
    /// At least one full context.
    pub num_kv_cache_tokens: usize,
    /// Token positions per KV block.
    pub block_size: usize,
    /// How the KV pool stores keys and values: f16, or Q8_0 for about half the memory.
    pub kv_cache_type: uma_model::KvCacheType,
    /// Requests that may wait for a sequence slot; more are refused (queue full).
    pub max_queued_requests: usize,
    /// Reuse the KV of prompt prefixes seen before.
    pub enable_prefix_caching: bool,
    /// How embeddings pool token states; `None`: the model serves no embeddings.
    pub pooling: Option<crate::Pooling>,
}

impl EngineConfig {
    /// Defaults for `context_length` and `max_num_seqs`: a KV pool for every sequence's full
    /// context, 512-token steps, 16-token f16 blocks, a queue four times the running set.
    pub fn new(context_length: usize, max_num_seqs: usize) -> Self {
        EngineConfig {
            context_length,
            max_num_seqs,
            max_num_batched_tokens: 512,
            num_kv_cache_tokens: context_length.saturating_mul(max_num_seqs),
            block_size: uma_model::DEFAULT_BLOCK_SIZE,
            kv_cache_type: uma_model::KvCacheType::F16,
            max_queued_requests: 4 * max_num_seqs.max(16),
            enable_prefix_caching: true,
            pooling: None,
        }
    }

    /// Blocks in the KV pool.
    pub fn num_kv_blocks(&self) -> usize {
        self.num_kv_cache_tokens.div_ceil(self.block_size.max(1))
    }

    /// Checks the limits against each other and against the model's trained context.
    pub fn validate(&self, max_position_embeddings: usize) -> Result<()> {
        let invalid = |reason: String| Err(EngineError::InvalidConfig { reason });
        if self.context_length < 2 || self.context_length > max_position_embeddings {
            return invalid(format!(
                "context length {} is outside 2..={max_position_embeddings} (the model's trained \
                 context)",
                self.context_length
            ));
        }
        if self.max_num_seqs == 0 || self.max_num_batched_tokens == 0 || self.block_size == 0 {
            return invalid("sequences, tokens per step and block size must be at least 1".into());
        }
        if self.max_num_batched_tokens < self.max_num_seqs {
            return invalid(format!(
                "{} tokens per step cannot give each of {} sequences a token",
                self.max_num_batched_tokens, self.max_num_seqs
            ));
        }
        // One sequence at full context must fit on its own, or it could never finish.
        if self.num_kv_cache_tokens < self.context_length {
            return invalid(format!(
                "a KV pool of {} tokens cannot hold one full context of {}",
                self.num_kv_cache_tokens, self.context_length
            ));
        }
        Ok(())
    }
}
