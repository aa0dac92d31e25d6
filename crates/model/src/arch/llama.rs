//! Llama 2/3, Mistral, SmolLM: the plain pre-norm transformer with SwiGLU; Mixtral: the same
//! with every feed-forward layer a mixture of experts (the file declares `expert_count`),
//! routed by a softmax whose top weights are rescaled to sum to one.

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

    /// Mixtral's experts when the file declares `expert_count`, each `feed_forward_length` wide.
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        if file.integer("expert_count").is_some() {
            let width = Some(config.intermediate_size);
            let experts = ExpertConfig::read_with_width(file, ExpertGating::Softmax, true, width)?;
            config.experts = Some(experts);
        }
        Ok(())
    }

    /// Required: `attn_norm`, `attn_q`, `attn_k`, `attn_v`, `attn_output`, `ffn_norm`, and
    /// `ffn_gate`, `ffn_up`, `ffn_down`, or for Mixtral the router `ffn_gate_inp` and the stacked
    /// `ffn_{gate,up,down}_exps`.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        let attention = Attention::load(w)?;
        if w.config().experts.is_some() {
            let experts = MoeFeedForward::load(w, HiddenActivation::Silu)?;
            return DecoderLayer::load(w, attention, experts);
        }
        DecoderLayer::load(w, attention, FeedForward::load(w, HiddenActivation::Silu)?)
    }
}
