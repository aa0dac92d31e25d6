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

use crate::config::{HiddenActivation, LayerType, ModelConfig, RopeStyle};
use crate::error::{ModelError, Result};

/// Gemma 3's default: five local layers, then one global.
const DEFAULT_SLIDING_WINDOW_PATTERN: u64 = 6;

pub(crate) fn configure(
    config: &mut ModelConfig,
    sliding_window: Option<u64>,
    sliding_window_pattern: Option<u64>,
) -> Result<()> {
    config.rope_style = RopeStyle::Neox;
    config.qk_norm = true;
    config.sandwich_norms = true;
    config.hidden_activation = HiddenActivation::GeluTanh;
    config.embedding_scale = Some((config.hidden_size as f32).sqrt());
    config.attention_scale = 1.0 / (config.head_dim as f32).sqrt();
    let window = sliding_window.ok_or(ModelError::InvalidConfig {
        name: "sliding_window",
        reason: "gemma3 needs attention.sliding_window".into(),
    })?;
    let window = usize::try_from(window)
        .ok()
        .filter(|&w| w > 0)
        .ok_or(ModelError::InvalidConfig { name: "sliding_window", reason: format!("{window}") })?;
    config.sliding_window = Some(window);
    let pattern = sliding_window_pattern.unwrap_or(DEFAULT_SLIDING_WINDOW_PATTERN);
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
