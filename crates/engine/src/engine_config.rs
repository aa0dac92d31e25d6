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
    /// Where the model computes.
    pub device: crate::Device,
    /// Speculative decoding: when, and how many drafts.
    pub speculative: crate::SpeculativeConfig,
}

impl EngineConfig {
    /// Context of a sequence when none is asked for (`uma run`, `uma serve`): enough for real
    /// conversations, small enough for any machine (a 32k-context model's full cache can take
    /// gigabytes). The number is the planner's, which `uma plan` assumes too: the planner
    /// models what the engine will hold and must not depend on the engine, so the engine takes
    /// its defaults from the planner rather than the other way round.
    pub const DEFAULT_CONTEXT_LENGTH: usize = uma_planner::DEFAULT_CONTEXT_LENGTH as usize;

    /// Shortest context: a prompt of one token and the position of the reply's first token (a
    /// prompt must leave room for the reply).
    pub const MIN_CONTEXT_LENGTH: usize = 2;

    /// Tokens per step when not told otherwise (the planner sizes compute scratch for it).
    pub const DEFAULT_MAX_NUM_BATCHED_TOKENS: usize =
        uma_planner::DEFAULT_MAX_NUM_BATCHED_TOKENS as usize;

    /// Defaults for `context_length` and `max_num_seqs`: a KV pool for every sequence's full
    /// context, 512-token steps, 16-token f16 blocks, a queue four times the running set.
    pub fn new(context_length: usize, max_num_seqs: usize) -> Self {
        EngineConfig {
            context_length,
            max_num_seqs,
            max_num_batched_tokens: Self::DEFAULT_MAX_NUM_BATCHED_TOKENS,
            num_kv_cache_tokens: context_length.saturating_mul(max_num_seqs),
            block_size: uma_model::DEFAULT_BLOCK_SIZE,
            kv_cache_type: uma_model::KvCacheType::F16,
            max_queued_requests: 4 * max_num_seqs.max(16),
            enable_prefix_caching: true,
            pooling: None,
            device: crate::Device::default(),
            speculative: crate::SpeculativeConfig::default(),
        }
    }

    /// Blocks in the KV pool.
    pub fn num_kv_blocks(&self) -> usize {
        self.num_kv_cache_tokens.div_ceil(self.block_size.max(1))
    }

    /// The context for a model trained on `max_position_embeddings` positions: `requested`, or
    /// [`EngineConfig::DEFAULT_CONTEXT_LENGTH`] capped at the trained context. Errors when it is
    /// outside the one rule [`EngineConfig::validate`] applies.
    pub fn context_length_for(
        requested: Option<usize>,
        max_position_embeddings: usize,
    ) -> Result<usize> {
        let context_length =
            requested.unwrap_or(Self::DEFAULT_CONTEXT_LENGTH.min(max_position_embeddings));
        check_context_length(context_length, max_position_embeddings)?;
        Ok(context_length)
    }

    /// Checks the limits against each other and against the model's trained context.
    pub fn validate(&self, max_position_embeddings: usize) -> Result<()> {
        let invalid = |reason: String| Err(EngineError::InvalidConfig { reason });
        check_context_length(self.context_length, max_position_embeddings)?;
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

/// The bounds of a context: at least [`EngineConfig::MIN_CONTEXT_LENGTH`], at most what the
/// model was trained on.
fn check_context_length(context_length: usize, max_position_embeddings: usize) -> Result<()> {
    let minimum = EngineConfig::MIN_CONTEXT_LENGTH;
    if (minimum..=max_position_embeddings).contains(&context_length) {
        return Ok(());
    }
    Err(EngineError::InvalidConfig {
        reason: format!(
            "context length {context_length} is outside {minimum}..={max_position_embeddings} \
             (the model's trained context)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_context_is_capped_at_the_trained_one() {
        assert_eq!(EngineConfig::context_length_for(None, 32768).ok(), Some(4096));
        assert_eq!(EngineConfig::context_length_for(None, 512).ok(), Some(512));
        assert_eq!(EngineConfig::context_length_for(Some(8192), 32768).ok(), Some(8192));
    }

    #[test]
    fn a_context_outside_the_bounds_is_refused_with_one_message() {
        for (requested, trained) in [(Some(1), 512), (Some(0), 512), (Some(513), 512), (None, 1)] {
            let error = EngineConfig::context_length_for(requested, trained)
                .expect_err("outside the bounds");
            assert!(error.to_string().contains(&format!("outside 2..={trained}")), "{error}");
            let mut config = EngineConfig::new(requested.unwrap_or(1), 1);
            config.num_kv_cache_tokens = 1024;
            let error = config.validate(trained).expect_err("validate applies the same rule");
            assert!(error.to_string().contains(&format!("outside 2..={trained}")), "{error}");
        }
    }
}
