//! The paged KV cache on the GPU: two device buffers per layer, keys and values, each one
//! binding of the attention kernels (no splitting: a layer's tensor over the device's largest
//! binding is refused, with the number of blocks that would fit).
//!
//! Layout of each tensor (u32 words), a row per (block, KV head, slot), position-major so that
//! a position's head row is contiguous (the kernels read rows with consecutive threads):
//! - F16: `[num_blocks, num_key_value_heads, block_size, head_dim / 2]` words, two f16 per word
//!   (element `2i` in the low half). `head_dim` must be even.
//! - Q8_0: the quants `[num_blocks, num_key_value_heads, block_size, head_dim / 4]` words, four
//!   signed bytes per word (element `4i` in the low byte), then at word `scales_offset` the
//!   scales `[num_blocks, num_key_value_heads, block_size, ⌈head_dim / 64⌉]` words, two f16
//!   scales per word (group `2i` low; a row's odd last half is padding, so that no word is
//!   shared by two positions written at once). Quantization is ggml's `quantize_row_q8_0`, as
//!   the CPU cache's: per 32 elements `d = amax / 127`, `q = round_half_away(x · (1/d))`.
//!
//! Keys and values share one layout so that a row's index addresses both.

use std::sync::Arc;

use uma_ids::BlockId;
use uma_model::backend::{check_block_copy, check_kv_cache_shape, PagedKvCache};
use uma_model::{KvCacheType, ModelConfig, ModelError};

use crate::backend::GpuBackend;
use crate::context::GpuContext;
use crate::error::GpuError;

/// Q8_0 elements per scale.
const Q8_0_GROUP: usize = 32;

/// The largest head the attention kernel takes (its threads own `MAX_HEAD_DIM / 64` dims each):
/// its wide variant's, for latent attention's one head of 576.
pub(crate) const MAX_HEAD_DIM: usize = 576;
/// The largest head of the attention kernel's usual variant (4 dims per thread).
pub(crate) const NARROW_HEAD_DIM: usize = 256;

/// One layer's keys and values (same layout, see the module doc).
#[derive(Debug)]
pub(crate) struct LayerBuffers {
    pub(crate) keys: wgpu::Buffer,
    pub(crate) values: wgpu::Buffer,
}

/// Paged keys and values of every layer, on the device.
#[derive(Debug)]
pub struct GpuKvCache {
    context: Arc<GpuContext>,
    num_blocks: usize,
    block_size: usize,
    kv_type: KvCacheType,
    num_key_value_heads: usize,
    head_dim: usize,
    pub(crate) layers: Vec<LayerBuffers>,
    /// Bytes of one layer's keys (or values) buffer.
    tensor_bytes: u64,
}

impl GpuKvCache {
    pub(crate) fn new(
        backend: &GpuBackend,
        config: &ModelConfig,
        num_blocks: usize,
        block_size: usize,
        kv_type: KvCacheType,
    ) -> uma_model::Result<GpuKvCache> {
        if num_blocks == 0 || block_size == 0 || num_blocks > u32::MAX as usize {
            return Err(ModelError::InvalidKvCache {
                reason: format!("{num_blocks} blocks of {block_size} positions"),
            });
        }
        let (kv_heads, head_dim) = (config.num_key_value_heads, config.head_dim);
        if kv_type == KvCacheType::Q8_0 && !head_dim.is_multiple_of(Q8_0_GROUP) {
            return Err(ModelError::InvalidKvCache {
                reason: format!(
                    "a q8_0 cache needs heads of whole {Q8_0_GROUP}-element groups, the model's \
                     have {head_dim} elements (use f16)"
                ),
            });
        }
        if head_dim == 0 || !head_dim.is_multiple_of(2) || head_dim > MAX_HEAD_DIM {
            return Err(GpuError::Unsupported {
                reason: format!(
                    "GPU attention takes even heads of up to {MAX_HEAD_DIM} elements, the \
                     model's have {head_dim}"
                ),
            }
            .into());
        }
        let layout = TensorLayout { kv_type, head_dim };
        let rows = (num_blocks as u64)
            .checked_mul(kv_heads as u64)
            .and_then(|n| n.checked_mul(block_size as u64));
        let tensor_bytes = rows.and_then(|rows| rows.checked_mul(layout.row_bytes()));
        let max = backend.context().info().max_binding_bytes;
        let Some(tensor_bytes) = tensor_bytes.filter(|&bytes| bytes <= max) else {
            let fitting = max / (kv_heads as u64 * block_size as u64 * layout.row_bytes()).max(1);
            return Err(ModelError::InvalidKvCache {
                reason: format!(
                    "{num_blocks} blocks of {block_size} positions: a layer's keys would exceed \
                     the GPU's largest buffer binding ({max} bytes); at most {fitting} blocks fit"
                ),
            });
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for layer in 0..config.num_hidden_layers {
            // wgpu zeroes new buffers.
            let keys = backend.create_buffer(&format!("kv layer {layer} keys"), tensor_bytes)?;
            let values =
                backend.create_buffer(&format!("kv layer {layer} values"), tensor_bytes)?;
            layers.push(LayerBuffers { keys, values });
        }
        Ok(GpuKvCache {
            context: backend.context().clone(),
            num_blocks,
            block_size,
            kv_type,
            num_key_value_heads: kv_heads,
            head_dim,
            layers,
            tensor_bytes,
        })
    }

    pub(crate) fn num_key_value_heads(&self) -> usize {
        self.num_key_value_heads
    }

    pub(crate) fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Word offset of the scales in a Q8_0 tensor (0 for f16).
    pub(crate) fn scales_offset(&self) -> u32 {
        let rows = self.num_blocks * self.num_key_value_heads * self.block_size;
        match self.kv_type {
            KvCacheType::F16 => 0,
            KvCacheType::Q8_0 => (rows * self.head_dim / 4) as u32,
        }
    }

    fn layout(&self) -> TensorLayout {
        TensorLayout { kv_type: self.kv_type, head_dim: self.head_dim }
    }
}

/// What a cache row (one position of one KV head) takes.
#[derive(Clone, Copy, Debug)]
struct TensorLayout {
    kv_type: KvCacheType,
    head_dim: usize,
}

impl TensorLayout {
    /// Bytes of a row's elements (quants for Q8_0).
    fn element_row_bytes(&self) -> u64 {
        match self.kv_type {
            KvCacheType::F16 => self.head_dim as u64 * 2,
            KvCacheType::Q8_0 => self.head_dim as u64,
        }
    }

    /// Bytes of a row's scales (Q8_0; two f16 per word, rounded up to a word).
    fn scale_row_bytes(&self) -> u64 {
        match self.kv_type {
            KvCacheType::F16 => 0,
            KvCacheType::Q8_0 => (self.head_dim / Q8_0_GROUP).div_ceil(2) as u64 * 4,
        }
    }

    fn row_bytes(&self) -> u64 {
        self.element_row_bytes() + self.scale_row_bytes()
    }
}

impl PagedKvCache for GpuKvCache {
    fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn check_shape(&self, config: &ModelConfig) -> uma_model::Result<()> {
        check_kv_cache_shape(config, self.layers.len(), self.num_key_value_heads, self.head_dim)
    }

    fn size_in_bytes(&self) -> usize {
        (self.tensor_bytes * 2 * self.layers.len() as u64) as usize
    }

    fn kv_type(&self) -> KvCacheType {
        self.kv_type
    }

    /// Records the copies of every layer's rows (and scales) into one command buffer and
    /// submits it: the queue runs it before any later pass's work.
    fn copy_block_prefix(
        &mut self,
        source: BlockId,
        destination: BlockId,
        num_positions: usize,
    ) -> uma_model::Result<()> {
        if !check_block_copy(self.num_blocks, self.block_size, source, destination, num_positions)?
        {
            return Ok(());
        }
        let (src, dst) = (source.index(), destination.index());
        self.context.check_alive()?;
        let layout = self.layout();
        let (heads, bs) = (self.num_key_value_heads as u64, self.block_size as u64);
        // (first byte of the region, bytes per row) of the elements, then of the scales.
        let mut regions = vec![(0u64, layout.element_row_bytes())];
        if self.kv_type == KvCacheType::Q8_0 {
            regions.push((u64::from(self.scales_offset()) * 4, layout.scale_row_bytes()));
        }
        // A whole block is one run per region; a prefix is one run per KV head.
        let runs: Vec<(u64, u64)> = if num_positions == self.block_size {
            vec![(0, heads * bs)]
        } else {
            (0..heads).map(|head| (head * bs, num_positions as u64)).collect()
        };
        // wgpu copies within one buffer only through another: every run goes to `staging`,
        // then from there to its place.
        let mut copies = Vec::new(); // (buffer, from, to, bytes)
        for layer in &self.layers {
            for buffer in [&layer.keys, &layer.values] {
                for &(region, row_bytes) in &regions {
                    for &(first_row, num_rows) in &runs {
                        let from = region + ((src as u64 * heads) * bs + first_row) * row_bytes;
                        let to = region + ((dst as u64 * heads) * bs + first_row) * row_bytes;
                        copies.push((buffer, from, to, num_rows * row_bytes));
                    }
                }
            }
        }
        let total: u64 = copies.iter().map(|c| c.3).sum();
        let device = &self.context.device;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kv copy"),
            size: total,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kv copy") });
        let mut offset = 0;
        for &(buffer, from, _, bytes) in &copies {
            encoder.copy_buffer_to_buffer(buffer, from, &staging, offset, bytes);
            offset += bytes;
        }
        let mut offset = 0;
        for &(buffer, _, to, bytes) in &copies {
            encoder.copy_buffer_to_buffer(&staging, offset, buffer, to, bytes);
            offset += bytes;
        }
        self.context.queue.submit([encoder.finish()]);
        Ok(())
    }
}
