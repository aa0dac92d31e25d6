//! [`BlockHash`]: the name of a full block's contents, chained over the whole prefix.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::TokenId;

/// Stands in for the parent hash of a sequence's first block. Any fixed value works: it only has
/// to differ from every real SHA-256 output in practice, and hits are verified token by token.
const ROOT_PARENT_HASH: [u8; 32] = [0; 32];

/// SHA-256 of (parent block's hash, or a fixed root value) || the block's token ids (little-endian
/// `u32`).
///
/// Chaining through the parent makes the hash name the block's KV, which depends on every earlier
/// token of the sequence, not only on the block's own tokens.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHash([u8; 32]);

impl BlockHash {
    /// The hash of a full block holding `token_ids`, whose preceding block hashed to `parent`
    /// (`None` for the first block of a sequence).
    pub fn new(parent: Option<BlockHash>, token_ids: &[TokenId]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(parent.map_or(ROOT_PARENT_HASH, |hash| hash.0));
        for &token in token_ids {
            hasher.update(token.to_le_bytes());
        }
        Self(hasher.finalize().into())
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for BlockHash {
    /// Eight hex digits are enough to tell hashes apart in logs and test failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_of_parent_and_little_endian_tokens() {
        let mut bytes = vec![0u8; 32];
        bytes.extend_from_slice(&[1, 0, 0, 0, 0x04, 0x03, 0x02, 0x01]);
        let expected: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(BlockHash::new(None, &[1, 0x0102_0304]).as_bytes(), &expected);
    }

    #[test]
    fn parent_and_tokens_both_change_the_hash() {
        let first = BlockHash::new(None, &[1, 2]);
        let second = BlockHash::new(Some(first), &[3, 4]);
        assert_ne!(second, BlockHash::new(None, &[3, 4]));
        assert_ne!(second, BlockHash::new(Some(first), &[3, 5]));
        assert_eq!(second, BlockHash::new(Some(BlockHash::new(None, &[1, 2])), &[3, 4]));
    }

    #[test]
    fn debug_prints_short_hex() {
        let text = format!("{:?}", BlockHash([0xab; 32]));
        assert_eq!(text, "BlockHash(abababab…)");
    }
}
