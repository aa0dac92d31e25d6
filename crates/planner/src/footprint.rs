//! What a model costs per token, read from its file: bytes of weights read per decoded token,
//! parameters multiplied per token, and KV cache bytes per token. `uma show`, `uma bench` and
//! the plans all use these, so the three always agree.

use uma_gguf::tensor_names::{ModelTensor, STACKED_EXPERTS_MARKER};
use uma_gguf::{GgufFile, ModelParams, TensorInfo};

/// Bytes of the f16 elements the KV cache stores.
const F16_BYTES: u64 = 2;

/// Name of the token embedding table and the output head in GGUF files.
pub(crate) const TOKEN_EMBEDDING: &str = ModelTensor::TokenEmbedding.weight_name();
pub(crate) const OUTPUT_HEAD: &str = ModelTensor::Output.weight_name();

/// Weight bytes one decode step reads: every tensor once, except that the token embedding table
/// is only gathered (one row per token) unless it doubles as the output head (tied embeddings,
/// no `output.weight`), in which case the whole table is read for the logits. Expert tensors of
/// a mixture-of-experts model count only the share of the experts a token uses.
pub fn weight_bytes_per_token(file: &GgufFile) -> u64 {
    per_token(file, |tensor| tensor.size_in_bytes)
}

/// Parameters multiplied per token: the count behind `2 × parameters` FLOPs per token. Same
/// rules as [`weight_bytes_per_token`], in elements.
pub fn active_parameters_per_token(file: &GgufFile) -> u64 {
    per_token(file, |tensor| tensor.num_elements)
}

/// The KV heads uma caches per token and layer, with their key and value widths: the file's,
/// but for latent attention (a file declaring `attention.kv_lora_rank`: DeepSeek), whose cache
/// holds one compressed head of `kv_lora_rank` + rope values as keys and as (zero-padded)
/// values, whatever heads the file describes (older converters describe them uncompressed).
pub(crate) fn cached_kv_shape(params: &ModelParams) -> (u64, u64, u64) {
    match params.kv_lora_rank {
        Some(rank) => {
            let rope = params.rope_dimension_count.unwrap_or(params.head_dim);
            let width = rank.saturating_add(rope);
            (1, width, width)
        }
        None => (params.num_key_value_heads, params.head_dim, params.value_head_dim),
    }
}

/// KV cache bytes per token position with an f16 cache: K and V for every layer and KV head.
/// Sliding-window layers stop growing past their window; this is the figure for positions within
/// it (an upper bound beyond).
pub fn kv_cache_bytes_per_token(params: &ModelParams) -> u64 {
    // Saturating: a file may declare any numbers (ModelSpec refuses absurd ones; `uma show`
    // prints what the file says, and must not wrap).
    let (kv_heads, key, value) = cached_kv_shape(params);
    params
        .num_hidden_layers
        .saturating_mul(kv_heads)
        .saturating_mul(key.saturating_add(value))
        .saturating_mul(F16_BYTES)
}

/// `(num_experts_per_token, num_experts)` when the file declares both.
pub(crate) fn expert_counts(file: &GgufFile) -> Option<(u64, u64)> {
    let params = ModelParams::from_metadata(file.metadata()).ok()?;
    match (params.num_experts_per_token, params.num_experts) {
        (Some(active), Some(total)) if total > 0 && active <= total => Some((active, total)),
        _ => None,
    }
}

/// `amount` scaled to the experts a token uses when `name` is an expert tensor. Mixture-of-experts
/// tensors hold every expert stacked (`blk.N.ffn_gate_exps.weight`, ...); a token runs through
/// only `num_experts_per_token` of them. Shared experts (`_shexp`) always run.
pub(crate) fn active_share(name: &str, amount: u64, experts: Option<(u64, u64)>) -> u64 {
    match experts {
        Some((active, total)) if name.contains(STACKED_EXPERTS_MARKER) => {
            // u128: a 100 GB tensor times 256 experts overflows u64.
            (u128::from(amount) * u128::from(active) / u128::from(total)) as u64
        }
        _ => amount,
    }
}

/// Sums `measure` over the tensors one token touches (see [`weight_bytes_per_token`]).
fn per_token(file: &GgufFile, measure: impl Fn(&TensorInfo) -> u64) -> u64 {
    let experts = expert_counts(file);
    let total: u64 = file
        .tensor_infos()
        .iter()
        .map(|tensor| active_share(&tensor.name, measure(tensor), experts))
        .sum();
    match file.tensor(TOKEN_EMBEDDING) {
        Ok(embedding) if file.has_tensor(OUTPUT_HEAD) => {
            let info = embedding.info();
            let amount = measure(info);
            total - amount + amount / info.num_rows().max(1)
        }
        _ => total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uma_gguf::tensor_names::LayerTensor;
    use uma_gguf::{GgmlType, GgufWriter, MetadataValue};

    /// A GGUF file of a tiny mixture-of-experts model: 4 experts, `used` per token, F32
    /// tensors of 16 × 8 (embedding, head), 16 × 8 (attention) and 16 × 8 × 4 (experts).
    fn moe_file(used: Option<u32>) -> GgufFile {
        moe_file_with(used, 1, &[])
    }

    /// [`moe_file`] with `layers` declared layers and `more` metadata.
    fn moe_file_with(used: Option<u32>, layers: u64, more: &[(&str, MetadataValue)]) -> GgufFile {
        let mut writer = GgufWriter::new();
        for (key, value) in more {
            writer.add_metadata(key, value.clone()).expect("new key");
        }
        let metadata = [
            ("general.architecture", MetadataValue::String("moe".into())),
            ("moe.context_length", MetadataValue::U32(64)),
            ("moe.embedding_length", MetadataValue::U32(16)),
            ("moe.block_count", MetadataValue::U64(layers)),
            ("moe.attention.head_count", MetadataValue::U32(2)),
            ("moe.expert_count", MetadataValue::U32(4)),
        ];
        for (key, value) in metadata {
            writer.add_metadata(key, value).expect("new key");
        }
        if let Some(used) = used {
            writer.add_metadata("moe.expert_used_count", MetadataValue::U32(used)).expect("new");
        }
        let tensors: [(String, &[u64]); 4] = [
            (TOKEN_EMBEDDING.into(), &[16, 8]),
            (OUTPUT_HEAD.into(), &[16, 8]),
            (LayerTensor::AttnQ.weight(0), &[16, 8]),
            (LayerTensor::FfnUpExps.weight(0), &[16, 8, 4]),
        ];
        for (name, shape) in tensors {
            let bytes = 4 * shape.iter().product::<u64>() as usize;
            writer.add_tensor(&name, GgmlType::F32, shape, vec![0; bytes]).expect("valid");
        }
        GgufFile::from_bytes(writer.to_bytes()).expect("parses")
    }

    #[test]
    fn absurd_shapes_saturate_here_and_are_refused_by_the_plan() {
        let huge = [
            ("moe.attention.head_count_kv", MetadataValue::U64(u64::MAX / 3)),
            ("moe.attention.key_length", MetadataValue::U64(u64::MAX / 5)),
        ];
        let file = moe_file_with(Some(1), u64::MAX / 7, &huge);
        let params = ModelParams::from_metadata(file.metadata()).expect("parses");
        assert_eq!(kv_cache_bytes_per_token(&params), u64::MAX, "saturated, not wrapped");
        let error = crate::ModelSpec::from_gguf(&file, "absurd").expect_err("refused");
        assert!(error.to_string().contains("block_count"), "{error}");
        let many_layers = moe_file_with(Some(1), (1 << 24) + 1, &[]);
        assert!(crate::ModelSpec::from_gguf(&many_layers, "deep").is_err());
        assert!(crate::ModelSpec::from_gguf(&moe_file(Some(1)), "fine").is_ok());
    }

    #[test]
    fn a_moe_file_reads_the_active_experts_per_token() {
        // One embedding row (64 B), the head and attention (512 B each), one expert of four.
        let file = moe_file(Some(1));
        assert_eq!(expert_counts(&file), Some((1, 4)));
        assert_eq!(weight_bytes_per_token(&file), 64 + 512 + 512 + 2048 / 4);
        assert_eq!(active_parameters_per_token(&file), 16 + 128 + 128 + 512 / 4);
        let two = moe_file(Some(2));
        assert_eq!(weight_bytes_per_token(&two), 64 + 512 + 512 + 2048 / 2);
        // Without the used count every expert counts, as for a dense model.
        assert_eq!(weight_bytes_per_token(&moe_file(None)), 64 + 512 + 512 + 2048);
    }

    #[test]
    fn expert_tensors_count_only_the_active_share() {
        let experts = Some((8, 64));
        let (up_exps, up_shexp) =
            (LayerTensor::FfnUpExps.weight(0), LayerTensor::FfnUpShexp.weight(0));
        assert_eq!(active_share(&up_exps, 6_400, experts), 800);
        assert_eq!(active_share(&up_shexp, 6_400, experts), 6_400);
        assert_eq!(active_share(&LayerTensor::AttnQ.weight(0), 6_400, experts), 6_400);
        assert_eq!(active_share(&up_exps, 6_400, None), 6_400);
        assert_eq!(active_share("x_exps", u64::MAX, Some((1, 2))), u64::MAX / 2);
    }
}
