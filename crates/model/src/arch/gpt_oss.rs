//! OpenAI's gpt-oss (gpt-oss-20b, gpt-oss-120b): every feed-forward layer a mixture of
//! experts in MXFP4, with biases everywhere and a clamped SwiGLU; attention with q/k/v and
//! output biases and a learned sink logit per head, alternating sliding-window (even layers)
//! and full layers; NeoX rope with YaRN scaling (the file's `rope.scaling.*`, applied for
//! every architecture by the common configuration).
//!
//! The router takes the top `expert_used_count` raw logits and a softmax over those alone; the
//! feed-forward norm is stored as `post_attention_norm` (as llama.cpp's converter names it).

use uma_gguf::keys::arch as arch_keys;
use uma_gguf::tensor_names::LayerTensor;

use crate::config::LayerType;
use crate::recipe::prelude::*;

/// Layers alternate: sliding-window, then full attention (llama.cpp's pattern of 2).
const SLIDING_WINDOW_PATTERN: usize = 2;

pub(crate) struct GptOss;

impl ArchitectureRecipe for GptOss {
    const NAME: &'static str = "gpt-oss";

    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;

    type Layer<B: Backend> = DecoderLayer<B>;

    /// The experts (top-k logits, then their softmax), the window of the even layers
    /// (`attention.sliding_window`, required), and their rope base: the full layers' unless
    /// the file gives `rope.freq_base_swa`.
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        config.experts = Some(ExpertConfig::read(file, ExpertGating::SoftmaxOfSelected, false)?);
        config.sliding_window = Some(file.required_sliding_window()?);
        config.layer_types = (0..config.num_hidden_layers)
            .map(|i| {
                if i % SLIDING_WINDOW_PATTERN < SLIDING_WINDOW_PATTERN - 1 {
                    LayerType::SlidingAttention
                } else {
                    LayerType::FullAttention
                }
            })
            .collect();
        if !file.declares(arch_keys::ROPE_FREQ_BASE_SWA) {
            config.rope_local_base_freq = config.rope_theta;
        }
        Ok(())
    }

    /// Required: q/k/v/output weights and biases, `attn_sinks`, `attn_norm`,
    /// `post_attention_norm`, the router with its bias, and the stacked experts with theirs.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<DecoderLayer<B>> {
        let attention = Attention::load(w)?.with_qkv_bias(w)?.with_output_bias(w)?.with_sinks(w)?;
        let experts = MoeFeedForward::load(w, HiddenActivation::SwigluOai)?.with_biases(w)?;
        DecoderLayer::load_with_ffn_norm(w, attention, LayerTensor::PostAttentionNorm, experts)
    }
}
