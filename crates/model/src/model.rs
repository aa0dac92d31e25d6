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
use crate::backend::{Backend, BatchLayout, PagedKvCache};
use crate::batch::{Batch, HiddenStates, Logits, LogitsRow};
use crate::blocks::HeadOutput;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::forward::ForwardPass;
use crate::hook::ActivationHook;
use crate::kv_cache_type::KvCacheType;
use crate::recipe::ModelWeights;
use crate::weights::WeightLoader;

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
        let weights = ModelWeights::load_for(&WeightLoader::new(&backend, &file), &config)?;
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

    /// An f16 cache of `num_blocks` blocks of [`crate::DEFAULT_BLOCK_SIZE`] positions for this
    /// model.
    pub fn new_kv_cache(&self, num_blocks: usize) -> Result<B::KvCache> {
        self.new_kv_cache_of_type(num_blocks, KvCacheType::F16)
    }

    /// A cache of `num_blocks` blocks of [`crate::DEFAULT_BLOCK_SIZE`] positions storing `kv_type`.
    pub fn new_kv_cache_of_type(
        &self,
        num_blocks: usize,
        kv_type: KvCacheType,
    ) -> Result<B::KvCache> {
        self.new_paged_kv_cache(num_blocks, crate::DEFAULT_BLOCK_SIZE, kv_type)
    }

    /// A cache of `num_blocks` blocks of `block_size` positions storing `kv_type`, on the
    /// model's backend.
    pub fn new_paged_kv_cache(
        &self,
        num_blocks: usize,
        block_size: usize,
        kv_type: KvCacheType,
    ) -> Result<B::KvCache> {
        self.backend.new_kv_cache(&self.config, num_blocks, block_size, kv_type)
    }

    /// The backend the weights live on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Runs one step: writes the batch's keys and values into `kv` and returns the requested
    /// logits, in batch order.
    pub fn forward(&self, batch: &Batch<'_>, kv: &mut B::KvCache) -> Result<Logits> {
        let (rows, values) = self.run(batch, kv, None, HeadOutput::Logits)?;
        Ok(Logits::new(self.config.vocab_size, rows, values))
    }

    /// The final hidden states (after the output norm, before the output head) of the tokens
    /// `batch` asks logits for: what embeddings pool. Writes the KV cache as [`Model::forward`].
    pub fn hidden_states(&self, batch: &Batch<'_>, kv: &mut B::KvCache) -> Result<HiddenStates> {
        let (rows, values) = self.run(batch, kv, None, HeadOutput::HiddenStates)?;
        Ok(HiddenStates::new(self.config.hidden_size, rows, values))
    }

    /// [`Model::forward`], reporting intermediate activations of the layers `hook` wants.
    pub fn forward_with_hook(
        &self,
        batch: &Batch<'_>,
        kv: &mut B::KvCache,
        hook: &mut dyn ActivationHook,
    ) -> Result<Logits> {
        let (rows, values) = self.run(batch, kv, Some(hook), HeadOutput::Logits)?;
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

    /// Embed → layers → head.
    fn run(
        &self,
        batch: &Batch<'_>,
        kv: &mut B::KvCache,
        hook: Option<&mut dyn ActivationHook>,
        head: HeadOutput,
    ) -> Result<(Vec<LogitsRow>, Vec<f32>)> {
        self.validate(batch, kv)?;
        let (layout, rows) = BatchLayout::new(batch);
        // Nothing to compute (and a backend's pass always has tokens).
        if layout.num_tokens() == 0 {
            return Ok((rows, Vec::new()));
        }
        let ops = self.backend.begin_pass(&layout);
        let (num_tokens, num_rows) = (layout.num_tokens(), rows.len());
        // Re-borrowed for as long as the pass (`&mut dyn` cannot shorten its object's lifetime).
        let hook = hook.map(|hook| -> &mut dyn ActivationHook { hook });
        let mut f = ForwardPass::new(ops, &self.config, kv, hook, num_tokens, num_rows);
        self.weights.embedding.forward(&mut f);
        self.weights.layers.forward(&mut f)?;
        let values = self.weights.head.forward(&mut f, head)?;
        Ok((rows, values))
    }
}
