//! Transformer language models over GGUF weights: hyper-parameters ([`ModelConfig`]), one file
//! per architecture (llama, qwen2, qwen3, gemma3) built from shared blocks (embedding, attention
//! with rope over a paged cache, gated feed-forward, output head), and the [`Backend`] they run
//! on: [`CpuBackend`] (RMSNorm, rope normal and NeoX, grouped-query attention, SwiGLU/GeGLU on
//! `uma-kernels`) holds the weights, repacked or borrowed from the memory-mapped file.
//!
//! [`Model::forward`] computes logits for a [`Batch`]: tokens of several sequences at different
//! positions, each with a block table into a paged [`KvCache`]. Single-sequence generation is a
//! batch of one.
//!
//! This crate owns the model arithmetic. It does not own the KV cache's bookkeeping (which
//! blocks are free or shared: the `kv` crate), scheduling (the engine), tokenization or sampling;
//! the matrix kernels live in `uma-kernels`, tensor names in `uma_gguf::tensor_names`.
#![forbid(unsafe_code)]

mod arch;
pub mod backend;
mod batch;
mod blocks;
mod config;
mod error;
mod experts;
mod forward;
mod hook;
mod kv_cache_type;
pub mod layers;
mod model;
mod recipe;
mod weights;

pub use backend::cpu::{CpuBackend, KvCache};
pub use backend::Backend;
pub use batch::{Batch, HiddenStates, Logits, LogitsRequest, LogitsRow, SequenceInput};
pub use config::{
    Architecture, ExpertConfig, ExpertGating, ExpertGroups, HiddenActivation, LayerType, MlaConfig,
    ModelConfig, RopeStyle, Yarn,
};
pub use error::{ModelError, Result};
pub use hook::{Activation, ActivationHook, LayerDump};
pub use kv_cache_type::{KvCacheType, DEFAULT_BLOCK_SIZE};
pub use model::Model;
pub use uma_ids::{BlockId, TokenId};
