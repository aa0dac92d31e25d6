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

    /// `attention.sliding_window`, which the architecture requires: a positive window.
    pub(crate) fn required_sliding_window(&self) -> Result<usize> {
        let window = self.params.sliding_window.ok_or_else(|| ModelError::InvalidConfig {
            name: "sliding_window",
            reason: format!("{} needs attention.sliding_window", self.params.architecture),
        })?;
        usize::try_from(window).ok().filter(|&w| w > 0).ok_or(ModelError::InvalidConfig {
            name: "sliding_window",
            reason: format!("{window}"),
        })
    }

    /// The number `<architecture>.<suffix>` as f32, when the file declares it as a number.
    pub(crate) fn float(&self, suffix: &str) -> Option<f32> {
        let key = arch_key(&self.params.architecture, suffix);
        self.metadata.get_f64(&key).ok().flatten().map(|v| v as f32)
    }

    /// The flag `<architecture>.<suffix>`, when the file declares it as a boolean.
    pub(crate) fn flag(&self, suffix: &str) -> Option<bool> {
        let key = arch_key(&self.params.architecture, suffix);
        self.metadata.get_bool(&key).ok().flatten()
    }

    /// YaRN's `mscale_all_dim`, as llama.cpp reads it ([`yarn_log_multiplier`]).
    pub(crate) fn yarn_log_multiplier(&self) -> Result<Option<f32>> {
        yarn_log_multiplier(self.params, self.metadata)
    }

    /// Whether the file declares `<architecture>.<suffix>` at all.
    pub(crate) fn declares(&self, suffix: &str) -> bool {
        self.metadata.get(&arch_key(&self.params.architecture, suffix)).is_some()
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

/// YaRN rope scaling (`rope.scaling.type = yarn`) as ggml computes it: pair `i` turns by a mix
/// of the interpolated angle (`freq_scale · θ`) and the original one, ramping from original on
/// the fast pairs to interpolated on the slow ones between the correction dimensions of
/// `beta_fast` and `beta_slow`, and cosines and sines are scaled by
/// `attn_factor · (1 + 0.1 · ln(1 / freq_scale))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Yarn {
    /// The context the model was trained on before scaling
    /// (`rope.scaling.original_context_length`).
    pub original_context_length: f32,
    /// Rotations per original context above which a pair keeps its original angle (32).
    pub beta_fast: f32,
    /// Rotations below which it is fully interpolated (1).
    pub beta_slow: f32,
    /// How much of the ramp applies (1: YaRN; llama.cpp's `yarn_ext_factor`).
    pub ext_factor: f32,
    /// llama.cpp's `yarn_attn_factor`: the magnitude scale divided by the `1 + 0.1 · ln(factor)`
    /// that the rotation multiplies back in.
    pub attn_factor: f32,
}

/// The rope scaling `params` declare: the frequency scale (1 / factor) and, for YaRN, its
/// corrections, with llama.cpp's defaults and its magnitude rule (`llama_context`'s
/// `yarn_attn_factor`: `0.1 · ln(factor) + 1`, or DeepSeek's ratio of two such terms when the
/// file gives `yarn_log_multiplier`, divided by what the rotation multiplies back in).
fn read_rope_scaling(params: &ModelParams, metadata: &Metadata) -> Result<(f32, Option<Yarn>)> {
    let key = |suffix: &str| arch_key(&params.architecture, suffix);
    let f32_key = |suffix: &str| -> Result<Option<f32>> {
        Ok(metadata.get_f64(&key(suffix))?.map(|v| v as f32))
    };
    let Some(scaling) = &params.rope_scaling else { return Ok((1.0, None)) };
    let invalid = |reason: String| ModelError::InvalidConfig { name: "rope_scaling", reason };
    let factor = match scaling.factor {
        None => 1.0,
        Some(f) if f.is_finite() && f > 0.0 => f as f32,
        Some(f) => return Err(invalid(format!("factor {f}"))),
    };
    let freq_scale = 1.0 / factor;
    let attn_factor_key = f32_key(arch_keys::ROPE_SCALING_ATTN_FACTOR)?.unwrap_or(1.0);
    match scaling.scaling_type.as_str() {
        "linear" if attn_factor_key == 1.0 => Ok((freq_scale, None)),
        "linear" => Err(invalid(format!("linear with attn_factor {attn_factor_key}"))),
        "yarn" => {
            let original =
                scaling.original_max_position_embeddings.unwrap_or(params.max_position_embeddings);
            if original == 0 || original > 1 << 24 {
                return Err(invalid(format!("original_context_length {original}")));
            }
            let ext_factor = f32_key(arch_keys::ROPE_SCALING_YARN_EXT_FACTOR)?.unwrap_or(1.0);
            let mscale = |scale: f32, m: f32| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let mut attn_factor = 1.0;
            if ext_factor != 0.0 {
                attn_factor = match yarn_log_multiplier(params, metadata)? {
                    Some(all_dims) if all_dims != 0.0 => {
                        // DeepSeek V2 declares mscale = mscale_all_dim (llama.cpp's special case).
                        let m = if params.architecture == "deepseek2" { all_dims } else { 1.0 };
                        mscale(factor, m) / mscale(factor, all_dims)
                    }
                    _ => mscale(factor, 1.0),
                };
                attn_factor *= 1.0 / (1.0 + 0.1 * factor.ln());
            }
            let yarn = Yarn {
                original_context_length: original as f32,
                beta_fast: f32_key(arch_keys::ROPE_SCALING_YARN_BETA_FAST)?.unwrap_or(32.0),
                beta_slow: f32_key(arch_keys::ROPE_SCALING_YARN_BETA_SLOW)?.unwrap_or(1.0),
                ext_factor,
                attn_factor: attn_factor * attn_factor_key,
            };
            Ok((freq_scale, Some(yarn)))
        }
        other => Err(invalid(format!("type {other:?} is not supported yet"))),
    }
}

/// YaRN's `mscale_all_dim` as llama.cpp reads `rope.scaling.yarn_log_multiplier`: DeepSeek's
/// converter writes `0.1 · mscale_all_dim` there, which llama.cpp divides back for `deepseek2`.
pub(crate) fn yarn_log_multiplier(
    params: &ModelParams,
    metadata: &Metadata,
) -> Result<Option<f32>> {
    let key = arch_key(&params.architecture, arch_keys::ROPE_SCALING_YARN_LOG_MULTIPLIER);
    let value = metadata.get_f64(&key)?.map(|v| v as f32);
    Ok(if params.architecture == "deepseek2" { value.map(|v| v / 0.1) } else { value })
}

/// The gate activation of the gated feed-forward network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenActivation {
    /// SwiGLU: `silu(gate) · up`.
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
    /// gpt-oss's clamped SwiGLU: `g · σ(1.702 · g) · (u + 1)` with `g = min(gate, 7)` and
    /// `u = clamp(up, −7, 7)` (the constants of the released models, which llama.cpp also
    /// hard-codes; GGUF does not carry them).
    SwigluOai,
}

impl HiddenActivation {
    /// [`HiddenActivation::SwigluOai`]'s `α`.
    pub const SWIGLU_OAI_ALPHA: f32 = 1.702;
    /// [`HiddenActivation::SwigluOai`]'s clamp.
    pub const SWIGLU_OAI_LIMIT: f32 = 7.0;
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
    /// The top `used` raw logits, then a softmax over those alone (gpt-oss; llama.cpp's
    /// `SOFTMAX_WEIGHT`).
    SoftmaxOfSelected,
}

/// The experts of a mixture-of-experts model's feed-forward layers.
#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// Group-limited routing (DeepSeek V3): experts in `count` equal groups, each token choosing
    /// among the experts of its `used` best groups only.
    pub groups: Option<ExpertGroups>,
    /// The chosen experts' weights are multiplied by this (`expert_weights_scale`, DeepSeek's
    /// `routed_scaling_factor`; 1 elsewhere).
    pub weights_scale: f32,
    /// The first layers have a dense feed-forward network instead (DeepSeek's
    /// `leading_dense_block_count`; 0 elsewhere).
    pub leading_dense_layers: usize,
}

/// Expert groups of group-limited routing (`expert_group_count`, `expert_group_used_count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpertGroups {
    pub count: usize,
    pub used: usize,
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
            groups: None,
            weights_scale: 1.0,
            leading_dense_layers: 0,
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
    /// Rope scaling: positions are multiplied by this (1 / factor; linear scaling, and YaRN's
    /// interpolated frequencies).
    pub rope_freq_scale: f32,
    /// YaRN's correction of the scaled frequencies and magnitudes, when the file declares it.
    pub rope_yarn: Option<Yarn>,
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
    /// Multi-head latent attention (DeepSeek): the cache holds one compressed head per token,
    /// `head_dim` = `kv_lora_rank` + the rope dimensions.
    pub mla: Option<MlaConfig>,
}

/// Multi-head latent attention's shapes (DeepSeek V2/V3, Kimi K2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlaConfig {
    /// Rank of the queries' low-rank projection (`attention.q_lora_rank`; none in V2-Lite).
    pub q_lora_rank: Option<usize>,
    /// Rank of the compressed keys and values (`attention.kv_lora_rank`): what the cache holds.
    pub kv_lora_rank: usize,
    /// Each head's query/key dimensions without rope (`key_length_mla` − rope dimensions).
    pub qk_nope_head_dim: usize,
    /// Each head's value dimensions (`attention.value_length_mla`).
    pub v_head_dim: usize,
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
        let (rope_freq_scale, rope_yarn) = read_rope_scaling(params, metadata)?;
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
            rope_yarn,
            rope_dimension_count,
            rope_style: RopeStyle::Neox,
            sliding_window: None,
            layer_types: vec![LayerType::FullAttention; num_hidden_layers],
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            final_logit_softcapping: f32_key(arch_keys::FINAL_LOGIT_SOFTCAPPING)?
                .filter(|&c| c > 0.0),
            tie_word_embeddings: !file.has_tensor(ModelTensor::Output.weight_name()),
            experts: None,
            mla: None,
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
