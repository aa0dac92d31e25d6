//! Weight matrices on the GPU. (Being written: the formats' layouts and uploads.)

use std::sync::Arc;

use uma_gguf::{GgufFile, TensorView};
use uma_model::backend::MatrixUse;

use crate::backend::GpuBackend;
use crate::error::GpuError;

/// A weight matrix `[num_rows (out features), row_length (in features)]` on the device.
#[derive(Debug)]
pub struct GpuMatrix {
    pub(crate) num_rows: usize,
    pub(crate) row_length: usize,
}

impl GpuMatrix {
    pub(crate) fn load(
        _backend: &GpuBackend,
        _file: &Arc<GgufFile>,
        view: &TensorView<'_>,
        _usage: MatrixUse,
    ) -> uma_model::Result<GpuMatrix> {
        Err(GpuError::Unsupported {
            reason: format!("{}: matrices are not on the GPU yet", view.name()),
        }
        .into())
    }
}
