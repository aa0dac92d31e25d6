//! [`BlockPool`]: reference counts, the free queue and the prefix cache's hash map.

use std::collections::HashMap;

use crate::block_hash::BlockHash;
use crate::free_block_queue::FreeBlockQueue;
use crate::{BlockId, TokenId};

/// What a registered (cached) block was registered as. Kept next to the tokens so a hit can be
/// verified against the lookup rather than trusted on the hash alone.
#[derive(Clone, Copy, Debug)]
struct CachedBlockKey {
    hash: BlockHash,
    /// `None` for the first block of a sequence.
    parent: Option<BlockHash>,
}

/// Every block of the KV cache: who references it, whether it is free, and which full block of
/// which prefix it holds when it is registered in the prefix cache.
///
/// A block is in the free queue exactly when its reference count is 0. A free block may still be
/// registered ("evictable cached"): it stays findable until allocation takes it, which evicts its
/// hash. The pool knows nothing of requests; the manager keeps the block tables.
#[derive(Debug)]
pub(crate) struct BlockPool {
    block_size: usize,
    /// `[num_blocks]`: how many request block tables hold each block.
    ref_counts: Vec<u32>,
    free_queue: FreeBlockQueue,
    /// The registered blocks by hash. At most one block per hash: an identical block computed
    /// later stays unregistered.
    cached_blocks: HashMap<BlockHash, BlockId>,
    /// `[num_blocks]`: the key of each registered block, `None` for the others.
    keys: Vec<Option<CachedBlockKey>>,
    /// `[num_blocks * block_size]`: the token ids of each registered block (stale for others).
    /// One flat array so registering never allocates.
    token_ids: Vec<TokenId>,
    /// The registered blocks by parent hash (`None`: first blocks), for partial-block reuse: a
    /// prefix that ends inside a block can still copy the start of a cached sibling.
    children: HashMap<Option<BlockHash>, Vec<BlockId>>,
}

impl BlockPool {
    /// Every block free and unregistered. The shape is checked by the manager's constructor.
    pub(crate) fn new(num_blocks: usize, block_size: usize) -> Self {
        Self {
            block_size,
            ref_counts: vec![0; num_blocks],
            free_queue: FreeBlockQueue::new(num_blocks),
            cached_blocks: HashMap::new(),
            keys: vec![None; num_blocks],
            token_ids: vec![0; num_blocks * block_size],
            children: HashMap::new(),
        }
    }

    pub(crate) fn num_blocks(&self) -> usize {
        self.ref_counts.len()
    }

    pub(crate) fn num_free_blocks(&self) -> usize {
        self.free_queue.len()
    }

    pub(crate) fn num_cached_blocks(&self) -> usize {
        self.cached_blocks.len()
    }

    /// Walks the cached blocks: cheap enough for statistics, and one fewer counter to keep right.
    pub(crate) fn num_evictable_cached_blocks(&self) -> usize {
        self.cached_blocks.values().filter(|&&block| self.ref_count(block) == 0).count()
    }

    pub(crate) fn ref_count(&self, block: BlockId) -> u32 {
        self.ref_counts[block.index()]
    }

    /// The block registered under `hash`, if it really holds `token_ids` after `parent`.
    pub(crate) fn lookup(
        &self,
        hash: BlockHash,
        parent: Option<BlockHash>,
        token_ids: &[TokenId],
    ) -> Option<BlockId> {
        let &block = self.cached_blocks.get(&hash)?;
        (self.verified_hash(block, parent, token_ids) == Some(hash)).then_some(block)
    }

    /// The hash `block` is registered under, if it is registered as holding `token_ids` after
    /// `parent`. Comparing the stored tokens and parent, not only the hash, means a hit can never
    /// hand out a block whose contents differ, whatever happens to the hash.
    pub(crate) fn verified_hash(
        &self,
        block: BlockId,
        parent: Option<BlockHash>,
        token_ids: &[TokenId],
    ) -> Option<BlockHash> {
        let key = self.keys[block.index()]?;
        let matches = key.parent == parent && self.stored_token_ids(block) == token_ids;
        matches.then_some(key.hash)
    }

    /// Adds one reference to each block, taking unreferenced ones out of the free queue (which
    /// keeps them from being evicted while in use).
    pub(crate) fn touch(&mut self, blocks: &[BlockId]) {
        for &block in blocks {
            if self.ref_counts[block.index()] == 0 {
                self.free_queue.remove(block);
            }
            self.ref_counts[block.index()] += 1;
        }
    }

    /// Takes `num_blocks` blocks from the front of the free queue (least recently freed first),
    /// evicting their hashes, each with one reference. `None`, changing nothing, when fewer are
    /// free.
    pub(crate) fn allocate(&mut self, num_blocks: usize) -> Option<Vec<BlockId>> {
        if num_blocks > self.num_free_blocks() {
            return None;
        }
        let blocks = (0..num_blocks)
            .map(|_| {
                let block = self.free_queue.pop_front().expect("enough blocks are free");
                self.evict(block);
                self.ref_counts[block.index()] = 1;
                block
            })
            .collect();
        Some(blocks)
    }

    /// Drops one reference from each block, in the order given. A block reaching 0 goes to the
    /// back of the free queue if it is registered (the most recently used cached block is evicted
    /// last), and to the front if not: it holds nothing anyone can find, so it is reused before
    /// any cached block is evicted.
    pub(crate) fn release(&mut self, blocks: impl IntoIterator<Item = BlockId>) {
        for block in blocks {
            let ref_count = &mut self.ref_counts[block.index()];
            assert!(*ref_count > 0, "{block:?} released more often than referenced");
            *ref_count -= 1;
            if *ref_count == 0 {
                if self.keys[block.index()].is_some() {
                    self.free_queue.push_back(block);
                } else {
                    self.free_queue.push_front(block);
                }
            }
        }
    }

    /// Registers a full, computed, referenced block under `hash`. If a block is already
    /// registered under it, that one stays: it holds the same contents, and switching would only
    /// churn the map.
    pub(crate) fn register(
        &mut self,
        block: BlockId,
        parent: Option<BlockHash>,
        hash: BlockHash,
        token_ids: &[TokenId],
    ) {
        assert_eq!(token_ids.len(), self.block_size, "only full blocks are registered");
        assert!(self.ref_count(block) > 0, "{block:?} is registered while its owner holds it");
        if self.cached_blocks.contains_key(&hash) {
            return;
        }
        assert!(
            self.keys[block.index()].is_none(),
            "{block:?} is already registered under another hash; blocks are registered once \
             between allocations"
        );
        self.cached_blocks.insert(hash, block);
        self.keys[block.index()] = Some(CachedBlockKey { hash, parent });
        self.children.entry(parent).or_default().push(block);
        let start = block.index() * self.block_size;
        self.token_ids[start..start + self.block_size].copy_from_slice(token_ids);
    }

    /// Forgets every registered block. Refused (returns false) while any block is referenced:
    /// their requests' hash chains would no longer match the map.
    pub(crate) fn reset_prefix_cache(&mut self) -> bool {
        if self.num_free_blocks() != self.num_blocks() {
            return false;
        }
        self.cached_blocks.clear();
        self.children.clear();
        self.keys.fill(None);
        true
    }

    /// The registered block after `parent` whose tokens share the longest start with
    /// `token_ids`, and how many tokens they share (at least 1).
    pub(crate) fn longest_child_match(
        &self,
        parent: Option<BlockHash>,
        token_ids: &[TokenId],
    ) -> Option<(BlockId, usize)> {
        self.children
            .get(&parent)?
            .iter()
            .map(|&block| {
                let shared = self
                    .stored_token_ids(block)
                    .iter()
                    .zip(token_ids)
                    .take_while(|(a, b)| a == b)
                    .count();
                (block, shared)
            })
            .filter(|&(_, shared)| shared > 0)
            .max_by_key(|&(block, shared)| (shared, std::cmp::Reverse(block)))
    }

    /// The registered hash of a block, if any.
    pub(crate) fn hash_of(&self, block: BlockId) -> Option<BlockHash> {
        self.keys[block.index()].map(|key| key.hash)
    }

    /// Checks the pool's own invariants: free queue links, free exactly when unreferenced, map
    /// and per-block keys agree, stored tokens hash to the key.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        self.free_queue.check()?;
        for index in 0..self.num_blocks() {
            let block = BlockId(index as u32);
            let is_free = self.free_queue.contains(block);
            if is_free != (self.ref_count(block) == 0) {
                return Err(format!(
                    "{block:?} has ref count {} but is {}in the free queue",
                    self.ref_count(block),
                    if is_free { "" } else { "not " }
                ));
            }
            if let Some(key) = self.keys[index] {
                if self.cached_blocks.get(&key.hash) != Some(&block) {
                    return Err(format!("{block:?} has {:?} but the map disagrees", key.hash));
                }
                if BlockHash::new(key.parent, self.stored_token_ids(block)) != key.hash {
                    return Err(format!("{block:?}: stored tokens do not hash to {:?}", key.hash));
                }
            }
        }
        for (hash, &block) in &self.cached_blocks {
            if self.hash_of(block) != Some(*hash) {
                return Err(format!("map has {hash:?} -> {block:?} but the block disagrees"));
            }
        }
        let num_children: usize = self.children.values().map(Vec::len).sum();
        if num_children != self.cached_blocks.len() {
            return Err(format!(
                "{num_children} blocks indexed by parent, {} registered",
                self.cached_blocks.len()
            ));
        }
        for (parent, siblings) in &self.children {
            for &block in siblings {
                if self.keys[block.index()].map(|key| key.parent) != Some(*parent) {
                    return Err(format!("{block:?} is indexed under the wrong parent"));
                }
            }
        }
        Ok(())
    }

    /// The free blocks in the order allocation will take them.
    #[cfg(test)]
    pub(crate) fn free_blocks(&self) -> Vec<BlockId> {
        self.free_queue.iter().collect()
    }

    fn stored_token_ids(&self, block: BlockId) -> &[TokenId] {
        let start = block.index() * self.block_size;
        &self.token_ids[start..start + self.block_size]
    }

    /// Removes a block's registration: it is about to hold other contents.
    fn evict(&mut self, block: BlockId) {
        if let Some(key) = self.keys[block.index()].take() {
            let removed = self.cached_blocks.remove(&key.hash);
            debug_assert_eq!(removed, Some(block), "the map and the block's key agree");
            if let Some(siblings) = self.children.get_mut(&key.parent) {
                siblings.retain(|&sibling| sibling != block);
                if siblings.is_empty() {
                    self.children.remove(&key.parent);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_verifies_tokens_and_parent_not_only_the_hash() {
        let mut pool = BlockPool::new(4, 2);
        let blocks = pool.allocate(2).unwrap();
        let first = BlockHash::new(None, &[1, 2]);
        pool.register(blocks[0], None, first, &[1, 2]);
        // Pretend a collision: register block 1 under the hash of other contents.
        let forged = BlockHash::new(Some(first), &[7, 7]);
        pool.register(blocks[1], Some(first), forged, &[3, 4]);

        assert_eq!(pool.lookup(first, None, &[1, 2]), Some(blocks[0]));
        assert_eq!(pool.lookup(first, None, &[1, 3]), None, "tokens differ");
        assert_eq!(pool.lookup(first, Some(forged), &[1, 2]), None, "parent differs");
        assert_eq!(pool.lookup(forged, Some(first), &[7, 7]), None, "stored tokens differ");
        assert_eq!(pool.lookup(forged, Some(first), &[3, 4]), Some(blocks[1]));
    }

    #[test]
    fn allocation_evicts_the_hash_of_a_reused_block() {
        let mut pool = BlockPool::new(1, 1);
        let block = pool.allocate(1).unwrap()[0];
        let hash = BlockHash::new(None, &[5]);
        pool.register(block, None, hash, &[5]);
        pool.release([block]);
        assert_eq!(pool.lookup(hash, None, &[5]), Some(block));
        assert_eq!(pool.num_evictable_cached_blocks(), 1);
        assert_eq!(pool.allocate(1), Some(vec![block]));
        assert_eq!(pool.lookup(hash, None, &[5]), None);
        assert_eq!(pool.num_cached_blocks(), 0);
        pool.check().unwrap();
    }
}
