//! DeepSeek V2 / V3 / R1 and Kimi K2 (llama.cpp's `deepseek2`): multi-head latent attention,
//! `leading_dense_block_count` dense layers, then mixtures of experts with shared experts and
//! DeepSeek V3's routing (a sigmoid per expert, a selection bias `exp_probs_b`, group-limited
//! top-k, the chosen weights rescaled and multiplied by `expert_weights_scale`).
//!
//! **Latent attention**, in the absorbed form llama.cpp runs on files written by its newer
//! converter (`attn_k_b` / `attn_v_b`): each token's keys and values are one compressed vector
//! `c = rms_norm(kv_a · x)[..kv_lora_rank]` plus one shared rope part `k_pe`; a head's query
//! without rope is taken into the compressed space by its `k_b` (`q_nope · k_b`), so that every
//! head attends over the same cached `(c, k_pe)` as one KV head of `kv_lora_rank + rope` values,
//! and its output (a mix of `c`s) leaves the compressed space through its `v_b`. The cache holds
//! `c ‖ k_pe` as keys and `c` (padded with zeros to the keys' width, so that the attention kernels
//! take it as they are) as values: 2·(kv_lora_rank + rope) values per token and layer, against
//! `heads · (key + value dims)` for plain attention (DeepSeek V3: 1,152 against 40,960; llama.cpp
//! stores the keys only, 576). The per-head products and the splitting and joining of heads run
//! through the host for now (correct on every backend, not fast).
//!
//! The attention scale is `mscale² / sqrt(key_length_mla)`, with YaRN's
//! `mscale = 1 + 0.1 · mscale_all_dim · ln(factor)` when the file scales the rope (llama.cpp's
//! `kq_scale`); the rope is ggml's normal style on the last `rope.dimension_count` dimensions of
//! each query head and on `k_pe`.
//!
//! Files of older converters carry one `attn_kv_b` per layer instead: it is cut into the same
//! per-head matrices at load ([`split_kv_b`]).

use std::sync::Arc;

use uma_gguf::tensor_names::LayerTensor;
use uma_gguf::{GgmlType, GgufFile, GgufWriter};

use crate::backend::{AttentionParams, RopeParams, Rows};
use crate::blocks::{AttentionSublayer, Mlp, SublayerInput, SublayerOutput};
use crate::config::{ExpertGroups, MlaConfig};
use crate::error::ModelError;
use crate::recipe::prelude::*;

pub(crate) struct Deepseek2;

/// How a layer makes its queries: one matrix (V2-Lite), or through a normed low rank.
enum QueryProjection<B: Backend> {
    Direct(B::Matrix), // [heads · key_length_mla, hidden_size]
    LowRank {
        a: B::Matrix,    // [q_lora_rank, hidden_size]
        norm: B::Vector, // [q_lora_rank]
        b: B::Matrix,    // [heads · key_length_mla, q_lora_rank]
    },
}

/// Multi-head latent attention's weights (see the module's notes).
pub(crate) struct LatentAttention<B: Backend> {
    query: QueryProjection<B>,
    kv_a: B::Matrix,      // [kv_lora_rank + rope, hidden_size]
    kv_a_norm: B::Vector, // [kv_lora_rank]
    k_b: Vec<B::Matrix>,  // per head [kv_lora_rank, qk_nope_head_dim]
    v_b: Vec<B::Matrix>,  // per head [v_head_dim, kv_lora_rank]
    output: B::Matrix,    // [hidden_size, heads · v_head_dim]
    mla: MlaConfig,
}

/// `expert_gating_func`: llama.cpp's 1 (softmax) and 2 (sigmoid); files without it are V2's
/// softmax.
const GATING_SOFTMAX: u64 = 1;
const GATING_SIGMOID: u64 = 2;

impl ArchitectureRecipe for Deepseek2 {
    const NAME: &'static str = "deepseek2";

    const ROPE_STYLE: RopeStyle = RopeStyle::Normal;

    /// Latent attention and a dense or mixture-of-experts feed-forward network, each after its
    /// norm.
    type Layer<B: Backend> = DecoderLayer<B, LatentAttention<B>>;

    /// The latent attention's shapes (checked against the cache's head: `key_length` must be
    /// `kv_lora_rank` + rope, `value_length` `kv_lora_rank`), its scale, and the experts.
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        let invalid =
            |name: &'static str, reason: String| ModelError::InvalidConfig { name, reason };
        let read = |name: &'static str, suffix: &str| -> Result<usize> {
            let value = file.integer(suffix).ok_or(invalid(name, "missing".into()))?;
            usize::try_from(value)
                .ok()
                .filter(|&v| v > 0 && v <= 1 << 20)
                .ok_or(invalid(name, format!("{value}")))
        };
        let kv_lora_rank = read("kv_lora_rank", "attention.kv_lora_rank")?;
        let q_lora_rank = match file.integer("attention.q_lora_rank") {
            Some(_) => Some(read("q_lora_rank", "attention.q_lora_rank")?),
            None => None,
        };
        let rope = config.rope_dimension_count;
        let (key_length_mla, v_head_dim) = if file.declares("attention.key_length_mla") {
            // The current converter's form: the file describes the cache's one latent head.
            if config.head_dim != kv_lora_rank + rope || config.num_key_value_heads != 1 {
                return Err(invalid(
                    "key_length",
                    format!(
                        "{} key heads of {}: latent attention caches one head of kv_lora_rank \
                         {kv_lora_rank} + rope {rope}",
                        config.num_key_value_heads, config.head_dim
                    ),
                ));
            }
            let key = read("qk_head_dim", "attention.key_length_mla")?;
            (key, read("v_head_dim", "attention.value_length_mla")?)
        } else {
            // An older converter's (with `attn_kv_b`): the file describes the heads
            // uncompressed; uma caches the latent all the same.
            let v = usize::try_from(file.params.value_head_dim)
                .ok()
                .filter(|&v| v > 0)
                .ok_or(invalid("v_head_dim", format!("{}", file.params.value_head_dim)))?;
            let key = config.head_dim;
            config.head_dim = kv_lora_rank + rope;
            config.num_key_value_heads = 1;
            (key, v)
        };
        if key_length_mla <= rope {
            return Err(invalid("qk_head_dim", format!("{key_length_mla} ≤ rope {rope}")));
        }
        config.mla = Some(MlaConfig {
            q_lora_rank,
            kv_lora_rank,
            qk_nope_head_dim: key_length_mla - rope,
            v_head_dim,
        });
        let mscale = match (config.rope_yarn, file.yarn_log_multiplier()?) {
            (Some(_), Some(all_dims)) => 1.0 + 0.1 * all_dims * (1.0 / config.rope_freq_scale).ln(),
            _ => 1.0,
        };
        config.attention_scale = mscale * mscale / (key_length_mla as f32).sqrt();

        let gating = match file.integer("expert_gating_func") {
            None | Some(GATING_SOFTMAX) => ExpertGating::Softmax,
            Some(GATING_SIGMOID) => ExpertGating::Sigmoid,
            Some(other) => return Err(invalid("expert_gating_func", format!("{other}"))),
        };
        let normalize = file.flag("expert_weights_norm").unwrap_or(false);
        let mut experts = ExpertConfig::read(file, gating, normalize)?;
        experts.weights_scale = file.float("expert_weights_scale").unwrap_or(1.0);
        experts.leading_dense_layers =
            file.integer("leading_dense_block_count").unwrap_or(0) as usize;
        let shared = file.integer("expert_shared_count").unwrap_or(0) as usize;
        if shared > 0 {
            experts.shared_feed_forward_length = Some(experts.feed_forward_length * shared);
        }
        let group_count = file.integer("expert_group_count").unwrap_or(1) as usize;
        if group_count > 1 {
            let used = file.integer("expert_group_used_count").unwrap_or(0) as usize;
            let per_group = experts.count / group_count;
            if !experts.count.is_multiple_of(group_count)
                || used == 0
                || used > group_count
                || used * per_group < experts.used
            {
                return Err(invalid(
                    "n_group",
                    format!(
                        "{} experts in {group_count} groups, {used} used, {} per token",
                        experts.count, experts.used
                    ),
                ));
            }
            experts.groups = Some(ExpertGroups { count: group_count, used });
        }
        config.experts = Some(experts);
        Ok(())
    }

    /// Required: `attn_norm`, the queries' (`attn_q`, or `attn_q_a`, `attn_q_a_norm`,
    /// `attn_q_b`), `attn_kv_a_mqa`, `attn_kv_a_norm`, `attn_k_b`, `attn_v_b`, `attn_output`,
    /// `ffn_norm`; the first `leading_dense_block_count` layers a dense network, the others
    /// `ffn_gate_inp`, the stacked experts, the shared experts when declared and
    /// `exp_probs_b.bias` when present.
    fn load_layer<B: Backend>(
        w: &LayerLoader<'_, B>,
    ) -> Result<DecoderLayer<B, LatentAttention<B>>> {
        let experts = w.config().experts.ok_or(ModelError::InvalidConfig {
            name: "num_experts",
            reason: "deepseek2 without experts".into(),
        })?;
        let feed_forward = if w.index() < experts.leading_dense_layers {
            Mlp::Dense(FeedForward::load(w, HiddenActivation::Silu)?)
        } else {
            let mut network = MoeFeedForward::load(w, HiddenActivation::Silu)?;
            if let Some(width) = experts.shared_feed_forward_length {
                network = network.with_ungated_shared_expert(w, width)?;
            }
            if w.has_bias(LayerTensor::ExpProbsB) {
                network = network.with_selection_bias(w)?;
            }
            Mlp::from(network)
        };
        DecoderLayer::load(w, LatentAttention::load(w)?, feed_forward)
    }
}

impl<B: Backend> LatentAttention<B> {
    fn load(w: &LayerLoader<'_, B>) -> Result<Self> {
        let c = w.config();
        let mla = c.mla.ok_or(ModelError::InvalidConfig {
            name: "kv_lora_rank",
            reason: "latent attention without its shapes".into(),
        })?;
        let (h, heads, rope) = (c.hidden_size, c.num_attention_heads, c.rope_dimension_count);
        let q_width = heads * (mla.qk_nope_head_dim + rope);
        let query = match mla.q_lora_rank {
            None => QueryProjection::Direct(w.matrix(LayerTensor::AttnQ, q_width, h)?),
            Some(rank) => QueryProjection::LowRank {
                a: w.matrix(LayerTensor::AttnQA, rank, h)?,
                norm: w.vector(LayerTensor::AttnQANorm, rank)?,
                b: w.matrix(LayerTensor::AttnQB, q_width, rank)?,
            },
        };
        let r = mla.kv_lora_rank;
        let split = w.tensor_type(LayerTensor::AttnKB).is_some()
            || w.tensor_type(LayerTensor::AttnKvB).is_none();
        let (k_b, v_b) = if split {
            let k_b = w.experts(LayerTensor::AttnKB, r, mla.qk_nope_head_dim, heads)?;
            (k_b, w.experts(LayerTensor::AttnVB, mla.v_head_dim, r, heads)?)
        } else {
            split_kv_b(w, mla, heads)?
        };
        Ok(LatentAttention {
            query,
            kv_a: w.matrix(LayerTensor::AttnKvAMqa, r + rope, h)?,
            kv_a_norm: w.vector(LayerTensor::AttnKvANorm, r)?,
            k_b,
            v_b,
            output: w.matrix(LayerTensor::AttnOutput, h, heads * mla.v_head_dim)?,
            mla,
        })
    }
}

/// One matrix per attention head.
type PerHead<B> = Vec<<B as Backend>::Matrix>;

/// Per-head `k_b` and `v_b` cut from an older converter's `attn_kv_b` (`[kv_lora_rank,
/// heads · (nope + v)]`: per head `nope` key rows, then `v` value rows), the key part transposed
/// as the current converter writes it, held in a small file of their own (F32 from a float
/// source, else Q8_0) and loaded from there like the split tensors.
fn split_kv_b<B: Backend>(
    w: &LayerLoader<'_, B>,
    mla: MlaConfig,
    heads: usize,
) -> Result<(PerHead<B>, PerHead<B>)> {
    let (r, nope, v) = (mla.kv_lora_rank, mla.qk_nope_head_dim, mla.v_head_dim);
    let kv_b = w.values(LayerTensor::AttnKvB, &[r, heads * (nope + v)])?;
    let (mut k_b, mut v_b) =
        (Vec::with_capacity(heads * r * nope), Vec::with_capacity(heads * v * r));
    for head in kv_b.chunks_exact((nope + v) * r) {
        let (keys, values) = head.split_at(nope * r);
        k_b.extend((0..r).flat_map(|j| (0..nope).map(move |i| keys[i * r + j])));
        v_b.extend_from_slice(values);
    }
    let float_source = matches!(
        w.tensor_type(LayerTensor::AttnKvB),
        Some(GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    );
    let ty = if float_source { GgmlType::F32 } else { GgmlType::Q8_0 };
    let mut writer = GgufWriter::new();
    let (k_shape, v_shape) = ([nope, r, heads], [r, v, heads]);
    for (tensor, values, shape) in
        [(LayerTensor::AttnKB, k_b, k_shape), (LayerTensor::AttnVB, v_b, v_shape)]
    {
        let mut data = vec![0u8; ty.bytes_for(values.len() as u64).unwrap_or(0) as usize];
        uma_kernels::quantize(ty, &values, &mut data)?;
        let shape = shape.map(|d| d as u64);
        writer.add_tensor(&tensor.weight(w.index()), ty, &shape, data)?;
    }
    let file = Arc::new(GgufFile::from_bytes(writer.to_bytes())?);
    let k_b = w.experts_in(&file, LayerTensor::AttnKB, r, nope, heads)?;
    Ok((k_b, w.experts_in(&file, LayerTensor::AttnVB, v, r, heads)?))
}

impl<B: Backend> AttentionSublayer<B> for LatentAttention<B> {
    fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()> {
        let layer = f.layer();
        let ForwardPass { ops, config: c, kv, scratch: s, x, num_tokens, .. } = f;
        let mla = self.mla;
        let (n, heads, rope, eps) =
            (*num_tokens, c.num_attention_heads, c.rope_dimension_count, c.rms_norm_eps);
        let (r, nope, v_dim) = (mla.kv_lora_rank, mla.qk_nope_head_dim, mla.v_head_dim);
        let (qk, latent) = (nope + rope, r + rope);
        if let SublayerInput::Norm(norm) = input {
            B::rms_norm(ops, x, Rows::All, norm, eps, &mut s.normed);
        }

        // Queries and the compressed keys and values.
        let mut q = B::activations(ops, n, heads * qk);
        match &self.query {
            QueryProjection::Direct(wq) => B::matmul(ops, wq, &s.normed, &mut q)?,
            QueryProjection::LowRank { a, norm, b } => {
                let mut low = B::activations(ops, n, mla.q_lora_rank.unwrap_or(0));
                B::matmul(ops, a, &s.normed, &mut low)?;
                B::rms_norm_in_place(ops, &mut low, norm, eps);
                B::matmul(ops, b, &low, &mut q)?;
            }
        }
        let mut compressed = B::activations(ops, n, latent);
        B::matmul(ops, &self.kv_a, &s.normed, &mut compressed)?;
        // Read back together: each read back is a round trip to a device backend.
        let [q, compressed]: [Vec<f32>; 2] =
            B::host_many(ops, &[&q, &compressed])?.try_into().expect("two read back");

        // Split: each head's query without and with rope; the latent and the shared rope key.
        let columns = |values: &[f32], width: usize, from: usize, len: usize| -> Vec<f32> {
            values.chunks_exact(width).flat_map(|row| row[from..from + len].to_vec()).collect()
        };
        let mut c_kv = B::from_host(ops, columns(&compressed, latent, 0, r), n, r);
        B::rms_norm_in_place(ops, &mut c_kv, &self.kv_a_norm, eps);
        let rope_params = RopeParams {
            style: c.rope_style,
            head_dim: rope,
            dimension_count: rope,
            base: c.rope_base(layer),
            freq_scale: c.rope_freq_scale,
            yarn: c.rope_yarn,
        };
        let mut k_pe = B::from_host(ops, columns(&compressed, latent, r, rope), n, rope);
        B::norm_heads_and_rope(ops, &mut k_pe, None, eps, &rope_params);
        let q_pe: Vec<f32> =
            (0..n * heads).flat_map(|i| q[i * qk + nope..(i + 1) * qk].to_vec()).collect();
        let mut q_pe = B::from_host(ops, q_pe, n, heads * rope);
        B::norm_heads_and_rope(ops, &mut q_pe, None, eps, &rope_params);

        // Each head's query without rope, absorbed into the latent space by its k_b (all heads'
        // products in one call).
        let q_nopes: Vec<B::Activations> = (0..heads)
            .map(|head| B::from_host(ops, columns(&q, heads * qk, head * qk, nope), n, nope))
            .collect();
        let q_latents = per_head_products::<B>(ops, &self.k_b, &q_nopes, n, r)?;
        let mut reads: Vec<&B::Activations> = q_latents.iter().collect();
        reads.extend([&c_kv, &k_pe, &q_pe]);
        let mut absorbed = B::host_many(ops, &reads)?;
        let [c_kv, k_pe, q_pe]: [Vec<f32>; 3] =
            absorbed.split_off(heads).try_into().expect("three read back after the heads");

        // One KV head of `latent` values: keys c ‖ k_pe, values c ‖ 0.
        let mut queries = Vec::with_capacity(n * heads * latent);
        let (mut keys, mut values) =
            (Vec::with_capacity(n * latent), Vec::with_capacity(n * latent));
        for t in 0..n {
            for (head, q_latent) in absorbed.iter().enumerate() {
                queries.extend_from_slice(&q_latent[t * r..(t + 1) * r]);
                queries.extend_from_slice(&q_pe[(t * heads + head) * rope..][..rope]);
            }
            keys.extend_from_slice(&c_kv[t * r..(t + 1) * r]);
            keys.extend_from_slice(&k_pe[t * rope..(t + 1) * rope]);
            values.extend_from_slice(&c_kv[t * r..(t + 1) * r]);
            values.extend(std::iter::repeat_n(0.0, rope));
        }
        let queries = B::from_host(ops, queries, n, heads * latent);
        let keys = B::from_host(ops, keys, n, latent);
        let values = B::from_host(ops, values, n, latent);
        let params = AttentionParams {
            num_attention_heads: heads,
            num_key_value_heads: 1,
            head_dim: latent,
            scale: c.attention_scale,
            window: None,
        };
        let mut mixed = B::activations(ops, n, heads * latent);
        B::attention(ops, kv, layer, &params, None, &queries, &keys, &values, &mut mixed);

        // Each head's mix of latents out through its v_b (all heads in one call), the heads side
        // by side.
        let mixed = B::host(ops, &mixed)?.into_owned();
        let mixes: Vec<B::Activations> = (0..heads)
            .map(|head| B::from_host(ops, columns(&mixed, heads * latent, head * latent, r), n, r))
            .collect();
        let outs = per_head_products::<B>(ops, &self.v_b, &mixes, n, v_dim)?;
        let mut heads_out = vec![0.0f32; n * heads * v_dim];
        let outs = B::host_many(ops, &outs.iter().collect::<Vec<_>>())?;
        for (head, out) in outs.iter().enumerate() {
            for t in 0..n {
                heads_out[(t * heads + head) * v_dim..][..v_dim]
                    .copy_from_slice(&out[t * v_dim..(t + 1) * v_dim]);
            }
        }
        let heads_out = B::from_host(ops, heads_out, n, heads * v_dim);
        output.project::<B>(ops, (&self.output, None), &heads_out, &mut s.out, x)
    }
}

/// `inputs[h] · matrices[h]ᵀ` for every head `h` (`n` rows each, `width` outputs), in one call.
fn per_head_products<B: Backend>(
    ops: &mut B::Pass<'_>,
    matrices: &[B::Matrix],
    inputs: &[B::Activations],
    n: usize,
    width: usize,
) -> Result<Vec<B::Activations>> {
    let mut outs: Vec<B::Activations> =
        inputs.iter().map(|_| B::activations(ops, n, width)).collect();
    let mut products: Vec<_> =
        matrices.iter().zip(inputs).zip(outs.iter_mut()).map(|((m, x), out)| (m, x, out)).collect();
    B::matmul_each(ops, &mut products)?;
    Ok(outs)
}
