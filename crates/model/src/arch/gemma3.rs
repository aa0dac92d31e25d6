//! Gemma 3 (text): per-head q/k norms, four norms per layer (`attn_norm`,
//! `post_attention_norm`, `ffn_norm`, `post_ffw_norm`), embeddings scaled by
//! `sqrt(hidden_size)`, GeGLU with tanh-GELU, NeoX rope, and sliding-window layers: layer `i` is
//! global iff `(i + 1) % pattern == 0` (pattern 6 unless the file says otherwise), with rope
//! base 10 000 on local layers and the file's `rope.freq_base` on global ones.
//!
//! The norm weights in GGUF already include Gemma's `+1` (llama.cpp's converter adds it), so the
//! shared RMSNorm applies them as they are. The attention scale is `query_pre_attn_scalar^-0.5`
//! with `query_pre_attn_scalar = head_dim`, as llama.cpp assumes for every size but 27B (which
//! would need `hidden_size / num_attention_heads`; GGUF does not carry the scalar).

use uma_gguf::keys::arch as arch_keys;
use uma_gguf::tensor_names::LayerTensor;

use crate::blocks::{residual, Embedding, ATTENTION, FEED_FORWARD};
use crate::config::{FileParameters, LayerType, ModelConfig};
use crate::error::ModelError;
use crate::recipe::prelude::*;
use crate::weights::WeightLoader;

/// Gemma 3's default: five local layers, then one global.
const DEFAULT_SLIDING_WINDOW_PATTERN: u64 = 6;

pub(crate) struct Gemma3;

/// A Gemma 3 layer: attention and feed-forward network each between two norms.
pub(crate) struct Gemma3Layer<B: Backend> {
    attn_norm: B::Vector, // [hidden_size]
    attention: Attention<B>,
    post_attention_norm: B::Vector, // [hidden_size]
    ffn_norm: B::Vector,            // [hidden_size]
    feed_forward: FeedForward<B>,
    post_ffw_norm: B::Vector, // [hidden_size]
}

impl ArchitectureRecipe for Gemma3 {
    const NAME: &'static str = "gemma3";
    const ROPE_STYLE: RopeStyle = RopeStyle::Neox;
    type Layer<B: Backend> = Gemma3Layer<B>;

    /// Attention scale `head_dim^-0.5`, and the sliding-window layers: the window
    /// from `attention.sliding_window` (required), the pattern from
    /// `attention.sliding_window_pattern` (6 when absent or not a plain integer: some converters
    /// write a per-layer array, as for Gemma 3n). Local layers take the common
    /// `rope_local_base_freq`.
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        config.attention_scale = 1.0 / (config.head_dim as f32).sqrt();
        let window = file.required_sliding_window()?;
        config.sliding_window = Some(window);
        let pattern = file
            .integer(arch_keys::SLIDING_WINDOW_PATTERN)
            .unwrap_or(DEFAULT_SLIDING_WINDOW_PATTERN);
        if pattern == 0 {
            return Err(ModelError::InvalidConfig {
                name: "sliding_window_pattern",
                reason: "0".into(),
            });
        }
        config.layer_types = (0..config.num_hidden_layers)
            .map(|i| {
                if (i as u64 + 1).is_multiple_of(pattern) {
                    LayerType::FullAttention
                } else {
                    LayerType::SlidingAttention
                }
            })
            .collect();
        Ok(())
    }

    /// The table scaled by `sqrt(hidden_size)`.
    fn load_embedding<B: Backend>(
        weights: &WeightLoader<'_, B>,
        config: &ModelConfig,
    ) -> Result<Embedding<B>> {
        Ok(Embedding::load(weights, config)?.scaled((config.hidden_size as f32).sqrt()))
    }

    /// Required: Llama's tensors, the per-head norms `attn_q_norm`, `attn_k_norm`, and the
    /// post-norms `post_attention_norm`, `post_ffw_norm`.
    fn load_layer<B: Backend>(w: &LayerLoader<'_, B>) -> Result<Gemma3Layer<B>> {
        Ok(Gemma3Layer {
            attn_norm: w.norm(LayerTensor::AttnNorm)?,
            attention: Attention::load(w)?.with_qk_norm(w)?,
            post_attention_norm: w.norm(LayerTensor::PostAttentionNorm)?,
            ffn_norm: w.norm(LayerTensor::FfnNorm)?,
            feed_forward: FeedForward::load(w, HiddenActivation::GeluTanh)?,
            post_ffw_norm: w.norm(LayerTensor::PostFfwNorm)?,
        })
    }
}

impl<B: Backend> LayerRecipe<B> for Gemma3Layer<B> {
    /// Sandwich norms: `x += rms_norm(attention(rms_norm(x)))`, then
    /// `x += rms_norm(geglu_ffn(rms_norm(x)))`.
    fn forward(&self, f: &mut ForwardPass<'_, B>) -> Result<()> {
        let attention =
            |f: &mut ForwardPass<'_, B>, input, out| self.attention.forward(f, input, out);
        residual(f, &ATTENTION, &self.attn_norm, Some(&self.post_attention_norm), attention)?;
        let feed_forward =
            |f: &mut ForwardPass<'_, B>, input, out| self.feed_forward.forward(f, input, out);
        residual(f, &FEED_FORWARD, &self.ffn_norm, Some(&self.post_ffw_norm), feed_forward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_local_layers_then_one_global() {
        let mut types = Vec::new();
        for i in 0..18u64 {
            types.push((i + 1) % DEFAULT_SLIDING_WINDOW_PATTERN == 0);
        }
        let globals: Vec<usize> = (0..18).filter(|&i| types[i]).collect();
        assert_eq!(globals, vec![5, 11, 17]);
    }
}
