//! Weight tables: every tensor an architecture needs, found and checked (presence, shape) once at
//! load; the backend checks the types it can compute with and keeps the weights as it wants them.

use std::sync::Arc;

use uma_gguf::tensor_names::LayerTensor;
use uma_gguf::{GgufFile, TensorView};

use crate::backend::{Backend, MatrixUse};
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

    /// The tensors of layer `layer` of a model of `config`.
    pub(crate) fn layer<'l>(&'l self, layer: usize, config: &'l ModelConfig) -> LayerLoader<'l, B> {
        LayerLoader { weights: self, config, layer }
    }

    /// A matrix with `num_rows` output rows of `row_length` inputs (ggml shape `[row_length,
    /// num_rows]`), kept for `usage`.
    pub(crate) fn matrix(
        &self,
        name: &str,
        num_rows: usize,
        row_length: usize,
        usage: MatrixUse,
    ) -> Result<B::Matrix> {
        let view = self.find(name, &[row_length, num_rows])?;
        self.backend.load_matrix(self.file, &view, usage)
    }

    /// Matrices of `(name, num_rows)` with rows of `row_length` inputs that run together on
    /// the same input ([`Backend::load_matrices`]).
    pub(crate) fn matrices(
        &self,
        names: &[(&str, usize)],
        row_length: usize,
        usage: MatrixUse,
    ) -> Result<Vec<B::Matrix>> {
        let views = names
            .iter()
            .map(|&(name, num_rows)| self.find(name, &[row_length, num_rows]))
            .collect::<Result<Vec<_>>>()?;
        self.backend.load_matrices(self.file, &views, usage)
    }

    /// The `count` expert matrices of `num_rows` outputs of `row_length` inputs stacked in
    /// `name` (ggml shape `[row_length, num_rows, count]`, [`Backend::load_experts`]).
    pub(crate) fn experts(
        &self,
        name: &str,
        num_rows: usize,
        row_length: usize,
        count: usize,
    ) -> Result<Vec<B::Matrix>> {
        self.experts_in(self.file, name, num_rows, row_length, count)
    }

    /// [`WeightLoader::experts`] from `file`: another file than the model's for tensors derived
    /// at load (DeepSeek's per-head attention matrices cut from an older file's `attn_kv_b`).
    pub(crate) fn experts_in(
        &self,
        file: &Arc<GgufFile>,
        name: &str,
        num_rows: usize,
        row_length: usize,
        count: usize,
    ) -> Result<Vec<B::Matrix>> {
        let view = find_in(file, name, &[row_length, num_rows, count])?;
        let experts = self.backend.load_experts(file, &view, count)?;
        if experts.len() != count {
            return Err(ModelError::Backend {
                reason: format!("the backend loaded {} experts of {count}", experts.len()),
            });
        }
        Ok(experts)
    }

    /// Vectors of `(name, len)` used together (q/k/v's biases, [`Backend::load_vectors`]).
    pub(crate) fn vectors(&self, names: &[(&str, usize)]) -> Result<Vec<B::Vector>> {
        let views = names
            .iter()
            .map(|&(name, len)| Ok((self.find(name, &[len])?, len)))
            .collect::<Result<Vec<_>>>()?;
        self.backend.load_vectors(&views)
    }

    /// A vector of `len` elements (a norm's weights or a bias).
    pub(crate) fn vector(&self, name: &str, len: usize) -> Result<B::Vector> {
        let view = self.find(name, &[len])?;
        self.backend.load_vector(&view, len)
    }

    /// The `count` vectors of `len` elements stacked in `name` (ggml shape `[len, count]`: a
    /// mixture-of-experts layer's per-expert biases), in expert order.
    pub(crate) fn stacked_vectors(
        &self,
        name: &str,
        len: usize,
        count: usize,
    ) -> Result<Vec<B::Vector>> {
        let view = self.find(name, &[len, count])?;
        let values = crate::backend::decode_vector(&view, len * count)?;
        values.chunks_exact(len).map(|v| self.backend.vector(name, v)).collect()
    }

    /// The tensor `name`, which must have the ggml shape `shape`.
    fn find(&self, name: &str, shape: &[usize]) -> Result<TensorView<'a>> {
        find_in(self.file, name, shape)
    }
}

/// The tensor `name` of `file`, which must have the ggml shape `shape`.
fn find_in<'f>(file: &'f GgufFile, name: &str, shape: &[usize]) -> Result<TensorView<'f>> {
    let view =
        file.tensor(name).map_err(|_| ModelError::MissingTensor { name: name.to_owned() })?;
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

/// Finds the tensors of one layer (`blk.{layer}.*`) and checks their shapes.
pub(crate) struct LayerLoader<'a, B: Backend> {
    weights: &'a WeightLoader<'a, B>,
    config: &'a ModelConfig,
    layer: usize,
}

impl<B: Backend> LayerLoader<'_, B> {
    /// The hyper-parameters of the model the layer belongs to.
    pub(crate) fn config(&self) -> &ModelConfig {
        self.config
    }

    /// The layer's matrix `tensor`, `num_rows` outputs of `row_length` inputs.
    pub(crate) fn matrix(
        &self,
        tensor: LayerTensor,
        num_rows: usize,
        row_length: usize,
    ) -> Result<B::Matrix> {
        let name = tensor.weight(self.layer);
        self.weights.matrix(&name, num_rows, row_length, MatrixUse::Products)
    }

    /// The layer's matrices `tensors` (with their output rows), all of `row_length` inputs,
    /// loaded to run together on the same input.
    pub(crate) fn matrices<const N: usize>(
        &self,
        tensors: [(LayerTensor, usize); N],
        row_length: usize,
    ) -> Result<[B::Matrix; N]> {
        let names = tensors.map(|(tensor, rows)| (tensor.weight(self.layer), rows));
        let names: Vec<(&str, usize)> = names.iter().map(|(n, rows)| (n.as_str(), *rows)).collect();
        exactly(self.weights.matrices(&names, row_length, MatrixUse::Products)?, "matrices")
    }

    /// The layer's experts `tensor`, `count` matrices of `num_rows` outputs of `row_length`
    /// inputs.
    pub(crate) fn experts(
        &self,
        tensor: LayerTensor,
        num_rows: usize,
        row_length: usize,
        count: usize,
    ) -> Result<Vec<B::Matrix>> {
        self.weights.experts(&tensor.weight(self.layer), num_rows, row_length, count)
    }

    /// The layer's 1-D `tensor` of `row_length` elements as a matrix of one row (a gate that
    /// gives one logit per token, like Qwen2-MoE's `ffn_gate_inp_shexp`).
    pub(crate) fn row_matrix(&self, tensor: LayerTensor, row_length: usize) -> Result<B::Matrix> {
        let name = tensor.weight(self.layer);
        let view = self.weights.find(&name, &[row_length])?;
        self.weights.backend.load_matrix(self.weights.file, &view, MatrixUse::Products)
    }

    /// The layer's weight vector `tensor` of `len` elements (a norm).
    pub(crate) fn vector(&self, tensor: LayerTensor, len: usize) -> Result<B::Vector> {
        self.weights.vector(&tensor.weight(self.layer), len)
    }

    /// The layer's norm `tensor` over the hidden state, `[hidden_size]`.
    pub(crate) fn norm(&self, tensor: LayerTensor) -> Result<B::Vector> {
        self.vector(tensor, self.config.hidden_size)
    }

    /// The layer's bias of `tensor`, `len` elements.
    pub(crate) fn bias(&self, tensor: LayerTensor, len: usize) -> Result<B::Vector> {
        self.weights.vector(&tensor.bias(self.layer), len)
    }

    /// The layer's bias of `tensor`, `len` elements, as host values (used where the host
    /// computes: routing).
    pub(crate) fn host_bias(&self, tensor: LayerTensor, len: usize) -> Result<Vec<f32>> {
        let view = self.weights.find(&tensor.bias(self.layer), &[len])?;
        crate::backend::decode_vector(&view, len)
    }

    /// Which layer this is.
    pub(crate) fn index(&self) -> usize {
        self.layer
    }

    /// The layer's `tensor` (weights) as f32 values, checked to have the ggml shape `shape`
    /// (for tensors uma rearranges at load).
    pub(crate) fn values(&self, tensor: LayerTensor, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.weights.find(&tensor.weight(self.layer), shape)?;
        let mut out = vec![0.0f32; shape.iter().product()];
        uma_kernels::dequantize(view.ggml_type(), view.data(), &mut out)?;
        Ok(out)
    }

    /// The type of the layer's `tensor` (weights), when the file has it.
    pub(crate) fn tensor_type(&self, tensor: LayerTensor) -> Option<uma_gguf::GgmlType> {
        self.weights.file.tensor(&tensor.weight(self.layer)).ok().map(|view| view.ggml_type())
    }

    /// The layer's experts `tensor` from `file` (see [`WeightLoader::experts_in`]).
    pub(crate) fn experts_in(
        &self,
        file: &Arc<GgufFile>,
        tensor: LayerTensor,
        num_rows: usize,
        row_length: usize,
        count: usize,
    ) -> Result<Vec<B::Matrix>> {
        self.weights.experts_in(file, &tensor.weight(self.layer), num_rows, row_length, count)
    }

    /// Whether the layer has the bias of `tensor`.
    pub(crate) fn has_bias(&self, tensor: LayerTensor) -> bool {
        self.weights.file.has_tensor(&tensor.bias(self.layer))
    }

    /// The layer's per-expert biases of the stacked `tensor` (`[len, count]`), one per expert.
    pub(crate) fn expert_biases(
        &self,
        tensor: LayerTensor,
        len: usize,
        count: usize,
    ) -> Result<Vec<B::Vector>> {
        self.weights.stacked_vectors(&tensor.bias(self.layer), len, count)
    }

    /// The biases of the layer's `tensors` (with their lengths), loaded to be used together.
    pub(crate) fn biases<const N: usize>(
        &self,
        tensors: [(LayerTensor, usize); N],
    ) -> Result<[B::Vector; N]> {
        let names = tensors.map(|(tensor, len)| (tensor.bias(self.layer), len));
        let names: Vec<(&str, usize)> = names.iter().map(|(n, len)| (n.as_str(), *len)).collect();
        exactly(self.weights.vectors(&names)?, "vectors")
    }
}

/// The `N` items a backend loaded for `N` tensors (fewer or more would be a backend bug).
fn exactly<T, const N: usize>(items: Vec<T>, what: &str) -> Result<[T; N]> {
    let count = items.len();
    items.try_into().map_err(|_| ModelError::Backend {
        reason: format!("the backend loaded {count} {what} for {N} tensors"),
    })
}
