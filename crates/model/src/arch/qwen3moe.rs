//! Qwen 3 mixture of experts (Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder): Qwen 3's attention
//! (per-head q/k norms, NeoX rope), every feed-forward layer a mixture of experts routed by a
//! softmax whose top `expert_used_count` weights are rescaled to sum to one (llama.cpp always
//! does for `qwen3moe`; transformers' `norm_topk_prob` of the released models).

use crate::recipe::prelude::*;

pub(crate) struct Qwen3Moe;

impl ArchitectureRecipe for Qwen3Moe {
    const NAME: &'static str = "qwen3moe";

    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;

    type Layer<B: Backend> = DecoderLayer<B>;

    /// The experts: `expert_count`, `expert_used_count`, `expert_feed_forward_length`.
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        config.experts = Some(ExpertConfig::read(file, ExpertGating::Softmax, true)?);
        Ok(())
    }

    /// Qwen 3's attention tensors, `ffn_gate_inp` and the stacked `ffn_{gate,up,down}_exps`.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        DecoderLayer::load(
            w,
            Attention::load(w)?.with_qk_norm(w)?,
            MoeFeedForward::load(w, HiddenActivation::Silu)?,
        )
    }
}
