//! Weight tables: every tensor an architecture needs, validated (presence, type, shape) once at
//! load. Matrices whose type has an interleaved layout are repacked once at load into
//! [`PackedMatrix`] (the copy replaces the mapped pages, which are no longer read); the others
//! stay in the memory-mapped file (a [`Tensor`] is a name and a shape; its bytes are borrowed
//! per use). The small F32 vectors (norms, biases) are copied out.

use std::sync::Arc;

use uma_gguf::tensor_names::{LayerTensor as L, ModelTensor};
use uma_gguf::{GgmlType, GgufFile};
use uma_kernels::{PackedFormat, PackedMatrix, WeightMatrix};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// A weight matrix `[num_rows (out features), row_length (in features)]` in the mapped file.
#[derive(Clone, Debug)]
pub(crate) struct Tensor {
    name: String,
    ty: GgmlType,
    num_rows: usize,   // output features
    row_length: usize, // input features
    packed: Option<Arc<PackedMatrix>>,
}

impl Tensor {
    /// The tensor's bytes, zero-copy.
    pub(crate) fn data<'f>(&self, file: &'f GgufFile) -> &'f [u8] {
        file.tensor(&self.name).expect("tensor presence is checked at load").data()
    }

    /// The tensor as a matrix for [`uma_kernels::matmul`].
    pub(crate) fn matrix<'f>(&self, file: &'f GgufFile) -> WeightMatrix<'f> {
        WeightMatrix::new(self.ty, self.data(file), self.num_rows, self.row_length)
            .expect("type and shape are checked at load")
    }

    /// The repacked copy, when the type has an interleaved layout.
    pub(crate) fn packed(&self) -> Option<&PackedMatrix> {
        self.packed.as_deref()
    }

    pub(crate) fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Dequantizes row `row` into `out` (`row_length` values).
    pub(crate) fn dequantize_row(&self, file: &GgufFile, row: usize, out: &mut [f32]) {
        let data = self.data(file);
        let row_bytes = data.len() / self.num_rows;
        uma_kernels::dequantize(self.ty, &data[row * row_bytes..(row + 1) * row_bytes], out)
            .expect("type and shape are checked at load");
    }
}

/// One transformer layer's weights.
#[derive(Clone, Debug)]
pub(crate) struct LayerWeights {
    pub(crate) attn_norm: Vec<f32>,                   // [hidden_size]
    pub(crate) attn_q: Tensor,                        // [q_dim, hidden_size]
    pub(crate) attn_k: Tensor,                        // [kv_dim, hidden_size]
    pub(crate) attn_v: Tensor,                        // [kv_dim, hidden_size]
    pub(crate) attn_q_bias: Option<Vec<f32>>,         // [q_dim]
    pub(crate) attn_k_bias: Option<Vec<f32>>,         // [kv_dim]
    pub(crate) attn_v_bias: Option<Vec<f32>>,         // [kv_dim]
    pub(crate) attn_q_norm: Option<Vec<f32>>,         // [head_dim]
    pub(crate) attn_k_norm: Option<Vec<f32>>,         // [head_dim]
    pub(crate) attn_output: Tensor,                   // [hidden_size, q_dim]
    pub(crate) post_attention_norm: Option<Vec<f32>>, // [hidden_size]
    pub(crate) ffn_norm: Vec<f32>,                    // [hidden_size]
    pub(crate) ffn_gate: Tensor,                      // [intermediate_size, hidden_size]
    pub(crate) ffn_up: Tensor,                        // [intermediate_size, hidden_size]
    pub(crate) ffn_down: Tensor,                      // [hidden_size, intermediate_size]
    pub(crate) post_ffw_norm: Option<Vec<f32>>,       // [hidden_size]
}

/// All of a model's weights.
#[derive(Clone, Debug)]
pub(crate) struct ModelWeights {
    pub(crate) token_embd: Tensor, // [vocab_size, hidden_size]
    pub(crate) layers: Vec<LayerWeights>,
    pub(crate) output_norm: Vec<f32>, // [hidden_size]
    pub(crate) output: Tensor,        // [vocab_size, hidden_size] (token_embd when tied)
}

impl ModelWeights {
    /// Finds and checks every tensor `config` implies.
    pub(crate) fn load(file: &GgufFile, config: &ModelConfig) -> Result<ModelWeights> {
        let h = config.hidden_size;
        let embedding_name = ModelTensor::TokenEmbedding.weight_name();
        let token_embd = embedding(file, embedding_name, config.vocab_size, h)?;
        let output = if config.tie_word_embeddings {
            matrix(file, embedding_name, config.vocab_size, h)?
        } else {
            matrix(file, ModelTensor::Output.weight_name(), config.vocab_size, h)?
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let optional_vector = |present: bool, name: String, len: usize| {
                present.then(|| vector(file, &name, len)).transpose()
            };
            let (q, kv, d) = (config.q_dim(), config.kv_dim(), config.head_dim);
            let ffn = config.intermediate_size;
            layers.push(LayerWeights {
                attn_norm: vector(file, &L::AttnNorm.weight(i), h)?,
                attn_q: matrix(file, &L::AttnQ.weight(i), q, h)?,
                attn_k: matrix(file, &L::AttnK.weight(i), kv, h)?,
                attn_v: matrix(file, &L::AttnV.weight(i), kv, h)?,
                attn_q_bias: optional_vector(config.attention_bias, L::AttnQ.bias(i), q)?,
                attn_k_bias: optional_vector(config.attention_bias, L::AttnK.bias(i), kv)?,
                attn_v_bias: optional_vector(config.attention_bias, L::AttnV.bias(i), kv)?,
                attn_q_norm: optional_vector(config.qk_norm, L::AttnQNorm.weight(i), d)?,
                attn_k_norm: optional_vector(config.qk_norm, L::AttnKNorm.weight(i), d)?,
                attn_output: matrix(file, &L::AttnOutput.weight(i), h, q)?,
                post_attention_norm: optional_vector(
                    config.sandwich_norms,
                    L::PostAttentionNorm.weight(i),
                    h,
                )?,
                ffn_norm: vector(file, &L::FfnNorm.weight(i), h)?,
                ffn_gate: matrix(file, &L::FfnGate.weight(i), ffn, h)?,
                ffn_up: matrix(file, &L::FfnUp.weight(i), ffn, h)?,
                ffn_down: matrix(file, &L::FfnDown.weight(i), h, ffn)?,
                post_ffw_norm: optional_vector(config.sandwich_norms, L::PostFfwNorm.weight(i), h)?,
            });
        }
        Ok(ModelWeights {
            token_embd,
            layers,
            output_norm: vector(file, ModelTensor::OutputNorm.weight_name(), h)?,
            output,
        })
    }
}

fn find<'f>(file: &'f GgufFile, name: &str) -> Result<uma_gguf::TensorView<'f>> {
    file.tensor(name).map_err(|_| ModelError::MissingTensor { name: name.to_owned() })
}

fn check_shape(name: &str, actual: &[u64], expected: &[u64]) -> Result<()> {
    if actual != expected {
        return Err(ModelError::WrongShape {
            name: name.to_owned(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        });
    }
    Ok(())
}

/// A matrix with `num_rows` output rows of `row_length` inputs (ggml shape `[row_length,
/// num_rows]`) whose type has a dot product.
fn matrix(file: &GgufFile, name: &str, num_rows: usize, row_length: usize) -> Result<Tensor> {
    let view = find(file, name)?;
    check_shape(name, view.shape(), &[row_length as u64, num_rows as u64])?;
    let ty = view.ggml_type();
    WeightMatrix::new(ty, view.data(), num_rows, row_length).map_err(|_| {
        ModelError::UnsupportedTensorType {
            name: name.to_owned(),
            ty,
            reason: "no matrix product for this type",
        }
    })?;
    // Float rows pack in whole groups of 8 elements; other lengths take the row path.
    let format = PackedFormat::of(ty).filter(|f| row_length.is_multiple_of(f.block_elements()));
    let packed = match format {
        Some(format) => {
            let packed = PackedMatrix::pack(format, view.data(), num_rows, row_length)?;
            // The copy replaces the mapped pages: count the weights once.
            file.release_tensor_pages(name)?;
            Some(Arc::new(packed))
        }
        None => None,
    };
    Ok(Tensor { name: name.to_owned(), ty, num_rows, row_length, packed })
}

/// The embedding table: rows are looked up and dequantized.
fn embedding(file: &GgufFile, name: &str, num_rows: usize, row_length: usize) -> Result<Tensor> {
    let view = find(file, name)?;
    check_shape(name, view.shape(), &[row_length as u64, num_rows as u64])?;
    let ty = view.ggml_type();
    if !uma_kernels::can_dequantize(ty) {
        return Err(ModelError::UnsupportedTensorType {
            name: name.to_owned(),
            ty,
            reason: "embedding rows cannot be dequantized",
        });
    }
    Ok(Tensor { name: name.to_owned(), ty, num_rows, row_length, packed: None })
}

/// A vector (norm weight or bias), decoded to f32.
fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    let view = find(file, name)?;
    check_shape(name, view.shape(), &[len as u64])?;
    let ty = view.ggml_type();
    if !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(ModelError::UnsupportedTensorType {
            name: name.to_owned(),
            ty,
            reason: "norm weights and biases must be F32, F16 or BF16",
        });
    }
    let mut out = vec![0.0f32; len];
    uma_kernels::dequantize(ty, view.data(), &mut out)?;
    Ok(out)
}
