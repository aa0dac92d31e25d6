//! KV cache storage: tensors only. Which blocks belong to which sequence is the caller's business
//! (a `kv` crate's block pool); a [`crate::Batch`] names the blocks of each sequence.

use half::f16;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Token positions per block unless the caller chooses otherwise.
pub const DEFAULT_BLOCK_SIZE: usize = 16;

/// Index of a block in a [`KvCache`]: the same block of every layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

impl BlockId {
    /// The block's index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One layer's keys and values.
#[derive(Clone)]
pub(crate) struct LayerKv {
    // Keys transposed per head so that attention scores 16 positions at once without
    // horizontal sums; values row-major so that each position's value is one contiguous row.
    pub(crate) keys: Vec<f16>, // [num_blocks, num_key_value_heads, head_dim, block_size]
    pub(crate) values: Vec<f16>, // [num_blocks, num_key_value_heads, block_size, head_dim]
}

/// Paged keys and values in f16 (llama.cpp's default cache type), `num_blocks` blocks of
/// `block_size` token positions, each holding every layer's K and V for those positions.
#[derive(Clone)]
pub struct KvCache {
    num_blocks: usize,
    block_size: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    pub(crate) layers: Vec<LayerKv>,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("num_blocks", &self.num_blocks)
            .field("block_size", &self.block_size)
            .field("num_layers", &self.layers.len())
            .field("num_key_value_heads", &self.num_key_value_heads)
            .field("head_dim", &self.head_dim)
            .finish()
    }
}

impl KvCache {
    /// A zeroed cache of `num_blocks` blocks of `block_size` positions for a model of `config`.
    pub fn new(config: &ModelConfig, num_blocks: usize, block_size: usize) -> Result<KvCache> {
        if num_blocks == 0 || block_size == 0 || num_blocks > u32::MAX as usize {
            return Err(ModelError::InvalidKvCache {
                reason: format!("{num_blocks} blocks of {block_size} positions"),
            });
        }
        let per_layer = num_blocks
            .checked_mul(block_size)
            .and_then(|n| n.checked_mul(config.kv_dim()))
            .ok_or_else(|| ModelError::InvalidKvCache {
                reason: format!("{num_blocks} blocks of {block_size} positions overflow"),
            })?;
        let layers = (0..config.num_hidden_layers)
            .map(|_| LayerKv {
                keys: vec![f16::ZERO; per_layer],
                values: vec![f16::ZERO; per_layer],
            })
            .collect();
        Ok(KvCache {
            num_blocks,
            block_size,
            num_key_value_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            layers,
        })
    }

    /// Blocks in the cache.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Token positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes of K and V per token position, all layers.
    pub fn bytes_per_position(&self) -> usize {
        2 * self.layers.len() * self.num_key_value_heads * self.head_dim * size_of::<f16>()
    }

    /// Total bytes of the cache's tensors.
    pub fn size_in_bytes(&self) -> usize {
        self.bytes_per_position() * self.num_blocks * self.block_size
    }

    /// Copies the keys and values of positions `0..num_positions` of block `source` into the same
    /// positions of block `destination`, in every layer (a prefix cached in part of a block,
    /// reused by another sequence without recomputing it).
    pub fn copy_block_prefix(
        &mut self,
        source: BlockId,
        destination: BlockId,
        num_positions: usize,
    ) -> Result<()> {
        let (src, dst) = (source.index(), destination.index());
        if src >= self.num_blocks || dst >= self.num_blocks || num_positions > self.block_size {
            return Err(ModelError::InvalidKvCache {
                reason: format!(
                    "copying {num_positions} positions from block {src} to block {dst} of {} \
                     blocks of {}",
                    self.num_blocks, self.block_size
                ),
            });
        }
        if src == dst || num_positions == 0 {
            return Ok(());
        }
        let (bs, hd) = (self.block_size, self.head_dim);
        let per_block = self.num_key_value_heads * hd * bs;
        for layer in &mut self.layers {
            // Keys: [kv_heads, head_dim, block_size] per block, positions innermost.
            for row in 0..self.num_key_value_heads * hd {
                let (from, to) = (src * per_block + row * bs, dst * per_block + row * bs);
                layer.keys.copy_within(from..from + num_positions, to);
            }
            // Values: [kv_heads, block_size, head_dim] per block, each position a row.
            for head in 0..self.num_key_value_heads {
                let (from, to) =
                    (src * per_block + head * bs * hd, dst * per_block + head * bs * hd);
                layer.values.copy_within(from..from + num_positions * hd, to);
            }
        }
        Ok(())
    }

    /// Whether this cache has the shape `config` needs.
    pub(crate) fn check_shape(&self, config: &ModelConfig) -> Result<()> {
        if self.layers.len() != config.num_hidden_layers
            || self.num_key_value_heads != config.num_key_value_heads
            || self.head_dim != config.head_dim
        {
            return Err(ModelError::InvalidKvCache {
                reason: format!(
                    "built for {} layers × {} kv heads × {} dims, the model has {} × {} × {}",
                    self.layers.len(),
                    self.num_key_value_heads,
                    self.head_dim,
                    config.num_hidden_layers,
                    config.num_key_value_heads,
                    config.head_dim
                ),
            });
        }
        Ok(())
    }
}
