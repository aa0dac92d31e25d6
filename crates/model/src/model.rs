//! A loaded model and its batched forward pass.
//!
//! One forward pass runs every token of every sequence of a [`Batch`] through each weight matrix
//! together (each weight is read once per step); attention is per token over its own sequence's
//! cached positions. Every per-token computation is independent of the rest of the batch, so a
//! sequence gets bit-identical logits alone or batched.

use std::path::Path;
use std::sync::Arc;

use uma_gguf::GgufFile;

use crate::backend::cpu::CpuBackend;
use crate::backend::{AttentionParams, Backend, BatchLayout, PagedKvCache, RopeParams};
use crate::batch::{Batch, HiddenStates, Logits, LogitsRow};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::hook::{Activation, ActivationHook};
use crate::kv_cache_type::{KvCacheType, DEFAULT_BLOCK_SIZE};
use crate::weights::{ModelWeights, WeightLoader};

/// A model: hyper-parameters and validated weight tables over a memory-mapped GGUF file, held by
/// backend `B` (the CPU unless said otherwise). It owns no cache state; [`Model::forward`] reads
/// and writes the cache it is handed ([`crate::KvCache`] on the CPU).
pub struct Model<B: Backend = CpuBackend> {
    file: Arc<GgufFile>,
    config: ModelConfig,
    backend: B,
    weights: ModelWeights<B>,
}

impl<B: Backend> std::fmt::Debug for Model<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Model<CpuBackend> {
    /// Reads the configuration and checks every tensor the architecture needs (presence, type,
    /// shape) before returning, for the CPU.
    pub fn load(file: Arc<GgufFile>) -> Result<Model> {
        Model::load_with(CpuBackend, file)
    }

    /// Opens (memory-maps) and loads the GGUF file at `path`, for the CPU.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::load(Arc::new(GgufFile::open(path)?))
    }
}

impl<B: Backend> Model<B> {
    /// [`Model::load`] onto `backend`.
    pub fn load_with(backend: B, file: Arc<GgufFile>) -> Result<Model<B>> {
        let config = ModelConfig::from_file(&file)?;
        let weights = ModelWeights::load(&WeightLoader::new(&backend, &file), &config)?;
        Ok(Model { file, config, backend, weights })
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
    pub fn new_kv_cache(&self, num_blocks: usize) -> Result<B::KvCache> {
        self.new_kv_cache_of_type(num_blocks, KvCacheType::F16)
    }

    /// A cache of `num_blocks` blocks of [`DEFAULT_BLOCK_SIZE`] positions storing `kv_type`.
    pub fn new_kv_cache_of_type(
        &self,
        num_blocks: usize,
        kv_type: KvCacheType,
    ) -> Result<B::KvCache> {
        self.backend.new_kv_cache(&self.config, num_blocks, DEFAULT_BLOCK_SIZE, kv_type)
    }

    /// Runs one step: writes the batch's keys and values into `kv` and returns the requested
    /// logits, in batch order.
    pub fn forward(&self, batch: &Batch<'_>, kv: &mut B::KvCache) -> Result<Logits> {
        let (rows, values) = self.run(batch, kv, None, Head::Logits)?;
        Ok(Logits::new(self.config.vocab_size, rows, values))
    }

    /// The final hidden states (after the output norm, before the output head) of the tokens
    /// `batch` asks logits for: what embeddings pool. Writes the KV cache as [`Model::forward`].
    pub fn hidden_states(&self, batch: &Batch<'_>, kv: &mut B::KvCache) -> Result<HiddenStates> {
        let (rows, values) = self.run(batch, kv, None, Head::HiddenStates)?;
        Ok(HiddenStates::new(self.config.hidden_size, rows, values))
    }

    /// [`Model::forward`], reporting intermediate activations of the layers `hook` wants.
    pub fn forward_with_hook(
        &self,
        batch: &Batch<'_>,
        kv: &mut B::KvCache,
        hook: &mut dyn ActivationHook,
    ) -> Result<Logits> {
        let (rows, values) = self.run(batch, kv, Some(hook), Head::Logits)?;
        Ok(Logits::new(self.config.vocab_size, rows, values))
    }

    fn validate(&self, batch: &Batch<'_>, kv: &B::KvCache) -> Result<()> {
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
        kv: &mut B::KvCache,
        mut hook: Option<&mut dyn ActivationHook>,
        head: Head,
    ) -> Result<(Vec<LogitsRow>, Vec<f32>)> {
        self.validate(batch, kv)?;
        let (layout, rows) = BatchLayout::new(batch);
        if layout.num_tokens() == 0 {
            return Ok((rows, Vec::new()));
        }
        let c = &self.config;
        let (h, q_dim, kv_dim, hd) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.head_dim);
        let ffn = c.intermediate_size;
        let n = layout.num_tokens();
        let pass = &mut self.backend.begin_pass(&layout);

        // [num_tokens, hidden_size]: the residual stream.
        let mut x = B::activations(pass, n, h);
        B::embed(pass, &self.weights.token_embd, c.embedding_scale, &mut x);

        let mut normed = B::activations(pass, n, h); // [num_tokens, hidden_size]
        let mut q = B::activations(pass, n, q_dim); // [num_tokens, q_dim]
        let mut k = B::activations(pass, n, kv_dim); // [num_tokens, kv_dim]
        let mut v = B::activations(pass, n, kv_dim); // [num_tokens, kv_dim]
        let mut attn = B::activations(pass, n, q_dim); // [num_tokens, q_dim]
        let mut out = B::activations(pass, n, h); // [num_tokens, hidden_size]
        let mut gate = B::activations(pass, n, ffn); // [num_tokens, intermediate_size]
        let mut up = B::activations(pass, n, ffn); // [num_tokens, intermediate_size]

        for (il, layer) in self.weights.layers.iter().enumerate() {
            let report = |pass: &B::Pass<'_>,
                          hook: &mut Option<&mut dyn ActivationHook>,
                          name: &'static str,
                          width: usize,
                          data: &B::Activations| {
                if let Some(hook) = hook.as_deref_mut() {
                    if hook.wants_layer(il) {
                        let data = &B::host(pass, data);
                        hook.on_activation(Activation { layer: il, name, shape: [n, width], data });
                    }
                }
            };

            // Attention.
            B::rms_norm(pass, &x, &layer.attn_norm, c.rms_norm_eps, &mut normed);
            report(pass, &mut hook, "attn_norm", h, &normed);
            B::matmul_many(
                pass,
                &mut [(&layer.attn_q, &mut q), (&layer.attn_k, &mut k), (&layer.attn_v, &mut v)],
                &normed,
            )?;
            let biases = [&layer.attn_q_bias, &layer.attn_k_bias, &layer.attn_v_bias];
            for (values, bias) in [&mut q, &mut k, &mut v].into_iter().zip(biases) {
                if let Some(bias) = bias {
                    B::add_bias(pass, values, bias);
                }
            }
            report(pass, &mut hook, "q", q_dim, &q);
            report(pass, &mut hook, "k", kv_dim, &k);
            report(pass, &mut hook, "v", kv_dim, &v);
            // Per token: the optional per-head norm, then rope.
            let rope = RopeParams {
                style: c.rope_style,
                head_dim: hd,
                dimension_count: c.rope_dimension_count,
                base: c.rope_base(il),
                freq_scale: c.rope_freq_scale,
            };
            B::norm_heads_and_rope(pass, &mut q, layer.attn_q_norm.as_ref(), c.rms_norm_eps, &rope);
            B::norm_heads_and_rope(pass, &mut k, layer.attn_k_norm.as_ref(), c.rms_norm_eps, &rope);
            report(pass, &mut hook, "q_rope", q_dim, &q);
            report(pass, &mut hook, "k_rope", kv_dim, &k);

            let params = AttentionParams {
                num_attention_heads: c.num_attention_heads,
                num_key_value_heads: c.num_key_value_heads,
                head_dim: hd,
                scale: c.attention_scale,
                window: c.window(il),
            };
            B::attention(pass, kv, il, &params, &q, &k, &v, &mut attn);
            report(pass, &mut hook, "attn", q_dim, &attn);
            B::matmul(pass, &layer.attn_output, &attn, &mut out)?;
            if let Some(w) = &layer.post_attention_norm {
                B::rms_norm_in_place(pass, &mut out, w, c.rms_norm_eps);
            }
            report(pass, &mut hook, "attn_out", h, &out);
            B::add(pass, &mut x, &out);
            report(pass, &mut hook, "ffn_inp", h, &x);

            // MLP.
            B::rms_norm(pass, &x, &layer.ffn_norm, c.rms_norm_eps, &mut normed);
            report(pass, &mut hook, "ffn_norm", h, &normed);
            B::matmul_many(
                pass,
                &mut [(&layer.ffn_gate, &mut gate), (&layer.ffn_up, &mut up)],
                &normed,
            )?;
            B::gated_activation(pass, &mut gate, &up, c.hidden_activation);
            B::matmul(pass, &layer.ffn_down, &gate, &mut out)?;
            if let Some(w) = &layer.post_ffw_norm {
                B::rms_norm_in_place(pass, &mut out, w, c.rms_norm_eps);
            }
            report(pass, &mut hook, "ffn_out", h, &out);
            B::add(pass, &mut x, &out);
            report(pass, &mut hook, "layer_out", h, &x);
        }

        // Head, only for the rows that need logits.
        let num_rows = rows.len();
        let mut final_normed = B::activations(pass, num_rows, h); // [num_rows, hidden_size]
        B::rms_norm_output_rows(
            pass,
            &x,
            &self.weights.output_norm,
            c.rms_norm_eps,
            &mut final_normed,
        );
        if head == Head::HiddenStates {
            return Ok((rows, B::into_host(pass, final_normed)));
        }
        let mut logits = B::activations(pass, num_rows, c.vocab_size); // [num_rows, vocab_size]
        if num_rows > 0 {
            B::matmul(pass, &self.weights.output, &final_normed, &mut logits)?;
        }
        if let Some(cap) = c.final_logit_softcapping {
            B::softcap(pass, &mut logits, cap);
        }
        Ok((rows, B::into_host(pass, logits)))
    }
}

/// What the last step of a forward pass produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    Logits,
    HiddenStates,
}
