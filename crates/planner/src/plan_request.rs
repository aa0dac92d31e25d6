//! What a plan is asked for: a context, a number of sequences, the KV cache's shape, and the
//! headroom to keep free.

use serde::Serialize;

use crate::error::{PlannerError, Result};
use crate::kv_cache_type::KvCacheType;

/// Share of the memory budget a plan keeps free: the **25% headroom rule**. A plan fits when
/// weights + KV cache + compute scratch + runtime overhead ≤ 75% of the budget (the machine's
/// memory minus the OS reserve). The rest absorbs what no estimate sees: allocator
/// fragmentation, other programs, a longer prompt than planned.
pub const DEFAULT_HEADROOM: f64 = 0.25;

/// Tokens one engine step processes at most (`uma serve --batch-tokens`): the engine's default
/// is this constant.
pub const DEFAULT_MAX_NUM_BATCHED_TOKENS: u64 = 512;

/// Context planned for when none is given: the engine's default context is this constant, so
/// `uma plan`, `uma run` and `uma serve` agree (the engine depends on the planner, not the
/// reverse).
pub const DEFAULT_CONTEXT_LENGTH: u64 = 4096;

/// How a speculative-decoding draft model keeps its KV cache, whatever the model's: uma's draft
/// model (`crates/engine/src/draft_model.rs`) holds a pool of f16 blocks as large as the model's.
pub const DRAFT_KV_CACHE_TYPE: KvCacheType = KvCacheType::F16;

/// The context a plan for a model trained to `trained` positions uses: `given`, unless it exceeds
/// the trained context (`Err(trained)`: the caller says so in its own words), else
/// [`DEFAULT_CONTEXT_LENGTH`] capped at the trained context. `uma plan` and the server's
/// `/v1/plan` share this rule.
pub fn planned_context_length(
    given: Option<u64>,
    trained: Option<u64>,
) -> std::result::Result<u64, u64> {
    match (given, trained) {
        (Some(given), Some(trained)) if given > trained => Err(trained),
        (Some(given), _) => Ok(given),
        (None, Some(trained)) => Ok(DEFAULT_CONTEXT_LENGTH.min(trained)),
        (None, None) => Ok(DEFAULT_CONTEXT_LENGTH),
    }
}

/// How sliding-window layers (Gemma 3's local layers) hold their KV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlidingWindowKv {
    /// Every layer keeps every position: uma's paged cache today (a block holds all layers).
    Full,
    /// Sliding-window layers keep only their window (llama.cpp's SWA cache).
    Windowed,
}

/// The inputs of a memory plan besides the model and the budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PlanRequest {
    /// Token positions each sequence can hold (prompt and answer).
    pub context_length: u64,
    /// Sequences served at once, each with its own context.
    pub num_sequences: u64,
    #[serde(serialize_with = "crate::kv_cache_type::serialize_name")]
    pub kv_cache_type: KvCacheType,
    pub sliding_window_kv: SlidingWindowKv,
    /// Tokens in one step's batch: what the compute scratch is sized for.
    pub max_num_batched_tokens: u64,
    /// Share of the budget kept free, in `[0, 1)` ([`DEFAULT_HEADROOM`]).
    pub headroom: f64,
    /// Resident memory the GPU driver adds to the process: `--device auto` opens the GPU to
    /// choose, and its driver stays loaded when the model then runs on the CPU (a software
    /// Vulkan device: about 50 MB). Measured on this machine by `uma plan`; 0 elsewhere.
    pub gpu_driver_bytes: u64,
}

impl Default for PlanRequest {
    fn default() -> PlanRequest {
        PlanRequest {
            context_length: DEFAULT_CONTEXT_LENGTH,
            num_sequences: 1,
            kv_cache_type: KvCacheType::F16,
            sliding_window_kv: SlidingWindowKv::Full,
            max_num_batched_tokens: DEFAULT_MAX_NUM_BATCHED_TOKENS,
            headroom: DEFAULT_HEADROOM,
            gpu_driver_bytes: 0,
        }
    }
}

impl PlanRequest {
    /// What a speculative-decoding draft model beside the planned model is asked for: the same
    /// contexts and steps, in a [`DRAFT_KV_CACHE_TYPE`] cache that holds every position on every
    /// layer (a block of its pool per block of the model's).
    pub fn for_draft(&self) -> PlanRequest {
        PlanRequest {
            kv_cache_type: DRAFT_KV_CACHE_TYPE,
            sliding_window_kv: SlidingWindowKv::Full,
            // One driver per process: counted with the model.
            gpu_driver_bytes: 0,
            ..*self
        }
    }

    /// Checks every number: counts at least 1, headroom in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("context length", self.context_length),
            ("number of sequences", self.num_sequences),
            ("batched tokens per step", self.max_num_batched_tokens),
        ] {
            if value == 0 {
                return Err(PlannerError::invalid(name, "must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&self.headroom) {
            return Err(PlannerError::invalid(
                "headroom",
                format!("{} is outside [0, 1)", self.headroom),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_context_defaults_to_4096_within_the_trained_context() {
        assert_eq!(planned_context_length(None, None), Ok(DEFAULT_CONTEXT_LENGTH));
        assert_eq!(planned_context_length(None, Some(2048)), Ok(2048));
        assert_eq!(planned_context_length(None, Some(32768)), Ok(DEFAULT_CONTEXT_LENGTH));
        assert_eq!(planned_context_length(Some(8192), Some(32768)), Ok(8192));
        assert_eq!(planned_context_length(Some(8192), None), Ok(8192));
        assert_eq!(planned_context_length(Some(40000), Some(32768)), Err(32768));
    }
}
