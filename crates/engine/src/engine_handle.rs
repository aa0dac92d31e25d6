//! Starting an engine, and the handle every caller (HTTP handlers, the CLI) submits through.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uma_gguf::GgufFile;
use uma_kv::KvCacheManager;
use uma_model::backend::{Backend, PagedKvCache};
use uma_model::Model;
use uma_sampling::{Sampler, SamplingParams, StopCondition};

use crate::device::LoadedModel;
use crate::draft_model::DraftModel;
use crate::engine_config::EngineConfig;
use crate::engine_core::{Command, EmbedRequest, EngineCore, NewRequest, SharedState};
use crate::engine_stats::EngineStats;
use crate::speculation::SpeculativeMode;
use uma_grammar::OutputGrammar;

use crate::error::{EngineError, Result};
use crate::prompt_encoder::PromptEncoder;
use crate::request_stream::RequestStream;
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::{RequestId, TokenId};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationRequest {
    /// Prompt tokens (at least one, fewer than the context length).
    pub prompt: Vec<TokenId>,
    pub params: SamplingParams,
    /// The sampler's random stream: choice `i` of a request with `n` choices and one seed uses
    /// stream `i`, so the choices differ and each is reproducible.
    pub sampler_stream: u64,
    /// The grammar the output must follow, if any (each choice gets its own constraint).
    pub grammar: Option<OutputGrammar>,
}

/// A running engine for one model. Cloning is cheap; every clone talks to the same engine thread.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    model_name: String,
    config: EngineConfig,
    kv_cache_bytes: usize,
    vocab_size: usize,
    prompts: Arc<PromptEncoder>,
    commands: Sender<Command>,
    num_in_flight: Arc<AtomicUsize>,
    stats: Arc<Mutex<EngineStats>>,
    failure: Arc<OnceLock<String>>,
    accepting: AtomicBool,
    next_id: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EngineHandle {
    /// Loads the GGUF file at `path` (weights, tokenizer and chat template) and starts its
    /// engine: how `uma serve` and `uma run` both start a model. The file is mapped afresh (pages
    /// of an earlier load may still be in the page cache, which makes a re-load fast).
    pub fn open(
        path: &Path,
        model_name: impl Into<String>,
        config: EngineConfig,
    ) -> Result<EngineHandle> {
        let file = Arc::new(GgufFile::open(path)?);
        let prompts = PromptEncoder::from_gguf(&file)?;
        let kv_tokens = config.num_kv_blocks() * config.block_size;
        let gpu_need = crate::device::gpu_need_bytes(&file, kv_tokens, config.kv_cache_type)?;
        let draft_file = match &config.speculative.draft_model {
            Some(path) => Some(Arc::new(GgufFile::open(path)?)),
            None => None,
        };
        match LoadedModel::load(file, config.device, gpu_need)? {
            LoadedModel::Cpu(model) => {
                let draft = match draft_file {
                    Some(file) => Some((PromptEncoder::from_gguf(&file)?, Model::load(file)?)),
                    None => None,
                };
                EngineHandle::start_with_draft(model, prompts, model_name, config, draft)
            }
            LoadedModel::Gpu(model) => {
                let config = without_speculation_on_the_gpu(config)?;
                EngineHandle::start(model, prompts, model_name, config)
            }
        }
    }

    /// Allocates the KV pool and starts the engine thread for `model`, named `model_name` in
    /// the APIs.
    pub fn start<B: Backend>(
        model: Model<B>,
        prompts: PromptEncoder,
        model_name: impl Into<String>,
        config: EngineConfig,
    ) -> Result<EngineHandle> {
        EngineHandle::start_with_draft(model, prompts, model_name, config, None)
    }

    /// [`EngineHandle::start`] with a draft model for speculative decoding (its tokenizer and
    /// weights), whose KV pool holds as many positions as the model's.
    pub fn start_with_draft<B: Backend>(
        model: Model<B>,
        prompts: PromptEncoder,
        model_name: impl Into<String>,
        config: EngineConfig,
        draft: Option<(PromptEncoder, Model<B>)>,
    ) -> Result<EngineHandle> {
        config.validate(model.config().max_position_embeddings)?;
        let draft = match draft {
            Some((draft_prompts, draft_model)) => Some(DraftModel::new(
                draft_model,
                &draft_prompts,
                &prompts,
                config.num_kv_blocks(),
                config.block_size,
                config.max_num_batched_tokens,
            )?),
            None => None,
        };
        let vocab_size = model.config().vocab_size;
        let num_blocks = config.num_kv_blocks();
        let kv_cache =
            model.new_paged_kv_cache(num_blocks, config.block_size, config.kv_cache_type)?;
        let kv_cache_bytes = kv_cache.size_in_bytes();
        let kv = KvCacheManager::new(num_blocks, config.block_size, config.enable_prefix_caching)?;
        let scheduler = Scheduler::new(
            SchedulerConfig {
                max_num_seqs: config.max_num_seqs,
                max_num_batched_tokens: config.max_num_batched_tokens,
            },
            kv,
        );
        let prompts = Arc::new(prompts);
        let (commands, receiver) = channel();
        let num_in_flight = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(Mutex::new(EngineStats::default()));
        let failure = Arc::new(OnceLock::new());
        let shared_state = SharedState {
            num_in_flight: num_in_flight.clone(),
            stats: stats.clone(),
            failure: failure.clone(),
        };
        let core = EngineCore::new(
            model,
            kv_cache,
            scheduler,
            prompts.clone(),
            receiver,
            shared_state,
            config.context_length,
            config.speculative.clone(),
            draft,
        );
        core.publish_stats();
        let thread = std::thread::Builder::new()
            .name("uma-engine".into())
            .spawn(move || core.run())
            .map_err(EngineError::Thread)?;
        Ok(EngineHandle {
            shared: Arc::new(Shared {
                model_name: model_name.into(),
                config,
                kv_cache_bytes,
                vocab_size,
                prompts,
                commands,
                num_in_flight,
                stats,
                failure,
                accepting: AtomicBool::new(true),
                next_id: AtomicU64::new(1),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The model's name in the APIs.
    pub fn model_name(&self) -> &str {
        &self.shared.model_name
    }

    /// The limits the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Bytes of the KV pool's tensors.
    pub fn kv_cache_bytes(&self) -> usize {
        self.shared.kv_cache_bytes
    }

    /// The model's tokenizer and chat template.
    pub fn prompts(&self) -> &PromptEncoder {
        &self.shared.prompts
    }

    /// The same, shared: for work that runs on another thread (the server tokenizes and
    /// renders templates off its async workers).
    pub fn prompt_encoder(&self) -> Arc<PromptEncoder> {
        self.shared.prompts.clone()
    }

    /// Requests the engine holds at most, running and queued.
    pub fn max_in_flight(&self) -> usize {
        self.shared.config.max_num_seqs + self.shared.config.max_queued_requests
    }

    /// Requests accepted and not yet finished.
    pub fn num_in_flight(&self) -> usize {
        self.shared.num_in_flight.load(Ordering::Acquire)
    }

    /// The engine's state as of its last step.
    pub fn stats(&self) -> EngineStats {
        self.shared.stats.lock().map(|stats| stats.clone()).unwrap_or_default()
    }

    /// Why the engine stopped working, once its loop panicked (see [`EngineError::EngineFailed`]):
    /// it then fails every request, and its owner should replace it.
    pub fn failure(&self) -> Option<&str> {
        self.shared.failure.get().map(String::as_str)
    }

    /// Errors for a handle that takes no work: shutting down, or failed.
    fn check_accepting(&self) -> Result<()> {
        if let Some(detail) = self.failure() {
            return Err(EngineError::EngineFailed { detail: detail.to_owned() });
        }
        if !self.shared.accepting.load(Ordering::Acquire) {
            return Err(EngineError::ShuttingDown);
        }
        Ok(())
    }

    /// Makes the engine loop panic outside the model, as a bug there would: for tests of what
    /// the engine, the registry and the server do then.
    #[doc(hidden)]
    pub fn inject_panic_for_tests(&self) {
        let _ = self.shared.commands.send(Command::InjectPanic);
    }

    /// Validates `request` and queues it. Errors are the caller's to report: an empty or too
    /// long prompt, invalid parameters, a full queue, or an engine that is shutting down or
    /// failed.
    pub fn submit(&self, request: GenerationRequest) -> Result<RequestStream> {
        let shared = &self.shared;
        self.check_accepting()?;
        let GenerationRequest { prompt, params, sampler_stream, grammar } = request;
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let context_length = shared.config.context_length;
        if prompt.len() >= context_length {
            return Err(EngineError::PromptTooLong {
                num_prompt_tokens: prompt.len(),
                context_length,
            });
        }
        // Checked here, not left to the model: a bad id would fail the whole batch it joins.
        if let Some(&token) = prompt.iter().find(|&&token| token as usize >= shared.vocab_size) {
            return Err(EngineError::TokenOutOfRange { token, vocab_size: shared.vocab_size });
        }
        let sampler = Sampler::with_stream(&params, sampler_stream)?;
        let end_of_generation = shared.prompts.tokenizer().end_of_generation_tokens();
        let stop = StopCondition::new(&params, end_of_generation)?;

        let limit = self.max_in_flight();
        shared
            .num_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .map_err(|num_in_flight| EngineError::QueueFull { num_in_flight })?;
        let id = RequestId(shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let constraint = grammar.as_ref().map(OutputGrammar::start);
        let request = NewRequest { id, prompt, sampler, stop, constraint, events };
        if shared.commands.send(Command::Add(Box::new(request))).is_err() {
            shared.num_in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::ShuttingDown);
        }
        Ok(RequestStream::new(id, receiver, shared.commands.clone()))
    }

    /// The embedding of `tokens` (unit length, pooled as the config says). Errors when the
    /// model serves no embeddings, the input is empty or longer than the context, or the
    /// engine stops.
    pub async fn embed(&self, tokens: Vec<TokenId>) -> Result<Vec<f32>> {
        let shared = &self.shared;
        self.check_accepting()?;
        let pooling = shared
            .config
            .pooling
            .ok_or_else(|| EngineError::NoEmbeddings { model: shared.model_name.clone() })?;
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let context_length = shared.config.context_length;
        if tokens.len() > context_length {
            return Err(EngineError::PromptTooLong {
                num_prompt_tokens: tokens.len(),
                context_length,
            });
        }
        if let Some(&token) = tokens.iter().find(|&&token| token as usize >= shared.vocab_size) {
            return Err(EngineError::TokenOutOfRange { token, vocab_size: shared.vocab_size });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = EmbedRequest { tokens, pooling, reply };
        shared
            .commands
            .send(Command::Embed(Box::new(request)))
            .map_err(|_| EngineError::ShuttingDown)?;
        match answer.await {
            Ok(Ok(embedding)) => Ok(embedding),
            Ok(Err(error)) => Err(EngineError::EmbeddingFailed { error: Box::new(error) }),
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }

    /// Asks the engine to stop request `id` (see [`RequestStream::cancel`]), for callers that do
    /// not hold its stream, such as a Ctrl-C handler. An id that is no longer running is ignored.
    pub fn cancel(&self, id: RequestId) {
        // A closed channel means the engine is gone, and the request with it.
        let _ = self.shared.commands.send(Command::Cancel(id));
    }

    /// Stops accepting requests, lets running ones finish for up to `grace`, cancels the rest,
    /// and waits for the engine thread to exit. Blocking; later calls return at once.
    pub fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared.accepting.store(false, Ordering::Release);
        let _ = shared.commands.send(Command::Shutdown { deadline: Instant::now() + grace });
        let thread = shared.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the engine thread panicked");
            }
        }
    }
}

/// Speculative decoding promises the output of plain decoding because the CPU's batched rows
/// are bit-identical to single-token steps (crates/model/tests/batched.rs); nothing checks that
/// of the GPU kernels yet, so on the GPU `auto` means off and asking for it is refused.
fn without_speculation_on_the_gpu(mut config: EngineConfig) -> Result<EngineConfig> {
    let speculative = &config.speculative;
    if speculative.draft_model.is_some()
        || matches!(speculative.mode, SpeculativeMode::Lookup | SpeculativeMode::Draft)
    {
        return Err(EngineError::InvalidConfig {
            reason: "speculative decoding runs on the CPU only for now (--device cpu, or \
                     --speculative off on the GPU)"
                .into(),
        });
    }
    config.speculative.mode = SpeculativeMode::Off;
    Ok(config)
}
