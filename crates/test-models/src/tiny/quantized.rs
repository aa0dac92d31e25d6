//! Tiny mixture-of-experts models quantized as llama.cpp's `llama-quantize` quantizes them.
//!
//! The small tiny models are 64 wide, too narrow for the K-quants (256 values per block), so
//! this second family is 256 wide: 3 layers, 4 heads of 64, 256-wide experts. Each file exists in
//! three types ([`TinyQuant`]): all F32, Q8_0 and Q4_K_M. The quantized files hold exactly the
//! tensors `llama-quantize` writes from the F32 file (in another order): the per-tensor types of
//! its mixture (its `llama_tensor_get_type`, [`llama_quantize_type`]) and the bytes of ggml's
//! reference quantizers (`quantize_row_*_ref`, ported in `uma_kernels::formats`). `scripts/golden/tiny_moe_greedy.py`
//! checks this against `llama-quantize` itself, then records llama.cpp's greedy tokens on them
//! (`crates/model/tests/golden/tiny_greedy/`).
//!
//! Mixtral keeps its real model's 8 experts, a count `llama-quantize` special-cases (Q8_0
//! `attn_k` and `attn_v`, Q5_K `attn_output` in Q4_K_M); the others have 16, which it does not.
//!
//! DeepSeek (`deepseek2`) keeps its real model's head shapes at this width: latent attention
//! with `q_lora_rank` and `kv_lora_rank` 256, heads of 128 + 64 rope and values of 128 (DeepSeek
//! V3's), a dense first layer 512 wide, then 16 experts of 256 in 4 groups (2 groups, then 2
//! experts per token) and one shared expert. `llama-quantize` quantizes its MLA tensors like any
//! other matrix (it keeps `attn_kv_a_mqa`, `attn_k_b` and `attn_v_b` as they are for GLM-5-next
//! only); `attn_k_b`'s rows (128 values) are not whole 256-blocks, so in Q4_K_M it falls back from
//! Q4_K to Q5_0 (its `tensor_type_fallback`, [`fallback_type`]).

use std::path::Path;

use uma_gguf::tensor_names::{LayerTensor as L, ModelTensor};
use uma_gguf::{GgmlType, GgufWriter};

use super::{build, tiny_config, unknown_arch, Family, Tensor, TinyConfig, TinyExperts, TinyMla};

/// The architectures [`write_tiny_quantized_model`] knows: the mixture-of-experts ones.
pub const TINY_QUANTIZED_ARCHS: [&str; 6] =
    ["qwen3moe", "qwen2moe", "mixtral", "olmoe", "gpt-oss", "deepseek2"];

/// The type of a quantized tiny file, as `llama-quantize`'s file types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // llama.cpp's names
pub enum TinyQuant {
    /// Every tensor F32: the file `llama-quantize` starts from.
    F32,
    /// `llama-quantize … Q8_0`.
    Q8_0,
    /// `llama-quantize … Q4_K_M`.
    Q4_K_M,
    /// `llama-quantize … MXFP4_MOE`: experts in MXFP4, the other matrices Q8_0 (how gpt-oss
    /// ships).
    MXFP4_MOE,
}

impl TinyQuant {
    /// Every type.
    pub const ALL: [TinyQuant; 4] =
        [TinyQuant::F32, TinyQuant::Q8_0, TinyQuant::Q4_K_M, TinyQuant::MXFP4_MOE];

    /// The types the quantized tiny model of `arch` is written in: F32, and what its family
    /// ships as (gpt-oss: MXFP4 experts; the others: Q8_0 and Q4_K_M).
    pub fn of_arch(arch: &str) -> &'static [TinyQuant] {
        if arch == "gpt-oss" {
            &[TinyQuant::F32, TinyQuant::MXFP4_MOE]
        } else {
            &[TinyQuant::F32, TinyQuant::Q8_0, TinyQuant::Q4_K_M]
        }
    }

    /// The name `llama-quantize` takes (and file names use, lowercased).
    pub fn name(self) -> &'static str {
        match self {
            TinyQuant::F32 => "F32",
            TinyQuant::Q8_0 => "Q8_0",
            TinyQuant::Q4_K_M => "Q4_K_M",
            TinyQuant::MXFP4_MOE => "MXFP4_MOE",
        }
    }

    /// `general.file_type`: llama.cpp's `llama_ftype` (`ALL_F32`, `MOSTLY_Q8_0`, `MOSTLY_Q4_K_M`,
    /// `MOSTLY_MXFP4_MOE`).
    pub fn file_type(self) -> u32 {
        match self {
            TinyQuant::F32 => 0,
            TinyQuant::Q8_0 => 7,
            TinyQuant::Q4_K_M => 15,
            TinyQuant::MXFP4_MOE => 38,
        }
    }
}

/// The hyper-parameters of the quantized tiny model of `arch`, or `None` for an architecture
/// not in [`TINY_QUANTIZED_ARCHS`]: the small model's, 256 wide.
pub fn tiny_quantized_config(arch: &str) -> Option<TinyConfig> {
    if !TINY_QUANTIZED_ARCHS.contains(&arch) {
        return None;
    }
    let small = tiny_config(arch)?;
    let shared_width = small.experts?.shared_width.map(|_| 256);
    let count = if arch == "mixtral" { 8 } else { 16 };
    let config = TinyConfig {
        hidden_size: 256,
        // Mixtral and OLMoE's experts are `feed_forward_length` wide.
        intermediate_size: 256,
        num_hidden_layers: 3,
        head_dim: 64,
        experts: Some(TinyExperts { count, used: 2, width: 256, shared_width }),
        ..small
    };
    let Some(mla) = small.mla else { return Some(config) };
    // DeepSeek V3's heads (128 + 64 rope, values of 128), its ranks and dense layer scaled to
    // the width; the small model's routing (16 experts: 4 groups of 4).
    let (nope, rope) = (128, 64);
    Some(TinyConfig {
        intermediate_size: 512,
        head_dim: nope + rope,
        mla: Some(TinyMla {
            q_lora_rank: 256,
            kv_lora_rank: 256,
            qk_nope_head_dim: nope,
            qk_rope_head_dim: rope,
            v_head_dim: 128,
            ..mla
        }),
        ..config
    })
}

/// Writes the quantized tiny model of `arch` (one of [`TINY_QUANTIZED_ARCHS`]) in `quant` to
/// `path`. Deterministic: the same bytes on every call and every machine.
pub fn write_tiny_quantized_model(
    arch: &str,
    quant: TinyQuant,
    path: &Path,
) -> std::io::Result<()> {
    quantized_writer(arch, quant)?.write_file(path).map_err(std::io::Error::other)
}

/// The whole quantized tiny model of `arch` in `quant` as GGUF bytes.
pub fn tiny_quantized_model_bytes(arch: &str, quant: TinyQuant) -> std::io::Result<Vec<u8>> {
    Ok(quantized_writer(arch, quant)?.to_bytes())
}

fn quantized_writer(arch: &str, quant: TinyQuant) -> std::io::Result<GgufWriter> {
    let config =
        tiny_quantized_config(arch).ok_or_else(|| unknown_arch(arch, &TINY_QUANTIZED_ARCHS))?;
    build(&config, Family::Quantized(quant)).map_err(std::io::Error::other)
}

/// The type `llama-quantize` gives the matrix `tensor` (2-D or 3-D; it keeps 1-D tensors as
/// they are) of a model of `config` for `quant`, its rows `row_len` values long: llama.cpp's
/// `llama_tensor_get_type`, reduced to the tensors and file types of these models.
pub(super) fn llama_quantize_type(
    quant: TinyQuant,
    config: &TinyConfig,
    tensor: Tensor,
    row_len: u64,
) -> GgmlType {
    let mixture = mixture_type(quant, config, tensor);
    if quant == TinyQuant::F32 {
        mixture
    } else {
        fallback_type(mixture, row_len)
    }
}

/// llama-quantize's `tensor_type_fallback`: a type whose blocks do not divide the rows
/// (`row_len` values) becomes its 32-block counterpart, or F16 when that does not fit either.
fn fallback_type(ggml_type: GgmlType, row_len: u64) -> GgmlType {
    use GgmlType::{Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0};
    let fits = |t: GgmlType| row_len.is_multiple_of(t.block_size() as u64);
    if fits(ggml_type) {
        return ggml_type;
    }
    let smaller = match ggml_type {
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => Q8_0,
        other => other, // already a 32-block type: F16 below
    };
    if fits(smaller) {
        smaller
    } else {
        GgmlType::F16
    }
}

/// The type of `tensor` in llama-quantize's mixture for `quant`, before [`fallback_type`].
fn mixture_type(quant: TinyQuant, config: &TinyConfig, tensor: Tensor) -> GgmlType {
    use GgmlType::{Q4_K, Q5_K, Q6_K, Q8_0};
    // Its bigger types for a few layers: the first and last eighths and every third between.
    let more_bits = |layer: usize| {
        let n = config.num_hidden_layers;
        layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2
    };
    let eight_experts = config.experts.is_some_and(|e| e.count == 8);
    match (quant, tensor) {
        (TinyQuant::F32, _) | (_, Tensor::Layer(L::FfnGateInp, _)) => GgmlType::F32, // routers stay F32
        (TinyQuant::Q8_0, _) => Q8_0,
        (
            TinyQuant::MXFP4_MOE,
            Tensor::Layer(L::FfnGateExps | L::FfnUpExps | L::FfnDownExps, _),
        ) => GgmlType::MXFP4,
        (TinyQuant::MXFP4_MOE, _) => Q8_0,
        (TinyQuant::Q4_K_M, Tensor::Model(ModelTensor::Output)) => Q6_K,
        (TinyQuant::Q4_K_M, Tensor::Model(_)) => Q4_K,
        (TinyQuant::Q4_K_M, Tensor::Layer(tensor, layer)) => match tensor {
            L::AttnK | L::AttnV if eight_experts => Q8_0,
            L::AttnOutput if eight_experts => Q5_K,
            // Every `ffn_down` (DeepSeek's dense one too), by the layer in its name.
            L::AttnV | L::FfnDown | L::FfnDownExps | L::FfnDownShexp if more_bits(layer) => Q6_K,
            _ => Q4_K,
        },
    }
}

/// `values` in `ggml_type`, as ggml's reference quantizers write them (what `llama-quantize`
/// runs without an importance matrix).
pub(super) fn quantize(ggml_type: GgmlType, values: &[f32]) -> Vec<u8> {
    let bytes = ggml_type.bytes_for(values.len() as u64).expect("whole blocks");
    let mut out = vec![0u8; bytes as usize];
    uma_kernels::quantize(ggml_type, values, &mut out).expect("a type uma_kernels quantizes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quantized_arch_parses_with_llama_quantize_types() {
        for arch in TINY_QUANTIZED_ARCHS {
            for &quant in TinyQuant::of_arch(arch) {
                let file = uma_gguf::GgufFile::from_bytes(
                    tiny_quantized_model_bytes(arch, quant).expect("known arch"),
                )
                .expect("valid GGUF");
                let ty = |name: &str| file.tensor(name).expect(name).ggml_type();
                // DeepSeek's first layer is dense.
                let moe = usize::from(arch == "deepseek2");
                assert_eq!(ty(&format!("blk.{moe}.ffn_gate_inp.weight")), GgmlType::F32, "{arch}");
                let ffn_norm = if arch == "gpt-oss" { "post_attention_norm" } else { "ffn_norm" };
                assert_eq!(ty(&format!("blk.1.{ffn_norm}.weight")), GgmlType::F32, "{arch} norm");
                let (down0, down2, output) = match quant {
                    TinyQuant::F32 => (GgmlType::F32, GgmlType::F32, GgmlType::F32),
                    TinyQuant::Q8_0 => (GgmlType::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0),
                    TinyQuant::Q4_K_M => (GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q6_K),
                    TinyQuant::MXFP4_MOE => (GgmlType::MXFP4, GgmlType::MXFP4, GgmlType::Q8_0),
                };
                assert_eq!(
                    ty(&format!("blk.{moe}.ffn_down_exps.weight")),
                    down0,
                    "{arch} {quant:?}"
                );
                assert_eq!(ty("blk.2.ffn_down_exps.weight"), down2, "{arch} {quant:?}");
                assert_eq!(ty("output.weight"), output, "{arch} {quant:?}");
            }
        }
        assert!(tiny_quantized_model_bytes("llama", TinyQuant::Q8_0).is_err());
    }

    #[test]
    fn deepseek2_mla_tensors_follow_llama_quantize() {
        let file = |quant| {
            let bytes = tiny_quantized_model_bytes("deepseek2", quant).expect("known arch");
            uma_gguf::GgufFile::from_bytes(bytes).expect("valid GGUF")
        };
        let (q8, q4) = (file(TinyQuant::Q8_0), file(TinyQuant::Q4_K_M));
        let ty = |file: &uma_gguf::GgufFile, name: &str| file.tensor(name).expect(name).ggml_type();
        assert_eq!(q8.tensor("blk.0.attn_k_b.weight").expect("k_b").shape(), [128, 256, 4]);
        for name in ["attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_k_b", "attn_v_b", "ffn_down"] {
            assert_eq!(ty(&q8, &format!("blk.0.{name}.weight")), GgmlType::Q8_0, "{name}");
        }
        // attn_k_b's rows of 128 values: Q4_K falls back to Q5_0.
        assert_eq!(ty(&q4, "blk.0.attn_k_b.weight"), GgmlType::Q5_0);
        for name in ["attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_v_b", "attn_output", "ffn_down"]
        {
            assert_eq!(ty(&q4, &format!("blk.0.{name}.weight")), GgmlType::Q4_K, "{name}");
        }
        assert_eq!(ty(&q4, "blk.2.ffn_down_shexp.weight"), GgmlType::Q6_K);
        assert_eq!(ty(&q4, "blk.1.exp_probs_b.bias"), GgmlType::F32);
    }

    #[test]
    fn types_fall_back_as_llama_quantize() {
        use GgmlType::{F16, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0};
        assert_eq!(fallback_type(Q4_K, 512), Q4_K);
        assert_eq!(fallback_type(Q4_K, 128), Q5_0);
        assert_eq!(fallback_type(Q5_K, 96), Q5_1);
        assert_eq!(fallback_type(Q6_K, 64), Q8_0);
        assert_eq!(fallback_type(Q6_K, 40), F16);
        assert_eq!(fallback_type(Q8_0, 48), F16);
        assert_eq!(fallback_type(Q8_0, 32), Q8_0);
    }
}
