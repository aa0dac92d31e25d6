//! Model hyper-parameters: what the file declares ([`ModelParams`]) plus what each architecture
//! implies (rope style, norms, biases, sliding-window layers), under Hugging Face names.

use uma_gguf::keys::{arch as arch_keys, arch_key};
use uma_gguf::tensor_names::ModelTensor;
use uma_gguf::{GgufFile, ModelParams};

use crate::arch;
use crate::error::{ModelError, Result};

/// The transformer families uma implements, one file each under `arch/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3, Mistral, SmolLM (`general.architecture = "llama"`).
    Llama,
    /// Qwen 2 / 2.5: q/k/v biases.
    Qwen2,
    /// Qwen 3: per-head q/k RMS norms, no biases.
    Qwen3,
    /// Gemma 3: q/k norms, sandwich norms, GELU, scaled embeddings, 5:1 sliding-window layers.
    Gemma3,
}

impl Architecture {
    /// The architecture named by `general.architecture`.
    pub fn from_name(name: &str) -> Result<Architecture> {
        Ok(match name {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            "qwen3" => Architecture::Qwen3,
            "gemma3" => Architecture::Gemma3,
            other => {
                return Err(ModelError::UnsupportedArchitecture { architecture: other.to_owned() })
            }
        })
    }

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Gemma3 => "gemma3",
        }
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

/// The gate activation of the gated MLP.
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
    /// Multiplier of the token embeddings (Gemma: `sqrt(hidden_size)`).
    pub embedding_scale: Option<f32>,
    /// `cap · tanh(logit / cap)` on the final logits when declared.
    pub final_logit_softcapping: Option<f32>,
    pub hidden_activation: HiddenActivation,
    /// q/k/v projections carry biases (Qwen 2).
    pub attention_bias: bool,
    /// Per-head RMS norms of q and k before rope (Qwen 3, Gemma 3).
    pub qk_norm: bool,
    /// Norms after attention and after the MLP, before the residual add (Gemma 3).
    pub sandwich_norms: bool,
    /// No `output.weight`: the head reuses `token_embd.weight`.
    pub tie_word_embeddings: bool,
}

impl ModelConfig {
    /// Reads the declared parameters and applies the architecture's rules. The vocabulary size
    /// and tied head come from the tensors (`token_embd.weight`, `output.weight`).
    pub fn from_file(file: &GgufFile) -> Result<ModelConfig> {
        let params = ModelParams::from_metadata(file.metadata())?;
        let architecture = Architecture::from_name(&params.architecture)?;
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
        let mut config = ModelConfig {
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
            embedding_scale: None,
            final_logit_softcapping: f32_key(arch_keys::FINAL_LOGIT_SOFTCAPPING)?
                .filter(|&c| c > 0.0),
            hidden_activation: HiddenActivation::Silu,
            attention_bias: false,
            qk_norm: false,
            sandwich_norms: false,
            tie_word_embeddings: !file.has_tensor(ModelTensor::Output.weight_name()),
        };
        // Some converters write the pattern as a per-layer array (Gemma 3n); only a plain
        // integer is read here, anything else falls back to the architecture's default.
        let sliding_window_pattern =
            metadata.get_u64(&key(arch_keys::SLIDING_WINDOW_PATTERN)).ok().flatten();
        match architecture {
            Architecture::Llama => arch::llama::configure(&mut config),
            Architecture::Qwen2 => arch::qwen2::configure(&mut config),
            Architecture::Qwen3 => arch::qwen3::configure(&mut config),
            Architecture::Gemma3 => {
                arch::gemma3::configure(&mut config, params.sliding_window, sliding_window_pattern)?
            }
        }
        Ok(config)
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
