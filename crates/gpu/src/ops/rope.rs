//! Per-head RMS norm (Qwen3, Gemma 3) and rope. The rotations of the step's positions are
//! computed on the host exactly as the CPU backend computes them ([`uma_model::layers::Rope`]:
//! f32, ggml's running product of angles), uploaded once per pass and rope shape: f32 `sin` and
//! `cos` of large angles differ between GPUs, the table does not.

use std::sync::Arc;

use uma_model::backend::RopeParams;
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
    /// YaRN's fields' bits, when there is YaRN.
    yarn: Option<[u32; 5]>,
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
    num_heads2: u32,
}

/// The step's rotation table for `rope`: `[num_tokens, dims / 2, (cos, sin)]`.
fn table(pass: &mut GpuPass<'_>, rope: &RopeParams) -> Arc<PooledBuffer> {
    let key = RopeKey {
        dims: rope.dimension_count,
        base: rope.base.to_bits(),
        freq_scale: rope.freq_scale.to_bits(),
        yarn: rope.yarn.map(|y| {
            [y.original_context_length, y.beta_fast, y.beta_slow, y.ext_factor, y.attn_factor]
                .map(f32::to_bits)
        }),
    };
    if let Some(table) = pass.rope_tables.get(&key) {
        return table.clone();
    }
    let half = rope.dimension_count / 2;
    let mut values = Vec::with_capacity(pass.layout().num_tokens() * half * 2);
    for place in pass.layout().places() {
        let rotation = rope.rotation(place.position);
        let (cos, sin) = rotation.cos_sin();
        for (c, s) in cos.iter().zip(sin) {
            values.extend([*c, *s]);
        }
    }
    let buffer = pass.upload_buffer((values.len().max(1) * 4) as u64);
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
    rope_heads(pass, [(x, head_norm)], eps, rope)
}

/// [`norm_heads_and_rope`] of q and k in one dispatch (both with head norms or neither).
pub(crate) fn norm_heads_and_rope_qk(
    pass: &mut GpuPass<'_>,
    (q, q_norm): (&mut GpuActivations, Option<&GpuVector>),
    (k, k_norm): (&mut GpuActivations, Option<&GpuVector>),
    eps: f32,
    rope: &RopeParams,
) -> Result<()> {
    if q_norm.is_some() != k_norm.is_some() || q.num_rows != k.num_rows {
        norm_heads_and_rope(pass, q, q_norm, eps, rope)?;
        return norm_heads_and_rope(pass, k, k_norm, eps, rope);
    }
    rope_heads(pass, [(q, q_norm), (k, k_norm)], eps, rope)
}

/// One dispatch over the heads of one or two (PAIR) tensors of the same tokens.
fn rope_heads<const N: usize>(
    pass: &mut GpuPass<'_>,
    tensors: [(&mut GpuActivations, Option<&GpuVector>); N],
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
    let num_tokens = tensors[0].0.num_rows;
    if num_tokens == 0 {
        return Ok(());
    }
    let heads: Vec<usize> = tensors.iter().map(|(x, _)| x.width / hd).collect();
    let table = table(pass, rope);
    let params = Params {
        num_tokens: num_tokens as u32,
        num_heads: heads[0] as u32,
        head_dim: hd as u32,
        dims: rope.dimension_count as u32,
        neox: u32::from(rope.style == RopeStyle::Neox),
        eps,
        num_heads2: heads.get(1).copied().unwrap_or(0) as u32,
    };
    let groups = grid((num_tokens * heads.iter().sum::<usize>()) as u32);
    let table_binding = crate::backend::whole(table.buffer(), num_tokens * rope.dimension_count);
    let with_norm = tensors[0].1.is_some();
    let mut buffers = Vec::with_capacity(2 + 2 * N);
    for (i, (x, norm)) in tensors.iter().enumerate() {
        buffers.push(x.binding());
        if i == 0 {
            buffers.push(table_binding.clone());
        }
        buffers.extend(norm.map(GpuVector::binding));
    }
    let mut defines = Vec::new();
    defines.extend(with_norm.then_some("HEAD_NORM"));
    defines.extend((N == 2).then_some("PAIR"));
    let name = format!("rope_{}", defines.join("_").to_lowercase());
    let kernel = pass.kernel(&name, &[COMMON, ROPE], &defines)?;
    pass.dispatch(&kernel, &params, &buffers, groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backend, read, relative_error, values, with_pass};
    use uma_model::layers::Rope;
    use uma_model::Yarn;

    /// YaRN as gpt-oss declares it (factor 32 of an original context of 4096).
    const GPT_OSS_YARN: Yarn = Yarn {
        original_context_length: 4096.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        ext_factor: 1.0,
        attn_factor: 1.0,
    };

    fn check(style: RopeStyle, head_dim: usize, dims: usize, with_norm: bool, yarn: Option<Yarn>) {
        let Some(backend) = backend() else { return };
        let (tokens, heads, start, eps) = (3, 4, 1000, 1e-6);
        let freq_scale = if yarn.is_some() { 1.0 / 32.0 } else { 0.5 };
        let rope =
            RopeParams { style, head_dim, dimension_count: dims, base: 10000.0, freq_scale, yarn };
        let x = values(7, tokens * heads * head_dim);
        let w = values(8, head_dim);
        let mut expected = x.clone();
        for (t, row) in expected.chunks_mut(heads * head_dim).enumerate() {
            let rotation =
                Rope::scaled(style, dims, rope.base, rope.freq_scale, yarn.as_ref(), start + t);
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
            let gw = GpuVector::new(buffer, head_dim);
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
    fn q_and_k_in_one_dispatch_match_one_at_a_time() {
        let Some(backend) = backend() else { return };
        let (tokens, head_dim, eps) = (3, 64, 1e-6);
        let rope = RopeParams {
            style: RopeStyle::Neox,
            head_dim,
            dimension_count: head_dim,
            base: 10000.0,
            freq_scale: 1.0,
            yarn: None,
        };
        let (q, k) = (values(11, tokens * 4 * head_dim), values(12, tokens * 2 * head_dim));
        let (wq, wk) = (values(13, head_dim), values(14, head_dim));
        for with_norm in [false, true] {
            let run = |together: bool| {
                with_pass(backend, tokens, 7, |pass| {
                    let mut gq = pass.upload_activations(&q, tokens, 4 * head_dim);
                    let mut gk = pass.upload_activations(&k, tokens, 2 * head_dim);
                    let upload = |w: &[f32]| {
                        let buffer = pass.backend().upload("w", bytemuck::cast_slice(w)).unwrap();
                        GpuVector::new(buffer, head_dim)
                    };
                    let (nq, nk) = (upload(&wq), upload(&wk));
                    let (nq, nk) = if with_norm { (Some(&nq), Some(&nk)) } else { (None, None) };
                    if together {
                        norm_heads_and_rope_qk(pass, (&mut gq, nq), (&mut gk, nk), eps, &rope)
                            .unwrap();
                    } else {
                        norm_heads_and_rope(pass, &mut gq, nq, eps, &rope).unwrap();
                        norm_heads_and_rope(pass, &mut gk, nk, eps, &rope).unwrap();
                    }
                    (read(pass, &gq), read(pass, &gk))
                })
            };
            assert_eq!(run(true), run(false), "head norm {with_norm}");
        }
    }

    #[test]
    fn rope_matches_the_cpu_in_every_style_with_and_without_head_norm() {
        check(RopeStyle::Normal, 64, 64, false, None);
        check(RopeStyle::Neox, 64, 64, false, None);
        check(RopeStyle::Neox, 128, 64, true, None);
        check(RopeStyle::Normal, 256, 256, true, None);
    }

    #[test]
    fn yarn_rope_matches_the_cpu() {
        check(RopeStyle::Neox, 64, 64, false, Some(GPT_OSS_YARN));
        check(RopeStyle::Normal, 128, 64, true, Some(GPT_OSS_YARN));
    }
}
