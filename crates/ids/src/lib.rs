//! The identifiers that cross crate boundaries, declared once: a token id (tokenizer, sampling,
//! model, KV bookkeeping and engine all speak of the same `u32`) and a KV block id (the `kv`
//! crate hands them out, the model's cache storage is indexed by them, and the engine passes the
//! one to the other without converting).
//!
//! Owns nothing else: no behaviour beyond indexing.
#![forbid(unsafe_code)]

/// A token id: an index into the vocabulary and into a logits row.
pub type TokenId = u32;

/// A block of the KV cache: `block_size` consecutive token positions of one sequence, all
/// layers. The `kv` crate allocates them; the model's cache storage is indexed by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

impl BlockId {
    /// The block's index into per-block arrays (and into the cache's tensors).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_index_is_its_number() {
        assert_eq!(BlockId(7).index(), 7);
        assert!(BlockId(1) < BlockId(2));
    }
}
