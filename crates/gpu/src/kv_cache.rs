//! The paged KV cache on the GPU. (Being written.)

use uma_ids::BlockId;
use uma_model::backend::PagedKvCache;
use uma_model::{KvCacheType, ModelConfig};

use crate::backend::GpuBackend;
use crate::error::GpuError;

/// Paged keys and values of every layer, on the device.
#[derive(Debug)]
pub struct GpuKvCache {
    num_blocks: usize,
    block_size: usize,
    kv_type: KvCacheType,
}

impl GpuKvCache {
    pub(crate) fn new(
        _backend: &GpuBackend,
        _config: &ModelConfig,
        _num_blocks: usize,
        _block_size: usize,
        _kv_type: KvCacheType,
    ) -> uma_model::Result<GpuKvCache> {
        Err(GpuError::Unsupported { reason: "the KV cache is not on the GPU yet".into() }.into())
    }
}

impl PagedKvCache for GpuKvCache {
    fn num_blocks(&self) -> usize {
        self.num_blocks
    }
    fn block_size(&self) -> usize {
        self.block_size
    }
    fn check_shape(&self, _config: &ModelConfig) -> uma_model::Result<()> {
        Ok(())
    }
    fn size_in_bytes(&self) -> usize {
        0
    }
    fn kv_type(&self) -> KvCacheType {
        self.kv_type
    }
    fn copy_block_prefix(&mut self, _: BlockId, _: BlockId, _: usize) -> uma_model::Result<()> {
        Err(GpuError::Unsupported { reason: "the KV cache is not on the GPU yet".into() }.into())
    }
}
