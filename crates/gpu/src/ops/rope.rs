//! Per-head RMS norm (Qwen3, Gemma 3) and rope. The rotations of the step's positions are
//! computed on the host exactly as the CPU backend computes them ([`uma_model::layers::Rope`]:
//! f32, ggml's running product of angles), uploaded once per pass and rope shape: f32 `sin` and
//! `cos` of large angles differ between GPUs, the table does not.

use std::sync::Arc;

use uma_model::backend::RopeParams;
use uma_model::layers::Rope;
use uma_model::RopeStyle;

use crate::backend::{GpuActivations, GpuPass, GpuVector};
use crate::error::{GpuError, Result};
use crate::pool::PooledBuffer;
use crate::recorder::grid;
use crate::shader::COMMON;

const ROPE: &str = include_str!("../shaders/rope.wgsl");

/// Longest head the kernel holds in workgroup memory.
const MAX_HEAD_DIM: usize = 512;

/// What a rotation table depends on: rotated dimensions, base and scale (as bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RopeKey {
    dims: usize,
    base: u32,
    freq_scale: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct Params {
    num_tokens: u32,
    num_heads: u32,
    head_dim: u32,
    dims: u32,
    neox: u32,
    eps: f32,
}

/// The step's rotation table for `rope`: `[num_tokens, dims / 2, (cos, sin)]`.
fn table(pass: &mut GpuPass<'_>, rope: &RopeParams) -> Arc<PooledBuffer> {
    let key = RopeKey {
        dims: rope.dimension_count,
        base: rope.base.to_bits(),
        freq_scale: rope.freq_scale.to_bits(),
    };
    if let Some(table) = pass.rope_tables.get(&key) {
        return table.clone();
    }
    let half = rope.dimension_count / 2;
    let mut values = Vec::with_capacity(pass.layout().num_tokens() * half * 2);
    for place in pass.layout().places() {
        let rotation = Rope::new(
            RopeStyle::Normal,
            rope.dimension_count,
            rope.base,
            rope.freq_scale,
            place.position,
        );
        let (cos, sin) = rotation.cos_sin();
        for (c, s) in cos.iter().zip(sin) {
            values.extend([*c, *s]);
        }
    }
    let buffer = pass.scratch((values.len().max(1) * 4) as u64);
    if !values.is_empty() {
        pass.backend().context().queue.write_buffer(
            buffer.buffer(),
            0,
            bytemuck::cast_slice(&values),
        );
    }
    let table = Arc::new(buffer);
    pass.rope_tables.insert(key, table.clone());
    table
}

/// Per token and head of `x`: the RMS norm by `head_norm` if there is one, then rope.
pub(crate) fn norm_heads_and_rope(
    pass: &mut GpuPass<'_>,
    x: &mut GpuActivations,
    head_norm: Option<&GpuVector>,
    eps: f32,
    rope: &RopeParams,
) -> Result<()> {
    let hd = rope.head_dim;
    if hd > MAX_HEAD_DIM || rope.dimension_count > hd || !rope.dimension_count.is_multiple_of(2) {
        return Err(GpuError::Unsupported {
            reason: format!(
                "rope over {} of {hd} dimensions per head (the GPU kernel takes an even count, \
                 heads up to {MAX_HEAD_DIM})",
                rope.dimension_count
            ),
        });
    }
    if x.num_rows == 0 {
        return Ok(());
    }
    let num_heads = x.width / hd;
    let table = table(pass, rope);
    let params = Params {
        num_tokens: x.num_rows as u32,
        num_heads: num_heads as u32,
        head_dim: hd as u32,
        dims: rope.dimension_count as u32,
        neox: u32::from(rope.style == RopeStyle::Neox),
        eps,
    };
    let groups = grid((x.num_rows * num_heads) as u32);
    let table_len = x.num_rows * rope.dimension_count;
    let table_binding = crate::backend::whole(table.buffer(), table_len);
    match head_norm {
        Some(w) => {
            let kernel = pass.kernel("rope_head_norm", &[COMMON, ROPE], &["HEAD_NORM"])?;
            pass.dispatch(&kernel, &params, &[x.binding(), table_binding, w.binding()], groups)
        }
        None => {
            let kernel = pass.kernel("rope", &[COMMON, ROPE], &[])?;
            pass.dispatch(&kernel, &params, &[x.binding(), table_binding], groups)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backend, read, relative_error, values, with_pass};

    fn check(style: RopeStyle, head_dim: usize, dims: usize, with_norm: bool) {
        let Some(backend) = backend() else { return };
        let (tokens, heads, start, eps) = (3, 4, 1000, 1e-6);
        let rope =
            RopeParams { style, head_dim, dimension_count: dims, base: 10000.0, freq_scale: 0.5 };
        let x = values(7, tokens * heads * head_dim);
        let w = values(8, head_dim);
        let mut expected = x.clone();
        for (t, row) in expected.chunks_mut(heads * head_dim).enumerate() {
            let rotation = Rope::new(style, dims, rope.base, rope.freq_scale, start + t);
            for head in row.chunks_mut(head_dim) {
                if with_norm {
                    uma_model::layers::rms_norm_in_place(head, &w, eps);
                }
                rotation.apply(head);
            }
        }
        let got = with_pass(backend, tokens, start, |pass| {
            let mut gx = pass.upload_activations(&x, tokens, heads * head_dim);
            let buffer = pass.backend().upload("w", bytemuck::cast_slice(&w)).unwrap();
            let gw = GpuVector { buffer, len: head_dim };
            norm_heads_and_rope(pass, &mut gx, with_norm.then_some(&gw), eps, &rope).unwrap();
            read(pass, &gx)
        });
        let error = relative_error(&got, &expected);
        assert!(
            error < 1e-5,
            "{style:?} {head_dim}/{dims} norm {with_norm}: relative error {error}"
        );
    }

    #[test]
    fn rope_matches_the_cpu_in_every_style_with_and_without_head_norm() {
        check(RopeStyle::Normal, 64, 64, false);
        check(RopeStyle::Neox, 64, 64, false);
        check(RopeStyle::Neox, 128, 64, true);
        check(RopeStyle::Normal, 256, 256, true);
    }
}
