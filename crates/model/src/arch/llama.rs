//! Llama 2/3, Mistral, SmolLM: the plain pre-norm transformer with SwiGLU. llama.cpp's converter
//! permutes Q/K rows so that GGUF llama files use "normal" rope (adjacent pairs). Mistral's
//! declared sliding window is ignored, as llama.cpp does for this architecture.

use crate::config::{ModelConfig, RopeStyle};

pub(crate) fn configure(config: &mut ModelConfig) {
    config.rope_style = RopeStyle::Normal;
}
