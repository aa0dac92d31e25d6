//! The CPU backend's KV cache storage: tensors only. Which blocks belong to which sequence is the
//! caller's business (a `kv` crate's block pool); a [`crate::Batch`] names the blocks of each
//! sequence.

use half::f16;
use uma_ids::BlockId;

use crate::backend::{check_block_copy, check_kv_cache_shape, PagedKvCache};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::kv_cache_type::{KvCacheType, Q8_0_GROUP};

/// One layer's keys or values, in the layout attention reads (per block and KV head:
/// keys `[head_dim, block_size]`, values `[block_size, head_dim]`).
#[derive(Clone)]
pub(crate) enum KvTensor {
    F16(Vec<f16>),
    /// The quants in the same layout as the f16 elements, and one scale per 32 consecutive
    /// elements of a position's head row: per block and KV head, keys' scales
    /// `[head_dim / 32, block_size]` and values' `[block_size, head_dim / 32]`.
    Q8_0 {
        quants: Vec<i8>,
        scales: Vec<f16>,
    },
}

impl KvTensor {
    fn zeroed(kv_type: KvCacheType, num_elements: usize) -> KvTensor {
        match kv_type {
            KvCacheType::F16 => KvTensor::F16(vec![f16::ZERO; num_elements]),
            KvCacheType::Q8_0 => KvTensor::Q8_0 {
                quants: vec![0; num_elements],
                scales: vec![f16::ZERO; num_elements / Q8_0_GROUP],
            },
        }
    }
}

/// One layer's keys and values.
#[derive(Clone)]
pub(crate) struct LayerKv {
    // Keys transposed per head so that attention scores 16 positions at once without
    // horizontal sums; values row-major so that each position's value is one contiguous row.
    pub(crate) keys: KvTensor, // [num_blocks, num_key_value_heads, head_dim, block_size]
    pub(crate) values: KvTensor, // [num_blocks, num_key_value_heads, block_size, head_dim]
}

impl LayerKv {
    /// A zeroed layer of `num_elements` keys and as many values.
    pub(crate) fn zeroed(kv_type: KvCacheType, num_elements: usize) -> LayerKv {
        LayerKv {
            keys: KvTensor::zeroed(kv_type, num_elements),
            values: KvTensor::zeroed(kv_type, num_elements),
        }
    }
}

/// Paged keys and values, `num_blocks` blocks of `block_size` token positions, each holding every
/// layer's K and V for those positions, in f16 or Q8_0 ([`KvCacheType`]).
#[derive(Clone)]
pub struct KvCache {
    kv_type: KvCacheType,
    num_blocks: usize,
    block_size: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    pub(crate) layers: Vec<LayerKv>,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("kv_type", &self.kv_type)
            .field("num_blocks", &self.num_blocks)
            .field("block_size", &self.block_size)
            .field("num_layers", &self.layers.len())
            .field("num_key_value_heads", &self.num_key_value_heads)
            .field("head_dim", &self.head_dim)
            .finish()
    }
}

impl KvCache {
    /// A zeroed cache of `num_blocks` blocks of `block_size` positions for a model of `config`,
    /// storing keys and values as `kv_type`.
    ///
    /// Errors: no blocks, or a Q8_0 cache for heads that are not whole 32-element groups.
    pub fn new(
        config: &ModelConfig,
        num_blocks: usize,
        block_size: usize,
        kv_type: KvCacheType,
    ) -> Result<KvCache> {
        if num_blocks == 0 || block_size == 0 || num_blocks > u32::MAX as usize {
            return Err(ModelError::InvalidKvCache {
                reason: format!("{num_blocks} blocks of {block_size} positions"),
            });
        }
        if kv_type == KvCacheType::Q8_0 && !config.head_dim.is_multiple_of(Q8_0_GROUP) {
            return Err(ModelError::InvalidKvCache {
                reason: format!(
                    "a q8_0 cache needs heads of whole {Q8_0_GROUP}-element groups, the model's \
                     have {} elements (use f16)",
                    config.head_dim
                ),
            });
        }
        let per_layer = num_blocks
            .checked_mul(block_size)
            .and_then(|n| n.checked_mul(config.kv_dim()))
            .ok_or_else(|| ModelError::InvalidKvCache {
                reason: format!("{num_blocks} blocks of {block_size} positions overflow"),
            })?;
        let layers =
            (0..config.num_hidden_layers).map(|_| LayerKv::zeroed(kv_type, per_layer)).collect();
        Ok(KvCache {
            kv_type,
            num_blocks,
            block_size,
            num_key_value_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            layers,
        })
    }

    /// How keys and values are stored.
    pub fn kv_type(&self) -> KvCacheType {
        self.kv_type
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
        let row_bytes = self.kv_type.bytes_for((self.num_key_value_heads * self.head_dim) as u64);
        2 * self.layers.len() * row_bytes as usize
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
        if !check_block_copy(self.num_blocks, self.block_size, source, destination, num_positions)?
        {
            return Ok(());
        }
        let (src, dst) = (source.index(), destination.index());
        let heads = self.num_key_value_heads;
        let copy = BlockPrefix { src, dst, num_positions, block_size: self.block_size };
        for layer in &mut self.layers {
            // Keys: rows of `block_size` positions (`head_dim` rows per head, or one scale row
            // per 32 of them); values: one row per position, `head_dim` elements or scales wide.
            match &mut layer.keys {
                KvTensor::F16(keys) => copy.transposed(keys, heads * self.head_dim),
                KvTensor::Q8_0 { quants, scales } => {
                    copy.transposed(quants, heads * self.head_dim);
                    copy.transposed(scales, heads * self.head_dim / Q8_0_GROUP);
                }
            }
            match &mut layer.values {
                KvTensor::F16(values) => copy.row_major(values, heads, self.head_dim),
                KvTensor::Q8_0 { quants, scales } => {
                    copy.row_major(quants, heads, self.head_dim);
                    copy.row_major(scales, heads, self.head_dim / Q8_0_GROUP);
                }
            }
        }
        Ok(())
    }
}

impl PagedKvCache for KvCache {
    fn size_in_bytes(&self) -> usize {
        KvCache::size_in_bytes(self)
    }

    fn kv_type(&self) -> KvCacheType {
        KvCache::kv_type(self)
    }

    fn copy_block_prefix(
        &mut self,
        source: BlockId,
        destination: BlockId,
        num_positions: usize,
    ) -> Result<()> {
        KvCache::copy_block_prefix(self, source, destination, num_positions)
    }

    fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn check_shape(&self, config: &ModelConfig) -> Result<()> {
        check_kv_cache_shape(config, self.layers.len(), self.num_key_value_heads, self.head_dim)
    }
}

/// Copies positions `0..num_positions` of block `src` to block `dst` in one tensor.
struct BlockPrefix {
    src: usize,
    dst: usize,
    num_positions: usize,
    block_size: usize,
}

impl BlockPrefix {
    /// A tensor of `rows_per_block` rows of `block_size` positions per block (transposed keys).
    fn transposed<T: Copy>(&self, data: &mut [T], rows_per_block: usize) {
        let bs = self.block_size;
        for row in 0..rows_per_block {
            let from = (self.src * rows_per_block + row) * bs;
            let to = (self.dst * rows_per_block + row) * bs;
            data.copy_within(from..from + self.num_positions, to);
        }
    }

    /// A tensor of `heads` runs of `block_size` rows of `width` per block (values).
    fn row_major<T: Copy>(&self, data: &mut [T], heads: usize, width: usize) {
        let per_head = self.block_size * width;
        for head in 0..heads {
            let from = (self.src * heads + head) * per_head;
            let to = (self.dst * heads + head) * per_head;
            data.copy_within(from..from + self.num_positions * width, to);
        }
    }
}
