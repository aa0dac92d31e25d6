//! Matrix products `out = x · weightᵀ` of quantized weights: a matrix-vector kernel for a few
//! tokens (decode, memory-bound: every weight read once, coalesced) and a tiled kernel for many
//! (prefill, compute-bound: each dequantized weight reused across a tile of tokens). Both take
//! the weights' format from `shaders/quant_formats.wgsl` and run once per chunk of rows.

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::matrix::GpuMatrix;
use crate::recorder::grid;
use crate::shader::COMMON;

pub(crate) const QUANT_FORMATS: &str = include_str!("../shaders/quant_formats.wgsl");
const MATVEC: &str = include_str!("../shaders/matvec.wgsl");
const MATMUL_TILED: &str = include_str!("../shaders/matmul_tiled.wgsl");

/// Most tokens the matrix-vector kernel takes (its per-token sums live in registers).
const MATVEC_MAX_TOKENS: usize = 8;
/// Rows per matrix-vector workgroup.
const MATVEC_ROWS: usize = 8;
/// Rows and tokens of a tiled workgroup's tile.
const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct Params {
    num_rows: u32,
    row_length: u32,
    num_tokens: u32,
    out_width: u32,
    row_offset: u32,
}

/// `out = x · weightᵀ`: `out[t, r] = Σ_k x[t, k] · weight[r, k]`.
pub(crate) fn matmul(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,       // [num_tokens, row_length]
    out: &mut GpuActivations, // [num_tokens, num_rows]
) -> Result<()> {
    if x.width != weight.row_length || out.width != weight.num_rows || out.num_rows != x.num_rows {
        return Err(GpuError::Validation {
            reason: format!(
                "{}: [{}, {}] · [{}, {}]ᵀ into [{}, {}]",
                weight.name,
                x.num_rows,
                x.width,
                weight.num_rows,
                weight.row_length,
                out.num_rows,
                out.width
            ),
        });
    }
    let num_tokens = x.num_rows;
    if num_tokens == 0 || weight.num_rows == 0 {
        return Ok(());
    }
    let define = weight.format.define;
    let tiled = num_tokens > MATVEC_MAX_TOKENS;
    let kernel = if tiled {
        pass.kernel(
            &format!("matmul_tiled_{define}"),
            &[COMMON, QUANT_FORMATS, MATMUL_TILED],
            &[define],
        )?
    } else {
        pass.kernel(&format!("matvec_{define}"), &[COMMON, QUANT_FORMATS, MATVEC], &[define])?
    };
    for chunk in weight.chunks() {
        let params = Params {
            num_rows: chunk.num_rows as u32,
            row_length: weight.row_length as u32,
            num_tokens: num_tokens as u32,
            out_width: out.width as u32,
            row_offset: chunk.first_row as u32,
        };
        let groups = if tiled {
            chunk.num_rows.div_ceil(TILE) * num_tokens.div_ceil(TILE)
        } else {
            chunk.num_rows.div_ceil(MATVEC_ROWS)
        };
        let buffers = [chunk.buffer.as_entire_buffer_binding(), x.binding(), out.binding()];
        pass.dispatch(&kernel, &params, &buffers, grid(groups as u32))?;
    }
    Ok(())
}
