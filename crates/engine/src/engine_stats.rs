//! A snapshot of an engine's load and KV pool, refreshed every step (for `/health` and metrics).

use serde::Serialize;

/// What an engine is doing, as of its last step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Requests accepted and not yet finished (running, waiting, or just submitted).
    pub num_in_flight: usize,
    pub num_running: usize,
    pub num_waiting: usize,
    pub kv_block_size: usize,
    pub kv_num_blocks: usize,
    /// Blocks referenced by requests.
    pub kv_num_used_blocks: usize,
    /// Blocks free for allocation (including cached prefixes that may be evicted).
    pub kv_num_free_blocks: usize,
    /// Free blocks that still hold a cached prefix.
    pub kv_num_cached_free_blocks: usize,
    /// Prompt tokens looked up in, and found in, the prefix cache since start.
    pub prefix_cache_queried_tokens: u64,
    pub prefix_cache_hit_tokens: u64,
    pub num_preemptions: u64,
    pub num_steps: u64,
    pub num_finished_requests: u64,
    pub num_cancelled_requests: u64,
    pub num_failed_requests: u64,
    pub num_prompt_tokens: u64,
    pub num_generated_tokens: u64,
    /// Speculative decoding since start: draft tokens proposed, confirmed, and the chunks that
    /// verified them (accepted ÷ verifications is the mean accepted length).
    pub num_drafted_tokens: u64,
    pub num_accepted_draft_tokens: u64,
    pub num_draft_verifications: u64,
}
