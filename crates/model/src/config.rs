//! Model hyper-parameters under Hugging Face names: what every architecture reads from the file
//! ([`ModelParams`] and a few keys of its own), which the architecture's file under `arch/`
//! completes (rope style, sliding-window layers, ...). [`ModelConfig::from_file`], which needs
//! to know the architectures, lives with their registry (`arch/mod.rs`).

use uma_gguf::keys::{arch as arch_keys, arch_key};
use uma_gguf::tensor_names::ModelTensor;
use uma_gguf::{GgufFile, Metadata, ModelParams};

use crate::error::{ModelError, Result};

/// A transformer family uma implements, one file each under `arch/`, by its
/// `general.architecture` name ([`Architecture::from_name`] knows which exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Architecture {
    pub(crate) name: &'static str,
}

impl Architecture {
    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        self.name
    }
}

/// What an architecture's file reads to set its own hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileParameters<'a> {
    pub(crate) params: &'a ModelParams,
    metadata: &'a Metadata,
}

impl FileParameters<'_> {
    /// The integer `<architecture>.<suffix>`, when the file declares it as a plain integer.
    pub(crate) fn integer(&self, suffix: &str) -> Option<u64> {
        let key = arch_key(&self.params.architecture, suffix);
        self.metadata.get_u64(&key).ok().flatten()
    }
}

/// Which dimensions rope rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i + 1)` (ggml's mode 0; llama in GGUF, whose converter permuted Q/K).
    Normal,
    /// Halves `(i, i + d/2)` (ggml's NeoX mode; Hugging Face's `rotate_half`).
    Neox,
}

/// The gate activation of the gated feed-forward network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenActivation {
    /// SwiGLU: `silu(gate) · up`.
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// Whether a layer attends to the whole context or a window (Hugging Face's `layer_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    FullAttention,
    /// Attends to positions `j` with `p - j < sliding_window`.
    SlidingAttention,
}

/// How a mixture-of-experts layer turns its router's logits into expert weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertGating {
    /// Softmax over all experts, then the top `used` (Qwen-MoE, Mixtral, OLMoE).
    Softmax,
    /// A sigmoid per expert (DeepSeek V3).
    Sigmoid,
}

/// The experts of a mixture-of-experts model's feed-forward layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpertConfig {
    /// Experts per layer (`expert_count`).
    pub count: usize,
    /// Experts each token runs through (`expert_used_count`).
    pub used: usize,
    /// Each expert's feed-forward width (`expert_feed_forward_length`).
    pub feed_forward_length: usize,
    pub gating: ExpertGating,
    /// Whether the selected experts' weights are rescaled to sum to one.
    pub normalize_weights: bool,
    /// The width of the expert every token also runs through, when there is one
    /// (`expert_shared_feed_forward_length`).
    pub shared_feed_forward_length: Option<usize>,
}

impl ExpertConfig {
    /// Reads `expert_count`, `expert_used_count` and `expert_feed_forward_length` of `file`,
    /// checked: at least one expert used, no more than exist.
    pub(crate) fn read(
        file: &FileParameters<'_>,
        gating: ExpertGating,
        normalize_weights: bool,
    ) -> Result<ExpertConfig> {
        ExpertConfig::read_with_width(file, gating, normalize_weights, None)
    }

    /// [`ExpertConfig::read`] where a missing `expert_feed_forward_length` means `width`
    /// (Mixtral: its experts are `feed_forward_length` wide, and the converter says so only
    /// there), when given.
    pub(crate) fn read_with_width(
        file: &FileParameters<'_>,
        gating: ExpertGating,
        normalize_weights: bool,
        width: Option<usize>,
    ) -> Result<ExpertConfig> {
        let read = |name: &'static str, suffix: &str| -> Result<usize> {
            let value = file
                .integer(suffix)
                .ok_or(ModelError::InvalidConfig { name, reason: "missing".into() })?;
            match usize::try_from(value) {
                Ok(v) if v > 0 && v <= 1 << 24 => Ok(v),
                _ => Err(ModelError::InvalidConfig { name, reason: format!("{value}") }),
            }
        };
        let count = read("num_experts", "expert_count")?;
        let used = read("num_experts_per_tok", "expert_used_count")?;
        if used > count {
            return Err(ModelError::InvalidConfig {
                name: "num_experts_per_tok",
                reason: format!("{used} experts per token of {count}"),
            });
        }
        let feed_forward_length = match (file.integer("expert_feed_forward_length"), width) {
            (None, Some(width)) => width,
            _ => read("moe_intermediate_size", "expert_feed_forward_length")?,
        };
        let shared_feed_forward_length = match file.integer("expert_shared_feed_forward_length") {
            Some(_) => {
                Some(read("shared_expert_intermediate_size", "expert_shared_feed_forward_length")?)
            }
            None => None,
        };
        Ok(ExpertConfig {
            count,
            used,
            feed_forward_length,
            gating,
            normalize_weights,
            shared_feed_forward_length,
        })
    }
}

/// Everything the forward pass needs to know about a model's shape and arithmetic.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Trained context; positions at or past it are refused.
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f32,
    /// Rope base of full-attention layers.
    pub rope_theta: f32,
    /// Rope base of sliding-window layers (Gemma 3: 10 000).
    pub rope_local_base_freq: f32,
    /// Linear rope scaling: positions are multiplied by this (1 / factor).
    pub rope_freq_scale: f32,
    /// Leading dimensions of each head that rope rotates (the rest pass through).
    pub rope_dimension_count: usize,
    pub rope_style: RopeStyle,
    /// Window of sliding-window layers, in positions (including the current one).
    pub sliding_window: Option<usize>,
    /// One entry per layer.
    pub layer_types: Vec<LayerType>,
    /// Multiplier of `q·k` before softmax (`query_pre_attn_scalar^-0.5` or `head_dim^-0.5`).
    pub attention_scale: f32,
    /// `cap · tanh(logit / cap)` on the final logits when declared.
    pub final_logit_softcapping: Option<f32>,
    /// No `output.weight`: the head reuses `token_embd.weight`.
    pub tie_word_embeddings: bool,
    /// The feed-forward layers' experts, for a mixture-of-experts model.
    pub experts: Option<ExpertConfig>,
}

impl ModelConfig {
    /// The hyper-parameters every architecture shares, read from `file` (whose metadata
    /// `params` are) with their defaults: NeoX rope, every layer full attention. The vocabulary
    /// size and tied head come from the tensors (`token_embd.weight`, `output.weight`). What
    /// the architecture's file reads for itself comes with them.
    pub(crate) fn read_common<'a>(
        file: &'a GgufFile,
        params: &'a ModelParams,
        architecture: Architecture,
    ) -> Result<(ModelConfig, FileParameters<'a>)> {
        let metadata = file.metadata();
        let key = |suffix: &str| arch_key(&params.architecture, suffix);

        let positive = |name: &'static str, value: u64| -> Result<usize> {
            match usize::try_from(value) {
                Ok(v) if v > 0 && v <= 1 << 24 => Ok(v),
                _ => Err(ModelError::InvalidConfig { name, reason: format!("{value}") }),
            }
        };
        let hidden_size = positive("hidden_size", params.hidden_size)?;
        let num_attention_heads = positive("num_attention_heads", params.num_attention_heads)?;
        let num_key_value_heads = positive("num_key_value_heads", params.num_key_value_heads)?;
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(ModelError::InvalidConfig {
                name: "num_key_value_heads",
                reason: format!(
                    "{num_key_value_heads} does not divide num_attention_heads \
                     {num_attention_heads}"
                ),
            });
        }
        let head_dim = positive("head_dim", params.head_dim)?;
        if params.value_head_dim != params.head_dim {
            return Err(ModelError::InvalidConfig {
                name: "value_head_dim",
                reason: format!("{} differs from head_dim {head_dim}", params.value_head_dim),
            });
        }
        let intermediate_size = positive(
            "intermediate_size",
            params.intermediate_size.ok_or(ModelError::InvalidConfig {
                name: "intermediate_size",
                reason: "missing".into(),
            })?,
        )?;
        let embedding_name = ModelTensor::TokenEmbedding.weight_name();
        let embedding = file
            .tensor(embedding_name)
            .map_err(|_| ModelError::MissingTensor { name: embedding_name.into() })?;
        let vocab_size = positive("vocab_size", embedding.info().num_rows())?;
        let rope_dimension_count = match params.rope_dimension_count {
            Some(n) => positive("rope_dimension_count", n)?,
            None => head_dim,
        };
        if rope_dimension_count > head_dim || rope_dimension_count % 2 != 0 {
            return Err(ModelError::InvalidConfig {
                name: "rope_dimension_count",
                reason: format!("{rope_dimension_count} (head_dim {head_dim})"),
            });
        }
        let rope_freq_scale = match &params.rope_scaling {
            None => 1.0,
            Some(s) if s.scaling_type == "linear" => match s.factor {
                Some(f) if f > 0.0 => (1.0 / f) as f32,
                _ => 1.0,
            },
            Some(s) => {
                return Err(ModelError::InvalidConfig {
                    name: "rope_scaling",
                    reason: format!("type {:?} is not supported yet", s.scaling_type),
                })
            }
        };
        let num_hidden_layers = positive("num_hidden_layers", params.num_hidden_layers)?;
        let f32_key = |suffix: &str| -> Result<Option<f32>> {
            Ok(metadata.get_f64(&key(suffix))?.map(|v| v as f32))
        };
        let config = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            num_hidden_layers,
            intermediate_size,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: positive(
                "max_position_embeddings",
                params.max_position_embeddings,
            )?,
            rms_norm_eps: params.rms_norm_eps.unwrap_or(1e-6) as f32,
            rope_theta: params.rope_theta.unwrap_or(10_000.0) as f32,
            rope_local_base_freq: f32_key(arch_keys::ROPE_FREQ_BASE_SWA)?.unwrap_or(10_000.0),
            rope_freq_scale,
            rope_dimension_count,
            rope_style: RopeStyle::Neox,
            sliding_window: None,
            layer_types: vec![LayerType::FullAttention; num_hidden_layers],
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            final_logit_softcapping: f32_key(arch_keys::FINAL_LOGIT_SOFTCAPPING)?
                .filter(|&c| c > 0.0),
            tie_word_embeddings: !file.has_tensor(ModelTensor::Output.weight_name()),
            experts: None,
        };
        Ok((config, FileParameters { params, metadata }))
    }

    /// `num_attention_heads · head_dim`.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// `num_key_value_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// The rope base of layer `layer`.
    pub fn rope_base(&self, layer: usize) -> f32 {
        match self.layer_types[layer] {
            LayerType::FullAttention => self.rope_theta,
            LayerType::SlidingAttention => self.rope_local_base_freq,
        }
    }

    /// The attention window of layer `layer` (`None`: the whole context).
    pub fn window(&self, layer: usize) -> Option<usize> {
        match self.layer_types[layer] {
            LayerType::FullAttention => None,
            LayerType::SlidingAttention => self.sliding_window,
        }
    }
}
