//! A loaded model and its batched forward pass.
//!
//! One forward pass runs every token of every sequence of a [`Batch`] through each weight matrix
//! together (each weight is read once per step); attention is per token over its own sequence's
//! cached positions. Every per-token computation is independent of the rest of the batch, so a
//! sequence gets bit-identical logits alone or batched.

use std::path::Path;
use std::sync::Arc;

use uma_gguf::{GgmlType, GgufFile};
use uma_kernels::{
    matmul, ActivationFormat, PackedActivations, PackedMatrix, Product, QuantizedActivations,
    ThreadPool,
};

use crate::attention::{attention, write_kv, AttentionShape, TokenPlace};
use crate::batch::{Batch, HiddenStates, Logits, LogitsRequest, LogitsRow};
use crate::config::{HiddenActivation, ModelConfig};
use crate::error::{ModelError, Result};
use crate::hook::{Activation, ActivationHook};
use crate::kv_cache::{KvCache, KvCacheType, DEFAULT_BLOCK_SIZE};
use crate::layers::{gelu_ggml, rms_norm, rms_norm_in_place, softcap, Rope};
use crate::weights::{ModelWeights, Tensor};
use uma_ids::BlockId;

/// A model: hyper-parameters and validated weight tables over a memory-mapped GGUF file. It owns
/// no cache state; [`Model::forward`] reads and writes the [`KvCache`] it is handed.
pub struct Model {
    file: Arc<GgufFile>,
    config: ModelConfig,
    weights: ModelWeights,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Model {
    /// Reads the configuration and checks every tensor the architecture needs (presence, type,
    /// shape) before returning.
    pub fn load(file: Arc<GgufFile>) -> Result<Model> {
        let config = ModelConfig::from_file(&file)?;
        let weights = ModelWeights::load(&file, &config)?;
        Ok(Model { file, config, weights })
    }

    /// Opens (memory-maps) and loads the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::load(Arc::new(GgufFile::open(path)?))
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The file the weights live in (metadata, tokenizer data).
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// An f16 cache of `num_blocks` blocks of [`DEFAULT_BLOCK_SIZE`] positions for this model.
    pub fn new_kv_cache(&self, num_blocks: usize) -> Result<KvCache> {
        self.new_kv_cache_of_type(num_blocks, KvCacheType::F16)
    }

    /// A cache of `num_blocks` blocks of [`DEFAULT_BLOCK_SIZE`] positions storing `kv_type`.
    pub fn new_kv_cache_of_type(&self, num_blocks: usize, kv_type: KvCacheType) -> Result<KvCache> {
        KvCache::new(&self.config, num_blocks, DEFAULT_BLOCK_SIZE, kv_type)
    }

    /// Runs one step: writes the batch's keys and values into `kv` and returns the requested
    /// logits, in batch order.
    pub fn forward(&self, batch: &Batch<'_>, kv: &mut KvCache) -> Result<Logits> {
        let (rows, values) = self.run(batch, kv, None, Head::Logits)?;
        Ok(Logits::new(self.config.vocab_size, rows, values))
    }

    /// The final hidden states (after the output norm, before the output head) of the tokens
    /// `batch` asks logits for: what embeddings pool. Writes the KV cache as [`Model::forward`].
    pub fn hidden_states(&self, batch: &Batch<'_>, kv: &mut KvCache) -> Result<HiddenStates> {
        let (rows, values) = self.run(batch, kv, None, Head::HiddenStates)?;
        Ok(HiddenStates::new(self.config.hidden_size, rows, values))
    }

    /// [`Model::forward`], reporting intermediate activations of the layers `hook` wants.
    pub fn forward_with_hook(
        &self,
        batch: &Batch<'_>,
        kv: &mut KvCache,
        hook: &mut dyn ActivationHook,
    ) -> Result<Logits> {
        let (rows, values) = self.run(batch, kv, Some(hook), Head::Logits)?;
        Ok(Logits::new(self.config.vocab_size, rows, values))
    }

    fn validate(&self, batch: &Batch<'_>, kv: &KvCache) -> Result<()> {
        kv.check_shape(&self.config)?;
        for (i, s) in batch.sequences.iter().enumerate() {
            let invalid = |reason: String| ModelError::InvalidBatch { sequence: i, reason };
            if s.token_ids.is_empty() {
                return Err(invalid("no tokens".into()));
            }
            if let Some(&bad) = s.token_ids.iter().find(|&&t| t as usize >= self.config.vocab_size)
            {
                return Err(invalid(format!(
                    "token id {bad} is outside the vocabulary of {}",
                    self.config.vocab_size
                )));
            }
            let end = s.start_position.saturating_add(s.token_ids.len());
            if end > self.config.max_position_embeddings {
                return Err(invalid(format!(
                    "positions up to {end} exceed the model's {} positions",
                    self.config.max_position_embeddings
                )));
            }
            let blocks_needed = end.div_ceil(kv.block_size());
            if s.block_table.len() < blocks_needed {
                return Err(invalid(format!(
                    "block table has {} blocks, positions up to {end} need {blocks_needed}",
                    s.block_table.len()
                )));
            }
            if let Some(bad) =
                s.block_table[..blocks_needed].iter().find(|b| b.index() >= kv.num_blocks())
            {
                return Err(invalid(format!(
                    "block {} is outside the cache of {} blocks",
                    bad.0,
                    kv.num_blocks()
                )));
            }
        }
        Ok(())
    }

    fn run(
        &self,
        batch: &Batch<'_>,
        kv: &mut KvCache,
        mut hook: Option<&mut dyn ActivationHook>,
        head: Head,
    ) -> Result<(Vec<LogitsRow>, Vec<f32>)> {
        self.validate(batch, kv)?;
        let c = &self.config;
        let file: &GgufFile = &self.file;
        let (h, q_dim, kv_dim, hd) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.head_dim);
        let ffn = c.intermediate_size;

        let mut places = Vec::with_capacity(batch.num_tokens());
        let mut token_ids = Vec::with_capacity(batch.num_tokens());
        let mut logit_rows = Vec::new(); // (token index, row)
        for (si, s) in batch.sequences.iter().enumerate() {
            let n = s.token_ids.len();
            for (k, &t) in s.token_ids.iter().enumerate() {
                let position = s.start_position + k;
                let wanted = match s.logits {
                    LogitsRequest::None => false,
                    LogitsRequest::Last => k + 1 == n,
                    LogitsRequest::All => true,
                };
                if wanted {
                    logit_rows.push((places.len(), LogitsRow { sequence: si, position }));
                }
                places.push(TokenPlace { sequence: si, position });
                token_ids.push(t);
            }
        }
        let block_tables: Vec<&[BlockId]> = batch.sequences.iter().map(|s| s.block_table).collect();
        let n = places.len();

        // [num_tokens, hidden_size]: the residual stream.
        let mut x = vec![0.0f32; n * h];
        for (row, &t) in x.chunks_exact_mut(h).zip(&token_ids) {
            self.weights.token_embd.dequantize_row(file, t as usize, row);
            if let Some(scale) = c.embedding_scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }

        let pool = ThreadPool::global();
        let mut proj = Projector::default();
        let mut normed = vec![0.0f32; n * h]; // [num_tokens, hidden_size]
        let mut q = vec![0.0f32; n * q_dim]; // [num_tokens, q_dim]
        let mut k = vec![0.0f32; n * kv_dim]; // [num_tokens, kv_dim]
        let mut v = vec![0.0f32; n * kv_dim]; // [num_tokens, kv_dim]
        let mut attn = vec![0.0f32; n * q_dim]; // [num_tokens, q_dim]
        let mut out = vec![0.0f32; n * h]; // [num_tokens, hidden_size]
        let mut gate = vec![0.0f32; n * ffn]; // [num_tokens, intermediate_size]
        let mut up = vec![0.0f32; n * ffn]; // [num_tokens, intermediate_size]

        for (il, layer) in self.weights.layers.iter().enumerate() {
            let mut report = |name: &'static str, width: usize, data: &[f32]| {
                if let Some(hook) = hook.as_deref_mut() {
                    if hook.wants_layer(il) {
                        hook.on_activation(Activation { layer: il, name, shape: [n, width], data });
                    }
                }
            };

            // Attention.
            pool.for_each_chunk_mut(&mut normed, h, &|t, o| {
                rms_norm(&x[t * h..(t + 1) * h], &layer.attn_norm, c.rms_norm_eps, o);
            });
            report("attn_norm", h, &normed);
            proj.reset();
            proj.matmul_many(
                file,
                &mut [(&layer.attn_q, &mut q), (&layer.attn_k, &mut k), (&layer.attn_v, &mut v)],
                &normed,
            )?;
            add_bias(&mut q, layer.attn_q_bias.as_deref());
            add_bias(&mut k, layer.attn_k_bias.as_deref());
            add_bias(&mut v, layer.attn_v_bias.as_deref());
            report("q", q_dim, &q);
            report("k", kv_dim, &k);
            report("v", kv_dim, &v);
            // Per token: the optional per-head norm, then rope.
            let base = c.rope_base(il);
            let norm_and_rope = |norm: Option<&Vec<f32>>, t: usize, row: &mut [f32]| {
                if let Some(w) = norm {
                    row.chunks_exact_mut(hd)
                        .for_each(|head| rms_norm_in_place(head, w, c.rms_norm_eps));
                }
                let position = places[t].position;
                let rope = Rope::new(
                    c.rope_style,
                    c.rope_dimension_count,
                    base,
                    c.rope_freq_scale,
                    position,
                );
                row.chunks_exact_mut(hd).for_each(|head| rope.apply(head));
            };
            pool.for_each_chunk_mut(&mut q, q_dim, &|t, row| {
                norm_and_rope(layer.attn_q_norm.as_ref(), t, row)
            });
            pool.for_each_chunk_mut(&mut k, kv_dim, &|t, row| {
                norm_and_rope(layer.attn_k_norm.as_ref(), t, row)
            });
            report("q_rope", q_dim, &q);
            report("k_rope", kv_dim, &k);

            let shape = AttentionShape {
                num_attention_heads: c.num_attention_heads,
                num_key_value_heads: c.num_key_value_heads,
                head_dim: hd,
                scale: c.attention_scale,
                window: c.window(il),
                block_size: kv.block_size(),
            };
            let layer_kv = &mut kv.layers[il];
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
            attention(layer_kv, &shape, &block_tables, &places, &q, &mut attn);
            report("attn", q_dim, &attn);
            proj.reset();
            proj.matmul(file, &layer.attn_output, &attn, &mut out)?;
            if let Some(w) = &layer.post_attention_norm {
                out.chunks_exact_mut(h).for_each(|row| rms_norm_in_place(row, w, c.rms_norm_eps));
            }
            report("attn_out", h, &out);
            x.iter_mut().zip(&out).for_each(|(a, b)| *a += b);
            report("ffn_inp", h, &x);

            // MLP.
            pool.for_each_chunk_mut(&mut normed, h, &|t, o| {
                rms_norm(&x[t * h..(t + 1) * h], &layer.ffn_norm, c.rms_norm_eps, o);
            });
            report("ffn_norm", h, &normed);
            proj.reset();
            proj.matmul_many(
                file,
                &mut [(&layer.ffn_gate, &mut gate), (&layer.ffn_up, &mut up)],
                &normed,
            )?;
            let hidden_activation = c.hidden_activation;
            pool.for_each_chunk_mut(&mut gate, ffn, &|t, g| {
                let u = &up[t * ffn..(t + 1) * ffn];
                match hidden_activation {
                    HiddenActivation::Silu => uma_kernels::vector::swiglu(g, u),
                    HiddenActivation::GeluTanh => {
                        g.iter_mut().zip(u).for_each(|(g, &u)| *g = gelu_ggml(*g) * u);
                    }
                }
            });
            proj.reset();
            proj.matmul(file, &layer.ffn_down, &gate, &mut out)?;
            if let Some(w) = &layer.post_ffw_norm {
                out.chunks_exact_mut(h).for_each(|row| rms_norm_in_place(row, w, c.rms_norm_eps));
            }
            report("ffn_out", h, &out);
            x.iter_mut().zip(&out).for_each(|(a, b)| *a += b);
            report("layer_out", h, &x);
        }

        // Head, only for the rows that need logits.
        let num_rows = logit_rows.len();
        let mut final_normed = vec![0.0f32; num_rows * h]; // [num_rows, hidden_size]
        for ((t, _), o) in logit_rows.iter().zip(final_normed.chunks_exact_mut(h)) {
            rms_norm(&x[t * h..(t + 1) * h], &self.weights.output_norm, c.rms_norm_eps, o);
        }
        let rows = logit_rows.into_iter().map(|(_, r)| r).collect();
        if head == Head::HiddenStates {
            return Ok((rows, final_normed));
        }
        let mut logits = vec![0.0f32; num_rows * c.vocab_size]; // [num_rows, vocab_size]
        if num_rows > 0 {
            proj.reset();
            proj.matmul(file, &self.weights.output, &final_normed, &mut logits)?;
        }
        if let Some(cap) = c.final_logit_softcapping {
            logits.iter_mut().for_each(|v| *v = softcap(*v, cap));
        }
        Ok((rows, logits))
    }
}

/// What the last step of a forward pass produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    Logits,
    HiddenStates,
}

fn add_bias(x: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for row in x.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
        }
    }
}

/// Quantizes an input once per activation type and multiplies it by several matrices (q/k/v,
/// gate/up share their input).
#[derive(Default)]
struct Projector {
    activations: QuantizedActivations,
    quantized_for: Option<GgmlType>, // the activation type `activations` holds for the input
    packed_activations: PackedActivations,
    packed_for: Option<ActivationFormat>, // the format `packed_activations` holds for the input
}

impl Projector {
    /// The next products take a new input.
    fn reset(&mut self) {
        self.quantized_for = None;
        self.packed_for = None;
    }

    /// Several products of the same input: one parallel region when every matrix is packed with
    /// the same activation format (q/k/v, gate/up), else one product after another.
    fn matmul_many(
        &mut self,
        file: &GgufFile,
        products: &mut [(&Tensor, &mut [f32])],
        x: &[f32],
    ) -> Result<()> {
        let packed: Option<Vec<&PackedMatrix>> =
            products.iter().map(|(weight, _)| weight.packed()).collect();
        let format =
            packed.as_ref().and_then(|p| p.first()).map(|m| m.format().activation_format());
        let shared_format = packed.as_ref().is_some_and(|matrices| {
            matrices.iter().all(|m| Some(m.format().activation_format()) == format)
        });
        match (packed, format) {
            (Some(matrices), Some(format)) if shared_format => {
                if self.packed_for != Some(format) {
                    self.packed_activations.quantize(format, x, matrices[0].row_length())?;
                    self.packed_for = Some(format);
                }
                let mut jobs: Vec<Product<'_>> = matrices
                    .into_iter()
                    .zip(products.iter_mut())
                    .map(|(matrix, (_, out))| Product { matrix, out })
                    .collect();
                uma_kernels::matmul_many(&mut jobs, &self.packed_activations)?;
            }
            _ => {
                for (weight, out) in products.iter_mut() {
                    self.matmul(file, weight, x, out)?;
                }
            }
        }
        Ok(())
    }

    fn matmul(
        &mut self,
        file: &GgufFile,
        weight: &Tensor,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<()> {
        if let Some(packed) = weight.packed() {
            let format = packed.format().activation_format();
            if self.packed_for != Some(format) {
                self.packed_activations.quantize(format, x, packed.row_length())?;
                self.packed_for = Some(format);
            }
            packed.matmul(&self.packed_activations, out)?;
            return Ok(());
        }
        let matrix = weight.matrix(file);
        let activation_type = uma_kernels::vec_dot_type(weight.ggml_type());
        if self.quantized_for.is_none() || self.quantized_for != activation_type {
            self.activations.quantize_for(weight.ggml_type(), x, matrix.row_length())?;
            self.quantized_for = activation_type;
        }
        debug_assert_eq!(out.len() / weight.num_rows(), x.len() / matrix.row_length());
        matmul(&matrix, &self.activations, out)?;
        Ok(())
    }
}
