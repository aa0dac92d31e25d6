//! The serving engine of one model: requests in, token streams out.
//!
//! Owns the step loop `schedule → execute → update` ([`EngineHandle`] starts it on its own
//! thread): the [`Scheduler`] decides from token counts alone which tokens of which requests the
//! next step computes (decode tokens first, then prompt chunks, under a token budget; newest
//! request preempted when KV blocks run out), the model runs once over all of them, and each
//! request's own sampler and stop condition turn its logits into text on its [`RequestStream`].
//! It also owns turning chat messages into prompt tokens ([`PromptEncoder`]), starting a model
//! from its GGUF file ([`EngineHandle::open`], for `uma serve` and `uma run` alike), and the
//! engine's limits and their defaults ([`EngineConfig`]).
//!
//! Does not own: the model arithmetic (`uma-model`), KV block bookkeeping (`uma-kv`), sampling
//! rules (`uma-sampling`), HTTP and API formats (`uma-server`).
#![forbid(unsafe_code)]

mod device;
mod draft_model;
mod engine_config;
mod engine_core;
mod engine_handle;
mod engine_stats;
mod error;
mod model_registry;
mod output;
mod pooling;
mod prompt_encoder;
mod request_stream;
mod scheduler;
mod speculation;
pub mod speculative_workload;

pub use device::{gpu_memory_limit, gpu_need_bytes, Device, LoadedModel};
pub use draft_model::check_same_vocabulary;
pub use engine_config::EngineConfig;
pub use engine_handle::{EngineHandle, GenerationRequest};
pub use engine_stats::EngineStats;
pub use error::{EngineError, LoadError, Result};
pub use model_registry::{
    KeepAlive, ModelEntry, ModelInfo, ModelLease, ModelLoader, ModelRegistry, ModelStatus,
    RegistryConfig, Residency,
};
pub use output::{Completion, StreamEvent, TokenOutput, Usage};
pub use pooling::Pooling;
pub use prompt_encoder::{ChatPrompt, PromptEncoder};
pub use request_stream::RequestStream;
pub use scheduler::{KvCopy, ScheduledChunk, Scheduler, SchedulerConfig, SchedulerOutput};
pub use speculation::{lookup_drafts, SpeculativeConfig, SpeculativeMode};
pub use uma_kv::RequestId;
pub use uma_model::TokenId;
