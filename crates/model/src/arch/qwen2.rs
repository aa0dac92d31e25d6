//! Qwen 2 / 2.5: Llama with q/k/v biases and NeoX rope.

use crate::recipe::prelude::*;

pub(crate) struct Qwen2;

impl ArchitectureRecipe for Qwen2 {
    const NAME: &'static str = "qwen2";

    /// NeoX rope. Only the common hyper-parameters: the trained sliding window is unused by the
    /// released models (`use_sliding_window: false`), and llama.cpp ignores it: so does uma.
    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;

    /// Llama's layer, the projections of q, k and v adding their biases.
    type Layer<B: Backend> = DecoderLayer<B>;

    /// Llama's tensors and, required, the biases `attn_q.bias`, `attn_k.bias`, `attn_v.bias`.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        let swiglu = FeedForward::load(w, HiddenActivation::Silu)?;
        let attention_with_biases = Attention::load(w)?.with_qkv_bias(w)?;
        DecoderLayer::load(w, attention_with_biases, swiglu)
    }
}
