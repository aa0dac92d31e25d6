//! Weight matrices on the GPU.
//!
//! **Layout.** A matrix `[num_rows, row_length]` keeps ggml's block formats, rows stored one
//! after another, but each block is padded to a whole number of u32 words so that kernels read
//! it as `array<u32>` with aligned word loads (WGSL has no byte loads):
//!
//! | type | GGUF block | device block | how |
//! |------|-----------:|-------------:|-----|
//! | Q4_0 | 18 bytes | 5 words | `d`, 2 bytes of padding, then the 16 quant bytes |
//! | Q5_0 | 22 bytes | 6 words | `d`, 2 bytes of padding, `qh`, the 16 quant bytes |
//! | Q8_0 | 34 bytes | 9 words | `d`, 2 bytes of padding, the 32 quant bytes |
//! | Q6_K | 210 bytes | 53 words | as stored, 2 bytes of padding at the end (`d` in word 52) |
//! | Q4_1, Q5_1, Q4_K, Q5_K, F32, F16, BF16 | 20, 24, 144, 176, 128, 64, 64 bytes | as stored | |
//!
//! (F32, F16 and BF16 count a "block" as 32 values.) The kernels share one per-format function,
//! `dequant_quad` in `shaders/quant_formats.wgsl`, that decodes 4 values of a block with the
//! CPU's arithmetic. Rows must hold a whole number of 32-value units (every LLM dimension does);
//! other shapes and types are refused at load with [`GpuError::Unsupported`], and the engine keeps
//! those matrices on the CPU.
//!
//! **Chunks.** A device may bind fewer bytes per storage binding than a large matrix holds (a
//! 262,144 × 640 Q8_0 embedding is 178 MiB; lavapipe binds 128 MiB): the rows are split into
//! chunks of whole rows, each its own buffer, and kernels are dispatched once per chunk.
//!
//! **Sharing.** A tied embedding is loaded twice (row lookups and products): the backend keeps a
//! cache of the uploads by file and tensor name (weak references), so both share one upload.

use std::sync::Arc;

use uma_gguf::{GgmlType, GgufFile, TensorView};
use uma_model::backend::MatrixUse;

use crate::backend::GpuBackend;
use crate::error::{GpuError, Result};

/// How a format lies on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) ty: GgmlType,
    /// The `//#if` name selecting its `dequant_quad` in quant_formats.wgsl.
    pub(crate) define: &'static str,
    /// Values per block.
    pub(crate) block_values: usize,
    /// Bytes per block in the GGUF file.
    source_bytes: usize,
    /// Bytes per block on the device (a multiple of 4).
    device_bytes: usize,
    /// Padding inserted after this many bytes of each block (at the end when equal to the size).
    gap_at: usize,
}

impl Format {
    /// The device layout of `ty`, or `None` when the GPU has no kernels for it.
    pub(crate) fn of(ty: GgmlType) -> Option<Format> {
        use GgmlType::*;
        let (define, block_values, source_bytes, device_bytes, gap_at) = match ty {
            F32 => ("FORMAT_F32", 32, 128, 128, 128),
            F16 => ("FORMAT_F16", 32, 64, 64, 64),
            BF16 => ("FORMAT_BF16", 32, 64, 64, 64),
            Q4_0 => ("FORMAT_Q4_0", 32, 18, 20, 2),
            Q4_1 => ("FORMAT_Q4_1", 32, 20, 20, 20),
            Q5_0 => ("FORMAT_Q5_0", 32, 22, 24, 2),
            Q5_1 => ("FORMAT_Q5_1", 32, 24, 24, 24),
            Q8_0 => ("FORMAT_Q8_0", 32, 34, 36, 2),
            MXFP4 => ("FORMAT_MXFP4", 32, 17, 20, 1),
            Q4_K => ("FORMAT_Q4_K", 256, 144, 144, 144),
            Q5_K => ("FORMAT_Q5_K", 256, 176, 176, 176),
            Q6_K => ("FORMAT_Q6_K", 256, 210, 212, 210),
            _ => return None,
        };
        Some(Format { ty, define, block_values, source_bytes, device_bytes, gap_at })
    }

    /// `data` (whole blocks in GGUF layout) in the device layout.
    fn repack(&self, data: &[u8]) -> Vec<u8> {
        if self.source_bytes == self.device_bytes {
            return data.to_vec();
        }
        let pad = self.device_bytes - self.source_bytes;
        let mut out = Vec::with_capacity(data.len() / self.source_bytes * self.device_bytes);
        for block in data.chunks_exact(self.source_bytes) {
            out.extend_from_slice(&block[..self.gap_at]);
            out.extend(std::iter::repeat_n(0u8, pad));
            out.extend_from_slice(&block[self.gap_at..]);
        }
        out
    }
}

/// One chunk of whole rows: its own buffer, or its range of a buffer shared by the matrices of
/// a group ([`GpuMatrix::load_group`]).
#[derive(Debug)]
pub(crate) struct MatrixChunk {
    pub(crate) buffer: wgpu::Buffer, // [num_rows, row words] u32 from `offset`
    /// Bytes before the chunk in `buffer` (a multiple of the storage offset alignment).
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) first_row: usize,
    pub(crate) num_rows: usize,
}

impl MatrixChunk {
    /// The chunk's rows, bound from their first word.
    pub(crate) fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size),
        }
    }
}

/// A matrix's device buffers, shared by the matrices loaded from one tensor.
#[derive(Debug)]
pub(crate) struct MatrixBuffers {
    pub(crate) chunks: Vec<MatrixChunk>,
}

/// A weight matrix `[num_rows (out features), row_length (in features)]` on the device.
#[derive(Debug)]
pub struct GpuMatrix {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) num_rows: usize,
    pub(crate) row_length: usize,
    pub(crate) buffers: Arc<MatrixBuffers>,
}

impl GpuMatrix {
    pub(crate) fn load(
        backend: &GpuBackend,
        file: &Arc<GgufFile>,
        view: &TensorView<'_>,
        _usage: MatrixUse,
    ) -> uma_model::Result<GpuMatrix> {
        // Both uses take the same layout: a tied embedding shares one upload.
        let (name, ty) = (view.name(), view.ggml_type());
        let (num_rows, row_length) =
            (view.info().num_rows() as usize, view.info().row_length() as usize);
        if let Some(buffers) = backend.cached_matrix(file, name) {
            let format = Format::of(ty).expect("a cached matrix has a GPU format");
            return Ok(GpuMatrix { name: name.to_owned(), format, num_rows, row_length, buffers });
        }
        let max_chunk_bytes = backend.context().info().max_binding_bytes;
        let matrix = GpuMatrix::upload(
            backend,
            name,
            ty,
            view.data(),
            num_rows,
            row_length,
            max_chunk_bytes,
        )?;
        backend.cache_matrix(file, name, &matrix.buffers);
        // The device copy replaces the mapped pages: count the weights once.
        file.release_tensor_pages(name)?;
        Ok(matrix)
    }

    /// The `count` experts stacked in `view` (`[row_length, num_rows, count]`), one matrix each
    /// (named `name#expert`); the file's pages are released once all are on the device.
    pub(crate) fn load_experts(
        backend: &GpuBackend,
        file: &Arc<GgufFile>,
        view: &TensorView<'_>,
        count: usize,
    ) -> uma_model::Result<Vec<GpuMatrix>> {
        let (name, ty, data) = (view.name(), view.ggml_type(), view.data());
        let (total_rows, row_length) =
            (view.info().num_rows() as usize, view.info().row_length() as usize);
        if count == 0 || !total_rows.is_multiple_of(count) || !data.len().is_multiple_of(count) {
            return Err(uma_model::ModelError::Backend {
                reason: format!("{name}: {total_rows} rows are not {count} experts"),
            });
        }
        let share = data.len() / count;
        let experts = data
            .chunks_exact(share)
            .enumerate()
            .map(|(e, bytes)| {
                let rows = total_rows / count;
                Ok(GpuMatrix::from_bytes(
                    backend,
                    &format!("{name}#{e}"),
                    ty,
                    bytes,
                    rows,
                    row_length,
                )?)
            })
            .collect::<uma_model::Result<Vec<_>>>()?;
        file.release_tensor_pages(name)?;
        Ok(experts)
    }

    /// Matrices used together (q/k/v, gate/up) in one buffer, each at an aligned offset, so that
    /// one kernel can read those of one format ([`crate::ops::matmul::matmul_many`]). Matrices
    /// that cannot share (other row lengths, already uploaded, too large for one binding) are
    /// loaded one by one.
    pub(crate) fn load_group(
        backend: &GpuBackend,
        file: &Arc<GgufFile>,
        views: &[TensorView<'_>],
        usage: MatrixUse,
    ) -> uma_model::Result<Vec<GpuMatrix>> {
        let one_by_one =
            || views.iter().map(|view| GpuMatrix::load(backend, file, view, usage)).collect();
        let Some(first) = views.first() else { return Ok(Vec::new()) };
        let row_length = first.info().row_length() as usize;
        // Each matrix's format (they may differ: Q4_K_M files keep some v in Q6_K) and rows.
        let mut parts = Vec::with_capacity(views.len());
        for view in views {
            let whole_blocks = |f: &Format| row_length.is_multiple_of(f.block_values);
            match Format::of(view.ggml_type()).filter(whole_blocks) {
                Some(format) if view.info().row_length() as usize == row_length => {
                    parts.push((format, view.info().num_rows()));
                }
                _ => return one_by_one(),
            }
        }
        let uploaded = views.iter().any(|v| backend.cached_matrix(file, v.name()).is_some());
        if views.len() < 2 || uploaded {
            return one_by_one();
        }
        let info = backend.context().info();
        let alignment = backend.context().storage_alignment.max(4);
        let mut offsets = Vec::with_capacity(views.len());
        let mut total = 0u64;
        for (format, num_rows) in &parts {
            offsets.push(total);
            let row_bytes = (row_length / format.block_values * format.device_bytes) as u64;
            total = (total + num_rows * row_bytes).next_multiple_of(alignment);
        }
        if total > info.max_binding_bytes.min(info.max_buffer_bytes) {
            return one_by_one();
        }
        let label = views.iter().map(|v| v.name()).collect::<Vec<_>>().join(" + ");
        let buffer = backend.create_buffer(&label, total)?;
        let mut matrices = Vec::with_capacity(views.len());
        for ((view, &offset), (format, _)) in views.iter().zip(&offsets).zip(&parts) {
            let (ty, num_rows) = (view.ggml_type(), view.info().num_rows() as usize);
            let matrix = GpuMatrix::check(view.name(), ty, view.data(), num_rows, row_length)?;
            let packed = format.repack(view.data());
            backend.context().queue.write_buffer(&buffer, offset, &packed);
            let chunk = MatrixChunk {
                buffer: buffer.clone(),
                offset,
                size: packed.len() as u64,
                first_row: 0,
                num_rows,
            };
            let buffers = Arc::new(MatrixBuffers { chunks: vec![chunk] });
            backend.cache_matrix(file, view.name(), &buffers);
            file.release_tensor_pages(view.name())?;
            matrices.push(GpuMatrix { buffers, ..matrix });
        }
        Ok(matrices)
    }

    /// A matrix of `data` (GGUF bytes of type `ty`), without a file (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn from_bytes(
        backend: &GpuBackend,
        name: &str,
        ty: GgmlType,
        data: &[u8],
        num_rows: usize,
        row_length: usize,
    ) -> Result<GpuMatrix> {
        let max_chunk_bytes = backend.context().info().max_binding_bytes;
        GpuMatrix::upload(backend, name, ty, data, num_rows, row_length, max_chunk_bytes)
    }

    /// Uploads `data` in chunks of at most `max_chunk_bytes` (whole rows; tests make it small).
    pub(crate) fn upload(
        backend: &GpuBackend,
        name: &str,
        ty: GgmlType,
        data: &[u8],
        num_rows: usize,
        row_length: usize,
        max_chunk_bytes: u64,
    ) -> Result<GpuMatrix> {
        let matrix = GpuMatrix::check(name, ty, data, num_rows, row_length)?;
        let format = matrix.format;
        let unsupported = |why: String| GpuError::Unsupported {
            reason: format!("{name} ({}): {why}", ty.name()),
        };
        let blocks_per_row = row_length / format.block_values;
        let row_bytes = (blocks_per_row * format.device_bytes) as u64;
        let rows_per_chunk =
            (max_chunk_bytes.min(backend.context().info().max_buffer_bytes) / row_bytes) as usize;
        if rows_per_chunk == 0 {
            return Err(unsupported(format!("a row of {row_bytes} bytes exceeds a GPU binding")));
        }
        let source_row_bytes = blocks_per_row * format.source_bytes;
        let mut chunks = Vec::new();
        let mut first_row = 0;
        while first_row < num_rows {
            let rows = rows_per_chunk.min(num_rows - first_row);
            let source = &data[first_row * source_row_bytes..(first_row + rows) * source_row_bytes];
            let buffer = backend.upload(name, &format.repack(source))?;
            let size = buffer.size();
            chunks.push(MatrixChunk { buffer, offset: 0, size, first_row, num_rows: rows });
            first_row += rows;
        }
        Ok(GpuMatrix { buffers: Arc::new(MatrixBuffers { chunks }), ..matrix })
    }

    /// A matrix of `data` without buffers yet, or why the GPU cannot take it.
    fn check(
        name: &str,
        ty: GgmlType,
        data: &[u8],
        num_rows: usize,
        row_length: usize,
    ) -> Result<GpuMatrix> {
        let unsupported = |why: String| GpuError::Unsupported {
            reason: format!("{name} ({}): {why}", ty.name()),
        };
        let format = Format::of(ty)
            .ok_or_else(|| unsupported("the GPU has no kernels for this type".into()))?;
        if row_length == 0 || !row_length.is_multiple_of(format.block_values) {
            return Err(unsupported(format!(
                "rows of {row_length} values are not whole blocks of {} for the GPU",
                format.block_values
            )));
        }
        let blocks_per_row = row_length / format.block_values;
        if data.len() != num_rows * blocks_per_row * format.source_bytes {
            return Err(unsupported(format!(
                "{} bytes do not hold {num_rows} rows of {row_length} values",
                data.len()
            )));
        }
        Ok(GpuMatrix {
            name: name.to_owned(),
            format,
            num_rows,
            row_length,
            buffers: Arc::new(MatrixBuffers { chunks: Vec::new() }),
        })
    }

    /// The chunks of whole rows, each bound separately.
    pub(crate) fn chunks(&self) -> &[MatrixChunk] {
        &self.buffers.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::backend;

    #[test]
    fn unsupported_types_and_shapes_are_refused_clearly() {
        let Some(backend) = backend() else { return };
        let error =
            GpuMatrix::from_bytes(backend, "blk.0.ffn_up.weight", GgmlType::Q2_K, &[0; 84], 1, 256)
                .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, GpuError::Unsupported { .. }), "{message}");
        assert!(message.contains("blk.0.ffn_up.weight") && message.contains("Q2_K"), "{message}");
        let error =
            GpuMatrix::from_bytes(backend, "odd", GgmlType::F32, &[0; 40], 1, 10).unwrap_err();
        assert!(error.to_string().contains("odd"), "{error}");
    }

    #[test]
    fn a_tied_tensor_loaded_for_both_uses_shares_one_upload() {
        let Some(backend) = backend() else { return };
        let (num_rows, row_length) = (6, 64);
        let data = test_matrices::bytes(GgmlType::Q8_0, num_rows, row_length, 2);
        let mut writer = uma_gguf::GgufWriter::new();
        let shape = [row_length as u64, num_rows as u64];
        writer.add_tensor("token_embd.weight", GgmlType::Q8_0, &shape, data).unwrap();
        writer.add_tensor("odd.weight", GgmlType::Q2_K, &[256, 1], vec![0; 84]).unwrap();
        let file = Arc::new(GgufFile::from_bytes(writer.to_bytes()).unwrap());
        let view = file.tensor("token_embd.weight").unwrap();
        let lookup = GpuMatrix::load(backend, &file, &view, MatrixUse::RowLookup).unwrap();
        let products = GpuMatrix::load(backend, &file, &view, MatrixUse::Products).unwrap();
        assert!(Arc::ptr_eq(&lookup.buffers, &products.buffers));
        assert_eq!((products.num_rows, products.row_length), (num_rows, row_length));
        let odd = file.tensor("odd.weight").unwrap();
        let error = GpuMatrix::load(backend, &file, &odd, MatrixUse::Products).unwrap_err();
        assert!(error.to_string().contains("odd.weight"), "{error}");
    }

    #[test]
    fn repacking_pads_each_block_to_whole_words() {
        let q8 = Format::of(GgmlType::Q8_0).unwrap();
        let block: Vec<u8> = (0..34).collect();
        let packed = q8.repack(&[block.clone(), block.clone()].concat());
        assert_eq!(packed.len(), 72);
        assert_eq!(&packed[..4], &[0, 1, 0, 0]);
        assert_eq!(&packed[4..36], &block[2..]);
        let q6 = Format::of(GgmlType::Q6_K).unwrap();
        let block: Vec<u8> = (0..210).map(|i| i as u8).collect();
        let packed = q6.repack(&block);
        assert_eq!(&packed[..210], &block[..]);
        assert_eq!(&packed[210..], &[0, 0]);
    }
}

/// Seeded test matrices of every GPU format and their f32 values.
#[cfg(test)]
pub(crate) mod test_matrices {
    use uma_gguf::GgmlType;

    /// Every type the GPU takes.
    pub(crate) const TYPES: [GgmlType; 12] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::MXFP4,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// GGUF bytes of `num_rows` seeded rows of type `ty`, quantized with the CPU's reference
    /// quantizer.
    pub(crate) fn bytes(ty: GgmlType, num_rows: usize, row_length: usize, seed: u64) -> Vec<u8> {
        let values = crate::test_support::values(seed, num_rows * row_length);
        let (block_values, block_bytes) = (ty.block_size(), ty.type_size());
        let mut out = vec![0u8; num_rows * row_length / block_values * block_bytes];
        uma_kernels::quantize(ty, &values, &mut out).expect("quantizable");
        out
    }

    /// The f32 values of `bytes`, by uma_kernels.
    pub(crate) fn dequantized(ty: GgmlType, bytes: &[u8], len: usize) -> Vec<f32> {
        let mut out = vec![0.0; len];
        uma_kernels::dequantize(ty, bytes, &mut out).expect("dequantizable");
        out
    }
}
