//! Attention over the paged cache, the CPU backend's semantics: the step's keys and values are
//! written into the layer's cache first (kernel `kv_write`, one workgroup per (token, KV head)),
//! then every token's query heads attend to their sequence's positions `lo ..= p` (`lo = p + 1 −
//! window` on sliding-window layers, else 0) through its block table (kernel `attention`, one
//! workgroup per (token, query head), online softmax over tiles of 32 positions; see
//! shaders/attention.wgsl). Both kernels run in the pass's compute pass, the write first, so
//! the later tokens of a prefill chunk see the keys the earlier ones just wrote.

use uma_model::backend::{AttentionParams, PagedKvCache};
use uma_model::KvCacheType;

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::kv_cache::GpuKvCache;
use crate::recorder::grid;
use crate::shader::COMMON;
use crate::step::StepArray;

const KV_WRITE: &str = include_str!("../shaders/kv_write.wgsl");
const ATTENTION: &str = include_str!("../shaders/attention.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct WriteParams {
    num_tokens: u32,
    num_kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    scales_offset: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct AttentionUniform {
    num_tokens: u32,
    num_heads: u32,
    num_kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    has_window: u32,
    window: u32,
    scale: f32,
    scales_offset: u32,
}

/// Writes the step's keys and values into layer `layer` of `kv`, then attention.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    pass: &mut GpuPass<'_>,
    kv: &mut GpuKvCache,
    layer: usize,
    params: &AttentionParams,
    q: &GpuActivations,
    k: &GpuActivations,
    v: &GpuActivations,
    out: &mut GpuActivations,
) -> Result<()> {
    check(pass, kv, layer, params, [q, k, v, out])?;
    let num_tokens = q.num_rows;
    if num_tokens == 0 {
        return Ok(());
    }
    let (heads, kv_heads, hd) =
        (params.num_attention_heads, params.num_key_value_heads, params.head_dim);
    let (name, defines): (&str, &[&str]) = match kv.kv_type() {
        KvCacheType::F16 => ("f16", &[]),
        KvCacheType::Q8_0 => ("q8_0", &["Q8_0"]),
    };
    let block_size = kv.block_size() as u32;
    let scales_offset = kv.scales_offset();
    let buffers = &kv.layers[layer];
    let step = pass.step();
    let step_arrays = [
        step.binding(StepArray::Positions),
        step.binding(StepArray::Sequences),
        step.binding(StepArray::BlockTableStarts),
        step.binding(StepArray::BlockTables),
    ];
    let cache = [buffers.keys.as_entire_buffer_binding(), buffers.values.as_entire_buffer_binding()];

    let write = pass.kernel(&format!("kv_write_{name}"), &[COMMON, KV_WRITE], defines)?;
    let write_params = WriteParams {
        num_tokens: num_tokens as u32,
        num_kv_heads: kv_heads as u32,
        head_dim: hd as u32,
        block_size,
        scales_offset,
    };
    let mut bindings = vec![k.binding(), v.binding(), cache[0].clone(), cache[1].clone()];
    bindings.extend(step_arrays.iter().cloned());
    pass.dispatch(&write, &write_params, &bindings, grid((num_tokens * kv_heads) as u32))?;

    let kernel = pass.kernel(&format!("attention_{name}"), &[COMMON, ATTENTION], defines)?;
    let uniform = AttentionUniform {
        num_tokens: num_tokens as u32,
        num_heads: heads as u32,
        num_kv_heads: kv_heads as u32,
        head_dim: hd as u32,
        block_size,
        has_window: u32::from(params.window.is_some()),
        window: params.window.map_or(0, |w| w.min(u32::MAX as usize) as u32),
        scale: params.scale,
        scales_offset,
    };
    let mut bindings = vec![q.binding(), cache[0].clone(), cache[1].clone(), out.binding()];
    bindings.extend(step_arrays.iter().cloned());
    pass.dispatch(&kernel, &uniform, &bindings, grid((num_tokens * heads) as u32))
}

/// Refuses shapes the kernels would misread: a layer or heads the cache does not have, rows
/// that are not the step's tokens, and positions past a sequence's block table or blocks past
/// the cache (the CPU would panic; the GPU would silently read or write another block).
fn check(
    pass: &GpuPass<'_>,
    kv: &GpuKvCache,
    layer: usize,
    params: &AttentionParams,
    [q, k, v, out]: [&GpuActivations; 4],
) -> Result<()> {
    let bad = |reason: String| Err(GpuError::Validation { reason: format!("attention: {reason}") });
    let (heads, kv_heads, hd) =
        (params.num_attention_heads, params.num_key_value_heads, params.head_dim);
    if layer >= kv.layers.len() {
        return bad(format!("layer {layer} of a cache of {} layers", kv.layers.len()));
    }
    if kv_heads != kv.num_key_value_heads() || hd != kv.head_dim() {
        return bad(format!(
            "{kv_heads} kv heads × {hd} dims, the cache holds {} × {}",
            kv.num_key_value_heads(),
            kv.head_dim()
        ));
    }
    if kv_heads == 0 || heads == 0 || !heads.is_multiple_of(kv_heads) {
        return bad(format!("{heads} query heads over {kv_heads} kv heads"));
    }
    let layout = pass.layout();
    let num_tokens = layout.num_tokens();
    let shapes = [(q, heads * hd, "q"), (k, kv_heads * hd, "k"), (v, kv_heads * hd, "v")];
    for (x, width, what) in shapes.into_iter().chain([(&*out, heads * hd, "out")]) {
        if x.num_rows != num_tokens || x.width != width {
            return bad(format!(
                "{what} is [{}, {}], the step needs [{num_tokens}, {width}]",
                x.num_rows, x.width
            ));
        }
    }
    let block_size = kv.block_size();
    let num_blocks = kv.num_blocks();
    let tables = layout.block_tables();
    for place in layout.places() {
        let table = tables[place.sequence];
        if place.position / block_size >= table.len() {
            return bad(format!(
                "position {} of sequence {} is past its {} blocks",
                place.position,
                place.sequence,
                table.len()
            ));
        }
    }
    if let Some(block) = tables.iter().flat_map(|t| t.iter()).find(|b| b.index() >= num_blocks) {
        return bad(format!("block {} of a cache of {num_blocks}", block.index()));
    }
    Ok(())
}
