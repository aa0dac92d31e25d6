//! [`GpuBackend`]: uma-model's [`Backend`] on one GPU. Weights live in device buffers
//! ([`GpuMatrix`], [`GpuVector`]), the paged KV cache too ([`GpuKvCache`]); a forward pass
//! records every operation into one [`Recorder`] and submits when its results are read, so the
//! CPU only prepares the step (its layout, uploaded once) and reads the logits back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use uma_gguf::{GgufFile, TensorView};
use uma_model::backend::{AttentionParams, Backend, BatchLayout, MatrixUse, RopeParams, Rows};
use uma_model::{HiddenActivation, KvCacheType, ModelConfig};

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::kv_cache::GpuKvCache;
use crate::matrix::{GpuMatrix, MatrixBuffers};
use crate::ops;
use crate::ops::matmul::MatvecShape;
use crate::pool::{new_pass_id, BufferPool, PassId, PooledBuffer, Use};
use crate::recorder::{BindGroups, Recorder};
use crate::shader::{Kernel, Kernels};
use crate::stats::GpuStats;
use crate::step::StepBuffers;

/// The GPU backend: a device, its compiled kernels and its buffer pool. Cloning shares them.
#[derive(Clone, Debug)]
pub struct GpuBackend {
    context: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    pool: Arc<BufferPool>,
    /// The parameter arena the next pass records into (passes of one model run one at a time;
    /// a second concurrent pass makes its own).
    arena: Arc<Mutex<Option<wgpu::Buffer>>>,
    /// Uploaded weight matrices by tensor name, with their file, so that a tensor loaded twice
    /// (a tied embedding: row lookups and products) is on the device once.
    matrices: Arc<Mutex<MatrixCache>>,
    pub(crate) bind_groups: Arc<BindGroups>,
    stats: Arc<GpuStats>,
    /// The shape of every decode product when set (`UMA_GPU_MATVEC`, tests), else each
    /// format's default for the device (ops/matmul.rs).
    matvec_override: Option<MatvecShape>,
}

impl GpuBackend {
    /// A backend on the best GPU of the machine ([`GpuContext::open`]).
    pub fn open() -> Result<GpuBackend> {
        Ok(GpuBackend::new(GpuContext::open()?))
    }

    /// A backend on an open device.
    pub fn new(context: Arc<GpuContext>) -> GpuBackend {
        GpuBackend {
            kernels: Arc::new(Kernels::new(context.clone())),
            pool: BufferPool::new(context.clone()),
            arena: Arc::new(Mutex::new(None)),
            matrices: Arc::new(Mutex::new(HashMap::new())),
            bind_groups: Arc::default(),
            stats: Arc::default(),
            matvec_override: ops::matmul::matvec_shape_override(),
            context,
        }
    }

    /// This backend with decode products of `shape` (tests of every shape's fused kernels).
    #[cfg(test)]
    pub(crate) fn with_matvec_shape(self, shape: MatvecShape) -> GpuBackend {
        GpuBackend { matvec_override: Some(shape), ..self }
    }

    pub(crate) fn matvec_override(&self) -> Option<MatvecShape> {
        self.matvec_override
    }

    /// A backend that takes the portable kernels (tests of the fallbacks).
    #[cfg(test)]
    pub(crate) fn portable(context: Arc<GpuContext>) -> GpuBackend {
        GpuBackend {
            kernels: Arc::new(Kernels::portable(context.clone())),
            ..GpuBackend::new(context)
        }
    }

    /// The device.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.context
    }

    /// Where this backend's passes spent their time so far.
    pub fn stats(&self) -> Arc<GpuStats> {
        self.stats.clone()
    }

    pub(crate) fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    pub(crate) fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// A device buffer holding `bytes` (padded to 4), for weights and caches.
    pub(crate) fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        let size = (bytes.len().max(4) as u64).next_multiple_of(4);
        let buffer = self.create_buffer(label, size)?;
        let aligned = bytes.len() / 4 * 4;
        if aligned > 0 {
            self.context.queue.write_buffer(&buffer, 0, &bytes[..aligned]);
        }
        if aligned < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - aligned].copy_from_slice(&bytes[aligned..]);
            self.context.queue.write_buffer(&buffer, aligned as u64, &tail);
        }
        Ok(buffer)
    }

    /// A zeroed storage buffer of `size` bytes (a multiple of 4), or a clear error past the
    /// device's limits or memory.
    pub(crate) fn create_buffer(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        let max = self.context.info().max_buffer_bytes;
        if size > max {
            return Err(GpuError::Unsupported {
                reason: format!("{label}: {size} bytes is over the GPU's largest buffer ({max})"),
            });
        }
        let device = &self.context.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::DeviceFailed { reason: format!("{label}: {error}") });
        }
        Ok(buffer)
    }

    /// The upload of tensor `name` of `file` when one is still alive.
    pub(crate) fn cached_matrix(
        &self,
        file: &Arc<GgufFile>,
        name: &str,
    ) -> Option<Arc<MatrixBuffers>> {
        let matrices = self.matrices.lock().unwrap_or_else(|e| e.into_inner());
        let (cached_file, buffers) = matrices.get(name)?;
        // The file is compared while alive, so its address cannot be another file's.
        let same_file = cached_file.upgrade().is_some_and(|f| Arc::ptr_eq(&f, file));
        if same_file {
            buffers.upgrade()
        } else {
            None
        }
    }

    /// Remembers the upload of tensor `name` of `file` (dropped uploads are forgotten here).
    pub(crate) fn cache_matrix(
        &self,
        file: &Arc<GgufFile>,
        name: &str,
        buffers: &Arc<MatrixBuffers>,
    ) {
        let mut matrices = self.matrices.lock().unwrap_or_else(|e| e.into_inner());
        matrices.retain(|_, (_, buffers)| buffers.strong_count() > 0);
        matrices.insert(name.to_owned(), (Arc::downgrade(file), Arc::downgrade(buffers)));
    }

    /// Waits until the device has done everything submitted (uploads included).
    pub fn wait(&self) -> Result<()> {
        self.context.wait()
    }
}

/// Weak references to uploaded matrices by tensor name, with the file they came from.
type MatrixCache = HashMap<String, (Weak<GgufFile>, Weak<MatrixBuffers>)>;

/// A norm's weights or a bias, as f32 on the device.
#[derive(Debug)]
pub struct GpuVector {
    pub(crate) buffer: wgpu::Buffer, // [len] f32 from `offset`
    /// Bytes before the vector in `buffer` (vectors of a group share one, [`GpuVector::group`]).
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

impl GpuVector {
    /// A vector filling `buffer` from its start.
    pub(crate) fn new(buffer: wgpu::Buffer, len: usize) -> GpuVector {
        GpuVector { buffer, offset: 0, len }
    }

    pub(crate) fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding { offset: self.offset, ..whole(&self.buffer, self.len) }
    }

    /// Vectors of `values` side by side in one buffer, each at an aligned offset, so that one
    /// binding reaches them all (q/k/v's biases in their product kernel).
    pub(crate) fn group(
        backend: &GpuBackend,
        label: &str,
        values: &[Vec<f32>],
    ) -> Result<Vec<GpuVector>> {
        let alignment = backend.context.storage_alignment.max(4);
        let mut offsets = Vec::with_capacity(values.len());
        let mut total = 0u64;
        for v in values {
            offsets.push(total);
            total = (total + v.len().max(1) as u64 * 4).next_multiple_of(alignment);
        }
        let buffer = backend.create_buffer(label, total.max(4))?;
        let mut vectors = Vec::with_capacity(values.len());
        for (v, offset) in values.iter().zip(offsets) {
            backend.context.queue.write_buffer(&buffer, offset, bytemuck::cast_slice(v));
            vectors.push(GpuVector { buffer: buffer.clone(), offset, len: v.len() });
        }
        Ok(vectors)
    }
}

/// Activations `[num_rows, width]`, f32, in a pooled device buffer.
#[derive(Debug)]
pub struct GpuActivations {
    pub(crate) buffer: PooledBuffer,
    pub(crate) num_rows: usize,
    pub(crate) width: usize,
}

impl GpuActivations {
    pub(crate) fn len(&self) -> usize {
        self.num_rows * self.width
    }

    pub(crate) fn binding(&self) -> wgpu::BufferBinding<'_> {
        whole(self.buffer.buffer(), self.len())
    }
}

/// The first `len` f32 (at least one) of `buffer`.
pub(crate) fn whole(buffer: &wgpu::Buffer, len: usize) -> wgpu::BufferBinding<'_> {
    wgpu::BufferBinding { buffer, offset: 0, size: wgpu::BufferSize::new(len.max(1) as u64 * 4) }
}

/// One forward pass on the GPU: its recorder, the step's layout on the device, and the first
/// error an operation met (operations that cannot return one keep it for [`Backend::into_host`]).
#[derive(Debug)]
pub struct GpuPass<'a> {
    backend: &'a GpuBackend,
    layout: &'a BatchLayout<'a>,
    recorder: Recorder,
    /// This pass in the buffer pool.
    id: PassId,
    step: Arc<StepBuffers>,
    /// Rope rotations of this step's positions, per rope shape.
    pub(crate) rope_tables: HashMap<ops::rope::RopeKey, Arc<PooledBuffer>>,
    error: Option<GpuError>,
}

impl<'a> GpuPass<'a> {
    pub(crate) fn backend(&self) -> &'a GpuBackend {
        self.backend
    }

    pub(crate) fn layout(&self) -> &'a BatchLayout<'a> {
        self.layout
    }

    /// The step's layout on the device (shared, so that its bindings do not borrow the pass).
    pub(crate) fn step(&self) -> Arc<StepBuffers> {
        self.step.clone()
    }

    /// The kernel `name` built from `parts` with `defines` (see [`Kernels::get`]).
    pub(crate) fn kernel(
        &self,
        name: &str,
        parts: &[&str],
        defines: &[&str],
    ) -> Result<Arc<Kernel>> {
        self.backend.kernels.get(name, parts, defines)
    }

    /// Records `kernel` with `params` (a `#[repr(C)]` plain struct matching the kernel's
    /// uniform) and `buffers`.
    pub(crate) fn dispatch<P: bytemuck::NoUninit>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        buffers: &[wgpu::BufferBinding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        self.recorder.dispatch(kernel, bytemuck::bytes_of(params), buffers, groups)
    }

    /// A pooled device buffer of at least `bytes` bytes for kernels to write, contents
    /// unspecified.
    pub(crate) fn scratch(&self, bytes: u64) -> PooledBuffer {
        self.backend.pool.take(bytes, self.id, Use::Kernels)
    }

    /// A pooled device buffer of at least `bytes` bytes for `queue.write_buffer` (one no
    /// recorded work touches any more).
    pub(crate) fn upload_buffer(&self, bytes: u64) -> PooledBuffer {
        self.backend.pool.take(bytes, self.id, Use::Upload)
    }

    #[cfg(test)]
    pub(crate) fn recorder(&mut self) -> &mut Recorder {
        &mut self.recorder
    }

    /// Activations `[num_rows, width]` holding `values` (a fresh pooled buffer, written
    /// before the commands of the next submission).
    pub(crate) fn upload_activations(
        &mut self,
        values: &[f32],
        num_rows: usize,
        width: usize,
    ) -> GpuActivations {
        debug_assert_eq!(values.len(), num_rows * width);
        GpuActivations { buffer: self.upload_values(values), num_rows, width }
    }

    /// A pooled device buffer holding `values` (at least 4 bytes).
    pub(crate) fn upload_values<T: bytemuck::NoUninit>(&mut self, values: &[T]) -> PooledBuffer {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        let buffer = self.upload_buffer(bytes.len().max(4) as u64);
        if !bytes.is_empty() {
            self.backend.context.queue.write_buffer(buffer.buffer(), 0, bytes);
        }
        buffer
    }

    /// Keeps the first error of an operation that cannot return one.
    fn keep(&mut self, result: Result<()>) {
        if let Err(error) = result {
            tracing::error!(%error, "GPU operation failed");
            self.error.get_or_insert(error);
        }
    }

    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Runs what is recorded and reads `x` back.
    fn read(&mut self, x: &GpuActivations) -> Result<Vec<f32>> {
        Ok(self.read_many(&[x])?.pop().unwrap_or_default())
    }

    /// [`Self::read`] of several activations, with one wait for all of them.
    fn read_many(&mut self, xs: &[&GpuActivations]) -> Result<Vec<Vec<f32>>> {
        self.check()?;
        if xs.iter().all(|x| x.len() == 0) {
            return Ok(vec![Vec::new(); xs.len()]);
        }
        let parts: Vec<(&wgpu::Buffer, u64, u64)> =
            xs.iter().map(|x| (x.buffer.buffer(), 0, (x.len() * 4) as u64)).collect();
        let bytes = self.recorder.read_many(&parts)?;
        Ok(bytes.iter().map(|b| bytemuck::pod_collect_to_vec(b)).collect())
    }
}

impl Backend for GpuBackend {
    type Matrix = GpuMatrix;
    type Vector = GpuVector;
    type Activations = GpuActivations;
    type KvCache = GpuKvCache;
    type Pass<'a> = GpuPass<'a>;

    fn load_matrix(
        &self,
        file: &Arc<GgufFile>,
        tensor: &TensorView<'_>,
        usage: MatrixUse,
    ) -> uma_model::Result<GpuMatrix> {
        GpuMatrix::load(self, file, tensor, usage)
    }

    fn load_matrices(
        &self,
        file: &Arc<GgufFile>,
        tensors: &[TensorView<'_>],
        usage: MatrixUse,
    ) -> uma_model::Result<Vec<GpuMatrix>> {
        GpuMatrix::load_group(self, file, tensors, usage)
    }

    fn load_experts(
        &self,
        file: &Arc<GgufFile>,
        tensor: &TensorView<'_>,
        count: usize,
    ) -> uma_model::Result<Vec<GpuMatrix>> {
        GpuMatrix::load_experts(self, file, tensor, count)
    }

    fn load_vectors(
        &self,
        tensors: &[(TensorView<'_>, usize)],
    ) -> uma_model::Result<Vec<GpuVector>> {
        let values = tensors
            .iter()
            .map(|(tensor, len)| uma_model::backend::decode_vector(tensor, *len))
            .collect::<uma_model::Result<Vec<_>>>()?;
        let label = tensors.iter().map(|(t, _)| t.name()).collect::<Vec<_>>().join(" + ");
        Ok(GpuVector::group(self, &label, &values)?)
    }

    fn vector(&self, name: &str, values: &[f32]) -> uma_model::Result<GpuVector> {
        let buffer = self.upload(name, bytemuck::cast_slice(values))?;
        Ok(GpuVector::new(buffer, values.len()))
    }

    fn new_kv_cache(
        &self,
        config: &ModelConfig,
        num_blocks: usize,
        block_size: usize,
        kv_type: KvCacheType,
    ) -> uma_model::Result<GpuKvCache> {
        GpuKvCache::new(self, config, num_blocks, block_size, kv_type)
    }

    fn begin_pass<'a>(&'a self, layout: &'a BatchLayout<'a>) -> GpuPass<'a> {
        let arena = self
            .arena
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Recorder::new_arena(&self.context));
        let id = new_pass_id();
        let recorder = Recorder::new(
            self.context.clone(),
            self.bind_groups.clone(),
            self.stats.clone(),
            arena,
        )
        .with_pool(self.pool.clone(), id);
        let step = Arc::new(StepBuffers::upload(self, id, layout));
        GpuPass {
            backend: self,
            layout,
            recorder,
            id,
            step,
            rope_tables: HashMap::new(),
            error: None,
        }
    }

    fn activations(pass: &mut GpuPass<'_>, num_rows: usize, width: usize) -> GpuActivations {
        let bytes = (num_rows * width * 4) as u64;
        let buffer = pass.scratch(bytes);
        if bytes > 0 {
            pass.recorder.clear(buffer.buffer(), bytes);
        }
        GpuActivations { buffer, num_rows, width }
    }

    fn embed(
        pass: &mut GpuPass<'_>,
        table: &GpuMatrix,
        scale: Option<f32>,
        out: &mut GpuActivations,
    ) {
        let result = ops::embed::embed(pass, table, scale, out);
        pass.keep(result);
    }

    fn rms_norm(
        pass: &mut GpuPass<'_>,
        x: &GpuActivations,
        rows: Rows,
        weight: &GpuVector,
        eps: f32,
        out: &mut GpuActivations,
    ) {
        let result = ops::norm::rms_norm(pass, x, rows, weight, eps, out);
        pass.keep(result);
    }

    fn rms_norm_in_place(
        pass: &mut GpuPass<'_>,
        x: &mut GpuActivations,
        weight: &GpuVector,
        eps: f32,
    ) {
        let result = ops::norm::rms_norm_in_place(pass, x, weight, eps);
        pass.keep(result);
    }

    fn matmul(
        pass: &mut GpuPass<'_>,
        weight: &GpuMatrix,
        x: &GpuActivations,
        out: &mut GpuActivations,
    ) -> uma_model::Result<()> {
        pass.check()?;
        Ok(ops::matmul::matmul(pass, weight, x, out)?)
    }

    fn matmul_many(
        pass: &mut GpuPass<'_>,
        products: &mut [(&GpuMatrix, &mut GpuActivations)],
        x: &GpuActivations,
    ) -> uma_model::Result<()> {
        pass.check()?;
        Ok(ops::matmul::matmul_many(pass, products, x)?)
    }

    fn normed_matmul_many(
        pass: &mut GpuPass<'_>,
        x: &GpuActivations,
        norm: (&GpuVector, f32),
        normed: &mut GpuActivations,
        products: &mut [(&GpuMatrix, &mut GpuActivations)],
        biases: Option<&[&GpuVector]>,
    ) -> uma_model::Result<()> {
        pass.check()?;
        Ok(ops::matmul::normed_matmul_many(pass, x, norm, normed, products, biases)?)
    }

    fn normed_gated_matmul(
        pass: &mut GpuPass<'_>,
        x: &GpuActivations,
        norm: (&GpuVector, f32),
        normed: &mut GpuActivations,
        gate_up: (&GpuMatrix, &GpuMatrix),
        activation: HiddenActivation,
        gate_out: &mut GpuActivations,
        up_out: &mut GpuActivations,
    ) -> uma_model::Result<()> {
        pass.check()?;
        let result = ops::matmul::normed_gated_matmul(
            pass, x, norm, normed, gate_up, activation, gate_out, up_out,
        );
        Ok(result?)
    }

    fn matmul_add(
        pass: &mut GpuPass<'_>,
        weight: &GpuMatrix,
        x: &GpuActivations,
        _scratch: &mut GpuActivations,
        acc: &mut GpuActivations,
    ) -> uma_model::Result<()> {
        pass.check()?;
        Ok(ops::matmul::matmul_add(pass, weight, x, acc)?)
    }

    fn gated_matmul(
        pass: &mut GpuPass<'_>,
        gate: &GpuMatrix,
        up: &GpuMatrix,
        x: &GpuActivations,
        activation: HiddenActivation,
        gate_out: &mut GpuActivations,
        up_out: &mut GpuActivations,
    ) -> uma_model::Result<()> {
        pass.check()?;
        Ok(ops::matmul::gated_matmul(pass, gate, up, x, activation, gate_out, up_out)?)
    }

    fn add_normed(
        pass: &mut GpuPass<'_>,
        acc: &mut GpuActivations,
        y: &mut GpuActivations,
        norm: &GpuVector,
        eps: f32,
    ) {
        let result = ops::norm::add_normed(pass, acc, y, norm, eps);
        pass.keep(result);
    }

    fn add_biases(pass: &mut GpuPass<'_>, pairs: &mut [(&mut GpuActivations, &GpuVector)]) {
        let result = ops::elementwise::add_biases(pass, pairs);
        pass.keep(result);
    }

    fn add_bias(pass: &mut GpuPass<'_>, x: &mut GpuActivations, bias: &GpuVector) {
        let result = ops::elementwise::add_bias(pass, x, bias);
        pass.keep(result);
    }

    fn norm_heads_and_rope(
        pass: &mut GpuPass<'_>,
        x: &mut GpuActivations,
        head_norm: Option<&GpuVector>,
        eps: f32,
        rope: &RopeParams,
    ) {
        let result = ops::rope::norm_heads_and_rope(pass, x, head_norm, eps, rope);
        pass.keep(result);
    }

    fn norm_heads_and_rope_qk(
        pass: &mut GpuPass<'_>,
        q: &mut GpuActivations,
        q_norm: Option<&GpuVector>,
        k: &mut GpuActivations,
        k_norm: Option<&GpuVector>,
        eps: f32,
        rope: &RopeParams,
    ) {
        let result = ops::rope::norm_heads_and_rope_qk(pass, (q, q_norm), (k, k_norm), eps, rope);
        pass.keep(result);
    }

    fn attention(
        pass: &mut GpuPass<'_>,
        kv: &mut GpuKvCache,
        layer: usize,
        params: &AttentionParams,
        sinks: Option<&GpuVector>,
        q: &GpuActivations,
        k: &GpuActivations,
        v: &GpuActivations,
        out: &mut GpuActivations,
    ) {
        let result = ops::attention::attention(pass, kv, layer, (params, sinks), q, k, v, out);
        pass.keep(result);
    }

    fn add(pass: &mut GpuPass<'_>, x: &mut GpuActivations, y: &GpuActivations) {
        let result = ops::elementwise::add(pass, x, y);
        pass.keep(result);
    }

    fn gated_activation(
        pass: &mut GpuPass<'_>,
        gate: &mut GpuActivations,
        up: &GpuActivations,
        activation: HiddenActivation,
    ) {
        let result = ops::elementwise::gated_activation(pass, gate, up, activation);
        pass.keep(result);
    }

    fn softcap(pass: &mut GpuPass<'_>, x: &mut GpuActivations, cap: f32) {
        let result = ops::elementwise::softcap(pass, x, cap);
        pass.keep(result);
    }

    fn gather_rows(
        pass: &mut GpuPass<'_>,
        x: &GpuActivations,
        width: usize,
        rows: &[usize],
    ) -> uma_model::Result<GpuActivations> {
        Ok(ops::rows::gather_rows(pass, x, width, rows)?)
    }

    fn add_rows_scaled(
        pass: &mut GpuPass<'_>,
        out: &mut GpuActivations,
        width: usize,
        rows: &[usize],
        weights: &[f32],
        y: &GpuActivations,
    ) -> uma_model::Result<()> {
        Ok(ops::rows::add_rows_scaled(pass, out, width, rows, weights, y)?)
    }

    fn host<'b>(
        pass: &mut GpuPass<'_>,
        x: &'b GpuActivations,
    ) -> uma_model::Result<Cow<'b, [f32]>> {
        Ok(Cow::Owned(pass.read(x)?))
    }

    fn host_many(
        pass: &mut GpuPass<'_>,
        xs: &[&GpuActivations],
    ) -> uma_model::Result<Vec<Vec<f32>>> {
        Ok(pass.read_many(xs)?)
    }

    fn from_host(
        pass: &mut GpuPass<'_>,
        values: Vec<f32>,
        num_rows: usize,
        width: usize,
    ) -> GpuActivations {
        pass.upload_activations(&values, num_rows, width)
    }

    fn into_host(pass: &mut GpuPass<'_>, x: GpuActivations) -> uma_model::Result<Vec<f32>> {
        Ok(pass.read(&x)?)
    }
}

impl Drop for GpuPass<'_> {
    fn drop(&mut self) {
        let _ = self.recorder.submit();
        let arena = self.recorder.take_arena();
        *self.backend.arena.lock().unwrap_or_else(|e| e.into_inner()) = Some(arena);
    }
}
