//! OLMoE (allenai/OLMoE-1B-7B): Llama's layer with RMS norms over each token's whole q and
//! whole k before NeoX rope, and every feed-forward layer a mixture of experts routed by a
//! softmax whose top weights are used as they are (not rescaled).

use crate::recipe::prelude::*;

pub(crate) struct Olmoe;

impl ArchitectureRecipe for Olmoe {
    const NAME: &'static str = "olmoe";

    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;

    type Layer<B: Backend> = DecoderLayer<B>;

    /// The experts: `expert_count`, `expert_used_count`, each `feed_forward_length` wide (the
    /// converter writes no expert width; llama.cpp reads this one).
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        let width = Some(config.intermediate_size);
        let experts = ExpertConfig::read_with_width(file, ExpertGating::Softmax, false, width)?;
        config.experts = Some(experts);
        Ok(())
    }

    /// Llama's attention tensors with `attn_q_norm` (`[q_dim]`) and `attn_k_norm` (`[kv_dim]`),
    /// the router and the stacked experts.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        DecoderLayer::load(
            w,
            Attention::load(w)?.with_whole_qk_norm(w)?,
            MoeFeedForward::load(w, HiddenActivation::Silu)?,
        )
    }
}
