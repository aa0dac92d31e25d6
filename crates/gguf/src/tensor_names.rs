//! Every GGUF tensor name the project uses, in one place (llama.cpp's `LLM_TENSOR_NAMES`).
//!
//! A name is a base, optionally in layer `i` (`blk.{i}.`), with a `.weight` or `.bias` suffix:
//! [`ModelTensor`] names the tensors a model has once (`token_embd.weight`), [`LayerTensor`] the
//! ones every layer has (`blk.3.attn_q.weight`, `blk.3.attn_q.bias`).

/// Suffix of a tensor's weights.
pub const WEIGHT_SUFFIX: &str = "weight";
/// Suffix of a tensor's biases.
pub const BIAS_SUFFIX: &str = "bias";
/// Prefix of per-layer tensors, before the layer index.
pub const LAYER_PREFIX: &str = "blk";
/// Part of the base name of a tensor that stacks every expert of a mixture-of-experts layer
/// (`ffn_up_exps`); shared experts (`ffn_up_shexp`) do not carry it.
pub const STACKED_EXPERTS_MARKER: &str = "_exps";

/// An enum of tensor kinds with their GGUF base names; `model` kinds also get their whole
/// weight names (`token_embd.weight`).
macro_rules! tensor_kinds {
    (
        model $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $base:literal,)* }
    ) => {
        tensor_kinds! { $(#[$meta])* $name { $($(#[$variant_meta])* $variant => $base,)* } }

        impl $name {
            /// `"{base}.weight"`: the whole name of the tensor's weights.
            pub const fn weight_name(self) -> &'static str {
                match self {
                    $($name::$variant => concat!($base, ".weight"),)*
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $base:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// Every kind, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The base name, without layer prefix or suffix (`attn_q`).
            pub const fn base_name(self) -> &'static str {
                match self {
                    $($name::$variant => $base,)*
                }
            }
        }
    };
}

tensor_kinds! {
    model
    /// A tensor a model has once.
    ModelTensor {
        /// `[vocab_size, hidden_size]`: the token embedding table (and the output head when
        /// there is no [`ModelTensor::Output`]).
        TokenEmbedding => "token_embd",
        /// `[hidden_size]`: the norm before the output head.
        OutputNorm => "output_norm",
        /// `[vocab_size, hidden_size]`: the output head (absent when tied to the embeddings).
        Output => "output",
        /// Per-dimension rope frequency factors (Llama 3.1 style rope scaling).
        RopeFreqs => "rope_freqs",
    }
}

tensor_kinds! {
    /// A tensor every layer (`blk.{i}.`) has, or may have.
    LayerTensor {
        /// The norm before attention.
        AttnNorm => "attn_norm",
        AttnQ => "attn_q",
        AttnK => "attn_k",
        AttnV => "attn_v",
        /// Q, K and V fused in one matrix.
        AttnQkv => "attn_qkv",
        AttnOutput => "attn_output",
        /// Per-head RMS norm of the queries, before rope.
        AttnQNorm => "attn_q_norm",
        /// Per-head RMS norm of the keys, before rope.
        AttnKNorm => "attn_k_norm",
        /// The norm after attention, before the residual add (Gemma's sandwich norms).
        PostAttentionNorm => "post_attention_norm",
        /// Per-head attention sinks (gpt-oss).
        AttnSinks => "attn_sinks",
        /// Multi-head latent attention (DeepSeek): low-rank query and key-value projections.
        AttnQA => "attn_q_a",
        AttnQB => "attn_q_b",
        AttnQANorm => "attn_q_a_norm",
        AttnKvAMqa => "attn_kv_a_mqa",
        AttnKvANorm => "attn_kv_a_norm",
        AttnKvB => "attn_kv_b",
        AttnKB => "attn_k_b",
        AttnVB => "attn_v_b",
        /// The norm before the feed-forward network.
        FfnNorm => "ffn_norm",
        FfnGate => "ffn_gate",
        FfnUp => "ffn_up",
        FfnDown => "ffn_down",
        /// The norm after the feed-forward network, before the residual add (Gemma).
        PostFfwNorm => "post_ffw_norm",
        /// The router of a mixture-of-experts layer: one logit per expert.
        FfnGateInp => "ffn_gate_inp",
        /// Every expert's matrices, stacked.
        FfnGateExps => "ffn_gate_exps",
        FfnUpExps => "ffn_up_exps",
        FfnDownExps => "ffn_down_exps",
        /// The shared experts, which every token runs.
        FfnGateShexp => "ffn_gate_shexp",
        FfnUpShexp => "ffn_up_shexp",
        FfnDownShexp => "ffn_down_shexp",
        /// The gate of the shared experts' output (Qwen 2 MoE).
        FfnGateInpShexp => "ffn_gate_inp_shexp",
        /// Per-expert bias added to the router's scores when choosing experts (DeepSeek V3).
        ExpProbsB => "exp_probs_b",
    }
}

impl LayerTensor {
    /// `blk.{layer}.{base}.weight`.
    pub fn weight(self, layer: usize) -> String {
        self.name(layer, WEIGHT_SUFFIX)
    }

    /// `blk.{layer}.{base}.bias`.
    pub fn bias(self, layer: usize) -> String {
        self.name(layer, BIAS_SUFFIX)
    }

    /// Whether the tensor stacks every expert of a mixture-of-experts layer.
    pub fn holds_stacked_experts(self) -> bool {
        self.base_name().contains(STACKED_EXPERTS_MARKER)
    }

    fn name(self, layer: usize, suffix: &str) -> String {
        format!("{LAYER_PREFIX}.{layer}.{}.{suffix}", self.base_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_are_llama_cpp_s() {
        assert_eq!(ModelTensor::TokenEmbedding.weight_name(), "token_embd.weight");
        assert_eq!(LayerTensor::AttnQ.weight(0), "blk.0.attn_q.weight");
        assert_eq!(LayerTensor::AttnK.bias(11), "blk.11.attn_k.bias");
        assert_eq!(LayerTensor::PostFfwNorm.weight(2), "blk.2.post_ffw_norm.weight");
        assert_eq!(LayerTensor::ExpProbsB.bias(3), "blk.3.exp_probs_b.bias");
    }

    #[test]
    fn model_weight_names_are_base_names_with_the_weight_suffix() {
        for tensor in ModelTensor::ALL {
            let expected = format!("{}.{WEIGHT_SUFFIX}", tensor.base_name());
            assert_eq!(tensor.weight_name(), expected);
        }
    }

    #[test]
    fn base_names_are_unique_and_only_stacked_experts_carry_the_marker() {
        let mut names: Vec<&str> = LayerTensor::ALL.iter().map(|t| t.base_name()).collect();
        names.extend(ModelTensor::ALL.iter().map(|t| t.base_name()));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        let experts: Vec<LayerTensor> =
            LayerTensor::ALL.iter().copied().filter(|t| t.holds_stacked_experts()).collect();
        assert_eq!(
            experts,
            [LayerTensor::FfnGateExps, LayerTensor::FfnUpExps, LayerTensor::FfnDownExps]
        );
    }
}
