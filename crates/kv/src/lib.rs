//! KV cache block bookkeeping: which block of the KV cache holds which token positions of which
//! request, and which blocks can be reused for a repeated prefix.
//!
//! Owns:
//! - [`KvCacheManager`]: per-request block tables, allocation and freeing, prefix-cache lookup
//!   ([`KvCacheManager::get_computed_blocks`]) and registration of computed blocks
//!   ([`KvCacheManager::cache_computed_blocks`]), usage and hit statistics.
//! - The block pool behind it: reference counts, the free queue (LRU order, so the least recently
//!   freed cached block is evicted first) and the map from [`BlockHash`] to cached block.
//! - [`BlockHash`]: the chained SHA-256 that names a full block by its whole prefix.
//!
//! Does not own: the KV tensors (the engine's `uma_model::KvCache`, indexed by [`BlockId`]),
//! writing KV, deciding which request runs or is preempted (`uma-engine`'s scheduler), or sizing
//! the pool from a memory budget (the caller passes `num_blocks`). Everything here is plain
//! bookkeeping over ids, testable without a model.
//!
//! Modelled on vLLM v1's `KVCacheManager`, `BlockPool` and `FreeKVCacheBlockQueue`; see
//! `docs/kv.md` for the decisions.
#![forbid(unsafe_code)]

mod block_hash;
mod block_pool;
mod error;
mod free_block_queue;
mod kv_cache_manager;

pub use block_hash::BlockHash;
pub use error::{KvError, Result};
pub use kv_cache_manager::{
    ComputedBlocks, KvCacheManager, KvUsage, PartialBlock, PrefixCacheStats,
};

pub use uma_ids::{BlockId, TokenId};

/// A request (one sequence) as the engine names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);
