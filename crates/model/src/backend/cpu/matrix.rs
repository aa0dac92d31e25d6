//! The CPU backend's weights. Matrices whose type has an interleaved layout are repacked once at
//! load into [`PackedMatrix`] (the copy replaces the mapped pages, which are no longer read); the
//! others stay in the memory-mapped file (a [`CpuMatrix`] names the tensor; its bytes are borrowed
//! per use). The small vectors (norms, biases) are decoded to f32.

use std::sync::Arc;

use uma_gguf::{GgmlType, GgufFile, TensorView};
use uma_kernels::{PackedFormat, PackedMatrix, WeightMatrix};

use crate::backend::MatrixUse;
use crate::error::{ModelError, Result};

/// A weight matrix `[num_rows (out features), row_length (in features)]`.
#[derive(Clone, Debug)]
pub struct CpuMatrix {
    file: Arc<GgufFile>,
    name: String,
    ty: GgmlType,
    num_rows: usize,   // output features
    row_length: usize, // input features
    /// Where its bytes lie in the tensor's (an expert's share of a stacked tensor).
    bytes: std::ops::Range<usize>,
    packed: Option<Arc<PackedMatrix>>,
}

/// The packed layout a matrix of `num_rows` rows held in `data` (from `view`) is repacked to for
/// products, or `None` where it takes the row path; an error where no product reads its type.
fn products_format(
    view: &TensorView<'_>,
    data: &[u8],
    num_rows: usize,
) -> Result<Option<PackedFormat>> {
    let (ty, row_length) = (view.ggml_type(), view.info().row_length() as usize);
    WeightMatrix::new(ty, data, num_rows, row_length).map_err(|_| {
        ModelError::UnsupportedTensorType {
            name: view.name().to_owned(),
            ty,
            reason: "no matrix product for this type",
        }
    })?;
    // Float rows pack in whole groups of 8 elements; other lengths take the row path.
    Ok(PackedFormat::of(ty).filter(|f| row_length.is_multiple_of(f.block_elements())))
}

impl CpuMatrix {
    /// The matrix `view` of `file`, for `usage`: for products, a type with a dot product,
    /// repacked when the type has an interleaved layout; for row lookups, a type whose rows
    /// dequantize.
    pub(crate) fn load(
        file: &Arc<GgufFile>,
        view: &TensorView<'_>,
        usage: MatrixUse,
    ) -> Result<CpuMatrix> {
        let (num_rows, row_length) =
            (view.info().num_rows() as usize, view.info().row_length() as usize);
        let (data, ty) = (view.data(), view.ggml_type());
        let packed = match usage {
            MatrixUse::RowLookup if !uma_kernels::can_dequantize(ty) => {
                return Err(ModelError::UnsupportedTensorType {
                    name: view.name().to_owned(),
                    ty,
                    reason: "embedding rows cannot be dequantized",
                });
            }
            MatrixUse::RowLookup => None,
            MatrixUse::Products => match products_format(view, data, num_rows)? {
                Some(format) => {
                    Some(Arc::new(PackedMatrix::pack(format, data, num_rows, row_length)?))
                }
                None => None,
            },
        };
        if packed.is_some() {
            // The copy replaces the mapped pages: count the weights once.
            file.release_tensor_pages(view.name())?;
        }
        Ok(CpuMatrix::new(file, view, 0..data.len(), num_rows, packed))
    }

    /// The `count` experts stacked in `view` (`[row_length, num_rows, count]`), one matrix each;
    /// the file's pages are released once all of them are repacked.
    pub(crate) fn load_experts(
        file: &Arc<GgufFile>,
        view: &TensorView<'_>,
        count: usize,
    ) -> Result<Vec<CpuMatrix>> {
        let total_rows = view.info().num_rows() as usize;
        let bytes = view.data().len();
        if count == 0 || !total_rows.is_multiple_of(count) || !bytes.is_multiple_of(count) {
            return Err(ModelError::Backend {
                reason: format!("{}: {total_rows} rows are not {count} experts", view.name()),
            });
        }
        let (rows, share) = (total_rows / count, bytes / count);
        let row_length = view.info().row_length() as usize;
        let format = products_format(view, &view.data()[..share], rows)?;
        // Packed together: a buffer per expert would round each up to whole huge pages.
        let mut packed = match format {
            Some(format) => {
                PackedMatrix::pack_stacked(format, view.data(), count, rows, row_length)?
                    .into_iter()
                    .map(|matrix| Some(Arc::new(matrix)))
                    .collect()
            }
            None => vec![None; count],
        };
        if format.is_some() {
            file.release_tensor_pages(view.name())?;
        }
        Ok((0..count)
            .map(|e| CpuMatrix::new(file, view, e * share..(e + 1) * share, rows, packed[e].take()))
            .collect())
    }

    /// The matrix of `num_rows` rows held in bytes `bytes` of `view`, with its packed copy.
    fn new(
        file: &Arc<GgufFile>,
        view: &TensorView<'_>,
        bytes: std::ops::Range<usize>,
        num_rows: usize,
        packed: Option<Arc<PackedMatrix>>,
    ) -> CpuMatrix {
        CpuMatrix {
            file: file.clone(),
            name: view.name().to_owned(),
            ty: view.ggml_type(),
            num_rows,
            row_length: view.info().row_length() as usize,
            bytes,
            packed,
        }
    }

    /// The matrix's bytes in the mapped file, zero-copy.
    fn data(&self) -> &[u8] {
        let tensor = self.file.tensor(&self.name).expect("tensor presence is checked at load");
        &tensor.data()[self.bytes.clone()]
    }

    /// The tensor as a matrix for [`uma_kernels::matmul`].
    pub(crate) fn matrix(&self) -> WeightMatrix<'_> {
        WeightMatrix::new(self.ty, self.data(), self.num_rows, self.row_length)
            .expect("type and shape are checked at load")
    }

    /// The repacked copy, when the type has an interleaved layout.
    pub(crate) fn packed(&self) -> Option<&PackedMatrix> {
        self.packed.as_deref()
    }

    pub(crate) fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Dequantizes row `row` into `out` (`row_length` values).
    pub(crate) fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let data = self.data();
        let row_bytes = data.len() / self.num_rows;
        uma_kernels::dequantize(self.ty, &data[row * row_bytes..(row + 1) * row_bytes], out)
            .expect("type and shape are checked at load");
    }
}
