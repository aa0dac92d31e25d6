//! Attention over the paged cache. (Being written.)

use uma_model::backend::AttentionParams;

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::kv_cache::GpuKvCache;

/// Writes the step's keys and values into layer `layer` of `kv`, then attention.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    _pass: &mut GpuPass<'_>,
    _kv: &mut GpuKvCache,
    _layer: usize,
    _params: &AttentionParams,
    _q: &GpuActivations,
    _k: &GpuActivations,
    _v: &GpuActivations,
    _out: &mut GpuActivations,
) -> Result<()> {
    Err(GpuError::Unsupported { reason: "attention is not on the GPU yet".into() })
}
