//! Qwen 2 mixture of experts (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): Qwen 2's attention (q/k/v
//! biases, NeoX rope); every feed-forward layer a mixture of experts routed by a softmax whose
//! top weights are used as they are (not rescaled), plus a shared expert every token runs
//! through, scaled by a sigmoid gate of its own.

use crate::recipe::prelude::*;

pub(crate) struct Qwen2Moe;

impl ArchitectureRecipe for Qwen2Moe {
    const NAME: &'static str = "qwen2moe";

    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;

    type Layer<B: Backend> = DecoderLayer<B>;

    /// The experts, and the shared expert's width (`expert_shared_feed_forward_length`).
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        config.experts = Some(ExpertConfig::read(file, ExpertGating::Softmax, false)?);
        Ok(())
    }

    /// Qwen 2's attention tensors, the router and stacked experts, and the shared expert
    /// (`ffn_gate_inp_shexp`, `ffn_{gate,up,down}_shexp`) when the file declares its width.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        let mut experts = MoeFeedForward::load(w, HiddenActivation::Silu)?;
        if let Some(width) = w.config().experts.and_then(|e| e.shared_feed_forward_length) {
            experts = experts.with_shared_expert(w, width)?;
        }
        DecoderLayer::load(w, Attention::load(w)?.with_qkv_bias(w)?, experts)
    }
}
