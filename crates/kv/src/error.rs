//! The crate's one error type.

/// What can go wrong: only building a manager with an impossible shape. Running out of blocks is
/// not an error but `None` from [`crate::KvCacheManager::allocate_slots`], because the scheduler
/// handles it (by preempting) as part of normal operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// A block must hold at least one token position.
    #[error("block_size must be at least 1")]
    ZeroBlockSize,

    /// The pool needs at least one block, and block ids (plus the free queue's two sentinel
    /// nodes) must fit in `u32`.
    #[error("num_blocks must be between 1 and {max}, got {num_blocks}")]
    InvalidNumBlocks { num_blocks: usize, max: usize },
}

/// `Result` with [`KvError`].
pub type Result<T> = std::result::Result<T, KvError>;
