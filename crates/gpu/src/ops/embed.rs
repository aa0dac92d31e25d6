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
        let buffers = [
            chunk.buffer.as_entire_buffer_binding(),
            step.binding(StepArray::TokenIds),
            out.binding(),
        ];
        pass.dispatch(&kernel, &params, &buffers, grid(num_groups as u32))?;
    }
    Ok(())
}
