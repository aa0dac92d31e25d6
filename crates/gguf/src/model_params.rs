//! Typed access to the model hyper-parameters and tokenizer facts a GGUF file declares, under
//! Hugging Face names. Reading is all this does; what the numbers imply is for other crates.

use crate::error::Result;
use crate::keys::{self, arch, arch_key};
use crate::metadata::Metadata;

/// Rope scaling declared by the file (`<arch>.rope.scaling.*`).
#[derive(Clone, Debug, PartialEq)]
pub struct RopeScaling {
    /// `"linear"`, `"yarn"`, ... as the file spells it.
    pub scaling_type: String,
    pub factor: Option<f64>,
    pub original_max_position_embeddings: Option<u64>,
}

/// Hyper-parameters of a transformer language model, as declared by the file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelParams {
    /// `general.architecture` (`"llama"`, `"qwen2"`, `"gemma3"`).
    pub architecture: String,
    /// `general.name`.
    pub name: Option<String>,
    /// Trained context length.
    pub max_position_embeddings: u64,
    pub hidden_size: u64,
    pub num_hidden_layers: u64,
    /// Largest per-layer FFN size when it varies by layer; absent for some architectures.
    pub intermediate_size: Option<u64>,
    pub num_attention_heads: u64,
    /// Largest per-layer value when it varies by layer.
    pub num_key_value_heads: u64,
    /// Dimension of each query/key head.
    pub head_dim: u64,
    /// Dimension of each value head (equals `head_dim` unless the file says otherwise).
    pub value_head_dim: u64,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    /// Dimensions rotated by rope (partial rotary when smaller than `head_dim`).
    pub rope_dimension_count: Option<u64>,
    /// Multi-head latent attention's compressed rank (`attention.kv_lora_rank`, DeepSeek).
    pub kv_lora_rank: Option<u64>,
    pub rope_scaling: Option<RopeScaling>,
    /// Window of sliding-window attention layers, if any.
    pub sliding_window: Option<u64>,
    pub num_experts: Option<u64>,
    pub num_experts_per_token: Option<u64>,
    /// `<arch>.pooling_type` of embedding models (llama.cpp's numbering: 1 mean, 2 cls, 3 last).
    pub pooling_type: Option<u64>,
}

impl ModelParams {
    /// Reads the parameters; a missing required key or a value of the wrong type is an error that
    /// names the key.
    pub fn from_metadata(metadata: &Metadata) -> Result<ModelParams> {
        let architecture = metadata.require(keys::GENERAL_ARCHITECTURE, Metadata::get_str)?;
        let key = |suffix: &str| arch_key(architecture, suffix);
        let num_attention_heads =
            metadata.require(&key(arch::HEAD_COUNT), Metadata::get_u64_or_max)?;
        let hidden_size = metadata.require(&key(arch::EMBEDDING_LENGTH), Metadata::get_u64)?;
        let head_dim = match metadata.get_u64(&key(arch::KEY_LENGTH))? {
            Some(d) => d,
            None => hidden_size.checked_div(num_attention_heads).unwrap_or(0),
        };
        let rope_scaling = match metadata.get_str(&key(arch::ROPE_SCALING_TYPE))? {
            None | Some("none") => None,
            Some(kind) => Some(RopeScaling {
                scaling_type: kind.to_owned(),
                factor: metadata.get_f64(&key(arch::ROPE_SCALING_FACTOR))?,
                original_max_position_embeddings: metadata
                    .get_u64(&key(arch::ROPE_SCALING_ORIGINAL_CONTEXT_LENGTH))?,
            }),
        };
        Ok(ModelParams {
            architecture: architecture.to_owned(),
            name: metadata.get_str(keys::GENERAL_NAME)?.map(str::to_owned),
            max_position_embeddings: metadata
                .require(&key(arch::CONTEXT_LENGTH), Metadata::get_u64)?,
            hidden_size,
            num_hidden_layers: metadata.require(&key(arch::BLOCK_COUNT), Metadata::get_u64)?,
            intermediate_size: metadata.get_u64_or_max(&key(arch::FEED_FORWARD_LENGTH))?,
            num_attention_heads,
            num_key_value_heads: metadata
                .get_u64_or_max(&key(arch::HEAD_COUNT_KV))?
                .unwrap_or(num_attention_heads),
            head_dim,
            value_head_dim: metadata.get_u64(&key(arch::VALUE_LENGTH))?.unwrap_or(head_dim),
            rms_norm_eps: metadata.get_f64(&key(arch::LAYER_NORM_RMS_EPSILON))?,
            rope_theta: metadata.get_f64(&key(arch::ROPE_FREQ_BASE))?,
            rope_dimension_count: metadata.get_u64(&key(arch::ROPE_DIMENSION_COUNT))?,
            kv_lora_rank: metadata.get_u64(&key(arch::KV_LORA_RANK))?,
            rope_scaling,
            sliding_window: metadata.get_u64(&key(arch::SLIDING_WINDOW))?,
            num_experts: metadata.get_u64(&key(arch::EXPERT_COUNT))?,
            num_experts_per_token: metadata.get_u64(&key(arch::EXPERT_USED_COUNT))?,
            pooling_type: metadata.get_u64(&key(arch::POOLING_TYPE))?,
        })
    }
}

/// Tokenizer facts declared by the file (the vocabulary itself is read by the tokenizer crate).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerParams {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE), `"llama"` (SentencePiece), ...
    pub model: String,
    /// `tokenizer.ggml.pre`: pre-tokenizer name for BPE vocabularies.
    pub pre: Option<String>,
    pub vocab_size: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub chat_template: Option<String>,
}

impl TokenizerParams {
    /// Reads the tokenizer facts; `Ok(None)` when the file has no tokenizer.
    pub fn from_metadata(metadata: &Metadata) -> Result<Option<TokenizerParams>> {
        let Some(model) = metadata.get_str(keys::TOKENIZER_MODEL)? else { return Ok(None) };
        let vocab_size = metadata.get_array(keys::TOKENIZER_TOKENS)?.map_or(0, |a| a.len());
        Ok(Some(TokenizerParams {
            model: model.to_owned(),
            pre: metadata.get_str(keys::TOKENIZER_PRE)?.map(str::to_owned),
            vocab_size,
            bos_token_id: metadata.get_u32(keys::TOKENIZER_BOS_ID)?,
            eos_token_id: metadata.get_u32(keys::TOKENIZER_EOS_ID)?,
            add_bos_token: metadata.get_bool(keys::TOKENIZER_ADD_BOS)?,
            add_eos_token: metadata.get_bool(keys::TOKENIZER_ADD_EOS)?,
            chat_template: metadata.get_str(keys::TOKENIZER_CHAT_TEMPLATE)?.map(str::to_owned),
        }))
    }
}
