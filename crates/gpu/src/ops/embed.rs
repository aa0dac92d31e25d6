//! Embedding lookup. (Being written.)

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::matrix::GpuMatrix;

/// `out[t]` = row `token_ids[t]` of `table`, times `scale` when there is one.
pub(crate) fn embed(
    _pass: &mut GpuPass<'_>,
    _table: &GpuMatrix,
    _scale: Option<f32>,
    _out: &mut GpuActivations,
) -> Result<()> {
    Err(GpuError::Unsupported { reason: "embeddings are not on the GPU yet".into() })
}
