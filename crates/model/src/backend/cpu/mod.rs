//! The CPU backend: weights memory-mapped or repacked ([`CpuMatrix`]), an f16 or Q8_0 paged KV
//! cache ([`KvCache`]), and the forward pass's operations on `uma-kernels` and the shared layers
//! ([`crate::layers`]), parallel over tokens on the global [`ThreadPool`] where it pays.
//!
//! Every per-token computation depends only on that token's row (and its own sequence's cached
//! positions), never on the rest of the batch or on which thread runs it: a sequence gets
//! bit-identical results alone or batched.

mod attention;
mod kv_cache;
mod matrix;
mod projector;

use std::borrow::Cow;
use std::sync::Arc;

use uma_gguf::{GgufFile, TensorView};
use uma_kernels::ThreadPool;

use crate::backend::{
    add_host_rows_scaled, gather_host_rows, AttentionParams, Backend, BatchLayout, GatedProducts,
    MatrixUse, RopeParams, Rows,
};
use crate::config::{HiddenActivation, ModelConfig};
use crate::error::Result;
use crate::kv_cache_type::KvCacheType;
use crate::layers::{gelu_ggml, rms_norm, rms_norm_in_place, softcap, swiglu_oai};
use attention::{attention, write_kv, AttentionShape};
use projector::Projector;

pub use kv_cache::KvCache;
pub use matrix::CpuMatrix;

/// The CPU backend (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

/// One forward pass on the CPU: the step's layout and the quantized inputs of matrix products.
pub struct CpuPass<'a> {
    layout: &'a BatchLayout<'a>,
    pool: &'static ThreadPool,
    projector: Projector,
}

impl std::fmt::Debug for CpuPass<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPass").field("layout", &self.layout).finish_non_exhaustive()
    }
}

impl Backend for CpuBackend {
    type Matrix = CpuMatrix;
    type Vector = Vec<f32>; // [len]
    type Activations = Vec<f32>; // [num_rows, width]
    type KvCache = KvCache;
    type Pass<'a> = CpuPass<'a>;

    fn load_matrix(
        &self,
        file: &Arc<GgufFile>,
        tensor: &TensorView<'_>,
        usage: MatrixUse,
    ) -> Result<CpuMatrix> {
        CpuMatrix::load(file, tensor, usage)
    }

    fn load_experts(
        &self,
        file: &Arc<GgufFile>,
        tensor: &TensorView<'_>,
        count: usize,
    ) -> Result<Vec<CpuMatrix>> {
        CpuMatrix::load_experts(file, tensor, count)
    }

    fn vector(&self, _name: &str, values: &[f32]) -> Result<Vec<f32>> {
        Ok(values.to_vec())
    }

    fn new_kv_cache(
        &self,
        config: &ModelConfig,
        num_blocks: usize,
        block_size: usize,
        kv_type: KvCacheType,
    ) -> Result<KvCache> {
        KvCache::new(config, num_blocks, block_size, kv_type)
    }

    fn begin_pass<'a>(&'a self, layout: &'a BatchLayout<'a>) -> CpuPass<'a> {
        CpuPass { layout, pool: ThreadPool::global(), projector: Projector::default() }
    }

    fn activations(_: &mut CpuPass<'_>, num_rows: usize, width: usize) -> Vec<f32> {
        vec![0.0f32; num_rows * width]
    }

    fn embed(pass: &mut CpuPass<'_>, table: &CpuMatrix, scale: Option<f32>, out: &mut Vec<f32>) {
        let width = out.len() / pass.layout.num_tokens();
        for (row, &t) in out.chunks_exact_mut(width).zip(pass.layout.token_ids()) {
            table.dequantize_row(t as usize, row);
            if let Some(scale) = scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
    }

    fn rms_norm(
        pass: &mut CpuPass<'_>,
        x: &Vec<f32>,
        rows: Rows,
        weight: &Vec<f32>,
        eps: f32,
        out: &mut Vec<f32>,
    ) {
        let h = weight.len();
        match rows {
            Rows::All => pass.pool.for_each_chunk_mut(out, h, &|t, o| {
                rms_norm(&x[t * h..(t + 1) * h], weight, eps, o);
            }),
            Rows::Output => {
                for (&t, o) in pass.layout.output_tokens().iter().zip(out.chunks_exact_mut(h)) {
                    rms_norm(&x[t * h..(t + 1) * h], weight, eps, o);
                }
            }
        }
    }

    fn rms_norm_in_place(_: &mut CpuPass<'_>, x: &mut Vec<f32>, weight: &Vec<f32>, eps: f32) {
        x.chunks_exact_mut(weight.len()).for_each(|row| rms_norm_in_place(row, weight, eps));
    }

    fn matmul(
        pass: &mut CpuPass<'_>,
        weight: &CpuMatrix,
        x: &Vec<f32>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        pass.projector.reset();
        pass.projector.matmul(weight, x, out)
    }

    fn matmul_many(
        pass: &mut CpuPass<'_>,
        products: &mut [(&CpuMatrix, &mut Vec<f32>)],
        x: &Vec<f32>,
    ) -> Result<()> {
        pass.projector.reset();
        pass.projector.matmul_many(products, x)
    }

    fn matmul_each(
        pass: &mut CpuPass<'_>,
        products: &mut [(&CpuMatrix, &Vec<f32>, &mut Vec<f32>)],
    ) -> Result<()> {
        pass.projector.reset();
        pass.projector.matmul_each(products)
    }

    fn gated_matmul_each(
        pass: &mut CpuPass<'_>,
        items: &mut [GatedProducts<'_, Self>],
        activation: HiddenActivation,
    ) -> Result<()> {
        let mut products = Vec::with_capacity(2 * items.len());
        for (gate, up, x, gate_out, up_out) in items.iter_mut() {
            products.push((*gate, *x, &mut **gate_out));
            products.push((*up, *x, &mut **up_out));
        }
        Self::matmul_each(pass, &mut products)?;
        for (_, _, _, gate_out, up_out) in items.iter_mut() {
            Self::gated_activation(pass, gate_out, up_out, activation);
        }
        Ok(())
    }

    fn add_bias(_: &mut CpuPass<'_>, x: &mut Vec<f32>, bias: &Vec<f32>) {
        for row in x.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
        }
    }

    fn norm_heads_and_rope(
        pass: &mut CpuPass<'_>,
        x: &mut Vec<f32>,
        head_norm: Option<&Vec<f32>>,
        eps: f32,
        rope: &RopeParams,
    ) {
        let places = pass.layout.places();
        let hd = rope.head_dim;
        let width = x.len() / places.len();
        pass.pool.for_each_chunk_mut(x, width, &|t, row| {
            if let Some(w) = head_norm {
                row.chunks_exact_mut(hd).for_each(|head| rms_norm_in_place(head, w, eps));
            }
            let rotation = rope.rotation(places[t].position);
            row.chunks_exact_mut(hd).for_each(|head| rotation.apply(head));
        });
    }

    fn attention(
        pass: &mut CpuPass<'_>,
        kv: &mut KvCache,
        layer: usize,
        params: &AttentionParams,
        sinks: Option<&Vec<f32>>,
        q: &Vec<f32>,
        k: &Vec<f32>,
        v: &Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let shape = AttentionShape {
            num_attention_heads: params.num_attention_heads,
            num_key_value_heads: params.num_key_value_heads,
            head_dim: params.head_dim,
            scale: params.scale,
            window: params.window,
            block_size: kv.block_size(),
        };
        let kv_dim = params.num_key_value_heads * params.head_dim;
        let (places, block_tables) = (pass.layout.places(), pass.layout.block_tables());
        let layer_kv = &mut kv.layers[layer];
        for (t, place) in places.iter().enumerate() {
            write_kv(
                layer_kv,
                &shape,
                block_tables[place.sequence],
                place.position,
                &k[t * kv_dim..(t + 1) * kv_dim],
                &v[t * kv_dim..(t + 1) * kv_dim],
            );
        }
        attention(layer_kv, &shape, block_tables, places, q, sinks.map(|s| &s[..]), out);
    }

    fn add(_: &mut CpuPass<'_>, x: &mut Vec<f32>, y: &Vec<f32>) {
        x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
    }

    fn gated_activation(
        pass: &mut CpuPass<'_>,
        gate: &mut Vec<f32>,
        up: &Vec<f32>,
        activation: HiddenActivation,
    ) {
        // Element-wise, in chunks of any rows (an expert's tokens are fewer than the step's).
        const CHUNK: usize = 4096;
        pass.pool.for_each_chunk_mut(gate, CHUNK, &|i, g| {
            let u = &up[i * CHUNK..i * CHUNK + g.len()];
            match activation {
                HiddenActivation::Silu => uma_kernels::vector::swiglu(g, u),
                HiddenActivation::GeluTanh => {
                    g.iter_mut().zip(u).for_each(|(g, &u)| *g = gelu_ggml(*g) * u);
                }
                HiddenActivation::SwigluOai => {
                    g.iter_mut().zip(u).for_each(|(g, &u)| *g = swiglu_oai(*g, u));
                }
            }
        });
    }

    fn from_host(_: &mut CpuPass<'_>, values: Vec<f32>, num_rows: usize, width: usize) -> Vec<f32> {
        debug_assert_eq!(values.len(), num_rows * width);
        values
    }

    fn softcap(_: &mut CpuPass<'_>, x: &mut Vec<f32>, cap: f32) {
        x.iter_mut().for_each(|v| *v = softcap(*v, cap));
    }

    fn gather_rows(
        _: &mut CpuPass<'_>,
        x: &Vec<f32>,
        width: usize,
        rows: &[usize],
    ) -> Result<Vec<f32>> {
        gather_host_rows(x, width, rows)
    }

    fn add_rows_scaled(
        _: &mut CpuPass<'_>,
        out: &mut Vec<f32>,
        width: usize,
        rows: &[usize],
        weights: &[f32],
        y: &Vec<f32>,
    ) -> Result<()> {
        add_host_rows_scaled(out, width, rows, weights, y)
    }

    fn host<'b>(_: &mut CpuPass<'_>, x: &'b Vec<f32>) -> Result<Cow<'b, [f32]>> {
        Ok(Cow::Borrowed(x))
    }

    fn into_host(_: &mut CpuPass<'_>, x: Vec<f32>) -> Result<Vec<f32>> {
        Ok(x)
    }
}
