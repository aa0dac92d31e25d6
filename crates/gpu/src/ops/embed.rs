//! Embedding lookup: token rows dequantized from the table (any GPU format of
//! `shaders/quant_formats.wgsl`), once per chunk of the table's rows.

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::matrix::GpuMatrix;
use crate::ops::matmul::QUANT_FORMATS;
use crate::recorder::grid;
use crate::shader::COMMON;
use crate::step::StepArray;

const EMBED: &str = include_str!("../shaders/embed.wgsl");

/// Threads per workgroup of embed.wgsl.
const WORKGROUP: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct Params {
    num_tokens: u32,
    row_length: u32,
    num_rows: u32,
    row_offset: u32,
    scale: f32,
}

/// `out[t]` = row `token_ids[t]` of `table`, times `scale` when there is one.
pub(crate) fn embed(
    pass: &mut GpuPass<'_>,
    table: &GpuMatrix,
    scale: Option<f32>,
    out: &mut GpuActivations, // [num_tokens, row_length]
) -> Result<()> {
    if out.width != table.row_length {
        return Err(GpuError::Validation {
            reason: format!(
                "{}: rows of {} values into activations of width {}",
                table.name, table.row_length, out.width
            ),
        });
    }
    let num_tokens = out.num_rows;
    if num_tokens == 0 {
        return Ok(());
    }
    let define = table.format.define;
    let kernel =
        pass.kernel(&format!("embed_{define}"), &[COMMON, QUANT_FORMATS, EMBED], &[define])?;
    let step = pass.step();
    let num_groups = (num_tokens * table.row_length / 4).div_ceil(WORKGROUP);
    for chunk in table.chunks() {
        let params = Params {
            num_tokens: num_tokens as u32,
            row_length: table.row_length as u32,
            num_rows: chunk.num_rows as u32,
            row_offset: chunk.first_row as u32,
            // Multiplying by 1 is exact: no scale and a scale of 1 agree.
            scale: scale.unwrap_or(1.0),
        };
        let buffers = [chunk.binding(), step.binding(StepArray::TokenIds), out.binding()];
        pass.dispatch(&kernel, &params, &buffers, grid(num_groups as u32))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::GpuBackend;
    use crate::matrix::test_matrices::{bytes, dequantized, TYPES};
    use crate::test_support::{backend, read};
    use uma_gguf::GgmlType;
    use uma_ids::BlockId;
    use uma_model::backend::{Backend, BatchLayout};
    use uma_model::{Batch, LogitsRequest};

    /// The GPU embedding of `tokens` from `table`.
    fn lookup(
        backend: &GpuBackend,
        table: &GpuMatrix,
        tokens: &[u32],
        scale: Option<f32>,
    ) -> Vec<f32> {
        let blocks: Vec<BlockId> = (0..tokens.len().div_ceil(16) as u32).map(BlockId).collect();
        let batch = Batch::single(tokens, 0, &blocks, LogitsRequest::All);
        let (layout, _) = BatchLayout::new(&batch);
        let mut pass = backend.begin_pass(&layout);
        let mut out = GpuBackend::activations(&mut pass, tokens.len(), table.row_length);
        embed(&mut pass, table, scale, &mut out).unwrap();
        read(&mut pass, &out)
    }

    /// The CPU backend's embedding: dequantized rows, times the scale.
    fn expected(rows: &[f32], row_length: usize, tokens: &[u32], scale: Option<f32>) -> Vec<f32> {
        tokens
            .iter()
            .flat_map(|&t| &rows[t as usize * row_length..(t as usize + 1) * row_length])
            .map(|&v| scale.map_or(v, |s| v * s))
            .collect()
    }

    /// `got` equals `want` up to f32 rounding of the dequantization (a device may fuse `d·q − m`
    /// into one fma): within 2 ulp of the value's magnitude, or of the row's scale for values
    /// that cancel to nearly zero.
    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            let allowed = 2.0 * f32::EPSILON * b.abs().max(largest * 1e-2);
            assert!((a - b).abs() <= allowed, "{what}: value {i}: {a} vs {b}");
        }
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn every_format_looks_up_the_cpu_rows_with_and_without_scale() {
        let Some(backend) = backend() else { return };
        let (num_rows, row_length) = (19, 256);
        let tokens = [3u32, 0, 18, 3, 7];
        for (seed, ty) in TYPES.into_iter().enumerate() {
            let data = bytes(ty, num_rows, row_length, 40 + seed as u64);
            let rows = dequantized(ty, &data, num_rows * row_length);
            let table = GpuMatrix::from_bytes(
                backend,
                "token_embd.weight",
                ty,
                &data,
                num_rows,
                row_length,
            )
            .unwrap();
            for scale in [None, Some(25.3f32)] {
                let got = lookup(backend, &table, &tokens, scale);
                assert_close(
                    &got,
                    &expected(&rows, row_length, &tokens, scale),
                    &format!("{ty:?} {scale:?}"),
                );
            }
        }
    }

    #[test]
    fn row_chunks_give_the_same_rows_as_one_binding() {
        let Some(backend) = backend() else { return };
        let (num_rows, row_length, ty) = (40, 256, GgmlType::Q6_K);
        let data = bytes(ty, num_rows, row_length, 9);
        let whole = GpuMatrix::from_bytes(backend, "t", ty, &data, num_rows, row_length).unwrap();
        let split =
            GpuMatrix::upload(backend, "t", ty, &data, num_rows, row_length, 212 * 7).unwrap();
        assert_eq!(split.chunks().len(), 6);
        let tokens = [39u32, 0, 6, 7, 21, 35];
        let expected = lookup(backend, &whole, &tokens, Some(0.5));
        assert_eq!(lookup(backend, &split, &tokens, Some(0.5)), expected);
    }
}
