//! The shared layer blocks the architecture files are built from: embedding, a pre-norm
//! residual sublayer, attention, the gated feed-forward network, the standard decoder layer and
//! the output head. Each loads its tensors (by [`LayerTensor`] / [`ModelTensor`] name, checking
//! shapes) and runs through the [`Backend`]'s operations, reporting its activations to the hook.

use uma_gguf::tensor_names::{LayerTensor, ModelTensor};

use crate::backend::{AttentionParams, Backend, MatrixUse, RopeParams, Rows};
use crate::config::{HiddenActivation, ModelConfig};
use crate::error::Result;
use crate::experts::MoeFeedForward;
use crate::forward::{ForwardPass, LayerRecipe};
use crate::weights::{LayerLoader, WeightLoader};

/// Token embeddings: rows of the table, optionally scaled.
pub(crate) struct Embedding<B: Backend> {
    table: B::Matrix, // [vocab_size, hidden_size]
    /// Multiplier of every embedding (Gemma: `sqrt(hidden_size)`).
    scale: Option<f32>,
}

impl<B: Backend> Embedding<B> {
    /// `token_embd`, unscaled.
    pub(crate) fn load(weights: &WeightLoader<'_, B>, config: &ModelConfig) -> Result<Self> {
        let name = ModelTensor::TokenEmbedding.weight_name();
        let (vocab, h) = (config.vocab_size, config.hidden_size);
        let table = weights.matrix(name, vocab, h, MatrixUse::RowLookup)?;
        Ok(Embedding { table, scale: None })
    }

    /// The embeddings multiplied by `scale`.
    pub(crate) fn scaled(self, scale: f32) -> Self {
        Embedding { scale: Some(scale), ..self }
    }

    /// The residual stream starts as the tokens' embeddings.
    pub(crate) fn forward(&self, f: &mut ForwardPass<'_, B>) {
        B::embed(&mut f.ops, &self.table, self.scale, &mut f.x);
    }
}

/// The names a residual sublayer reports its activations under.
pub(crate) struct SublayerNames {
    /// Its input, normed.
    norm: &'static str,
    /// Its output, after the post-norm if there is one.
    output: &'static str,
    /// The residual stream after it.
    residual: &'static str,
}

/// The attention sublayer's names.
pub(crate) const ATTENTION: SublayerNames =
    SublayerNames { norm: "attn_norm", output: "attn_out", residual: "ffn_inp" };
/// The feed-forward sublayer's names.
pub(crate) const FEED_FORWARD: SublayerNames =
    SublayerNames { norm: "ffn_norm", output: "ffn_out", residual: "layer_out" };

/// What a sublayer's first products read.
pub(crate) enum SublayerInput<'n, B: Backend> {
    /// `scratch.normed`, already holding the norm of `x`.
    Normed,
    /// `x` and the sublayer's norm weights: the products norm it themselves (a GPU does it in
    /// their kernels), `scratch.normed` serving as scratch.
    Norm(&'n B::Vector),
}

/// Where a sublayer's last projection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SublayerOutput {
    /// Into `scratch.out`, for the caller to norm, report and add.
    Scratch,
    /// Added straight into the residual stream `x` (one kernel on a GPU instead of two).
    Residual,
}

impl SublayerOutput {
    /// `input · weightᵀ` (plus `bias`) into the sublayer's output.
    pub(crate) fn project<B: Backend>(
        self,
        ops: &mut B::Pass<'_>,
        (weight, bias): (&B::Matrix, Option<&B::Vector>),
        input: &B::Activations,
        out: &mut B::Activations,
        x: &mut B::Activations,
    ) -> Result<()> {
        match (self, bias) {
            (SublayerOutput::Scratch, _) => B::matmul(ops, weight, input, out)?,
            (SublayerOutput::Residual, None) => return B::matmul_add(ops, weight, input, out, x),
            // The bias joins the product before the residual, in llama.cpp's order.
            (SublayerOutput::Residual, Some(_)) => B::matmul(ops, weight, input, out)?,
        }
        if let Some(bias) = bias {
            B::add_bias(ops, out, bias);
            if self == SublayerOutput::Residual {
                B::add(ops, x, out);
            }
        }
        Ok(())
    }
}

/// `x += post_norm(block(norm(x)))`: `block` reads the norm of `x` as it is told and writes its
/// last projection where it is told. When no activation hook wants the sublayer's inside, the
/// block norms `x` itself and projects straight into `x`, or, with a post-norm, into
/// `scratch.out`, normed and added in one step (on a GPU: no separate norm, add or copy);
/// otherwise `scratch.normed` and `scratch.out` hold each stage for the hook.
pub(crate) fn residual<'n, B: Backend>(
    f: &mut ForwardPass<'_, B>,
    names: &SublayerNames,
    norm: &'n B::Vector,
    post_norm: Option<&B::Vector>,
    block: impl FnOnce(&mut ForwardPass<'_, B>, SublayerInput<'n, B>, SublayerOutput) -> Result<()>,
) -> Result<()> {
    let (eps, h) = (f.config.rms_norm_eps, f.config.hidden_size);
    if !f.reporter.is_reporting() {
        return match post_norm {
            None => block(f, SublayerInput::Norm(norm), SublayerOutput::Residual),
            Some(w) => {
                block(f, SublayerInput::Norm(norm), SublayerOutput::Scratch)?;
                B::add_normed(&mut f.ops, &mut f.x, &mut f.scratch.out, w, eps);
                Ok(())
            }
        };
    }
    B::rms_norm(&mut f.ops, &f.x, Rows::All, norm, eps, &mut f.scratch.normed);
    f.reporter.report::<B>(&mut f.ops, names.norm, h, &f.scratch.normed)?;
    block(f, SublayerInput::Normed, SublayerOutput::Scratch)?;
    if let Some(w) = post_norm {
        B::rms_norm_in_place(&mut f.ops, &mut f.scratch.out, w, eps);
    }
    f.reporter.report::<B>(&mut f.ops, names.output, h, &f.scratch.out)?;
    B::add(&mut f.ops, &mut f.x, &f.scratch.out);
    f.reporter.report::<B>(&mut f.ops, names.residual, h, &f.x)?;
    Ok(())
}

/// The biases of the q, k and v projections.
struct QkvBias<B: Backend> {
    q: B::Vector, // [q_dim]
    k: B::Vector, // [kv_dim]
    v: B::Vector, // [kv_dim]
}

/// RMS norms of q and k, before rope: per head (Qwen 3, Gemma 3), or over each token's whole
/// q and k (OLMoE).
struct QkNorm<B: Backend> {
    q: B::Vector, // [head_dim], or [q_dim] when `whole`
    k: B::Vector, // [head_dim], or [kv_dim] when `whole`
    whole: bool,
}

/// Grouped-query attention with rope over the paged KV cache.
pub(crate) struct Attention<B: Backend> {
    q: B::Matrix,      // [q_dim, hidden_size]
    k: B::Matrix,      // [kv_dim, hidden_size]
    v: B::Matrix,      // [kv_dim, hidden_size]
    output: B::Matrix, // [hidden_size, q_dim]
    bias: Option<QkvBias<B>>,
    output_bias: Option<B::Vector>, // [hidden_size]
    qk_norm: Option<QkNorm<B>>,
    sinks: Option<B::Vector>, // [num_attention_heads]
}

impl<B: Backend> Attention<B> {
    /// `attn_q`, `attn_k`, `attn_v` and `attn_output`, without biases or q/k norms.
    pub(crate) fn load(w: &LayerLoader<'_, B>) -> Result<Self> {
        let c = w.config();
        let (h, q_dim, kv_dim) = (c.hidden_size, c.q_dim(), c.kv_dim());
        let qkv = [
            (LayerTensor::AttnQ, q_dim),
            (LayerTensor::AttnK, kv_dim),
            (LayerTensor::AttnV, kv_dim),
        ];
        let [q, k, v] = w.matrices(qkv, h)?;
        Ok(Attention {
            q,
            k,
            v,
            output: w.matrix(LayerTensor::AttnOutput, h, q_dim)?,
            bias: None,
            output_bias: None,
            qk_norm: None,
            sinks: None,
        })
    }

    /// With the bias of the output projection (`attn_output.bias`).
    pub(crate) fn with_output_bias(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let bias = w.bias(LayerTensor::AttnOutput, w.config().hidden_size)?;
        Ok(Attention { output_bias: Some(bias), ..self })
    }

    /// With a sink logit per head in every softmax (`attn_sinks`, gpt-oss).
    pub(crate) fn with_sinks(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let sinks = w.vector(LayerTensor::AttnSinks, w.config().num_attention_heads)?;
        Ok(Attention { sinks: Some(sinks), ..self })
    }

    /// With the biases of q, k and v (`attn_q.bias`, `attn_k.bias`, `attn_v.bias`).
    pub(crate) fn with_qkv_bias(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let (q_dim, kv_dim) = (w.config().q_dim(), w.config().kv_dim());
        let qkv = [
            (LayerTensor::AttnQ, q_dim),
            (LayerTensor::AttnK, kv_dim),
            (LayerTensor::AttnV, kv_dim),
        ];
        let [q, k, v] = w.biases(qkv)?;
        let bias = QkvBias { q, k, v };
        Ok(Attention { bias: Some(bias), ..self })
    }

    /// With per-head RMS norms of q and k before rope (`attn_q_norm`, `attn_k_norm`).
    pub(crate) fn with_qk_norm(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let head_dim = w.config().head_dim;
        self.with_qk_norms(w, (head_dim, head_dim), false)
    }

    /// With RMS norms over each token's whole q and whole k before rope (`attn_q_norm` of
    /// `[q_dim]`, `attn_k_norm` of `[kv_dim]`).
    pub(crate) fn with_whole_qk_norm(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let (q_dim, kv_dim) = (w.config().q_dim(), w.config().kv_dim());
        self.with_qk_norms(w, (q_dim, kv_dim), true)
    }

    /// With `attn_q_norm` and `attn_k_norm` of `(q_len, k_len)` values, over each token's whole
    /// q and k when `whole`, else per head.
    fn with_qk_norms(
        self,
        w: &LayerLoader<'_, B>,
        (q_len, k_len): (usize, usize),
        whole: bool,
    ) -> Result<Self> {
        let qk_norm = QkNorm {
            q: w.vector(LayerTensor::AttnQNorm, q_len)?,
            k: w.vector(LayerTensor::AttnKNorm, k_len)?,
            whole,
        };
        Ok(Attention { qk_norm: Some(qk_norm), ..self })
    }

    /// Attention of the normed `x` (see [`SublayerInput`]) into `output` (writing this layer's
    /// keys and values into the cache).
    pub(crate) fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()> {
        let layer = f.layer();
        let ForwardPass { ops, config: c, kv, reporter, scratch: s, x, .. } = f;
        let (q_dim, kv_dim) = (c.q_dim(), c.kv_dim());
        let rope = RopeParams {
            style: c.rope_style,
            head_dim: c.head_dim,
            dimension_count: c.rope_dimension_count,
            base: c.rope_base(layer),
            freq_scale: c.rope_freq_scale,
            yarn: c.rope_yarn,
        };
        let products = &mut [(&self.q, &mut s.q), (&self.k, &mut s.k), (&self.v, &mut s.v)];
        let biases = self.bias.as_ref().map(|b| [&b.q, &b.k, &b.v]);
        match input {
            SublayerInput::Normed => {
                B::matmul_many(ops, products, &s.normed)?;
                if let Some([q, k, v]) = biases {
                    B::add_biases(ops, &mut [(&mut s.q, q), (&mut s.k, k), (&mut s.v, v)]);
                }
            }
            SublayerInput::Norm(norm) => {
                let norm = (norm, c.rms_norm_eps);
                let biases = biases.as_ref().map(|b| &b[..]);
                B::normed_matmul_many(ops, x, norm, &mut s.normed, products, biases)?;
            }
        }
        reporter.report::<B>(ops, "q", q_dim, &s.q)?;
        reporter.report::<B>(ops, "k", kv_dim, &s.k)?;
        reporter.report::<B>(ops, "v", kv_dim, &s.v)?;
        let (q_norm, k_norm) = match &self.qk_norm {
            Some(norm) if norm.whole => {
                B::rms_norm_in_place(ops, &mut s.q, &norm.q, c.rms_norm_eps);
                B::rms_norm_in_place(ops, &mut s.k, &norm.k, c.rms_norm_eps);
                (None, None)
            }
            Some(norm) => (Some(&norm.q), Some(&norm.k)),
            None => (None, None),
        };
        B::norm_heads_and_rope_qk(ops, &mut s.q, q_norm, &mut s.k, k_norm, c.rms_norm_eps, &rope);
        reporter.report::<B>(ops, "q_rope", q_dim, &s.q)?;
        reporter.report::<B>(ops, "k_rope", kv_dim, &s.k)?;
        let params = AttentionParams {
            num_attention_heads: c.num_attention_heads,
            num_key_value_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            scale: c.attention_scale,
            window: c.window(layer),
        };
        let sinks = self.sinks.as_ref();
        B::attention(ops, kv, layer, &params, sinks, &s.q, &s.k, &s.v, &mut s.attn);
        reporter.report::<B>(ops, "attn", q_dim, &s.attn)?;
        let projection = (&self.output, self.output_bias.as_ref());
        output.project::<B>(ops, projection, &s.attn, &mut s.out, x)
    }
}

/// The gated feed-forward network: `down(activation(gate(x)) · up(x))`.
pub(crate) struct FeedForward<B: Backend> {
    gate: B::Matrix, // [intermediate_size, hidden_size]
    up: B::Matrix,   // [intermediate_size, hidden_size]
    down: B::Matrix, // [hidden_size, intermediate_size]
    activation: HiddenActivation,
}

impl<B: Backend> FeedForward<B> {
    /// `ffn_gate`, `ffn_up` and `ffn_down`, gated by `activation`.
    pub(crate) fn load(w: &LayerLoader<'_, B>, activation: HiddenActivation) -> Result<Self> {
        let (h, ffn) = (w.config().hidden_size, w.config().intermediate_size);
        let [gate, up] = w.matrices([(LayerTensor::FfnGate, ffn), (LayerTensor::FfnUp, ffn)], h)?;
        Ok(FeedForward { gate, up, down: w.matrix(LayerTensor::FfnDown, h, ffn)?, activation })
    }

    /// The network applied to the normed `x` (see [`SublayerInput`]), into `output`.
    pub(crate) fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()> {
        let ForwardPass { ops, config: c, scratch: s, x, .. } = f;
        let (gate, up, activation) = (&self.gate, &self.up, self.activation);
        match input {
            SublayerInput::Normed => {
                B::gated_matmul(ops, gate, up, &s.normed, activation, &mut s.gate, &mut s.up)?;
            }
            SublayerInput::Norm(norm) => {
                let norm = (norm, c.rms_norm_eps);
                let (gate_out, up_out) = (&mut s.gate, &mut s.up);
                B::normed_gated_matmul(
                    ops,
                    x,
                    norm,
                    &mut s.normed,
                    (gate, up),
                    activation,
                    gate_out,
                    up_out,
                )?;
            }
        }
        output.project::<B>(ops, (&self.down, None), &s.gate, &mut s.out, x)
    }
}

/// The standard pre-norm decoder layer: `x += attention(norm(x))`, then
/// `x += feed_forward(norm(x))`; the attention [`Attention`] or another kind (DeepSeek's latent
/// attention).
pub(crate) struct DecoderLayer<B: Backend, A = Attention<B>> {
    attn_norm: B::Vector, // [hidden_size]
    attention: A,
    ffn_norm: B::Vector, // [hidden_size]
    feed_forward: Mlp<B>,
}

/// An attention sublayer a [`DecoderLayer`] runs: it reads the norm of `x` as told and writes
/// its last projection where told.
pub(crate) trait AttentionSublayer<B: Backend>: Send + Sync {
    fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()>;
}

impl<B: Backend> AttentionSublayer<B> for Attention<B> {
    fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()> {
        Attention::forward(self, f, input, output)
    }
}

/// A layer's feed-forward network: dense, or a mixture of experts.
pub(crate) enum Mlp<B: Backend> {
    Dense(FeedForward<B>),
    Experts(Box<MoeFeedForward<B>>),
}

impl<B: Backend> From<FeedForward<B>> for Mlp<B> {
    fn from(network: FeedForward<B>) -> Self {
        Mlp::Dense(network)
    }
}

impl<B: Backend> From<MoeFeedForward<B>> for Mlp<B> {
    fn from(network: MoeFeedForward<B>) -> Self {
        Mlp::Experts(Box::new(network))
    }
}

impl<B: Backend> Mlp<B> {
    pub(crate) fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()> {
        match self {
            Mlp::Dense(network) => network.forward(f, input, output),
            Mlp::Experts(network) => network.forward(f, input, output),
        }
    }
}

impl<B: Backend, A: AttentionSublayer<B>> DecoderLayer<B, A> {
    /// `attention` and `feed_forward`, each after its norm (`attn_norm`, `ffn_norm`).
    pub(crate) fn load(
        w: &LayerLoader<'_, B>,
        attention: A,
        feed_forward: impl Into<Mlp<B>>,
    ) -> Result<Self> {
        DecoderLayer::load_with_ffn_norm(w, attention, LayerTensor::FfnNorm, feed_forward)
    }

    /// [`DecoderLayer::load`] where the feed-forward network's norm is `ffn_norm` (gpt-oss:
    /// `post_attention_norm`, Hugging Face's name for it).
    pub(crate) fn load_with_ffn_norm(
        w: &LayerLoader<'_, B>,
        attention: A,
        ffn_norm: LayerTensor,
        feed_forward: impl Into<Mlp<B>>,
    ) -> Result<Self> {
        let attn_norm = w.norm(LayerTensor::AttnNorm)?;
        let ffn_norm = w.norm(ffn_norm)?;
        Ok(DecoderLayer { attn_norm, attention, ffn_norm, feed_forward: feed_forward.into() })
    }
}

impl<B: Backend, A: AttentionSublayer<B>> LayerRecipe<B> for DecoderLayer<B, A> {
    fn forward(&self, f: &mut ForwardPass<'_, B>) -> Result<()> {
        let attention =
            |f: &mut ForwardPass<'_, B>, input, out| self.attention.forward(f, input, out);
        residual(f, &ATTENTION, &self.attn_norm, None, attention)?;
        let feed_forward =
            |f: &mut ForwardPass<'_, B>, input, out| self.feed_forward.forward(f, input, out);
        residual(f, &FEED_FORWARD, &self.ffn_norm, None, feed_forward)
    }
}

/// What the head computes for the tokens that ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadOutput {
    Logits,
    /// The final hidden states, after the output norm (what embeddings pool).
    HiddenStates,
}

/// The output norm and head, optionally soft-capped.
pub(crate) struct OutputHead<B: Backend> {
    norm: B::Vector,   // [hidden_size]
    output: B::Matrix, // [vocab_size, hidden_size]: `output`, or `token_embd` when tied
    /// `cap · tanh(logit / cap)` on the logits.
    softcap: Option<f32>,
}

impl<B: Backend> OutputHead<B> {
    /// `output` (or the embedding table when tied) and `output_norm`, soft-capped as `config`
    /// declares.
    pub(crate) fn load(weights: &WeightLoader<'_, B>, config: &ModelConfig) -> Result<Self> {
        let head = if config.tie_word_embeddings {
            ModelTensor::TokenEmbedding
        } else {
            ModelTensor::Output
        };
        let (vocab, h) = (config.vocab_size, config.hidden_size);
        let output = weights.matrix(head.weight_name(), vocab, h, MatrixUse::Products)?;
        let norm = weights.vector(ModelTensor::OutputNorm.weight_name(), h)?;
        Ok(OutputHead { norm, output, softcap: config.final_logit_softcapping })
    }

    /// The head's rows (`[num_output_rows, vocab_size]` logits or `[num_output_rows,
    /// hidden_size]` hidden states), as host f32.
    pub(crate) fn forward(&self, f: &mut ForwardPass<'_, B>, what: HeadOutput) -> Result<Vec<f32>> {
        let ForwardPass { ops, config: c, x, num_output_rows: rows, .. } = f;
        let mut normed = B::activations(ops, *rows, c.hidden_size); // [rows, hidden_size]
        B::rms_norm(ops, x, Rows::Output, &self.norm, c.rms_norm_eps, &mut normed);
        if what == HeadOutput::HiddenStates {
            return B::into_host(ops, normed);
        }
        let mut logits = B::activations(ops, *rows, c.vocab_size); // [rows, vocab_size]
        if *rows > 0 {
            B::matmul(ops, &self.output, &normed, &mut logits)?;
        }
        if let Some(cap) = self.softcap {
            B::softcap(ops, &mut logits, cap);
        }
        B::into_host(ops, logits)
    }
}
