//! The backend seam: where weights and KV caches live, and the operations a forward pass is made
//! of (matrix products, attention with its cache writes, norms, rope, element-wise operations).
//! The architecture files and the shared blocks call only these, so a GPU backend can sit beside
//! the CPU one ([`cpu::CpuBackend`], today's kernels) without touching them.
//!
//! Dispatch is static and per operation: the blocks are generic over [`Backend`], every
//! operation works on whole activations (`[num_tokens, width]`), and what one step needs to know
//! about its tokens (positions, block tables) comes once per step as a [`BatchLayout`], in
//! [`Backend::begin_pass`].

pub mod cpu;
mod layout;

use std::borrow::Cow;
use std::sync::Arc;

use uma_gguf::{GgmlType, GgufFile, TensorView};
use uma_ids::BlockId;

use crate::config::{HiddenActivation, ModelConfig, RopeStyle, Yarn};
use crate::error::ModelError;
use crate::error::Result;
use crate::kv_cache_type::KvCacheType;
use crate::layers::Rope;

pub use layout::{BatchLayout, TokenPlace};

/// Rope of one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub style: RopeStyle,
    /// Elements of each head (the activations' rows are whole heads).
    pub head_dim: usize,
    /// Leading dimensions of each head that rope rotates.
    pub dimension_count: usize,
    pub base: f32,
    /// Positions are multiplied by this (linear rope scaling).
    pub freq_scale: f32,
    /// YaRN's corrections, when the model declares them.
    pub yarn: Option<Yarn>,
}

impl RopeParams {
    /// The rotation of a token at `position`.
    pub fn rotation(&self, position: usize) -> Rope {
        let (style, dims) = (self.style, self.dimension_count);
        Rope::scaled(style, dims, self.base, self.freq_scale, self.yarn.as_ref(), position)
    }
}

/// Shape and arithmetic of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Multiplier of `q·k` before softmax.
    pub scale: f32,
    /// Sliding window (positions `j` with `p − j < window`), or the whole context.
    pub window: Option<usize>,
}

/// What a weight matrix is used for, which decides how a backend keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixUse {
    /// Matrix products ([`Backend::matmul`]).
    Products,
    /// Rows looked up by token id ([`Backend::embed`]).
    RowLookup,
}

/// Which rows of its input an operation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every token's.
    All,
    /// The output tokens' only ([`BatchLayout::output_tokens`]), in order: the head's.
    Output,
}

/// A vector (norm weight or bias), decoded to f32: what every backend keeps of one (the CPU as
/// it is, a GPU uploaded).
pub fn decode_vector(view: &TensorView<'_>, len: usize) -> Result<Vec<f32>> {
    let (name, ty) = (view.name(), view.ggml_type());
    if !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(ModelError::UnsupportedTensorType {
            name: name.to_owned(),
            ty,
            reason: "norm weights and biases must be F32, F16 or BF16",
        });
    }
    let mut out = vec![0.0f32; len];
    uma_kernels::dequantize(ty, view.data(), &mut out)?;
    Ok(out)
}

/// The error of a cache built for `num_layers` layers of `num_key_value_heads` heads of
/// `head_dim` values, where the model `config` needs others (every backend's
/// [`PagedKvCache::check_shape`]).
pub fn check_kv_cache_shape(
    config: &ModelConfig,
    num_layers: usize,
    num_key_value_heads: usize,
    head_dim: usize,
) -> Result<()> {
    if num_layers != config.num_hidden_layers
        || num_key_value_heads != config.num_key_value_heads
        || head_dim != config.head_dim
    {
        return Err(ModelError::InvalidKvCache {
            reason: format!(
                "built for {num_layers} layers × {num_key_value_heads} kv heads × {head_dim} dims, \
                 the model has {} × {} × {}",
                config.num_hidden_layers, config.num_key_value_heads, config.head_dim
            ),
        });
    }
    Ok(())
}

/// Rows `rows` of `values` (rows of `width`), in that order: [`Backend::gather_rows`] on
/// host memory.
pub fn gather_host_rows(values: &[f32], width: usize, rows: &[usize]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &row in rows {
        let source = values.get(row * width..(row + 1) * width).ok_or_else(|| {
            ModelError::Backend { reason: format!("row {row} of {}", values.len() / width.max(1)) }
        })?;
        out.extend_from_slice(source);
    }
    Ok(out)
}

/// `values[rows[i]] += weights[i] · y[i]`: [`Backend::add_rows_scaled`] on host memory.
pub fn add_host_rows_scaled(
    values: &mut [f32],
    width: usize,
    rows: &[usize],
    weights: &[f32],
    y: &[f32],
) -> Result<()> {
    let num_rows = values.len() / width.max(1);
    if rows.len() != weights.len() || y.len() != rows.len() * width {
        return Err(ModelError::Backend {
            reason: format!("{} rows, {} weights, {} values", rows.len(), weights.len(), y.len()),
        });
    }
    for ((&row, &weight), source) in rows.iter().zip(weights).zip(y.chunks_exact(width.max(1))) {
        let target = values
            .get_mut(row * width..(row + 1) * width)
            .ok_or_else(|| ModelError::Backend { reason: format!("row {row} of {num_rows}") })?;
        target.iter_mut().zip(source).for_each(|(t, &v)| *t += weight * v);
    }
    Ok(())
}

/// Checks a prefix copy of `num_positions` positions from block `source` to `destination` in a
/// cache of `num_blocks` blocks of `block_size` (every backend's
/// [`PagedKvCache::copy_block_prefix`]); whether there is anything to copy.
pub fn check_block_copy(
    num_blocks: usize,
    block_size: usize,
    source: BlockId,
    destination: BlockId,
    num_positions: usize,
) -> Result<bool> {
    let (src, dst) = (source.index(), destination.index());
    if src >= num_blocks || dst >= num_blocks || num_positions > block_size {
        return Err(ModelError::InvalidKvCache {
            reason: format!(
                "copying {num_positions} positions from block {src} to block {dst} of \
                 {num_blocks} blocks of {block_size}"
            ),
        });
    }
    Ok(src != dst && num_positions > 0)
}

/// What the model checks of a cache before a step.
pub trait PagedKvCache {
    /// Blocks in the cache.
    fn num_blocks(&self) -> usize;
    /// Token positions per block.
    fn block_size(&self) -> usize;
    /// Whether the cache has the layers and heads `config` needs.
    fn check_shape(&self, config: &ModelConfig) -> Result<()>;
    /// Bytes of keys and values it holds (its share of the memory budget).
    fn size_in_bytes(&self) -> usize;
    /// What it stores keys and values as.
    fn kv_type(&self) -> KvCacheType;
    /// Copies the keys and values of positions `0..num_positions` of block `source` into the
    /// same positions of block `destination`, in every layer (a prefix cached in part of a
    /// block, reused by another sequence without recomputing it).
    fn copy_block_prefix(
        &mut self,
        source: BlockId,
        destination: BlockId,
        num_positions: usize,
    ) -> Result<()>;
}

/// One item of [`Backend::gated_matmul_each`]: `(gate, up, x, gate_out, up_out)`.
pub type GatedProducts<'a, B> = (
    &'a <B as Backend>::Matrix,
    &'a <B as Backend>::Matrix,
    &'a <B as Backend>::Activations,
    &'a mut <B as Backend>::Activations,
    &'a mut <B as Backend>::Activations,
);

/// Storage and operations of one kind of device. Activations are `[num_rows, width]`, row-major:
/// one row per token of the step (the head's are one per output token).
pub trait Backend: Send + Sync + Sized + 'static {
    /// A weight matrix `[num_rows (out features), row_length (in features)]`.
    type Matrix: Send + Sync;
    /// A weight vector: a norm's weights or a bias.
    type Vector: Send + Sync;
    /// Activations `[num_rows, width]`.
    type Activations;
    /// Paged keys and values of every layer.
    type KvCache: PagedKvCache + Send;
    /// One forward pass's state: the step's layout as the backend keeps it, and scratch.
    type Pass<'a>
    where
        Self: 'a;

    /// The matrix `tensor` of `file` (its shape already checked), kept for `usage`.
    fn load_matrix(
        &self,
        file: &Arc<GgufFile>,
        tensor: &TensorView<'_>,
        usage: MatrixUse,
    ) -> Result<Self::Matrix>;

    /// Matrices of the same input that run together (q/k/v, gate/up), in order. A backend may
    /// keep them side by side so that one kernel computes all their products
    /// ([`Backend::matmul_many`], [`Backend::gated_matmul`]).
    fn load_matrices(
        &self,
        file: &Arc<GgufFile>,
        tensors: &[TensorView<'_>],
        usage: MatrixUse,
    ) -> Result<Vec<Self::Matrix>> {
        tensors.iter().map(|tensor| self.load_matrix(file, tensor, usage)).collect()
    }

    /// Vectors used together (q/k/v's biases), `(tensor, len)` each, in order; a backend may keep
    /// them side by side for [`Backend::normed_matmul_many`].
    fn load_vectors(&self, tensors: &[(TensorView<'_>, usize)]) -> Result<Vec<Self::Vector>> {
        tensors.iter().map(|(tensor, len)| self.load_vector(tensor, *len)).collect()
    }

    /// The vector `tensor` of `len` elements (its shape already checked).
    fn load_vector(&self, tensor: &TensorView<'_>, len: usize) -> Result<Self::Vector> {
        self.vector(tensor.name(), &decode_vector(tensor, len)?)
    }

    /// A vector of `values`, decoded already (one expert's bias, cut from a stacked tensor);
    /// `name` says which for errors.
    fn vector(&self, name: &str, values: &[f32]) -> Result<Self::Vector>;

    /// The `count` matrices stacked in the 3-D tensor `tensor` of `file` (a mixture-of-experts
    /// layer's `ffn_*_exps`, ggml shape `[row_length, num_rows, count]`, already checked), one
    /// `[num_rows, row_length]` matrix per expert, in expert order.
    fn load_experts(
        &self,
        file: &Arc<GgufFile>,
        tensor: &TensorView<'_>,
        count: usize,
    ) -> Result<Vec<Self::Matrix>>;

    /// A zeroed cache of `num_blocks` blocks of `block_size` positions for a model of
    /// `config`, storing `kv_type`.
    fn new_kv_cache(
        &self,
        config: &ModelConfig,
        num_blocks: usize,
        block_size: usize,
        kv_type: KvCacheType,
    ) -> Result<Self::KvCache>;

    /// Starts a forward pass over the tokens of `layout` (at least one).
    fn begin_pass<'a>(&'a self, layout: &'a BatchLayout<'a>) -> Self::Pass<'a>;

    /// Zeroed activations `[num_rows, width]`.
    fn activations(pass: &mut Self::Pass<'_>, num_rows: usize, width: usize) -> Self::Activations;

    /// `out[t]` = row `token_ids[t]` of `table`, times `scale` when there is one.
    fn embed(
        pass: &mut Self::Pass<'_>,
        table: &Self::Matrix,
        scale: Option<f32>,
        out: &mut Self::Activations,
    );

    /// `out[r]` = RMS norm of row `r` of `x`'s `rows` times `weight`.
    fn rms_norm(
        pass: &mut Self::Pass<'_>,
        x: &Self::Activations,
        rows: Rows,
        weight: &Self::Vector,
        eps: f32,
        out: &mut Self::Activations,
    );

    /// `x[t]` = RMS norm of `x[t]` times `weight`.
    fn rms_norm_in_place(
        pass: &mut Self::Pass<'_>,
        x: &mut Self::Activations,
        weight: &Self::Vector,
        eps: f32,
    );

    /// `out = x · weightᵀ`.
    fn matmul(
        pass: &mut Self::Pass<'_>,
        weight: &Self::Matrix,
        x: &Self::Activations,
        out: &mut Self::Activations,
    ) -> Result<()>;

    /// Several products of the same input (q/k/v, gate/up), which may share work on it.
    fn matmul_many(
        pass: &mut Self::Pass<'_>,
        products: &mut [(&Self::Matrix, &mut Self::Activations)],
        x: &Self::Activations,
    ) -> Result<()>;

    /// Several products, each of its own input: `out = x · weightᵀ` per `(weight, x, out)` (the
    /// experts a step selected, each on its tokens; per-head projections). A backend may run
    /// them together; each result equals [`Backend::matmul`]'s.
    fn matmul_each(
        pass: &mut Self::Pass<'_>,
        products: &mut [(&Self::Matrix, &Self::Activations, &mut Self::Activations)],
    ) -> Result<()> {
        for (weight, x, out) in products.iter_mut() {
            Self::matmul(pass, weight, x, out)?;
        }
        Ok(())
    }

    /// [`Backend::matmul_many`] of `rms_norm(x) · norm`, plus one bias per product when
    /// `biases` are given: `normed` takes the norm, then the products read it; a backend may
    /// fold the norm and the biases into the products instead (and leave `normed` as it was).
    fn normed_matmul_many(
        pass: &mut Self::Pass<'_>,
        x: &Self::Activations,
        (norm, eps): (&Self::Vector, f32),
        normed: &mut Self::Activations,
        products: &mut [(&Self::Matrix, &mut Self::Activations)],
        biases: Option<&[&Self::Vector]>,
    ) -> Result<()> {
        Self::rms_norm(pass, x, Rows::All, norm, eps, normed);
        Self::matmul_many(pass, products, normed)?;
        if let Some(biases) = biases {
            let mut pairs: Vec<(&mut Self::Activations, &Self::Vector)> = products
                .iter_mut()
                .map(|(_, out)| &mut **out)
                .zip(biases.iter().copied())
                .collect();
            Self::add_biases(pass, &mut pairs);
        }
        Ok(())
    }

    /// [`Backend::gated_matmul`] of `rms_norm(x) · norm`, which a backend may fold the same way.
    #[allow(clippy::too_many_arguments)]
    fn normed_gated_matmul(
        pass: &mut Self::Pass<'_>,
        x: &Self::Activations,
        (norm, eps): (&Self::Vector, f32),
        normed: &mut Self::Activations,
        (gate, up): (&Self::Matrix, &Self::Matrix),
        activation: HiddenActivation,
        gate_out: &mut Self::Activations,
        up_out: &mut Self::Activations,
    ) -> Result<()> {
        Self::rms_norm(pass, x, Rows::All, norm, eps, normed);
        Self::gated_matmul(pass, gate, up, normed, activation, gate_out, up_out)
    }

    /// `acc += x · weightᵀ` (a projection into the residual stream); `scratch` (shaped like
    /// `acc`) may hold the product on the way.
    fn matmul_add(
        pass: &mut Self::Pass<'_>,
        weight: &Self::Matrix,
        x: &Self::Activations,
        scratch: &mut Self::Activations,
        acc: &mut Self::Activations,
    ) -> Result<()> {
        Self::matmul(pass, weight, x, scratch)?;
        Self::add(pass, acc, scratch);
        Ok(())
    }

    /// `gate_out = activation(x · gateᵀ) · (x · upᵀ)` (the gated feed-forward's first half);
    /// `up_out` may hold the up product on the way.
    #[allow(clippy::too_many_arguments)]
    fn gated_matmul(
        pass: &mut Self::Pass<'_>,
        gate: &Self::Matrix,
        up: &Self::Matrix,
        x: &Self::Activations,
        activation: HiddenActivation,
        gate_out: &mut Self::Activations,
        up_out: &mut Self::Activations,
    ) -> Result<()> {
        Self::matmul_many(pass, &mut [(gate, &mut *gate_out), (up, &mut *up_out)], x)?;
        Self::gated_activation(pass, gate_out, up_out, activation);
        Ok(())
    }

    /// [`Backend::gated_matmul`] of several `(gate, up, x, gate_out, up_out)`, each of its own
    /// input (the experts a step selected). A backend may run their products together.
    fn gated_matmul_each(
        pass: &mut Self::Pass<'_>,
        items: &mut [GatedProducts<'_, Self>],
        activation: HiddenActivation,
    ) -> Result<()> {
        for (gate, up, x, gate_out, up_out) in items.iter_mut() {
            Self::gated_matmul(pass, gate, up, x, activation, gate_out, up_out)?;
        }
        Ok(())
    }

    /// `acc += rms_norm(y) · norm` (a post-norm added into the residual stream); `y` may be
    /// normed in place on the way.
    fn add_normed(
        pass: &mut Self::Pass<'_>,
        acc: &mut Self::Activations,
        y: &mut Self::Activations,
        norm: &Self::Vector,
        eps: f32,
    ) {
        Self::rms_norm_in_place(pass, y, norm, eps);
        Self::add(pass, acc, y);
    }

    /// `x[t] += bias`.
    fn add_bias(pass: &mut Self::Pass<'_>, x: &mut Self::Activations, bias: &Self::Vector);

    /// [`Backend::add_bias`] for several activations at once (q, k and v).
    fn add_biases(
        pass: &mut Self::Pass<'_>,
        pairs: &mut [(&mut Self::Activations, &Self::Vector)],
    ) {
        for (x, bias) in pairs.iter_mut() {
            Self::add_bias(pass, x, bias);
        }
    }

    /// Per token and head of `x`: the RMS norm by `head_norm` if there is one, then rope at the
    /// token's position.
    fn norm_heads_and_rope(
        pass: &mut Self::Pass<'_>,
        x: &mut Self::Activations,
        head_norm: Option<&Self::Vector>,
        eps: f32,
        rope: &RopeParams,
    );

    /// [`Backend::norm_heads_and_rope`] of the queries and the keys, which a backend may do
    /// together.
    #[allow(clippy::too_many_arguments)]
    fn norm_heads_and_rope_qk(
        pass: &mut Self::Pass<'_>,
        q: &mut Self::Activations,
        q_norm: Option<&Self::Vector>,
        k: &mut Self::Activations,
        k_norm: Option<&Self::Vector>,
        eps: f32,
        rope: &RopeParams,
    ) {
        Self::norm_heads_and_rope(pass, q, q_norm, eps, rope);
        Self::norm_heads_and_rope(pass, k, k_norm, eps, rope);
    }

    /// Writes every token's keys `k[t]` and values `v[t]` into layer `layer` of `kv` at its
    /// position, then `out[t]` = attention of queries `q[t]` over its sequence's cached positions;
    /// with `sinks` (`[num_attention_heads]`, gpt-oss), each head's softmax also weighs its sink
    /// logit, which adds no value.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        pass: &mut Self::Pass<'_>,
        kv: &mut Self::KvCache,
        layer: usize,
        params: &AttentionParams,
        sinks: Option<&Self::Vector>,
        q: &Self::Activations,
        k: &Self::Activations,
        v: &Self::Activations,
        out: &mut Self::Activations,
    );

    /// `x += y` (the residual stream).
    fn add(pass: &mut Self::Pass<'_>, x: &mut Self::Activations, y: &Self::Activations);

    /// `gate = activation(gate) · up`, element-wise.
    fn gated_activation(
        pass: &mut Self::Pass<'_>,
        gate: &mut Self::Activations,
        up: &Self::Activations,
        activation: HiddenActivation,
    );

    /// `x = cap · tanh(x / cap)`, element-wise.
    fn softcap(pass: &mut Self::Pass<'_>, x: &mut Self::Activations, cap: f32);

    /// Rows `rows` of `x` (rows of `width` values), in that order, as new activations
    /// `[rows.len(), width]` (the tokens routed to one expert).
    fn gather_rows(
        pass: &mut Self::Pass<'_>,
        x: &Self::Activations,
        width: usize,
        rows: &[usize],
    ) -> Result<Self::Activations>;

    /// `out[rows[i]] += weights[i] · y[i]` for each row `i` of `y` (rows of `width` values): an
    /// expert's outputs added into its tokens' rows, weighted by the router.
    fn add_rows_scaled(
        pass: &mut Self::Pass<'_>,
        out: &mut Self::Activations,
        width: usize,
        rows: &[usize],
        weights: &[f32],
        y: &Self::Activations,
    ) -> Result<()>;

    /// `x` as host f32 values (for the activation hook). A device backend finishes the work
    /// recorded so far to read it, and fails when the device does ([`ModelError::Device`]).
    fn host<'b>(pass: &mut Self::Pass<'_>, x: &'b Self::Activations) -> Result<Cow<'b, [f32]>>;

    /// [`Backend::host`] of several activations; a device backend reads them back together (one
    /// round trip instead of one each).
    fn host_many(pass: &mut Self::Pass<'_>, xs: &[&Self::Activations]) -> Result<Vec<Vec<f32>>> {
        xs.iter().map(|x| Ok(Self::host(pass, x)?.into_owned())).collect()
    }

    /// Activations `[num_rows, width]` holding `values` (work arranged on the host: latent
    /// attention's per-head slices).
    fn from_host(
        pass: &mut Self::Pass<'_>,
        values: Vec<f32>,
        num_rows: usize,
        width: usize,
    ) -> Self::Activations;

    /// `x` as host f32 values, consuming it (the pass's results).
    fn into_host(pass: &mut Self::Pass<'_>, x: Self::Activations) -> Result<Vec<f32>>;
}
