//! Llama 2/3, Mistral, SmolLM: the plain pre-norm transformer with SwiGLU.

use crate::recipe::prelude::*;

pub(crate) struct Llama;

impl ArchitectureRecipe for Llama {
    const NAME: &'static str = "llama";

    /// "Normal" rope (adjacent pairs): llama.cpp's converter permutes Q/K rows so that GGUF
    /// llama files use it. Only the common hyper-parameters: Mistral's declared sliding window is
    /// ignored, as llama.cpp does for this architecture.
    const ROPE_STYLE: RopeStyle = RopeStyle::Normal;

    /// The standard layer: `x += attention(rms_norm(x))`, then `x += swiglu_ffn(rms_norm(x))`.
    type Layer<B: Backend> = DecoderLayer<B>;

    /// Required: `attn_norm`, `attn_q`, `attn_k`, `attn_v`, `attn_output`, `ffn_norm`,
    /// `ffn_gate`, `ffn_up`, `ffn_down`. Nothing optional.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        let feed_forward = FeedForward::load(w, HiddenActivation::Silu)?;
        DecoderLayer::load(w, Attention::load(w)?, feed_forward)
    }
}
