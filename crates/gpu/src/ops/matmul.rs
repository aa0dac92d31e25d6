//! Matrix products. (Being written.)

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::matrix::GpuMatrix;

/// `out = x · weightᵀ`.
pub(crate) fn matmul(
    _pass: &mut GpuPass<'_>,
    _weight: &GpuMatrix,
    _x: &GpuActivations,
    _out: &mut GpuActivations,
) -> Result<()> {
    Err(GpuError::Unsupported { reason: "matrix products are not on the GPU yet".into() })
}
