//! A model described by its hyper-parameters instead of a file: enough to plan for a model not
//! downloaded yet.

use crate::error::{PlannerError, Result};
use crate::model_spec::ModelSpec;
use crate::quantization::Quantization;

/// Matrices of a gated feed-forward block: gate, up and down.
const FFN_MATRICES: u64 = 3;

/// A model's hyper-parameters (Hugging Face names) and how its weights are stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDescription {
    /// Label for reports.
    pub name: String,
    /// Every weight, embeddings and all experts included.
    pub num_parameters: u64,
    pub num_hidden_layers: u64,
    pub hidden_size: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    /// Default: `hidden_size / num_attention_heads`.
    pub head_dim: Option<u64>,
    pub vocab_size: u64,
    /// Feed-forward size per expert. Default: what the parameter count leaves after embeddings
    /// and attention, spread over gate, up and down of every layer and expert.
    pub intermediate_size: Option<u64>,
    pub quantization: Quantization,
    /// Experts per layer of a mixture-of-experts model, and how many a token uses.
    pub num_experts: Option<u64>,
    pub num_experts_per_token: Option<u64>,
    /// The output head reuses the token embedding table (common below ~4B parameters).
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: Option<u64>,
    /// Window of the sliding-window layers (Gemma 3's local layers, every other layer of
    /// gpt-oss), and how many layers have it.
    pub sliding_window: Option<u64>,
    pub num_sliding_window_layers: u64,
}

impl ModelDescription {
    /// The name a described model goes by in reports: its size, `"268.10 M model"`.
    pub fn default_name(num_parameters: u64) -> String {
        format!("{} model", count(num_parameters))
    }

    /// The planner's view of the described model. Errors name the hyper-parameter that does not
    /// add up.
    pub fn spec(&self) -> Result<ModelSpec> {
        for (name, value) in [
            ("num_parameters", self.num_parameters),
            ("num_hidden_layers", self.num_hidden_layers),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("vocab_size", self.vocab_size),
        ] {
            if value == 0 {
                return Err(PlannerError::invalid(name, "must be at least 1"));
            }
        }
        if self.num_key_value_heads > self.num_attention_heads {
            return Err(PlannerError::invalid(
                "num_key_value_heads",
                format!(
                    "{} exceeds num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        let (num_experts, num_experts_per_token) = self.experts()?;
        match (self.sliding_window, self.num_sliding_window_layers) {
            (None, 0) => {}
            (Some(window), layers) if window >= 1 && layers <= self.num_hidden_layers => {}
            (Some(_), layers) if layers > self.num_hidden_layers => {
                return Err(PlannerError::invalid(
                    "num_sliding_window_layers",
                    format!("{layers} exceeds num_hidden_layers {}", self.num_hidden_layers),
                ))
            }
            _ => {
                return Err(PlannerError::invalid(
                    "sliding_window",
                    "give the window (at least 1) and the number of sliding-window layers",
                ))
            }
        }
        let head_dim = match self.head_dim {
            Some(0) => return Err(PlannerError::invalid("head_dim", "must be at least 1")),
            Some(d) => d,
            None => self.hidden_size / self.num_attention_heads,
        };
        let hidden = self.hidden_size;
        let q_dim = self.num_attention_heads * head_dim;
        let kv_dim = self.num_key_value_heads * head_dim;
        let embedding = self.vocab_size * hidden;
        let embeddings = if self.tie_word_embeddings { embedding } else { 2 * embedding };
        let attention = self.num_hidden_layers * (2 * hidden * q_dim + 2 * hidden * kv_dim);
        let ffn_per_size = self.num_hidden_layers * FFN_MATRICES * hidden * num_experts;
        let intermediate_size = match self.intermediate_size {
            Some(size) => size,
            None => {
                let left = self.num_parameters.saturating_sub(embeddings + attention);
                let size = left / ffn_per_size;
                if size == 0 {
                    return Err(PlannerError::invalid(
                        "num_parameters",
                        format!(
                            "{} leaves no room for feed-forward weights after {} of embeddings \
                             and attention (check --params, --hidden, --layers, --vocab)",
                            self.num_parameters,
                            embeddings + attention
                        ),
                    ));
                }
                size
            }
        };
        let expert_parameters = if num_experts > 1 { ffn_per_size * intermediate_size } else { 0 };
        let inactive_experts =
            expert_parameters - expert_parameters * num_experts_per_token / num_experts;
        let gathered_table = if self.tie_word_embeddings { 0 } else { embedding };
        let num_active_parameters =
            self.num_parameters.saturating_sub(inactive_experts).saturating_sub(gathered_table)
                + if self.tie_word_embeddings { 0 } else { hidden };

        let quantization = &self.quantization;
        let file_weight_bytes = quantization.bytes_for(self.num_parameters);
        let embedding_table_bytes = quantization.bytes_for(embedding);
        let embedding_row_bytes = embedding_table_bytes / self.vocab_size;
        let mapped_table = if self.tie_word_embeddings { 0 } else { embedding_table_bytes };
        let repacked = |bytes: u64| (bytes as f64 * quantization.repack_factor).round() as u64;
        let resident_weight_bytes = repacked(file_weight_bytes - mapped_table);
        // The feed-forward matrices (all experts stacked) are the largest after the head.
        let largest_tensor_file_bytes =
            quantization.bytes_for(hidden * intermediate_size * num_experts);
        Ok(ModelSpec {
            name: self.name.clone(),
            architecture: None,
            quantization: quantization.name.clone(),
            num_parameters: self.num_parameters,
            num_active_parameters,
            num_hidden_layers: self.num_hidden_layers,
            hidden_size: hidden,
            intermediate_size,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            head_dim,
            value_head_dim: head_dim,
            vocab_size: self.vocab_size,
            max_position_embeddings: self.max_position_embeddings,
            num_experts: self.num_experts,
            num_experts_per_token: self.num_experts_per_token,
            sliding_window: self.sliding_window.filter(|_| self.num_sliding_window_layers > 0),
            num_sliding_window_layers: self.num_sliding_window_layers,
            tie_word_embeddings: self.tie_word_embeddings,
            file_weight_bytes,
            resident_weight_bytes,
            embedding_table_bytes,
            embedding_row_bytes,
            output_head_file_bytes: embedding_table_bytes,
            output_head_resident_bytes: repacked(embedding_table_bytes),
            largest_tensor_file_bytes,
            weight_bytes_per_token: quantization.bytes_for(num_active_parameters),
        })
    }

    /// `(experts per layer, experts per token)`: `(1, 1)` for a dense model.
    fn experts(&self) -> Result<(u64, u64)> {
        match (self.num_experts, self.num_experts_per_token) {
            (None, None) => Ok((1, 1)),
            (Some(total), Some(active)) if active >= 1 && active <= total => Ok((total, active)),
            (Some(total), Some(active)) => Err(PlannerError::invalid(
                "num_experts_per_token",
                format!("{active} is not between 1 and num_experts {total}"),
            )),
            _ => Err(PlannerError::invalid(
                "num_experts",
                "give both the number of experts and the number active per token",
            )),
        }
    }
}

/// `268098176` → `"268.10 M"`: a count of parameters with a decimal suffix.
pub fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.2} K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} M", n as f64 / 1e6),
        _ => format!("{:.2} B", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mixtral 8x7B's published shape: 32 layers, hidden 4,096, 32 heads, 8 KV heads, 32,000
    /// tokens, 8 experts of 14,336, 2 per token.
    fn mixtral(num_experts: Option<u64>, num_experts_per_token: Option<u64>) -> ModelDescription {
        ModelDescription {
            name: "mixtral".into(),
            num_parameters: 46_701_477_888,
            num_hidden_layers: 32,
            hidden_size: 4096,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            head_dim: None,
            vocab_size: 32_000,
            intermediate_size: None,
            quantization: Quantization::from_name("q8_0").expect("known"),
            num_experts,
            num_experts_per_token,
            tie_word_embeddings: false,
            max_position_embeddings: Some(32_768),
            sliding_window: None,
            num_sliding_window_layers: 0,
        }
    }

    #[test]
    fn mixture_of_experts_counts_active_experts_only() {
        let spec = mixtral(Some(8), Some(2)).spec().expect("valid");
        // 46.70 B = 2 × 131.1 M embeddings + 32 × 41.9 M attention + 32 × 3 × 4,096 × 8 × ffn.
        assert_eq!(spec.intermediate_size, 14_336);
        let experts = 32 * 3 * 4096 * 8 * 14_336_u64;
        // Six of eight experts idle, the embedding table gathered (one row of it read).
        let active = 46_701_477_888 - experts * 6 / 8 - 32_000 * 4096 + 4096;
        assert_eq!(spec.num_active_parameters, active);
        assert_eq!(active, 12_747_542_528); // Mixtral's published "12.9 B active", less norms
        let q8 = Quantization::from_name("q8_0").expect("known");
        assert_eq!(spec.weight_bytes_per_token, q8.bytes_for(active));
        // The same parameters as one dense model read every weight per token.
        let dense = ModelDescription { intermediate_size: Some(8 * 14_336), ..mixtral(None, None) };
        let dense = dense.spec().expect("valid");
        assert!(dense.weight_bytes_per_token > 3 * spec.weight_bytes_per_token);
        // Both hold every expert in memory.
        assert_eq!(dense.resident_weight_bytes, spec.resident_weight_bytes);
    }

    #[test]
    fn descriptions_that_do_not_add_up_are_refused() {
        for (description, needle) in [
            (mixtral(Some(8), None), "num_experts"),
            (mixtral(Some(8), Some(9)), "num_experts_per_token"),
            (ModelDescription { num_parameters: 1_000_000, ..mixtral(None, None) }, "no room"),
            (ModelDescription { hidden_size: 0, ..mixtral(None, None) }, "hidden_size"),
            (ModelDescription { num_key_value_heads: 64, ..mixtral(None, None) }, "exceeds"),
            (ModelDescription { head_dim: Some(0), ..mixtral(None, None) }, "head_dim"),
            (
                ModelDescription { num_sliding_window_layers: 4, ..mixtral(None, None) },
                "sliding_window",
            ),
            (
                ModelDescription {
                    sliding_window: Some(128),
                    num_sliding_window_layers: 33,
                    ..mixtral(None, None)
                },
                "exceeds num_hidden_layers",
            ),
        ] {
            let error = description.spec().expect_err(needle).to_string();
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn sliding_window_layers_read_their_window_only() {
        let described = ModelDescription {
            sliding_window: Some(128),
            num_sliding_window_layers: 16,
            ..mixtral(None, None)
        };
        let spec = described.spec().expect("valid");
        assert_eq!((spec.sliding_window, spec.num_sliding_window_layers), (Some(128), 16));
        let full = mixtral(None, None).spec().expect("valid");
        let per_layer = spec.kv_bytes_per_token_per_layer(crate::KvCacheType::F16);
        // At position 1,000: 16 full layers read 1,000 positions, 16 windowed ones 128.
        assert_eq!(
            spec.kv_read_bytes_per_token(1000, crate::KvCacheType::F16),
            per_layer * (16 * 1000 + 16 * 128)
        );
        assert_eq!(full.kv_read_bytes_per_token(1000, crate::KvCacheType::F16), per_layer * 32_000);
        // A prompt's attention: half the layers at n²/2, the others n²/2 only up to the window.
        let per_position = (2 * 32 * 256) as f64;
        let n = 1000.0;
        let windowed = 128.0 * 128.0 / 2.0 + (n - 128.0) * 128.0;
        let expected = per_position * (16.0 * n * n / 2.0 + 16.0 * windowed);
        assert!((spec.attention_flops_for_prompt(1000) - expected).abs() < 1.0);
        assert!(
            (full.attention_flops_for_prompt(1000) - per_position * 32.0 * n * n / 2.0).abs() < 1.0
        );
    }

    #[test]
    fn tied_embeddings_are_resident_and_read_whole() {
        let tied = ModelDescription { tie_word_embeddings: true, ..mixtral(None, None) };
        let untied = mixtral(None, None).spec().expect("valid");
        let tied = tied.spec().expect("valid");
        // One table fewer, so more feed-forward for the same count; the table is the head.
        assert_eq!(tied.num_active_parameters, tied.num_parameters);
        assert_eq!(tied.resident_weight_bytes, tied.file_weight_bytes);
        assert_eq!(
            untied.resident_weight_bytes,
            untied.file_weight_bytes - untied.embedding_table_bytes
        );
        assert_eq!(untied.embedding_row_bytes, untied.embedding_table_bytes / 32_000);
    }
}
