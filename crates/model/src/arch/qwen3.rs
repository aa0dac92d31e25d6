//! Qwen 3 (dense): no biases, per-head RMS norms of q and k before rope, NeoX rope.

use crate::recipe::prelude::*;

pub(crate) struct Qwen3;

impl ArchitectureRecipe for Qwen3 {
    const NAME: &'static str = "qwen3";

    /// NeoX rope, and only the common hyper-parameters (`head_dim`, from
    /// `attention.key_length`, may differ from `hidden_size / num_attention_heads`).
    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;

    /// Llama's layer, q and k each normed per head before rope.
    type Layer<B: Backend> = DecoderLayer<B>;

    /// Llama's tensors and, required, the per-head norms `attn_q_norm`, `attn_k_norm`.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        DecoderLayer::load(
            w,
            Attention::load(w)?.with_qk_norm(w)?,
            FeedForward::load(w, HiddenActivation::Silu)?,
        )
    }
}
