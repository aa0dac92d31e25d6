//! Weight tables: every tensor an architecture needs, found and checked (presence, shape) once at
//! load; the backend checks the types it can compute with and keeps the weights as it wants them.

use std::sync::Arc;

use uma_gguf::tensor_names::{LayerTensor as L, ModelTensor};
use uma_gguf::{GgufFile, TensorView};

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Finds tensors of one file by name, checks their shapes and hands them to the backend.
pub(crate) struct WeightLoader<'a, B: Backend> {
    backend: &'a B,
    file: &'a Arc<GgufFile>,
}

impl<'a, B: Backend> WeightLoader<'a, B> {
    pub(crate) fn new(backend: &'a B, file: &'a Arc<GgufFile>) -> Self {
        WeightLoader { backend, file }
    }

    /// A matrix with `num_rows` output rows of `row_length` inputs (ggml shape `[row_length,
    /// num_rows]`), for products.
    pub(crate) fn matrix(
        &self,
        name: &str,
        num_rows: usize,
        row_length: usize,
    ) -> Result<B::Matrix> {
        let view = self.find(name, &[row_length, num_rows])?;
        self.backend.load_matrix(self.file, &view, num_rows, row_length)
    }

    /// An embedding table of `num_rows` rows of `row_length`, for row lookups.
    pub(crate) fn embedding(
        &self,
        name: &str,
        num_rows: usize,
        row_length: usize,
    ) -> Result<B::Matrix> {
        let view = self.find(name, &[row_length, num_rows])?;
        self.backend.load_embedding(self.file, &view, num_rows, row_length)
    }

    /// A vector of `len` elements (a norm's weights or a bias).
    pub(crate) fn vector(&self, name: &str, len: usize) -> Result<B::Vector> {
        let view = self.find(name, &[len])?;
        self.backend.load_vector(&view, len)
    }

    /// The tensor `name`, which must have the ggml shape `shape`.
    fn find(&self, name: &str, shape: &[usize]) -> Result<TensorView<'a>> {
        let view = self
            .file
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor { name: name.to_owned() })?;
        let expected: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
        if view.shape() != expected {
            return Err(ModelError::WrongShape {
                name: name.to_owned(),
                expected,
                actual: view.shape().to_vec(),
            });
        }
        Ok(view)
    }
}

/// One transformer layer's weights.
pub(crate) struct LayerWeights<B: Backend> {
    pub(crate) attn_norm: B::Vector,                   // [hidden_size]
    pub(crate) attn_q: B::Matrix,                      // [q_dim, hidden_size]
    pub(crate) attn_k: B::Matrix,                      // [kv_dim, hidden_size]
    pub(crate) attn_v: B::Matrix,                      // [kv_dim, hidden_size]
    pub(crate) attn_q_bias: Option<B::Vector>,         // [q_dim]
    pub(crate) attn_k_bias: Option<B::Vector>,         // [kv_dim]
    pub(crate) attn_v_bias: Option<B::Vector>,         // [kv_dim]
    pub(crate) attn_q_norm: Option<B::Vector>,         // [head_dim]
    pub(crate) attn_k_norm: Option<B::Vector>,         // [head_dim]
    pub(crate) attn_output: B::Matrix,                 // [hidden_size, q_dim]
    pub(crate) post_attention_norm: Option<B::Vector>, // [hidden_size]
    pub(crate) ffn_norm: B::Vector,                    // [hidden_size]
    pub(crate) ffn_gate: B::Matrix,                    // [intermediate_size, hidden_size]
    pub(crate) ffn_up: B::Matrix,                      // [intermediate_size, hidden_size]
    pub(crate) ffn_down: B::Matrix,                    // [hidden_size, intermediate_size]
    pub(crate) post_ffw_norm: Option<B::Vector>,       // [hidden_size]
}

/// All of a model's weights.
pub(crate) struct ModelWeights<B: Backend> {
    pub(crate) token_embd: B::Matrix, // [vocab_size, hidden_size]
    pub(crate) layers: Vec<LayerWeights<B>>,
    pub(crate) output_norm: B::Vector, // [hidden_size]
    pub(crate) output: B::Matrix,      // [vocab_size, hidden_size] (token_embd when tied)
}

impl<B: Backend> ModelWeights<B> {
    /// Finds and checks every tensor `config` implies.
    pub(crate) fn load(w: &WeightLoader<'_, B>, config: &ModelConfig) -> Result<Self> {
        let h = config.hidden_size;
        let embedding_name = ModelTensor::TokenEmbedding.weight_name();
        let token_embd = w.embedding(embedding_name, config.vocab_size, h)?;
        let output = if config.tie_word_embeddings {
            w.matrix(embedding_name, config.vocab_size, h)?
        } else {
            w.matrix(ModelTensor::Output.weight_name(), config.vocab_size, h)?
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let optional_vector = |present: bool, name: String, len: usize| {
                present.then(|| w.vector(&name, len)).transpose()
            };
            let (q, kv, d) = (config.q_dim(), config.kv_dim(), config.head_dim);
            let ffn = config.intermediate_size;
            layers.push(LayerWeights {
                attn_norm: w.vector(&L::AttnNorm.weight(i), h)?,
                attn_q: w.matrix(&L::AttnQ.weight(i), q, h)?,
                attn_k: w.matrix(&L::AttnK.weight(i), kv, h)?,
                attn_v: w.matrix(&L::AttnV.weight(i), kv, h)?,
                attn_q_bias: optional_vector(config.attention_bias, L::AttnQ.bias(i), q)?,
                attn_k_bias: optional_vector(config.attention_bias, L::AttnK.bias(i), kv)?,
                attn_v_bias: optional_vector(config.attention_bias, L::AttnV.bias(i), kv)?,
                attn_q_norm: optional_vector(config.qk_norm, L::AttnQNorm.weight(i), d)?,
                attn_k_norm: optional_vector(config.qk_norm, L::AttnKNorm.weight(i), d)?,
                attn_output: w.matrix(&L::AttnOutput.weight(i), h, q)?,
                post_attention_norm: optional_vector(
                    config.sandwich_norms,
                    L::PostAttentionNorm.weight(i),
                    h,
                )?,
                ffn_norm: w.vector(&L::FfnNorm.weight(i), h)?,
                ffn_gate: w.matrix(&L::FfnGate.weight(i), ffn, h)?,
                ffn_up: w.matrix(&L::FfnUp.weight(i), ffn, h)?,
                ffn_down: w.matrix(&L::FfnDown.weight(i), h, ffn)?,
                post_ffw_norm: optional_vector(config.sandwich_norms, L::PostFfwNorm.weight(i), h)?,
            });
        }
        Ok(ModelWeights {
            token_embd,
            layers,
            output_norm: w.vector(ModelTensor::OutputNorm.weight_name(), h)?,
            output,
        })
    }
}
