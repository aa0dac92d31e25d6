//! Every GGUF metadata key string the project uses, in one place. Architecture-specific keys are
//! suffixes joined to `general.architecture` with [`arch_key`].

pub const GENERAL_ARCHITECTURE: &str = "general.architecture";
pub const GENERAL_NAME: &str = "general.name";
pub const GENERAL_ALIGNMENT: &str = "general.alignment";
pub const GENERAL_FILE_TYPE: &str = "general.file_type";
pub const GENERAL_QUANTIZATION_VERSION: &str = "general.quantization_version";
pub const GENERAL_SIZE_LABEL: &str = "general.size_label";

pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
pub const TOKENIZER_PRE: &str = "tokenizer.ggml.pre";
pub const TOKENIZER_TOKENS: &str = "tokenizer.ggml.tokens";
pub const TOKENIZER_SCORES: &str = "tokenizer.ggml.scores";
pub const TOKENIZER_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const TOKENIZER_MERGES: &str = "tokenizer.ggml.merges";
pub const TOKENIZER_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
pub const TOKENIZER_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
pub const TOKENIZER_EOT_ID: &str = "tokenizer.ggml.eot_token_id";
pub const TOKENIZER_UNKNOWN_ID: &str = "tokenizer.ggml.unknown_token_id";
pub const TOKENIZER_PADDING_ID: &str = "tokenizer.ggml.padding_token_id";
pub const TOKENIZER_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const TOKENIZER_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const TOKENIZER_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
pub const TOKENIZER_EOM_ID: &str = "tokenizer.ggml.eom_token_id";
pub const TOKENIZER_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// Suffixes of `<architecture>.*` keys.
pub mod arch {
    pub const CONTEXT_LENGTH: &str = "context_length";
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    pub const BLOCK_COUNT: &str = "block_count";
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    pub const VOCAB_SIZE: &str = "vocab_size";
    pub const HEAD_COUNT: &str = "attention.head_count";
    pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
    pub const KEY_LENGTH: &str = "attention.key_length";
    pub const VALUE_LENGTH: &str = "attention.value_length";
    /// Multi-head latent attention's compressed rank (DeepSeek).
    pub const KV_LORA_RANK: &str = "attention.kv_lora_rank";
    pub const LAYER_NORM_RMS_EPSILON: &str = "attention.layer_norm_rms_epsilon";
    pub const LAYER_NORM_EPSILON: &str = "attention.layer_norm_epsilon";
    pub const SLIDING_WINDOW: &str = "attention.sliding_window";
    /// Every n-th layer is global (full attention), the others sliding-window (Gemma 3: 6).
    pub const SLIDING_WINDOW_PATTERN: &str = "attention.sliding_window_pattern";
    /// Rope base of sliding-window layers when it differs from `rope.freq_base`.
    pub const ROPE_FREQ_BASE_SWA: &str = "rope.freq_base_swa";
    pub const FINAL_LOGIT_SOFTCAPPING: &str = "final_logit_softcapping";
    pub const ATTN_LOGIT_SOFTCAPPING: &str = "attn_logit_softcapping";
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
    pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
    pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
    pub const ROPE_SCALING_ORIGINAL_CONTEXT_LENGTH: &str = "rope.scaling.original_context_length";
    /// A multiplier of the rope's cosines and sines, for any scaling type.
    pub const ROPE_SCALING_ATTN_FACTOR: &str = "rope.scaling.attn_factor";
    /// YaRN: DeepSeek's `mscale_all_dim`.
    pub const ROPE_SCALING_YARN_LOG_MULTIPLIER: &str = "rope.scaling.yarn_log_multiplier";
    pub const ROPE_SCALING_YARN_EXT_FACTOR: &str = "rope.scaling.yarn_ext_factor";
    pub const ROPE_SCALING_YARN_BETA_FAST: &str = "rope.scaling.yarn_beta_fast";
    pub const ROPE_SCALING_YARN_BETA_SLOW: &str = "rope.scaling.yarn_beta_slow";
    pub const EXPERT_COUNT: &str = "expert_count";
    pub const EXPERT_USED_COUNT: &str = "expert_used_count";
    /// How an embedding model pools token states (llama.cpp's `llama_pooling_type`: 0 none,
    /// 1 mean, 2 cls, 3 last, 4 rank).
    pub const POOLING_TYPE: &str = "pooling_type";
}

/// `"<architecture>.<suffix>"`, e.g. `arch_key("qwen2", arch::BLOCK_COUNT)`.
pub fn arch_key(architecture: &str, suffix: &str) -> String {
    format!("{architecture}.{suffix}")
}
