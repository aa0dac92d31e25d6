//! A model as the planner sees it: its shape, its bytes in memory and per token, read from a
//! GGUF file or derived from a description ([`crate::ModelDescription`]).

use std::collections::BTreeMap;

use serde::Serialize;
use uma_gguf::{GgufFile, ModelParams, TensorInfo};
use uma_kernels::{PackedFormat, PackedMatrix};
use uma_model::{LayerType, ModelConfig, DEFAULT_BLOCK_SIZE};

use crate::error::{PlannerError, Result};
use crate::footprint::{self, OUTPUT_HEAD, TOKEN_EMBEDDING};
use crate::kv_cache_type::KvCacheType;
use crate::plan_request::SlidingWindowKv;

/// Bytes of an f32: activations, logits and decoded norm weights.
const F32_BYTES: u64 = 4;

/// Bytes per element of activations quantized for the integer kernels: Q8_K's 256 quants, an
/// f32 scale and 16 i16 sums per 256 elements (Q8_0 activations are smaller).
const QUANTIZED_ACTIVATION_BYTES: (u64, u64) = (292, 256);

/// What one page fault on a mapped file makes resident: Linux maps the cached pages around the
/// faulting one (the kernel's `fault_around_bytes`, 64 KiB by default).
pub const FAULT_AROUND_BYTES: u64 = 64 << 10;

/// A model's shape (Hugging Face names) and what it costs in memory and per token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    /// File name, or the name given to a description.
    pub name: String,
    pub architecture: Option<String>,
    /// The quantization mix by bytes (`"Q4_K 79%, Q6_K 21%"`) or a described type (`"q4_k_m"`).
    pub quantization: String,
    /// Every weight.
    pub num_parameters: u64,
    /// Weights multiplied per token: mixture-of-experts models count the active experts only;
    /// the token embedding table counts one row unless it is also the output head.
    pub num_active_parameters: u64,
    pub num_hidden_layers: u64,
    pub hidden_size: u64,
    /// Feed-forward size (per expert for mixture-of-experts models).
    pub intermediate_size: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    pub value_head_dim: u64,
    pub vocab_size: u64,
    /// Trained context, when known.
    pub max_position_embeddings: Option<u64>,
    pub num_experts: Option<u64>,
    pub num_experts_per_token: Option<u64>,
    /// Window of the sliding-window layers, if the model has any.
    pub sliding_window: Option<u64>,
    /// Layers that attend only to the last `sliding_window` positions.
    pub num_sliding_window_layers: u64,
    /// The output head reuses the token embedding table.
    pub tie_word_embeddings: bool,
    /// Bytes of every tensor as stored in the file.
    pub file_weight_bytes: u64,
    /// Bytes the weights hold in memory once loaded: matrices as the kernels repack them (Q4_K
    /// +2.8%, rounded to whole huge pages), norms decoded to f32. The token embedding table is
    /// not included: it stays memory-mapped and only the rows of tokens seen are paged in (see
    /// [`ModelSpec::embedding_rows_bytes`]); when tied, its repacked copy as the output head is.
    pub resident_weight_bytes: u64,
    pub embedding_table_bytes: u64,
    pub embedding_row_bytes: u64,
    /// Bytes of the output head in the file (the embedding table when tied) and once repacked:
    /// it is repacked first, while its mapped pages are still resident (the loading peak).
    pub output_head_file_bytes: u64,
    pub output_head_resident_bytes: u64,
    /// The largest other tensor in the file: the most mapped pages held while the last tensors
    /// are repacked.
    pub largest_tensor_file_bytes: u64,
    /// Weight bytes one decode step reads (see [`crate::weight_bytes_per_token`]).
    pub weight_bytes_per_token: u64,
}

/// The bound the model crate puts on every dimension (layers, heads, widths): past it a file
/// describes no model, and the plan's arithmetic would overflow.
const MAX_DIMENSION: u64 = 1 << 24;

/// Refuses a file whose declared shape is past [`MAX_DIMENSION`] anywhere.
fn check_dimensions(params: &ModelParams) -> Result<()> {
    let dimensions = [
        ("block_count", params.num_hidden_layers),
        ("embedding_length", params.hidden_size),
        ("attention.head_count", params.num_attention_heads),
        ("attention.head_count_kv", params.num_key_value_heads),
        ("attention.key_length", params.head_dim),
        ("attention.value_length", params.value_head_dim),
        ("feed_forward_length", params.intermediate_size.unwrap_or(0)),
        ("expert_count", params.num_experts.unwrap_or(0)),
        ("expert_used_count", params.num_experts_per_token.unwrap_or(0)),
    ];
    if let Some((name, value)) = dimensions.iter().find(|(_, value)| *value > MAX_DIMENSION) {
        return Err(PlannerError::InvalidValue {
            name: (*name).to_owned(),
            reason: format!("{value} is past any model's (at most {MAX_DIMENSION})"),
        });
    }
    // Each dimension may be plausible and their product not: a terabyte of keys and values per
    // position is no model either (and keeps every product below u64's range).
    let kv_per_position = footprint::kv_cache_bytes_per_token(params);
    if kv_per_position > 1 << 40 {
        return Err(PlannerError::InvalidValue {
            name: "KV cache per position".to_owned(),
            reason: format!("{kv_per_position} bytes is past any model's"),
        });
    }
    Ok(())
}

impl ModelSpec {
    /// Reads a model from its GGUF file; `name` labels it in reports.
    pub fn from_gguf(file: &GgufFile, name: &str) -> Result<ModelSpec> {
        let params = ModelParams::from_metadata(file.metadata())?;
        check_dimensions(&params)?;
        let tensors = file.tensor_infos();
        let tie_word_embeddings = !file.has_tensor(OUTPUT_HEAD);
        let embedding = tensors.iter().find(|t| t.name == TOKEN_EMBEDDING);
        let (embedding_table_bytes, embedding_row_bytes, vocab_size) = match embedding {
            Some(t) => (t.size_in_bytes, t.size_in_bytes / t.num_rows().max(1), t.num_rows()),
            None => (0, 0, 0),
        };
        let (sliding_window, num_sliding_window_layers) = sliding_window_layers(file);
        let (cached_kv_heads, cached_key_dim, cached_value_dim) =
            footprint::cached_kv_shape(&params);
        let head_name = if tie_word_embeddings { TOKEN_EMBEDDING } else { OUTPUT_HEAD };
        let head = tensors.iter().find(|t| t.name == head_name);
        let output_head_file_bytes = head.map_or(0, |t| t.size_in_bytes);
        let output_head_resident_bytes =
            head.map_or(0, |t| packed_bytes(t).unwrap_or(t.size_in_bytes));
        let largest_tensor_file_bytes = tensors
            .iter()
            .filter(|t| t.name != head_name && t.name != TOKEN_EMBEDDING)
            .map(|t| t.size_in_bytes)
            .max()
            .unwrap_or(0);
        Ok(ModelSpec {
            name: name.to_owned(),
            architecture: Some(params.architecture.clone()),
            quantization: quantization_mix(tensors),
            num_parameters: tensors.iter().map(|t| t.num_elements).sum(),
            num_active_parameters: footprint::active_parameters_per_token(file),
            num_hidden_layers: params.num_hidden_layers,
            hidden_size: params.hidden_size,
            intermediate_size: params.intermediate_size.unwrap_or(4 * params.hidden_size),
            num_attention_heads: params.num_attention_heads,
            num_key_value_heads: cached_kv_heads,
            head_dim: cached_key_dim,
            value_head_dim: cached_value_dim,
            vocab_size,
            max_position_embeddings: Some(params.max_position_embeddings),
            num_experts: params.num_experts,
            num_experts_per_token: params.num_experts_per_token,
            sliding_window,
            num_sliding_window_layers,
            tie_word_embeddings,
            file_weight_bytes: tensors.iter().map(|t| t.size_in_bytes).sum(),
            resident_weight_bytes: tensors
                .iter()
                .map(|t| resident_bytes(t, tie_word_embeddings))
                .sum(),
            embedding_table_bytes,
            embedding_row_bytes,
            output_head_file_bytes,
            output_head_resident_bytes,
            largest_tensor_file_bytes,
            weight_bytes_per_token: footprint::weight_bytes_per_token(file),
        })
    }

    /// `num_attention_heads · head_dim`.
    pub fn q_dim(&self) -> u64 {
        self.num_attention_heads * self.head_dim
    }

    /// `num_key_value_heads · head_dim`.
    pub fn kv_dim(&self) -> u64 {
        self.num_key_value_heads * self.head_dim
    }

    /// KV bytes of one token position in one layer: a K row and a V row.
    pub fn kv_bytes_per_token_per_layer(&self, kv_cache_type: KvCacheType) -> u64 {
        kv_cache_type.bytes_for(self.num_key_value_heads * self.head_dim)
            + kv_cache_type.bytes_for(self.num_key_value_heads * self.value_head_dim)
    }

    /// KV bytes of one token position in every layer (what one position of uma's paged cache
    /// holds).
    pub fn kv_bytes_per_token(&self, kv_cache_type: KvCacheType) -> u64 {
        self.num_hidden_layers * self.kv_bytes_per_token_per_layer(kv_cache_type)
    }

    /// KV cache bytes for `num_sequences` contexts of `context_length` positions, each rounded
    /// up to whole blocks of [`DEFAULT_BLOCK_SIZE`] positions as the cache allocates them.
    pub fn kv_cache_bytes(
        &self,
        context_length: u64,
        num_sequences: u64,
        kv_cache_type: KvCacheType,
        sliding_window_kv: SlidingWindowKv,
    ) -> u64 {
        let block = DEFAULT_BLOCK_SIZE as u64;
        let positions = context_length.div_ceil(block) * block;
        let windowed_positions = match (sliding_window_kv, self.sliding_window) {
            (SlidingWindowKv::Windowed, Some(window)) => {
                positions.min(window.div_ceil(block) * block)
            }
            _ => positions,
        };
        let per_layer = self.kv_bytes_per_token_per_layer(kv_cache_type);
        let num_full_layers = self.num_hidden_layers - self.num_sliding_window_layers;
        num_sequences.saturating_mul(per_layer).saturating_mul(
            num_full_layers * positions + self.num_sliding_window_layers * windowed_positions,
        )
    }

    /// KV bytes attention reads for one new token at `position`: every earlier position of
    /// full-attention layers, at most the window on sliding-window layers (uma's attention skips
    /// what is outside the window, whatever the cache holds).
    pub fn kv_read_bytes_per_token(&self, position: u64, kv_cache_type: KvCacheType) -> u64 {
        let window = self.sliding_window.map_or(position, |w| position.min(w));
        let num_full_layers = self.num_hidden_layers - self.num_sliding_window_layers;
        self.kv_bytes_per_token_per_layer(kv_cache_type).saturating_mul(
            num_full_layers.saturating_mul(position)
                + self.num_sliding_window_layers.saturating_mul(window),
        )
    }

    /// Attention FLOPs of one token at `position`: `q·k` and the weighted sum of values, two
    /// FLOPs per multiply-add, on every layer over the positions it attends to.
    pub fn attention_flops_per_token(&self, position: u64) -> u64 {
        let window = self.sliding_window.map_or(position, |w| position.min(w));
        let num_full_layers = self.num_hidden_layers - self.num_sliding_window_layers;
        (2 * self.num_attention_heads * (self.head_dim + self.value_head_dim)).saturating_mul(
            num_full_layers.saturating_mul(position)
                + self.num_sliding_window_layers.saturating_mul(window),
        )
    }

    /// Attention FLOPs of a whole prompt of `tokens` tokens from an empty context: the sum of
    /// [`ModelSpec::attention_flops_per_token`] over its positions, taken as the integral (each
    /// full-attention layer `tokens² / 2` positions, a sliding-window layer `tokens² / 2` up to
    /// its window and `window` per token after it).
    pub fn attention_flops_for_prompt(&self, tokens: u64) -> f64 {
        let per_position =
            (2 * self.num_attention_heads * (self.head_dim + self.value_head_dim)) as f64;
        let n = tokens as f64;
        let num_full_layers = (self.num_hidden_layers - self.num_sliding_window_layers) as f64;
        let windowed = match self.sliding_window {
            Some(window) if tokens > window => {
                let w = window as f64;
                w * w / 2.0 + (n - w) * w
            }
            _ => n * n / 2.0,
        };
        per_position
            * (num_full_layers * n * n / 2.0 + self.num_sliding_window_layers as f64 * windowed)
    }

    /// Bytes of the activations one token of a step holds, as the forward pass allocates them
    /// (f32): the residual stream, the normed input and a projection output (3 × hidden),
    /// queries and attention output (2 × q_dim), keys and values (2 × kv_dim), gate and up
    /// (2 × intermediate, times the active experts), plus the input quantized for the integer
    /// kernels.
    pub fn activation_bytes_per_token(&self) -> u64 {
        let used = self.num_experts_per_token.unwrap_or(1).max(1);
        let ffn = self.intermediate_size * used;
        let mut floats = 3 * self.hidden_size + 2 * self.q_dim() + 2 * self.kv_dim() + 2 * ffn;
        let mut quantized = self.hidden_size.max(self.q_dim()).max(ffn);
        if self.num_experts.is_some() {
            // The chosen experts run together: each one's gathered input and output rows are
            // alive at once, and each product quantizes its own input (gate, up, down).
            floats += 2 * used * self.hidden_size;
            quantized += 2 * used * self.hidden_size + ffn;
        }
        let (quantized_bytes, per_elements) = QUANTIZED_ACTIVATION_BYTES;
        F32_BYTES * floats + (quantized * quantized_bytes).div_ceil(per_elements)
    }

    /// Bytes of logits for `num_rows` rows (one per sequence that samples in a step).
    pub fn logits_bytes(&self, num_rows: u64) -> u64 {
        num_rows * self.vocab_size * F32_BYTES
    }

    /// Bytes of the mapped token embedding table resident after `num_tokens` tokens of
    /// context: each token's row fault maps [`FAULT_AROUND_BYTES`] of the file around it (when
    /// the file is in the page cache, as after loading), up to the whole table.
    pub fn embedding_rows_bytes(&self, num_tokens: u64) -> u64 {
        let per_row = self.embedding_row_bytes.max(FAULT_AROUND_BYTES);
        num_tokens.saturating_mul(per_row).min(self.embedding_table_bytes)
    }
}

/// Bytes `tensor` holds in memory once uma has loaded it (see
/// [`ModelSpec::resident_weight_bytes`]).
fn resident_bytes(tensor: &TensorInfo, tie_word_embeddings: bool) -> u64 {
    if tensor.name == TOKEN_EMBEDDING {
        // Untied: mapped, paged in by row. Tied: also repacked as the output head.
        return if tie_word_embeddings {
            packed_bytes(tensor).unwrap_or(tensor.size_in_bytes)
        } else {
            0
        };
    }
    match tensor.shape.len() {
        // Norm weights and biases, decoded to f32.
        1 => tensor.num_elements * F32_BYTES,
        // Matrices without a packed layout stay mapped, and every page is read each token.
        _ => packed_bytes(tensor).unwrap_or(tensor.size_in_bytes),
    }
}

/// Allocated bytes of `tensor` repacked for the kernels, or `None` when its type has no packed
/// layout (as [`PackedMatrix::allocated_bytes`] counts it). Stacked experts
/// (`[row_length, num_rows, count]`) are packed together into one buffer.
fn packed_bytes(tensor: &TensorInfo) -> Option<u64> {
    let format = PackedFormat::of(tensor.ggml_type)?;
    let (row_length, num_rows, count) = match tensor.shape[..] {
        [row_length, num_rows] => (row_length, num_rows, 1),
        [row_length, num_rows, count] => (row_length, num_rows, count),
        _ => return None,
    };
    let block_elements = format.block_elements() as u64;
    if !row_length.is_multiple_of(block_elements) {
        return None;
    }
    let (row_length, num_rows) =
        (usize::try_from(row_length).ok()?, usize::try_from(num_rows).ok()?);
    let count = usize::try_from(count).ok()?;
    Some(PackedMatrix::allocated_bytes(format, count, num_rows, row_length) as u64)
}

/// `(window, number of sliding-window layers)`, as uma's model code lays the layers out; a file
/// uma cannot run counts every layer as full attention (the larger cache).
fn sliding_window_layers(file: &GgufFile) -> (Option<u64>, u64) {
    match ModelConfig::from_file(file) {
        Ok(config) => {
            let num_sliding =
                config.layer_types.iter().filter(|t| **t == LayerType::SlidingAttention).count()
                    as u64;
            let window = config.sliding_window.map(|w| w as u64).filter(|_| num_sliding > 0);
            (window, num_sliding)
        }
        Err(_) => (None, 0),
    }
}

/// `"Q4_K 79%, Q6_K 21%"`: the types holding at least 1% of the bytes, largest first.
fn quantization_mix(tensors: &[TensorInfo]) -> String {
    let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
    for tensor in tensors {
        *bytes.entry(tensor.ggml_type.name()).or_default() += tensor.size_in_bytes;
    }
    let total = bytes.values().sum::<u64>().max(1);
    let mut shares: Vec<(&str, u64)> = bytes.into_iter().collect();
    shares.sort_by_key(|&(_, b)| std::cmp::Reverse(b));
    shares
        .iter()
        .filter(|&&(_, b)| b * 100 >= total)
        .map(|&(name, b)| format!("{name} {:.0}%", 100.0 * b as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(", ")
}
