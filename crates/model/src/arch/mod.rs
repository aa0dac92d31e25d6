//! One file per architecture: what it changes in the shared transformer ([`crate::transformer`])
//! and which tensors it carries ([`crate::weights`] asks [`crate::ModelConfig`]'s flags).

pub(crate) mod gemma3;
pub(crate) mod llama;
pub(crate) mod qwen2;
pub(crate) mod qwen3;
