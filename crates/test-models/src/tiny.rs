//! Tiny random models, one per architecture that has no real model in the test suite (and for the
//! ones that do, so that every code path has a model small enough to check logit by logit).
//!
//! Each model is a valid GGUF file with the tensor names and metadata keys llama.cpp's converter
//! writes. Weights are seeded pseudo-random numbers from a generator written here (SplitMix64 and
//! Box–Muller), so the files are byte-for-byte identical on every machine and every version of this
//! crate's dependencies: the reference logits in `crates/model/tests/golden/tiny/<arch>.json` were
//! computed by Hugging Face `transformers` from exactly these bytes (`scripts/golden/tiny_logits.py`).
//! Changing a number here invalidates those goldens: rerun `scripts/golden/make-reference.sh`.
//! The same generator writes a second family, 256 wide and quantized as `llama-quantize` would
//! ([`write_tiny_quantized_model`], golden `tiny_greedy/<arch>-<quant>.json` from llama.cpp).
//!
//! What each model exercises:
//! - `llama`: GQA, Q/K stored in the llama.cpp "normal rope" permuted order, untied output head,
//!   a Q8_0 `ffn_down` and an F16 `attn_v`.
//! - `qwen2`: q/k/v biases, NEOX rope, untied output head, a Q8_0 `attn_output`.
//! - `qwen3`: per-head q/k RMS norms, `head_dim` (32) different from `hidden_size / num_heads` (16),
//!   tied embeddings, a Q8_0 `ffn_up`.
//! - `gemma3`: 6 layers (5 sliding-window layers with a window of 4 tokens, then one global layer),
//!   per-head q/k norms, post-attention and post-feed-forward norms, GELU, embeddings scaled by
//!   `sqrt(hidden_size)`, norm weights stored as `1 + w` (as the converter writes them), `head_dim`
//!   different from `hidden_size / num_heads`, a single KV head, tied embeddings, a Q8_0 `ffn_gate`.
//! - `qwen3moe`: Qwen 3's attention, every feed-forward layer a mixture of 8 experts (2 per token,
//!   32 wide) stacked in 3-D tensors, a router sharper than the products (its golden prompts
//!   route with a margin, `tiny_logits.py`), the up experts in Q8_0.
//! - `qwen2moe`: Qwen 2's attention (biases), 8 experts (2 per token, weights not rescaled) and a
//!   shared expert 64 wide behind a sigmoid gate, its down projection in Q8_0.
//! - `mixtral`: a `llama` file with 8 experts (2 per token, renormalised) as wide as its
//!   `feed_forward_length`, Q/K permuted like llama's, the up experts in Q8_0.
//! - `olmoe`: RMS norms over each token's whole q and k, NeoX rope, 8 experts (2 per token, not
//!   renormalised), the up experts in Q8_0.
//! - `gpt-oss`: q/k/v and output biases, a sink logit per head, even layers windowed (4
//!   positions), YaRN rope (factor 4 of an original 64 positions), 8 experts (2 per token by
//!   the softmax of the top two logits) with biases and the clamped SwiGLU, the feed-forward
//!   norm named `post_attention_norm`; all F32. Its MXFP4 experts are in the quantized family
//!   (checked against llama.cpp): with 8-bit activations, as llama.cpp and uma multiply MXFP4
//!   and Q8_0, any one quantized matrix (an MXFP4 or Q8_0 expert tensor, a Q8_0 `attn_output`)
//!   moves this model's logits by 1.3–2.6% of their range — transformers itself, its expert
//!   inputs rounded to Q8_0, moves them as much — past the 1.2% this check allows for
//!   arithmetic; all F32, uma agrees to 0.06%.
//! - `deepseek2` (DeepSeek V3 / Kimi K2 as the converter writes them, in MLA form): multi-head
//!   latent attention (a low-rank query through `attn_q_a` and its norm; one shared latent of 32
//!   and one shared rope key of 8 from `attn_kv_a_mqa`; per-head `attn_k_b` and `attn_v_b`
//!   decompressing it, 24-wide keys and 16-wide values), adjacent-pair ("normal") rope on the
//!   rope part only, YaRN (factor 4 of an original 64 positions, `mscale_all_dim` 1 scaling the
//!   attention); a dense first layer, then 8 sigmoid-routed experts in 4 groups (the best 2
//!   groups by their top-2 sum, then 2 experts) chosen with a per-expert bias
//!   (`exp_probs_b`) that changes the choice, renormalised and scaled by 2.5, plus one shared
//!   expert; all F32.

use std::path::Path;

use uma_gguf::tensor_names::{LayerTensor as L, ModelTensor};
use uma_gguf::{GgmlType, GgufWriter, MetadataArray, MetadataValue};

mod quantized;

pub use quantized::{
    tiny_quantized_config, tiny_quantized_model_bytes, write_tiny_quantized_model, TinyQuant,
    TINY_QUANTIZED_ARCHS,
};

/// The architectures [`write_tiny_model`] knows.
pub const TINY_ARCHS: [&str; 10] = [
    "llama",
    "qwen2",
    "qwen3",
    "gemma3",
    "qwen3moe",
    "qwen2moe",
    "mixtral",
    "olmoe",
    "gpt-oss",
    "deepseek2",
];

/// Hyper-parameters of one tiny model (Hugging Face names).
#[derive(Clone, Debug, PartialEq)]
pub struct TinyConfig {
    pub arch: &'static str,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub max_position_embeddings: usize,
    /// Gemma 3 only: the window of its sliding-window layers, in tokens.
    pub sliding_window: Option<usize>,
    /// Whether `output.weight` is absent and the head reuses `token_embd.weight`.
    pub tie_word_embeddings: bool,
    /// Mixture-of-experts models' experts.
    pub experts: Option<TinyExperts>,
    /// YaRN rope scaling: `(factor, original_max_position_embeddings)`.
    pub rope_yarn: Option<(f32, usize)>,
    /// DeepSeek's multi-head latent attention and routing (`deepseek2`).
    pub mla: Option<TinyMla>,
}

/// The experts of a tiny mixture-of-experts model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TinyExperts {
    pub count: usize,
    pub used: usize,
    /// Each expert's feed-forward width.
    pub width: usize,
    /// The shared experts' width, when there are some: Qwen2-MoE's one shared expert; DeepSeek's
    /// `expert_shared_count` experts of `width` each, as one matrix.
    pub shared_width: Option<usize>,
}

/// What a `deepseek2` file has beyond the other architectures: multi-head latent attention (MLA)
/// and DeepSeek V3's routing. `head_dim` is then the decompressed query/key head
/// (`qk_nope_head_dim + qk_rope_head_dim`) and `num_key_value_heads` 1 (the shared latent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TinyMla {
    /// `q_lora_rank`: the width of the compressed query.
    pub q_lora_rank: usize,
    /// `kv_lora_rank`: the width of the latent every head's keys and values come from.
    pub kv_lora_rank: usize,
    /// The part of each query/key head without rope.
    pub qk_nope_head_dim: usize,
    /// The part of each query/key head with rope (one rope key shared by every head).
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    /// `first_k_dense_replace`: the leading layers with a dense feed-forward network.
    pub leading_dense_layers: usize,
    /// Group-limited routing: `(n_group, topk_group)`.
    pub expert_groups: (usize, usize),
    /// `routed_scaling_factor`: what the renormalised expert weights are multiplied by.
    pub routed_scaling_factor: f32,
    /// YaRN's `mscale_all_dim` (written ×0.1 as `rope.scaling.yarn_log_multiplier`).
    pub mscale_all_dim: f32,
}

/// The hyper-parameters of the tiny model of `arch`, or `None` for an unknown architecture.
pub fn tiny_config(arch: &str) -> Option<TinyConfig> {
    let base = TinyConfig {
        arch: "llama",
        vocab_size: 320,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 16,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_position_embeddings: 256,
        sliding_window: None,
        tie_word_embeddings: false,
        experts: None,
        rope_yarn: None,
        mla: None,
    };
    Some(match arch {
        "llama" => base,
        "qwen2" => TinyConfig {
            arch: "qwen2",
            num_hidden_layers: 3,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            ..base
        },
        "qwen3" => TinyConfig {
            arch: "qwen3",
            head_dim: 32,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            tie_word_embeddings: true,
            ..base
        },
        "qwen3moe" => TinyConfig {
            arch: "qwen3moe",
            head_dim: 32,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            experts: Some(TinyExperts { count: 8, used: 2, width: 32, shared_width: None }),
            ..base
        },
        // Mixtral is `llama` with experts, as wide as `feed_forward_length` (the converter
        // writes no expert width for it).
        "mixtral" => TinyConfig {
            intermediate_size: 32,
            experts: Some(TinyExperts { count: 8, used: 2, width: 32, shared_width: None }),
            ..base
        },
        // OLMoE has as many KV heads as query heads (llama.cpp's k norm is hidden_size wide).
        // Like Mixtral, its experts are `feed_forward_length` wide.
        "olmoe" => TinyConfig {
            arch: "olmoe",
            num_key_value_heads: 4,
            intermediate_size: 32,
            experts: Some(TinyExperts { count: 8, used: 2, width: 32, shared_width: None }),
            ..base
        },
        "qwen2moe" => TinyConfig {
            arch: "qwen2moe",
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            experts: Some(TinyExperts { count: 8, used: 2, width: 32, shared_width: Some(64) }),
            ..base
        },
        // gpt-oss shrunk: alternating windowed (4 positions) and full layers, YaRN scaling the
        // rope 4× past an original context of 64, 8 experts (2 per token) as wide as
        // `feed_forward_length`.
        "gpt-oss" => TinyConfig {
            arch: "gpt-oss",
            intermediate_size: 32,
            num_hidden_layers: 4,
            rope_theta: 150_000.0,
            sliding_window: Some(4),
            experts: Some(TinyExperts { count: 8, used: 2, width: 32, shared_width: None }),
            rope_yarn: Some((4.0, 64)),
            ..base
        },
        // DeepSeek V3 shrunk: a dense first layer (128 wide), then 8 experts of 32 in 4 groups
        // (2 groups, then 2 experts per token) and one shared expert; YaRN 4× past 64 positions.
        // Query heads of 32 + 8 (`attn_k_b`'s rows a whole 32-value block, as the GPU needs).
        "deepseek2" => TinyConfig {
            arch: "deepseek2",
            num_hidden_layers: 3,
            num_key_value_heads: 1,
            head_dim: 32 + 8,
            rms_norm_eps: 1e-6,
            experts: Some(TinyExperts { count: 8, used: 2, width: 32, shared_width: Some(32) }),
            rope_yarn: Some((4.0, 64)),
            mla: Some(TinyMla {
                q_lora_rank: 32,
                kv_lora_rank: 32,
                qk_nope_head_dim: 32,
                qk_rope_head_dim: 8,
                v_head_dim: 16,
                leading_dense_layers: 1,
                expert_groups: (4, 2),
                routed_scaling_factor: 2.5,
                mscale_all_dim: 1.0,
            }),
            ..base
        },
        "gemma3" => TinyConfig {
            arch: "gemma3",
            num_hidden_layers: 6,
            num_key_value_heads: 1,
            head_dim: 32,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            sliding_window: Some(4),
            tie_word_embeddings: true,
            ..base
        },
        _ => return None,
    })
}

/// Writes the tiny model of `arch` (one of [`TINY_ARCHS`]) to `path`.
///
/// Deterministic: the same bytes on every call and every machine.
pub fn write_tiny_model(arch: &str, path: &Path) -> std::io::Result<()> {
    let writer = tiny_model_writer(arch)?;
    writer.write_file(path).map_err(std::io::Error::other)
}

/// The whole tiny model of `arch` as GGUF bytes (for tests that parse from memory).
pub fn tiny_model_bytes(arch: &str) -> std::io::Result<Vec<u8>> {
    Ok(tiny_model_writer(arch)?.to_bytes())
}

fn tiny_model_writer(arch: &str) -> std::io::Result<GgufWriter> {
    let config = tiny_config(arch).ok_or_else(|| unknown_arch(arch, &TINY_ARCHS))?;
    build(&config, Family::Small).map_err(std::io::Error::other)
}

fn unknown_arch(arch: &str, known: &[&str]) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("no tiny model for architecture {arch:?} (known: {known:?})"),
    )
}

/// Which family of tiny files a build belongs to: what sets its tensor types, seeds and scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// [`write_tiny_model`]'s files: mostly F32, with one Q8_0 (and one F16) tensor per layer.
    Small,
    /// [`write_tiny_quantized_model`]'s files, typed as llama-quantize types them.
    Quantized(TinyQuant),
}

/// One tensor of a tiny file, as its type is chosen.
#[derive(Clone, Copy, Debug)]
enum Tensor {
    Model(ModelTensor),
    Layer(L, usize),
}

fn build(c: &TinyConfig, family: Family) -> uma_gguf::Result<GgufWriter> {
    let arch = c.arch;
    let mut w = GgufWriter::new();
    let key = |suffix: &str| format!("{arch}.{suffix}");
    w.add_metadata("general.architecture", MetadataValue::String(arch.into()))?;
    let name = match family {
        Family::Small => format!("uma tiny {arch}"),
        // The same in every quantization: llama-quantize copies the F32 file's metadata.
        Family::Quantized(_) => format!("uma tiny quantized {arch}"),
    };
    w.add_metadata("general.name", MetadataValue::String(name))?;
    w.add_metadata("general.alignment", MetadataValue::U32(32))?;
    if let Family::Quantized(quant) = family {
        // What llama-quantize writes (the converter writes both for an F32 file too).
        w.add_metadata("general.file_type", MetadataValue::U32(quant.file_type()))?;
        w.add_metadata("general.quantization_version", MetadataValue::U32(2))?;
    }
    w.add_metadata(&key("vocab_size"), MetadataValue::U32(c.vocab_size as u32))?;
    w.add_metadata(&key("context_length"), MetadataValue::U32(c.max_position_embeddings as u32))?;
    w.add_metadata(&key("embedding_length"), MetadataValue::U32(c.hidden_size as u32))?;
    w.add_metadata(&key("block_count"), MetadataValue::U32(c.num_hidden_layers as u32))?;
    w.add_metadata(&key("feed_forward_length"), MetadataValue::U32(c.intermediate_size as u32))?;
    w.add_metadata(&key("attention.head_count"), MetadataValue::U32(c.num_attention_heads as u32))?;
    w.add_metadata(
        &key("attention.head_count_kv"),
        MetadataValue::U32(c.num_key_value_heads as u32),
    )?;
    // MLA's cached key is the latent and the rope key, its value the latent (what the converter
    // writes: llama.cpp attends over them as one KV head).
    let (key_length, value_length, rope_dims) = match c.mla {
        Some(m) => (m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank, m.qk_rope_head_dim),
        None => (c.head_dim, c.head_dim, c.head_dim),
    };
    w.add_metadata(&key("attention.key_length"), MetadataValue::U32(key_length as u32))?;
    w.add_metadata(&key("attention.value_length"), MetadataValue::U32(value_length as u32))?;
    w.add_metadata(&key("attention.layer_norm_rms_epsilon"), MetadataValue::F32(c.rms_norm_eps))?;
    w.add_metadata(&key("rope.dimension_count"), MetadataValue::U32(rope_dims as u32))?;
    w.add_metadata(&key("rope.freq_base"), MetadataValue::F32(c.rope_theta))?;
    if let Some(window) = c.sliding_window {
        w.add_metadata(&key("attention.sliding_window"), MetadataValue::U32(window as u32))?;
    }
    if let Some((factor, original)) = c.rope_yarn {
        w.add_metadata(&key("rope.scaling.type"), MetadataValue::String("yarn".into()))?;
        w.add_metadata(&key("rope.scaling.factor"), MetadataValue::F32(factor))?;
        let original = MetadataValue::U32(original as u32);
        w.add_metadata(&key("rope.scaling.original_context_length"), original)?;
    }
    if let Some(e) = c.experts {
        w.add_metadata(&key("expert_count"), MetadataValue::U32(e.count as u32))?;
        w.add_metadata(&key("expert_used_count"), MetadataValue::U32(e.used as u32))?;
        if !matches!(arch, "llama" | "olmoe") {
            let width = MetadataValue::U32(e.width as u32);
            w.add_metadata(&key("expert_feed_forward_length"), width)?;
        }
        match (e.shared_width, c.mla) {
            (Some(shared), Some(_)) => {
                let count = MetadataValue::U32((shared / e.width) as u32);
                w.add_metadata(&key("expert_shared_count"), count)?;
            }
            (Some(shared), None) => {
                let shared = MetadataValue::U32(shared as u32);
                w.add_metadata(&key("expert_shared_feed_forward_length"), shared)?;
            }
            (None, _) => {}
        }
    }
    if let Some(m) = c.mla {
        add_mla_metadata(&mut w, arch, &m)?;
    }
    add_tokenizer(&mut w, c.vocab_size)?;

    let h = c.hidden_size as u64;
    let q_dim = (c.num_attention_heads * c.head_dim) as u64;
    let kv_dim = (c.num_key_value_heads * c.head_dim) as u64;
    let ffn = c.intermediate_size as u64;
    let vocab = c.vocab_size as u64;
    let d = c.head_dim as u64;
    let gemma = arch == "gemma3";
    let gpt_oss = arch == "gpt-oss";
    // Standard deviations: inputs of every matrix product are RMS-normalised (rms ≈ 1), so
    // 1/sqrt(fan_in) keeps activations near unit scale and logits a few units apart.
    let std_in = |fan_in: u64| 1.0 / (fan_in as f32).sqrt();
    // Gemma multiplies its embeddings by sqrt(64) = 8. The quantized family decodes greedily
    // against llama.cpp: its larger embeddings keep more of each token's identity in the
    // residual stream, so that the small differences between two quantized forward passes
    // change the routing and the argmax less often (measured: 3.5% of greedy steps differ
    // instead of 4.7%; crates/model/tests/golden/STATUS.md). Its logits have a std of about
    // 0.5·√256 = 8.
    let embd_std = if gemma { 0.125 } else { 0.5 };
    let (embd_std, output_std) = match family {
        Family::Small => (embd_std, 0.3),
        Family::Quantized(_) => (1.0, 0.5),
    };

    let mut t = TensorAdder { config: c, family, writer: &mut w };
    t.normal(Tensor::Model(ModelTensor::TokenEmbedding), &[h, vocab], 0.0, embd_std)?;
    for layer in 0..c.num_hidden_layers {
        let weight = |tensor: L| Tensor::Layer(tensor, layer);
        t.normal(weight(L::AttnNorm), &[h], 1.0, 0.1)?;
        if let Some(m) = c.mla {
            t.mla_attention(&m, layer)?;
        } else {
            t.normal(weight(L::AttnQ), &[h, q_dim], 0.0, std_in(h))?;
            t.normal(weight(L::AttnK), &[h, kv_dim], 0.0, std_in(h))?;
            t.normal(weight(L::AttnV), &[h, kv_dim], 0.0, std_in(h))?;
        }
        if arch == "qwen2" || arch == "qwen2moe" || gpt_oss {
            t.bias(L::AttnQ, layer, &[q_dim], 0.2)?;
            t.bias(L::AttnK, layer, &[kv_dim], 0.2)?;
            t.bias(L::AttnV, layer, &[kv_dim], 0.2)?;
        }
        if arch == "qwen3" || arch == "qwen3moe" || gemma {
            t.normal(weight(L::AttnQNorm), &[d], 1.0, 0.1)?;
            t.normal(weight(L::AttnKNorm), &[d], 1.0, 0.1)?;
        }
        if arch == "olmoe" {
            t.normal(weight(L::AttnQNorm), &[q_dim], 1.0, 0.1)?;
            t.normal(weight(L::AttnKNorm), &[kv_dim], 1.0, 0.1)?;
        }
        // MLA's heads give values `v_head_dim` wide.
        let o_dim = c.mla.map_or(q_dim, |m| (c.num_attention_heads * m.v_head_dim) as u64);
        t.normal(weight(L::AttnOutput), &[o_dim, h], 0.0, std_in(o_dim))?;
        if gpt_oss {
            t.bias(L::AttnOutput, layer, &[h], 0.2)?;
            // Sinks of a few units: some heads give the sink most of the weight.
            t.normal(weight(L::AttnSinks), &[c.num_attention_heads as u64], 0.0, 2.0)?;
        }
        if gemma || gpt_oss {
            // gpt-oss's feed-forward norm goes by this name (the converter's).
            t.normal(weight(L::PostAttentionNorm), &[h], 1.0, 0.1)?;
        }
        if !gpt_oss {
            t.normal(weight(L::FfnNorm), &[h], 1.0, 0.1)?;
        }
        // DeepSeek's leading layers are dense.
        let dense_lead = c.mla.map_or(0, |m| m.leading_dense_layers);
        if let Some(e) = c.experts.filter(|_| layer >= dense_lead) {
            // The router a little sharper than the products, so that top-k is rarely a tie.
            // DeepSeek's sigmoid scores would saturate at 1 with logits that far apart, and tie
            // again: its logits are about ±2, each score shifted by a bias of about ±0.1 (which
            // changes about half the choices of the golden prompts).
            let (n, f) = (e.count as u64, e.width as u64);
            let router_std = if c.mla.is_some() { 2.0 } else { 4.0 };
            t.normal(weight(L::FfnGateInp), &[h, n], 0.0, router_std * std_in(h))?;
            if c.mla.is_some() {
                t.bias(L::ExpProbsB, layer, &[n], 0.1)?;
            }
            t.normal(weight(L::FfnGateExps), &[h, f, n], 0.0, std_in(h))?;
            t.normal(weight(L::FfnUpExps), &[h, f, n], 0.0, std_in(h))?;
            t.normal(weight(L::FfnDownExps), &[f, h, n], 0.0, std_in(f))?;
            if gpt_oss {
                t.bias(L::FfnGateInp, layer, &[n], 0.5)?;
                t.bias(L::FfnGateExps, layer, &[f, n], 0.2)?;
                t.bias(L::FfnUpExps, layer, &[f, n], 0.2)?;
                t.bias(L::FfnDownExps, layer, &[h, n], 0.2)?;
            }
            if let Some(shared) = e.shared_width {
                let s = shared as u64;
                if c.mla.is_none() {
                    // Qwen 2 MoE's sigmoid gate of the shared expert (DeepSeek has none).
                    t.normal(weight(L::FfnGateInpShexp), &[h], 0.0, std_in(h))?;
                }
                t.normal(weight(L::FfnGateShexp), &[h, s], 0.0, std_in(h))?;
                t.normal(weight(L::FfnUpShexp), &[h, s], 0.0, std_in(h))?;
                t.normal(weight(L::FfnDownShexp), &[s, h], 0.0, std_in(s))?;
            }
        } else {
            t.normal(weight(L::FfnGate), &[h, ffn], 0.0, std_in(h))?;
            t.normal(weight(L::FfnUp), &[h, ffn], 0.0, std_in(h))?;
            t.normal(weight(L::FfnDown), &[ffn, h], 0.0, std_in(ffn))?;
        }
        if gemma {
            t.normal(weight(L::PostFfwNorm), &[h], 1.0, 0.1)?;
        }
    }
    t.normal(Tensor::Model(ModelTensor::OutputNorm), &[h], 1.0, 0.1)?;
    if !c.tie_word_embeddings {
        t.normal(Tensor::Model(ModelTensor::Output), &[h, vocab], 0.0, output_std)?;
    }
    Ok(w)
}

/// The small family's types: mostly F32, one Q8_0 matrix per layer (and the llama files' F16
/// `attn_v`), so that the transformers goldens test the quantized paths a little.
fn small_family_type(arch: &str, tensor: Tensor) -> GgmlType {
    let Tensor::Layer(tensor, _) = tensor else { return GgmlType::F32 };
    match (arch, tensor) {
        // All F32: see the module's notes.
        ("gpt-oss" | "deepseek2", _) => GgmlType::F32,
        ("llama", L::FfnDown)
        | ("qwen2", L::AttnOutput)
        | ("qwen3", L::FfnUp)
        | ("gemma3", L::FfnGate)
        | (_, L::FfnUpExps | L::FfnDownShexp) => GgmlType::Q8_0,
        ("llama", L::AttnV) => GgmlType::F16, // mixtral's too: its `arch` is "llama"
        _ => GgmlType::F32,
    }
}

struct TensorAdder<'a> {
    config: &'a TinyConfig,
    family: Family,
    writer: &'a mut GgufWriter,
}

impl TensorAdder<'_> {
    /// Adds the weight `tensor` of normal(mean, std) values, seeded by the family, the
    /// architecture and the tensor's name, and typed by the family.
    fn normal(
        &mut self,
        tensor: Tensor,
        shape: &[u64],
        mean: f32,
        std: f32,
    ) -> uma_gguf::Result<()> {
        let name = match tensor {
            Tensor::Model(t) => t.weight_name().to_string(),
            Tensor::Layer(t, layer) => t.weight(layer),
        };
        let ggml_type = if shape.len() == 1 {
            GgmlType::F32 // norms and gates, kept in F32 by llama-quantize
        } else {
            match self.family {
                Family::Small => small_family_type(self.config.arch, tensor),
                Family::Quantized(quant) => {
                    quantized::llama_quantize_type(quant, self.config, tensor, shape[0])
                }
            }
        };
        self.add(&name, ggml_type, shape, mean, std)
    }

    /// Adds layer `layer`'s multi-head latent attention (without `attn_output`), as llama.cpp's
    /// converter writes DeepSeek V3 for its MLA path: Hugging Face's `kv_b_proj` split per head
    /// into `attn_k_b` (transposed) and `attn_v_b`.
    fn mla_attention(&mut self, m: &TinyMla, layer: usize) -> uma_gguf::Result<()> {
        let weight = |tensor: L| Tensor::Layer(tensor, layer);
        let std_in = |fan_in: u64| 1.0 / (fan_in as f32).sqrt();
        let h = self.config.hidden_size as u64;
        let heads = self.config.num_attention_heads as u64;
        let (q_lora, kv_lora) = (m.q_lora_rank as u64, m.kv_lora_rank as u64);
        let (nope, rope, v) =
            (m.qk_nope_head_dim as u64, m.qk_rope_head_dim as u64, m.v_head_dim as u64);
        self.normal(weight(L::AttnQA), &[h, q_lora], 0.0, std_in(h))?;
        self.normal(weight(L::AttnQANorm), &[q_lora], 1.0, 0.1)?;
        self.normal(weight(L::AttnQB), &[q_lora, heads * (nope + rope)], 0.0, std_in(q_lora))?;
        self.normal(weight(L::AttnKvAMqa), &[h, kv_lora + rope], 0.0, std_in(h))?;
        self.normal(weight(L::AttnKvANorm), &[kv_lora], 1.0, 0.1)?;
        // ggml order: per head, k_b maps the latent to the no-rope key as a [nope, kv_lora]
        // matrix applied transposed (llama.cpp multiplies the query by it: absorbed MLA).
        self.normal(weight(L::AttnKB), &[nope, kv_lora, heads], 0.0, std_in(kv_lora))?;
        self.normal(weight(L::AttnVB), &[kv_lora, v, heads], 0.0, std_in(kv_lora))?;
        Ok(())
    }

    /// Adds the F32 bias of `tensor` in `layer`, normal(0, std).
    fn bias(&mut self, tensor: L, layer: usize, shape: &[u64], std: f32) -> uma_gguf::Result<()> {
        self.add(&tensor.bias(layer), GgmlType::F32, shape, 0.0, std)
    }

    fn add(
        &mut self,
        name: &str,
        ggml_type: GgmlType,
        shape: &[u64],
        mean: f32,
        std: f32,
    ) -> uma_gguf::Result<()> {
        let count: u64 = shape.iter().product();
        // The small family's seeds are the architecture's name alone (its goldens were made so).
        let seed = match self.family {
            Family::Small => format!("{}/{name}", self.config.arch),
            Family::Quantized(_) => format!("quantized {}/{name}", self.config.arch),
        };
        let mut rng = SplitMix64::new(fnv1a(&seed));
        let values: Vec<f32> = (0..count).map(|_| mean + std * rng.normal()).collect();
        let data = quantized::quantize(ggml_type, &values);
        self.writer.add_tensor(name, ggml_type, shape, data)?;
        Ok(())
    }
}

/// The `deepseek2` keys the other architectures lack, as llama.cpp's converter writes them for
/// DeepSeek V3 (`DeepseekV2Model.set_gguf_parameters` and the base class's routing and YaRN keys).
fn add_mla_metadata(w: &mut GgufWriter, arch: &str, m: &TinyMla) -> uma_gguf::Result<()> {
    let key = |suffix: &str| format!("{arch}.{suffix}");
    let u32 = |v: usize| MetadataValue::U32(v as u32);
    w.add_metadata(&key("leading_dense_block_count"), u32(m.leading_dense_layers))?;
    w.add_metadata(&key("attention.q_lora_rank"), u32(m.q_lora_rank))?;
    w.add_metadata(&key("attention.kv_lora_rank"), u32(m.kv_lora_rank))?;
    let key_length_mla = u32(m.qk_nope_head_dim + m.qk_rope_head_dim);
    w.add_metadata(&key("attention.key_length_mla"), key_length_mla)?;
    w.add_metadata(&key("attention.value_length_mla"), u32(m.v_head_dim))?;
    w.add_metadata(&key("expert_group_count"), u32(m.expert_groups.0))?;
    w.add_metadata(&key("expert_group_used_count"), u32(m.expert_groups.1))?;
    let scale = MetadataValue::F32(m.routed_scaling_factor);
    w.add_metadata(&key("expert_weights_scale"), scale)?;
    w.add_metadata(&key("expert_weights_norm"), MetadataValue::Bool(true))?;
    // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID.
    w.add_metadata(&key("expert_gating_func"), MetadataValue::U32(2))?;
    // DeepSeek V3's YaRN betas (llama.cpp's deepseek2 does not read them: it uses 32 and 1).
    w.add_metadata(&key("rope.scaling.yarn_beta_fast"), MetadataValue::F32(32.0))?;
    w.add_metadata(&key("rope.scaling.yarn_beta_slow"), MetadataValue::F32(1.0))?;
    // 0.1 × mscale_all_dim: llama.cpp divides it by 0.1 again ([TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]).
    let log_mul = MetadataValue::F32(0.1 * m.mscale_all_dim);
    w.add_metadata(&key("rope.scaling.yarn_log_multiplier"), log_mul)?;
    Ok(())
}

/// A small byte-level BPE vocabulary ("gpt2" model): the 256 byte tokens in GPT-2's printable
/// byte-to-unicode spelling, a few merges, three control tokens, then unused control tokens up to
/// `vocab_size`. Transformers reads the vocabulary size from it.
fn add_tokenizer(w: &mut GgufWriter, vocab_size: usize) -> uma_gguf::Result<()> {
    let byte_char = gpt2_byte_chars();
    let mut tokens: Vec<String> = byte_char.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    let merges: Vec<String> = [
        "Ġ t", "h e", "i n", "Ġ a", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o",
        "e n", "Ġ c", "i t", "i s", "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p", "o u",
        "Ġa n", "a l", "a r", "Ġt o", "Ġ m", "Ġo f", "Ġ in",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
    for merge in &merges {
        tokens.push(merge.replace(' ', ""));
        types.push(1);
    }
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.into());
        types.push(3);
    }
    let eos = tokens.len() - 3;
    while tokens.len() < vocab_size {
        tokens.push(format!("<|unused_{}|>", tokens.len()));
        types.push(3);
    }
    assert_eq!(tokens.len(), vocab_size, "the tiny vocabulary must fit");
    w.add_metadata("tokenizer.ggml.model", MetadataValue::String("gpt2".into()))?;
    w.add_metadata("tokenizer.ggml.pre", MetadataValue::String("default".into()))?;
    w.add_metadata("tokenizer.ggml.tokens", MetadataValue::Array(MetadataArray::String(tokens)))?;
    w.add_metadata("tokenizer.ggml.token_type", MetadataValue::Array(MetadataArray::I32(types)))?;
    w.add_metadata("tokenizer.ggml.merges", MetadataValue::Array(MetadataArray::String(merges)))?;
    w.add_metadata("tokenizer.ggml.bos_token_id", MetadataValue::U32(eos as u32))?;
    w.add_metadata("tokenizer.ggml.eos_token_id", MetadataValue::U32(eos as u32))?;
    w.add_metadata("tokenizer.ggml.add_bos_token", MetadataValue::Bool(false))?;
    Ok(())
}

/// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others for 256 + n.
fn gpt2_byte_chars() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("a Latin-1 code point")
            } else {
                let c = char::from_u32(next).expect("a code point below 512");
                next += 1;
                c
            }
        })
        .collect()
}

fn fnv1a(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64: tiny, well mixed, and fully specified here so the weights never change.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, one value per call), clipped to ±3 so no weight is extreme.
    fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        z.clamp(-3.0, 3.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_parses_and_is_deterministic() {
        for arch in TINY_ARCHS {
            let bytes = tiny_model_bytes(arch).expect("known arch");
            assert_eq!(bytes, tiny_model_bytes(arch).expect("known arch"), "{arch}");
            let file = uma_gguf::GgufFile::from_bytes(bytes).expect("valid GGUF");
            let config = tiny_config(arch).expect("known arch");
            assert!(file.tensor(ModelTensor::TokenEmbedding.weight_name()).is_ok());
            let output = file.tensor(ModelTensor::Output.weight_name());
            assert_eq!(output.is_err(), config.tie_word_embeddings);
        }
    }

    #[test]
    fn deepseek2_is_written_in_mla_form() {
        let file = uma_gguf::GgufFile::from_bytes(tiny_model_bytes("deepseek2").expect("known"))
            .expect("valid GGUF");
        let shape = |name: &str| file.tensor(name).expect(name).shape().to_vec();
        assert_eq!(shape("blk.0.attn_q_a.weight"), [64, 32]);
        assert_eq!(shape("blk.0.attn_q_b.weight"), [32, 4 * 40]);
        assert_eq!(shape("blk.0.attn_kv_a_mqa.weight"), [64, 32 + 8]);
        assert_eq!(shape("blk.0.attn_k_b.weight"), [32, 32, 4]);
        assert_eq!(shape("blk.0.attn_v_b.weight"), [32, 16, 4]);
        assert_eq!(shape("blk.0.attn_output.weight"), [4 * 16, 64]);
        assert_eq!(shape("blk.0.ffn_gate.weight"), [64, 128]);
        assert!(!file.has_tensor("blk.0.ffn_gate_inp.weight"));
        assert!(!file.has_tensor("blk.0.attn_q.weight"));
        assert_eq!(shape("blk.1.exp_probs_b.bias"), [8]);
        assert_eq!(shape("blk.2.ffn_up_exps.weight"), [64, 32, 8]);
        assert_eq!(shape("blk.2.ffn_down_shexp.weight"), [32, 64]);
        assert!(!file.has_tensor("blk.1.ffn_gate_inp_shexp.weight"));
        let meta = file.metadata();
        let u32 = |key: &str| meta.get_u32(&format!("deepseek2.{key}")).expect(key).expect(key);
        assert_eq!(u32("attention.head_count_kv"), 1);
        assert_eq!(u32("attention.key_length"), 40);
        assert_eq!(u32("attention.value_length"), 32);
        assert_eq!(u32("attention.key_length_mla"), 40);
        assert_eq!(u32("attention.value_length_mla"), 16);
        assert_eq!(u32("rope.dimension_count"), 8);
        assert_eq!(u32("expert_shared_count"), 1);
        let log_mul = meta.get_f64("deepseek2.rope.scaling.yarn_log_multiplier").expect("f32");
        assert!((log_mul.expect("written") - 0.1).abs() < 1e-7);
    }

    #[test]
    fn unknown_arch_is_an_error() {
        assert!(write_tiny_model("mamba", Path::new("/nonexistent/x.gguf")).is_err());
    }
}
