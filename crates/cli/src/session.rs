//! One conversation on one model: a single sequence over the paged KV cache, reusing the cached
//! prefix from one turn to the next, so a chat re-processes only the newest message.
//!
//! This is the single-user driver behind `uma run`. The serving engine (continuous batching over
//! many sequences, block allocation and prefix sharing across requests) will replace it as the
//! driver; the model API it calls (`Batch`, `KvCache`, `forward`) is the one the engine uses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use uma_engine::PromptEncoder;
use uma_gguf::GgufFile;
use uma_model::{
    Batch, BlockId, KvCache, KvCacheType, LogitsRequest, Model, ModelConfig, DEFAULT_BLOCK_SIZE,
};
use uma_sampling::{
    FinishReason, Sampler, SamplingParams, StopCondition, StopReason, TokenHistory,
};
use uma_tokenizer::ChatMessage;

use crate::memory_budget::{plan_model, KvRequest};

/// Prompt tokens per forward call: bounds scratch memory for long prompts.
const PREFILL_CHUNK: usize = 512;

/// A loaded model with its tokenizer, chat template and one sequence's KV cache.
pub(crate) struct Session {
    prompts: PromptEncoder,
    sequence: Sequence,
    /// Tokens whose keys and values are in the cache, position by position.
    cached_tokens: Vec<u32>,
    context_length: usize,
}

/// The model and the cache of the one sequence it runs.
struct Sequence {
    model: Model,
    kv_cache: KvCache,
    /// The single sequence owns every block, in order.
    block_table: Vec<BlockId>,
}

/// What one generation produced, for the summary line.
#[derive(Debug)]
pub(crate) struct GenerationStats {
    pub num_prompt_tokens: usize,
    /// Prompt tokens actually computed (the rest came from the cache).
    pub num_prefilled_tokens: usize,
    pub prefill_time: Duration,
    pub num_generated_tokens: usize,
    pub decode_time: Duration,
    pub finish_reason: FinishReason,
    /// The generated text (stop strings removed), for the chat history.
    pub text: String,
}

impl Session {
    /// Loads `path` with room for `context_length` positions: by default 4096 or the model's
    /// trained context if smaller; asking for more than the trained context is an error, and so
    /// is a model that the planner says cannot fit `budget_bytes` (checked before loading).
    pub(crate) fn load(
        path: &std::path::Path,
        context_length: Option<usize>,
        budget_bytes: u64,
        kv_cache_type: KvCacheType,
    ) -> anyhow::Result<Self> {
        let file = Arc::new(
            GgufFile::open(path).with_context(|| format!("cannot load {}", path.display()))?,
        );
        let trained = ModelConfig::from_file(&file)?.max_position_embeddings;
        let context_length = context_length.unwrap_or(DEFAULT_CONTEXT.min(trained));
        if context_length == 0 || context_length > trained {
            bail!("--ctx {context_length} is outside 1..={trained} (the model's trained context)");
        }
        let request = KvRequest::single(context_length, PREFILL_CHUNK, kv_cache_type);
        plan_model(path, &file, &request, budget_bytes)?;
        let prompts = PromptEncoder::from_gguf(&file)?;
        let model = Model::load(file)?;
        let num_blocks = context_length.div_ceil(DEFAULT_BLOCK_SIZE);
        let kv_cache = model.new_kv_cache_of_type(num_blocks, kv_cache_type)?;
        let block_table = (0..num_blocks as u32).map(BlockId).collect();
        Ok(Session {
            prompts,
            sequence: Sequence { model, kv_cache, block_table },
            cached_tokens: Vec::new(),
            context_length,
        })
    }

    pub(crate) fn context_length(&self) -> usize {
        self.context_length
    }

    /// Bytes of KV cache allocated for the context.
    pub(crate) fn kv_cache_bytes(&self) -> usize {
        self.sequence.kv_cache.size_in_bytes()
    }

    /// Forgets the cached prefix (the next prompt is computed from scratch).
    pub(crate) fn reset(&mut self) {
        self.cached_tokens.clear();
    }

    /// Prompt tokens of a chat (see [`PromptEncoder::chat`]).
    pub(crate) fn chat_tokens(&self, messages: &[ChatMessage]) -> anyhow::Result<Vec<u32>> {
        Ok(self.prompts.chat(messages)?)
    }

    /// Prompt tokens of raw text (see [`PromptEncoder::raw`]).
    pub(crate) fn raw_tokens(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        Ok(self.prompts.raw(text)?)
    }

    /// Generates after `prompt`, calling `on_text` with each piece of text as soon as it is
    /// final. `cancel` stops generation at the next token.
    pub(crate) fn generate(
        &mut self,
        prompt: &[u32],
        params: &SamplingParams,
        cancel: &AtomicBool,
        mut on_text: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<GenerationStats> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        if prompt.len() >= self.context_length {
            bail!(
                "the prompt has {} tokens but the context holds {} (raise --ctx, at most {})",
                prompt.len(),
                self.context_length,
                self.sequence.model.config().max_position_embeddings
            );
        }
        let mut sampler = Sampler::new(params)?;
        let mut stop =
            StopCondition::new(params, self.prompts.tokenizer().end_of_generation_tokens())?;
        let tokenizer = self.prompts.tokenizer();
        let mut decoder = tokenizer.stream_decoder(true);

        // Reuse the cached prefix; at least the last prompt token is recomputed for its logits.
        let reused = common_prefix(&self.cached_tokens, prompt).min(prompt.len() - 1);
        self.cached_tokens.truncate(reused);
        let started = Instant::now();
        let mut logits = Vec::new();
        for chunk_start in (reused..prompt.len()).step_by(PREFILL_CHUNK) {
            let chunk = &prompt[chunk_start..(chunk_start + PREFILL_CHUNK).min(prompt.len())];
            let is_last = chunk_start + chunk.len() == prompt.len();
            logits = self.sequence.forward(chunk, chunk_start, is_last)?;
            self.cached_tokens.extend_from_slice(chunk);
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        let prefill_time = started.elapsed();

        let started = Instant::now();
        let mut tokens = prompt.to_vec();
        let mut text = String::new();
        let finish_reason = loop {
            if cancel.load(Ordering::Relaxed) {
                let tail = stop.finish(StopReason::Cancelled);
                emit(&tail, &mut text, &mut on_text)?;
                break FinishReason::Cancelled;
            }
            let history = TokenHistory::new(&tokens, prompt.len());
            let sampled = sampler.sample(&mut logits, history)?;
            tokens.push(sampled.token);
            let piece = decoder.push(tokenizer, sampled.token)?;
            let update = stop.push(sampled.token, &piece);
            emit(&update.text, &mut text, &mut on_text)?;
            if let Some(reason) = update.finished {
                break reason.finish_reason();
            }
            let position = tokens.len() - 1;
            if position >= self.context_length {
                let tail = decoder.finish(tokenizer)? + &stop.finish(StopReason::ContextFull);
                emit(&tail, &mut text, &mut on_text)?;
                break FinishReason::Length;
            }
            logits = self.sequence.forward(&[sampled.token], position, true)?;
            self.cached_tokens.push(sampled.token);
        };
        Ok(GenerationStats {
            num_prompt_tokens: prompt.len(),
            num_prefilled_tokens: prompt.len() - reused,
            prefill_time,
            num_generated_tokens: tokens.len() - prompt.len(),
            decode_time: started.elapsed(),
            finish_reason,
            text,
        })
    }
}

impl Sequence {
    /// One forward call of `tokens` at `start`; returns the last position's logits if asked.
    fn forward(
        &mut self,
        tokens: &[u32],
        start: usize,
        want_logits: bool,
    ) -> anyhow::Result<Vec<f32>> {
        let request = if want_logits { LogitsRequest::Last } else { LogitsRequest::None };
        let num_blocks = (start + tokens.len()).div_ceil(self.kv_cache.block_size());
        let batch = Batch::single(tokens, start, &self.block_table[..num_blocks], request);
        let logits = self.model.forward(&batch, &mut self.kv_cache)?;
        Ok(logits.last_of(0).map(<[f32]>::to_vec).unwrap_or_default())
    }
}

/// Context when `--ctx` is not given: enough for real conversations, small enough for any
/// machine (a 32k-context model's full cache can take gigabytes).
const DEFAULT_CONTEXT: usize = 4096;

fn emit(
    piece: &str,
    text: &mut String,
    on_text: &mut impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if !piece.is_empty() {
        text.push_str(piece);
        on_text(piece)?;
    }
    Ok(())
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
