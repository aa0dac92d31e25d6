//! [`KvCacheManager`]: block tables per request, on top of the block pool and prefix cache.

use std::collections::HashMap;

use crate::block_hash::BlockHash;
use crate::block_pool::BlockPool;
use crate::{BlockId, KvError, RequestId, Result, TokenId};

/// Cached blocks found for the start of a request's tokens, from
/// [`KvCacheManager::get_computed_blocks`]. Valid until the next call that allocates or resets
/// (pass it straight to [`KvCacheManager::allocate_slots`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputedBlocks {
    /// The blocks holding `tokens[i * block_size..(i + 1) * block_size]`, in order.
    pub blocks: Vec<BlockId>,
    /// A cached block whose first tokens are the request's next ones: the caller copies their KV
    /// into the request's next block instead of computing it.
    pub partial: Option<PartialBlock>,
    /// `blocks.len() * block_size` plus the partial block's tokens: tokens whose KV need not be
    /// computed.
    pub num_computed_tokens: usize,
}

/// The first `num_tokens` positions of cached block `source` hold the request's tokens right
/// after its full hits. The KV of a position depends only on the tokens up to it, so copying
/// those positions gives exactly the KV computing them would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialBlock {
    pub source: BlockId,
    pub num_tokens: usize,
}

/// A snapshot of the pool, in blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvUsage {
    pub num_blocks: usize,
    /// Referenced by at least one request.
    pub num_used: usize,
    /// Unreferenced, evictable cached blocks included: what allocation can take.
    pub num_free: usize,
    /// Registered in the prefix cache, referenced or not.
    pub num_cached: usize,
    /// Registered and unreferenced: kept for future hits until allocation evicts them.
    pub num_evictable_cached: usize,
}

/// Cumulative prefix-cache lookups since the manager was created, in tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixCacheStats {
    /// Tokens looked up by [`KvCacheManager::get_computed_blocks`].
    pub num_queries: u64,
    /// Of those, tokens found cached.
    pub num_hits: u64,
}

impl PrefixCacheStats {
    /// `num_hits / num_queries`, 0 before any query.
    pub fn hit_rate(&self) -> f64 {
        if self.num_queries == 0 {
            0.0
        } else {
            self.num_hits as f64 / self.num_queries as f64
        }
    }
}

/// A request's blocks.
#[derive(Debug, Default)]
struct RequestBlocks {
    /// Position `p` of the request is in `table[p / block_size]`.
    table: Vec<BlockId>,
    /// The hashes of `table[..block_hashes.len()]`: the full blocks already registered (or found
    /// cached, or left unregistered because an identical block was cached first). Kept so each
    /// hash is computed once and the next one can chain from it.
    block_hashes: Vec<BlockHash>,
}

/// KV-cache block bookkeeping for one model: hands out blocks to requests, and lets a request
/// reuse the blocks of an earlier request with the same prefix.
///
/// The engine calls, per request: [`get_computed_blocks`](Self::get_computed_blocks) then
/// [`allocate_slots`](Self::allocate_slots) when it is admitted; `allocate_slots` again before each
/// later step; [`cache_computed_blocks`](Self::cache_computed_blocks) after each step has written
/// the KV; [`free`](Self::free) when it finishes or is preempted.
#[derive(Debug)]
pub struct KvCacheManager {
    pool: BlockPool,
    block_size: usize,
    enable_prefix_caching: bool,
    requests: HashMap<RequestId, RequestBlocks>,
    prefix_cache_stats: PrefixCacheStats,
}

impl KvCacheManager {
    /// `num_blocks` blocks of `block_size` token positions; prefix caching on or off.
    pub fn new(num_blocks: usize, block_size: usize, enable_prefix_caching: bool) -> Result<Self> {
        if block_size == 0 {
            return Err(KvError::ZeroBlockSize);
        }
        // The free queue threads u32 links through the blocks and two sentinels.
        let max = u32::MAX as usize - 2;
        if num_blocks == 0 || num_blocks > max {
            return Err(KvError::InvalidNumBlocks { num_blocks, max });
        }
        Ok(Self {
            pool: BlockPool::new(num_blocks, block_size),
            block_size,
            enable_prefix_caching,
            requests: HashMap::new(),
            prefix_cache_stats: PrefixCacheStats::default(),
        })
    }

    /// Token positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool, used or free.
    pub fn num_blocks(&self) -> usize {
        self.pool.num_blocks()
    }

    /// Whether full blocks are registered and looked up.
    pub fn enable_prefix_caching(&self) -> bool {
        self.enable_prefix_caching
    }

    /// Longest run of cached full blocks matching the start of `tokens` (the request's prompt so
    /// far), then the cached block after them that shares the most of the following tokens (a
    /// prefix rarely ends on a block boundary). Never covers all of `tokens`: the last prompt
    /// token must be computed to get logits. Does not take references. Counts the lookup in
    /// [`prefix_cache_stats`](Self::prefix_cache_stats) once a request is admitted with it
    /// ([`allocate_slots`](Self::allocate_slots)), so a request that waits for room and looks
    /// up again is counted once.
    pub fn get_computed_blocks(&mut self, tokens: &[TokenId]) -> ComputedBlocks {
        if !self.enable_prefix_caching || tokens.is_empty() {
            return ComputedBlocks::default();
        }
        let max_num_blocks = (tokens.len() - 1) / self.block_size;
        let mut blocks = Vec::new();
        let mut parent = None;
        for token_ids in tokens.chunks_exact(self.block_size).take(max_num_blocks) {
            let hash = BlockHash::new(parent, token_ids);
            let Some(block) = self.pool.lookup(hash, parent, token_ids) else { break };
            blocks.push(block);
            parent = Some(hash);
        }
        let num_full_tokens = blocks.len() * self.block_size;
        let rest = &tokens[num_full_tokens..tokens.len() - 1];
        let partial = self.pool.longest_child_match(parent, rest).map(|(source, shared)| {
            // A whole block can match here only when the cap on full blocks stopped the walk;
            // `rest` already leaves out the last token.
            PartialBlock { source, num_tokens: shared.min(self.block_size - 1) }
        });
        let num_computed_tokens = num_full_tokens + partial.map_or(0, |p| p.num_tokens);
        ComputedBlocks { blocks, partial, num_computed_tokens }
    }

    /// Reserves room for `num_new_tokens` more tokens of `request`, whose tokens (all known so
    /// far) are `tokens` and whose first `num_computed_tokens` already have KV.
    ///
    /// On the first call for a request (while its block table is empty), pass the
    /// [`ComputedBlocks`] from [`get_computed_blocks`](Self::get_computed_blocks): they are
    /// referenced (taken out of the free queue if unreferenced) and start the block table. Later
    /// calls ignore `computed`.
    ///
    /// Returns the newly allocated blocks, or `None`, changing nothing at all, when not enough
    /// blocks are free. Free counts unreferenced cached blocks; allocating one evicts its hash.
    ///
    /// # Panics
    /// If `computed` is stale: its blocks no longer hold the start of `tokens` (another
    /// allocation or a reset came between the lookup and this call). Using them would give the
    /// request someone else's KV.
    pub fn allocate_slots(
        &mut self,
        request: RequestId,
        tokens: &[TokenId],
        num_computed_tokens: usize,
        num_new_tokens: usize,
        computed: Option<&ComputedBlocks>,
    ) -> Option<Vec<BlockId>> {
        let num_table_blocks = self.requests.get(&request).map_or(0, |state| state.table.len());
        let computed_blocks = match computed {
            Some(computed) if num_table_blocks == 0 => computed.blocks.as_slice(),
            _ => &[],
        };
        let computed_hashes = self.verify_computed_blocks(tokens, computed_blocks);

        let num_required_blocks = (num_computed_tokens + num_new_tokens).div_ceil(self.block_size);
        let num_new_blocks =
            num_required_blocks.saturating_sub(num_table_blocks + computed_blocks.len());
        // An unreferenced hit sits in the free queue: referencing it takes it out, so it cannot
        // also be counted as room for new blocks.
        let num_free_hits =
            computed_blocks.iter().filter(|&&block| self.pool.ref_count(block) == 0).count();
        if num_new_blocks > self.pool.num_free_blocks() - num_free_hits {
            return None;
        }

        // Reference the hits first, so allocation cannot pop (and evict) one of them.
        self.pool.touch(computed_blocks);
        let new_blocks = self.pool.allocate(num_new_blocks).expect("free blocks counted above");
        if let Some(computed) = computed.filter(|_| num_table_blocks == 0) {
            if self.enable_prefix_caching {
                self.prefix_cache_stats.num_queries += tokens.len() as u64;
                self.prefix_cache_stats.num_hits += computed.num_computed_tokens as u64;
            }
        }
        let state = self.requests.entry(request).or_default();
        state.table.extend_from_slice(computed_blocks);
        state.block_hashes.extend(computed_hashes);
        state.table.extend_from_slice(&new_blocks);
        Some(new_blocks)
    }

    /// After a step computed KV for `request` up to `num_computed_tokens` of `tokens`: registers
    /// the hashes of its blocks that are now full and not yet registered, so later requests can
    /// hit them. Hashes are registered only here, once the KV is written, never at allocation, so
    /// a hit always refers to computed contents. If an identical block is already cached under a
    /// hash, that one stays registered and the request's copy stays unregistered.
    pub fn cache_computed_blocks(
        &mut self,
        request: RequestId,
        tokens: &[TokenId],
        num_computed_tokens: usize,
    ) {
        if !self.enable_prefix_caching {
            return;
        }
        let Some(state) = self.requests.get_mut(&request) else { return };
        let num_full_blocks =
            (num_computed_tokens.min(tokens.len()) / self.block_size).min(state.table.len());
        while state.block_hashes.len() < num_full_blocks {
            let index = state.block_hashes.len();
            let token_ids = &tokens[index * self.block_size..(index + 1) * self.block_size];
            let parent = state.block_hashes.last().copied();
            let hash = BlockHash::new(parent, token_ids);
            self.pool.register(state.table[index], parent, hash, token_ids);
            state.block_hashes.push(hash);
        }
    }

    /// The request's block table in order (position `p` is in `table[p / block_size]`). Empty
    /// if the request is unknown.
    pub fn block_table(&self, request: RequestId) -> &[BlockId] {
        self.requests.get(&request).map_or(&[], |state| state.table.as_slice())
    }

    /// Frees the request's blocks (one reference each) and forgets the request. Unknown
    /// requests are ignored.
    ///
    /// Blocks are released tail first, so among the ones that become evictable the tail of the
    /// sequence is evicted before its head: a shared head is the part most likely to be reused.
    pub fn free(&mut self, request: RequestId) {
        if let Some(state) = self.requests.remove(&request) {
            self.pool.release(state.table.iter().rev().copied());
        }
    }

    /// Keeps only the blocks `request` needs for its first `num_positions` positions and
    /// releases the rest, tail first: what speculative decoding does after verification, when
    /// blocks reserved for rejected draft tokens are no longer needed. Blocks already registered
    /// in the prefix cache are never released this way (they hold computed positions, and the
    /// caller only truncates past what it computed). Unknown requests are ignored.
    pub fn truncate(&mut self, request: RequestId, num_positions: usize) {
        let Some(state) = self.requests.get_mut(&request) else { return };
        let keep = num_positions.div_ceil(self.block_size).max(state.block_hashes.len());
        if keep >= state.table.len() {
            return;
        }
        let released: Vec<BlockId> = state.table.drain(keep..).collect();
        self.pool.release(released.into_iter().rev());
    }

    /// Unreferenced blocks, evictable cached ones included.
    pub fn num_free_blocks(&self) -> usize {
        self.pool.num_free_blocks()
    }

    /// A snapshot of the pool. O(number of cached blocks).
    pub fn usage(&self) -> KvUsage {
        let num_free = self.pool.num_free_blocks();
        KvUsage {
            num_blocks: self.num_blocks(),
            num_used: self.num_blocks() - num_free,
            num_free,
            num_cached: self.pool.num_cached_blocks(),
            num_evictable_cached: self.pool.num_evictable_cached_blocks(),
        }
    }

    /// Cumulative lookups and hits, in tokens.
    pub fn prefix_cache_stats(&self) -> PrefixCacheStats {
        self.prefix_cache_stats
    }

    /// Drops every cached hash, so no later lookup hits (after a model or weights change, or for
    /// benchmarks). Refused, returning false, while any block is referenced. Statistics are kept.
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.pool.reset_prefix_cache()
    }

    /// Debug and test aid: checks every invariant, returning a description of the first
    /// violation. Walks everything, so it is O(num_blocks + total table length).
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        self.pool.check()?;
        let mut num_references = vec![0u32; self.num_blocks()];
        for (request, state) in &self.requests {
            if state.block_hashes.len() > state.table.len() {
                return Err(format!("{request:?} has more block hashes than blocks"));
            }
            if !self.enable_prefix_caching && !state.block_hashes.is_empty() {
                return Err(format!("{request:?} has block hashes with prefix caching off"));
            }
            for (index, &block) in state.table.iter().enumerate() {
                num_references[block.index()] += 1;
                if state.table[..index].contains(&block) {
                    return Err(format!("{request:?} holds {block:?} twice"));
                }
                let registered = self.pool.hash_of(block);
                if registered.is_some() && registered != state.block_hashes.get(index).copied() {
                    return Err(format!(
                        "{request:?}: {block:?} at {index} is registered as {registered:?}, \
                         not as the request's own hash chain says"
                    ));
                }
            }
        }
        for (index, &count) in num_references.iter().enumerate() {
            let block = BlockId(index as u32);
            if self.pool.ref_count(block) != count {
                return Err(format!(
                    "{block:?} has ref count {} but {count} block tables hold it",
                    self.pool.ref_count(block)
                ));
            }
        }
        if !self.enable_prefix_caching && self.pool.num_cached_blocks() != 0 {
            return Err("blocks are cached with prefix caching off".to_string());
        }
        Ok(())
    }

    /// The hashes of `computed_blocks`, after checking that they still hold the start of
    /// `tokens` as one hash chain.
    fn verify_computed_blocks(
        &self,
        tokens: &[TokenId],
        computed_blocks: &[BlockId],
    ) -> Vec<BlockHash> {
        let mut hashes: Vec<BlockHash> = Vec::with_capacity(computed_blocks.len());
        let chunks = tokens.chunks_exact(self.block_size);
        assert!(chunks.len() >= computed_blocks.len(), "more computed blocks than full blocks");
        for (&block, token_ids) in computed_blocks.iter().zip(chunks) {
            let parent = hashes.last().copied();
            let hash = self.pool.verified_hash(block, parent, token_ids).unwrap_or_else(|| {
                panic!(
                    "stale ComputedBlocks: {block:?} no longer holds block {} of the request; \
                     call allocate_slots right after get_computed_blocks",
                    hashes.len()
                )
            });
            hashes.push(hash);
        }
        hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK_SIZE: usize = 4;

    fn manager(num_blocks: usize) -> KvCacheManager {
        KvCacheManager::new(num_blocks, BLOCK_SIZE, true).unwrap()
    }

    /// `len` tokens, distinct across seeds so prompts only share what a test makes them share.
    fn prompt(seed: u32, len: usize) -> Vec<TokenId> {
        (0..len as u32).map(|i| seed * 1000 + i).collect()
    }

    fn concat(parts: &[&[TokenId]]) -> Vec<TokenId> {
        parts.concat()
    }

    /// Admits `request` with its whole prompt in one step and registers its full blocks, as the
    /// engine does once the step has run. Returns the prefix-cache hit it started from.
    fn run_prompt(
        manager: &mut KvCacheManager,
        request: u64,
        tokens: &[TokenId],
    ) -> ComputedBlocks {
        let computed = manager.get_computed_blocks(tokens);
        let num_new_tokens = tokens.len() - computed.num_computed_tokens;
        manager
            .allocate_slots(
                RequestId(request),
                tokens,
                computed.num_computed_tokens,
                num_new_tokens,
                Some(&computed),
            )
            .expect("the test sized the pool for this");
        manager.cache_computed_blocks(RequestId(request), tokens, tokens.len());
        manager.check_invariants().unwrap();
        computed
    }

    fn ref_count(manager: &KvCacheManager, block: BlockId) -> u32 {
        manager.pool.ref_count(block)
    }

    #[test]
    fn new_rejects_impossible_shapes() {
        assert_eq!(KvCacheManager::new(4, 0, true).unwrap_err(), KvError::ZeroBlockSize);
        assert!(matches!(
            KvCacheManager::new(0, 4, true),
            Err(KvError::InvalidNumBlocks { num_blocks: 0, .. })
        ));
        let manager = KvCacheManager::new(5, 16, false).unwrap();
        assert_eq!((manager.num_blocks(), manager.block_size()), (5, 16));
        assert_eq!(manager.num_free_blocks(), 5);
    }

    #[test]
    fn truncate_releases_the_tail_but_never_a_registered_block() {
        let mut manager = manager(8);
        let request = RequestId(1);
        let tokens = prompt(1, 9);
        // Positions 0..9 computed (two full blocks registered), 6 more reserved for drafts.
        manager.allocate_slots(request, &tokens, 0, 9 + 6, None).unwrap();
        manager.cache_computed_blocks(request, &tokens, 9);
        assert_eq!(manager.block_table(request).len(), 4);
        let kept: Vec<BlockId> = manager.block_table(request)[..3].to_vec();
        manager.truncate(request, 10);
        assert_eq!(manager.block_table(request), kept);
        assert_eq!(manager.num_free_blocks(), 5);
        // Asking for fewer positions than the registered blocks hold keeps those blocks.
        manager.truncate(request, 1);
        assert_eq!(manager.block_table(request), &kept[..2]);
        manager.check_invariants().unwrap();
        manager.truncate(RequestId(99), 0);
        manager.free(request);
        assert_eq!(manager.num_free_blocks(), 8);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn allocate_and_free_round_trip() {
        let mut manager = manager(8);
        let request = RequestId(1);
        let tokens = prompt(1, 13);
        let blocks = manager.allocate_slots(request, &tokens[..10], 0, 10, None).unwrap();
        assert_eq!(blocks, [BlockId(0), BlockId(1), BlockId(2)]);
        assert_eq!(manager.block_table(request), blocks);
        assert_eq!(manager.num_free_blocks(), 5);
        // Two more tokens still fit in the third block; the thirteenth needs a fourth.
        assert_eq!(manager.allocate_slots(request, &tokens[..12], 10, 2, None), Some(vec![]));
        assert_eq!(manager.allocate_slots(request, &tokens, 12, 1, None), Some(vec![BlockId(3)]));
        assert_eq!(manager.block_table(request).len(), 4);
        manager.check_invariants().unwrap();

        manager.free(request);
        assert!(manager.block_table(request).is_empty());
        assert_eq!(manager.num_free_blocks(), 8);
        manager.free(request);
        manager.free(RequestId(99));
        assert_eq!(manager.usage().num_used, 0);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn exact_capacity_then_none_without_side_effects() {
        let mut manager = manager(4);
        let tokens = prompt(1, 13);
        assert_eq!(
            manager.allocate_slots(RequestId(1), &tokens[..12], 0, 12, None).unwrap().len(),
            3
        );
        assert_eq!(
            manager.allocate_slots(RequestId(2), &tokens[..4], 0, 4, None).unwrap().len(),
            1
        );
        assert_eq!(manager.num_free_blocks(), 0);

        let before = manager.usage();
        let table = manager.block_table(RequestId(1)).to_vec();
        assert_eq!(manager.allocate_slots(RequestId(3), &tokens[..1], 0, 1, None), None);
        assert_eq!(manager.allocate_slots(RequestId(1), &tokens, 12, 1, None), None);
        assert_eq!(manager.usage(), before);
        assert_eq!(manager.block_table(RequestId(1)), table);
        assert!(manager.block_table(RequestId(3)).is_empty());
        manager.check_invariants().unwrap();
    }

    #[test]
    fn none_with_evictable_hits_takes_no_references() {
        let mut manager = manager(4);
        let shared = prompt(1, 8);
        run_prompt(&mut manager, 1, &shared);
        manager.free(RequestId(1));
        run_prompt(&mut manager, 2, &prompt(2, 8));
        // Free now: request 1's two cached blocks only. A request hitting both of them and
        // needing two more blocks must not fit: the hits are not room for new blocks.
        let free_order = manager.pool.free_blocks();
        assert_eq!(free_order.len(), 2);
        let tokens = concat(&[&shared, &prompt(3, 8)]);
        let computed = manager.get_computed_blocks(&tokens);
        assert_eq!(computed.blocks, free_order.iter().rev().copied().collect::<Vec<_>>());
        let before = manager.usage();
        assert_eq!(manager.allocate_slots(RequestId(3), &tokens, 8, 8, Some(&computed)), None);
        assert_eq!(manager.usage(), before);
        assert_eq!(manager.pool.free_blocks(), free_order);
        assert!(manager.block_table(RequestId(3)).is_empty());
        manager.check_invariants().unwrap();

        manager.free(RequestId(2));
        let computed = manager.get_computed_blocks(&tokens);
        assert_eq!(
            manager.allocate_slots(RequestId(3), &tokens, 8, 8, Some(&computed)).unwrap().len(),
            2
        );
        assert_eq!(manager.num_free_blocks(), 0);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn no_hit_before_cache_computed_blocks() {
        let mut manager = manager(8);
        let tokens = prompt(1, 13);
        manager.allocate_slots(RequestId(1), &tokens, 0, 13, None).unwrap();
        assert!(manager.get_computed_blocks(&tokens).blocks.is_empty());
        assert_eq!(manager.usage().num_cached, 0);
        // Five computed tokens make one full block.
        manager.cache_computed_blocks(RequestId(1), &tokens, 5);
        assert_eq!(
            manager.get_computed_blocks(&tokens).blocks,
            manager.block_table(RequestId(1))[..1]
        );
        manager.check_invariants().unwrap();
    }

    #[test]
    fn prefix_hit_after_cache_computed_blocks() {
        let mut manager = manager(16);
        let first = prompt(1, 12);
        run_prompt(&mut manager, 1, &first);
        let longer = concat(&[&first, &prompt(2, 5)]);
        let computed = run_prompt(&mut manager, 2, &longer);
        assert_eq!(computed.num_computed_tokens, 12);
        assert_eq!(computed.blocks, manager.block_table(RequestId(1)));
        assert_eq!(manager.block_table(RequestId(2))[..3], computed.blocks[..]);
    }

    #[test]
    fn hit_never_covers_the_last_token() {
        let mut manager = manager(8);
        let tokens = prompt(1, 9);
        run_prompt(&mut manager, 1, &tokens);
        // Whole blocks, then the cached next block's matching start: always one token short.
        assert_eq!(manager.get_computed_blocks(&tokens[..8]).num_computed_tokens, 7);
        assert_eq!(manager.get_computed_blocks(&tokens).num_computed_tokens, 8);
        assert_eq!(manager.get_computed_blocks(&tokens[..4]).num_computed_tokens, 3);
        assert_eq!(manager.get_computed_blocks(&tokens[..1]).num_computed_tokens, 0);
        assert_eq!(manager.get_computed_blocks(&[]), ComputedBlocks::default());
    }

    #[test]
    fn same_prompt_shares_blocks_and_freeing_one_keeps_the_other() {
        let mut manager = manager(8);
        let tokens = prompt(1, 10);
        run_prompt(&mut manager, 1, &tokens);
        let computed = run_prompt(&mut manager, 2, &tokens);
        let first = manager.block_table(RequestId(1)).to_vec();
        let second = manager.block_table(RequestId(2)).to_vec();
        assert_eq!(computed.blocks, first[..2]);
        assert_eq!(second[..2], first[..2]);
        assert_ne!(second[2], first[2], "the partial last block is never shared");
        assert!(first[..2].iter().all(|&block| ref_count(&manager, block) == 2));
        assert_eq!(manager.usage().num_used, 4);

        manager.free(RequestId(1));
        assert_eq!(manager.block_table(RequestId(2)), second);
        assert!(second.iter().all(|&block| ref_count(&manager, block) == 1));
        assert_eq!(manager.usage().num_used, 3);
        let rest = manager.allocate_slots(RequestId(3), &prompt(3, 20), 0, 20, None).unwrap();
        assert!(rest.iter().all(|block| !second.contains(block)));
        manager.check_invariants().unwrap();
    }

    #[test]
    fn lru_evicts_the_oldest_freed_cached_block_first() {
        let mut manager = manager(2);
        let (first, second) = (prompt(1, 4), prompt(2, 4));
        run_prompt(&mut manager, 1, &first);
        manager.free(RequestId(1));
        run_prompt(&mut manager, 2, &second);
        manager.free(RequestId(2));
        assert_eq!(manager.usage().num_evictable_cached, 2);

        run_prompt(&mut manager, 3, &prompt(3, 4));
        let probe = |manager: &mut KvCacheManager, tokens: &[TokenId]| {
            manager.get_computed_blocks(&concat(&[tokens, &[0]])).num_computed_tokens
        };
        assert_eq!(probe(&mut manager, &first), 0, "freed first, evicted first");
        assert_eq!(probe(&mut manager, &second), 4);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn free_evicts_the_tail_of_a_sequence_before_its_head() {
        let mut manager = manager(3);
        let tokens = prompt(1, 12);
        run_prompt(&mut manager, 1, &tokens);
        let table = manager.block_table(RequestId(1)).to_vec();
        manager.free(RequestId(1));
        assert_eq!(manager.pool.free_blocks(), [table[2], table[1], table[0]]);

        run_prompt(&mut manager, 2, &prompt(2, 4));
        assert_eq!(manager.block_table(RequestId(2)), [table[2]]);
        assert_eq!(manager.get_computed_blocks(&tokens).blocks, table[..2]);
    }

    #[test]
    fn plain_free_blocks_are_reused_before_cached_ones_are_evicted() {
        let mut manager = manager(3);
        let tokens = prompt(1, 5);
        run_prompt(&mut manager, 1, &tokens);
        let table = manager.block_table(RequestId(1)).to_vec();
        manager.free(RequestId(1));
        // The partial block holds nothing findable: it goes to the front, the cached one to the back.
        assert_eq!(manager.pool.free_blocks(), [table[1], BlockId(2), table[0]]);
        run_prompt(&mut manager, 2, &prompt(2, 8));
        assert_eq!(manager.get_computed_blocks(&tokens).blocks, [table[0]]);
    }

    #[test]
    fn hit_on_an_evictable_block_takes_it_out_of_the_free_queue() {
        let mut manager = manager(4);
        let tokens = prompt(1, 8);
        run_prompt(&mut manager, 1, &tokens);
        let cached = manager.block_table(RequestId(1)).to_vec();
        manager.free(RequestId(1));
        assert_eq!(manager.num_free_blocks(), 4);
        assert_eq!(manager.usage().num_evictable_cached, 2);

        let longer = concat(&[&tokens, &[7]]);
        let computed = run_prompt(&mut manager, 2, &longer);
        assert_eq!(computed.blocks, cached);
        assert_eq!(manager.num_free_blocks(), 1);
        assert!(manager.pool.free_blocks().iter().all(|block| !cached.contains(block)));
        let usage = manager.usage();
        assert_eq!((usage.num_cached, usage.num_evictable_cached), (2, 0));
        let last = manager.allocate_slots(RequestId(3), &prompt(3, 4), 0, 4, None).unwrap();
        assert!(!cached.contains(&last[0]));
        assert_eq!(manager.allocate_slots(RequestId(4), &prompt(4, 1), 0, 1, None), None);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn different_tokens_or_different_parent_do_not_hit() {
        let mut manager = manager(16);
        let (a, b, c, d) = (prompt(1, 4), prompt(2, 4), prompt(3, 4), prompt(4, 4));
        run_prompt(&mut manager, 1, &concat(&[&a, &b, &[9]]));
        // Block `b` is cached, but after `a`: behind `c` its KV would differ.
        assert_eq!(manager.get_computed_blocks(&concat(&[&c, &b, &[9]])).num_computed_tokens, 0);
        assert_eq!(manager.get_computed_blocks(&concat(&[&a, &d, &[9]])).num_computed_tokens, 4);
        let mut changed = concat(&[&a, &b, &[9]]);
        changed[5] += 1;
        // Block `a`, then the one token of `b` before the change (copied, not shared).
        assert_eq!(manager.get_computed_blocks(&changed).num_computed_tokens, 5);
        assert_eq!(manager.get_computed_blocks(&concat(&[&a, &b, &[9]])).num_computed_tokens, 8);
    }

    #[test]
    fn a_prefix_ending_inside_a_block_reuses_the_cached_block_start() {
        let mut manager = manager(16);
        let (a, b) = (prompt(1, 4), prompt(2, 4));
        run_prompt(&mut manager, 1, &concat(&[&a, &b, &[9]]));
        // Shares `a` and the first two tokens of `b`, then differs.
        let other = concat(&[&a, &b[..2], &[77, 78, 79]]);
        let computed = manager.get_computed_blocks(&other);
        let cached = manager.block_table(RequestId(1)).to_vec();
        assert_eq!(computed.blocks, cached[..1]);
        assert_eq!(computed.partial, Some(PartialBlock { source: cached[1], num_tokens: 2 }));
        assert_eq!(computed.num_computed_tokens, 6);
        // The partial block is copied, never shared: the request gets a block of its own.
        let new_blocks = manager.allocate_slots(RequestId(2), &other, 6, 1, Some(&computed));
        let table = manager.block_table(RequestId(2)).to_vec();
        assert_eq!(table.len(), 2);
        assert_eq!(new_blocks, Some(vec![table[1]]));
        assert_ne!(table[1], cached[1]);
        assert_eq!(manager.prefix_cache_stats().num_hits, 6);
        // A continuation that shares nothing with the cached block is no partial hit.
        assert_eq!(manager.get_computed_blocks(&concat(&[&a, &[500, 501, 502]])).partial, None);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn prefix_caching_disabled_finds_and_registers_nothing() {
        let mut manager = KvCacheManager::new(8, BLOCK_SIZE, false).unwrap();
        let tokens = prompt(1, 9);
        run_prompt(&mut manager, 1, &tokens);
        assert_eq!(manager.usage().num_cached, 0);
        let computed = run_prompt(&mut manager, 2, &tokens);
        assert!(computed.blocks.is_empty());
        assert_eq!(manager.prefix_cache_stats(), PrefixCacheStats::default());
        manager.free(RequestId(1));
        manager.free(RequestId(2));
        assert_eq!(manager.usage().num_evictable_cached, 0);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn reset_prefix_cache_only_when_nothing_is_referenced() {
        let mut manager = manager(8);
        let tokens = prompt(1, 9);
        run_prompt(&mut manager, 1, &tokens);
        assert!(!manager.reset_prefix_cache());
        assert_eq!(manager.usage().num_cached, 2);
        manager.free(RequestId(1));
        assert!(manager.reset_prefix_cache());
        assert_eq!(manager.usage().num_cached, 0);
        assert!(manager.get_computed_blocks(&tokens).blocks.is_empty());
        manager.check_invariants().unwrap();
    }

    #[test]
    fn prefix_cache_stats_count_tokens() {
        let mut manager = manager(8);
        let tokens = prompt(1, 9);
        run_prompt(&mut manager, 1, &tokens);
        assert_eq!(manager.prefix_cache_stats(), PrefixCacheStats { num_queries: 9, num_hits: 0 });
        run_prompt(&mut manager, 2, &tokens);
        let stats = manager.prefix_cache_stats();
        assert_eq!(stats, PrefixCacheStats { num_queries: 18, num_hits: 8 });
        assert!((stats.hit_rate() - 8.0 / 18.0).abs() < 1e-12);
        // A lookup whose allocation fails (the request keeps waiting) is not counted.
        let mut full = KvCacheManager::new(2, BLOCK_SIZE, true).unwrap();
        run_prompt(&mut full, 1, &prompt(1, 8));
        let waiting = prompt(2, 9);
        let computed = full.get_computed_blocks(&waiting);
        assert_eq!(full.allocate_slots(RequestId(2), &waiting, 0, 9, Some(&computed)), None);
        assert_eq!(full.prefix_cache_stats(), PrefixCacheStats { num_queries: 8, num_hits: 0 });
    }

    #[test]
    fn identical_block_computed_twice_keeps_the_first_registration() {
        let mut manager = manager(8);
        let tokens = prompt(1, 9);
        // Both requests start before either has computed anything, so neither hits.
        for request in [1, 2] {
            manager.allocate_slots(RequestId(request), &tokens, 0, 9, None).unwrap();
        }
        manager.cache_computed_blocks(RequestId(1), &tokens, 9);
        manager.cache_computed_blocks(RequestId(2), &tokens, 9);
        manager.check_invariants().unwrap();
        assert_eq!(manager.usage().num_cached, 2);
        let first = manager.block_table(RequestId(1)).to_vec();
        assert_eq!(manager.get_computed_blocks(&tokens).blocks, first[..2]);

        manager.free(RequestId(2));
        assert_eq!(manager.usage().num_evictable_cached, 0);
        manager.free(RequestId(1));
        assert_eq!(manager.usage().num_evictable_cached, 2);
        manager.check_invariants().unwrap();
    }

    #[test]
    fn decode_registers_each_block_once_it_fills() {
        let mut manager = manager(8);
        let request = RequestId(1);
        let mut tokens = prompt(1, 3);
        manager.allocate_slots(request, &tokens, 0, 3, None).unwrap();
        manager.cache_computed_blocks(request, &tokens, 3);
        assert_eq!(manager.usage().num_cached, 0);
        for step in 0..6 {
            tokens.push(100 + step);
            let num_computed = tokens.len() - 1;
            manager.allocate_slots(request, &tokens, num_computed, 1, None).unwrap();
            manager.cache_computed_blocks(request, &tokens, tokens.len());
            assert_eq!(manager.usage().num_cached, tokens.len() / BLOCK_SIZE);
            manager.check_invariants().unwrap();
        }
        assert_eq!(manager.requests[&request].block_hashes.len(), 2);
    }

    #[test]
    fn preempted_request_resumes_from_its_cached_prefix() {
        let mut manager = manager(4);
        let request = RequestId(1);
        let tokens = prompt(1, 10);
        let computed = manager.get_computed_blocks(&tokens);
        manager.allocate_slots(request, &tokens, 0, 8, Some(&computed)).unwrap();
        manager.cache_computed_blocks(request, &tokens, 8);
        let table = manager.block_table(request).to_vec();
        manager.free(request);

        let computed = manager.get_computed_blocks(&tokens);
        assert_eq!(computed.blocks, table);
        manager.allocate_slots(request, &tokens, 8, 2, Some(&computed)).unwrap();
        assert_eq!(manager.block_table(request)[..2], table[..]);
        manager.cache_computed_blocks(request, &tokens, 10);
        manager.check_invariants().unwrap();
        manager.free(request);
        assert_eq!(manager.num_free_blocks(), 4);
    }

    #[test]
    #[should_panic(expected = "stale ComputedBlocks")]
    fn stale_computed_blocks_panic() {
        let mut manager = manager(2);
        let tokens = prompt(1, 5);
        run_prompt(&mut manager, 1, &tokens);
        manager.free(RequestId(1));
        let computed = manager.get_computed_blocks(&tokens);
        assert_eq!(computed.blocks.len(), 1);
        // Another request takes both blocks, evicting the hit, before it is used.
        manager.allocate_slots(RequestId(2), &prompt(2, 8), 0, 8, None).unwrap();
        manager.free(RequestId(2));
        manager.allocate_slots(RequestId(3), &tokens, 4, 1, Some(&computed));
    }
}
