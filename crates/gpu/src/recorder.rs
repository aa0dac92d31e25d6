//! Recording a step's work: the kernel dispatches of a forward pass go into a command encoder
//! (one compute pass) submitted every [`SUBMIT_EVERY`] dispatches and when the results are read,
//! so a step costs a few submissions, not one per operation, and the device starts before the
//! CPU has recorded the whole step. Each dispatch's small parameters go into one uniform arena,
//! written to the device with the submission; bind groups are cached ([`BindGroups`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::pool::{BufferPool, PassId};
use crate::shader::Kernel;
use crate::stats::{GpuStats, Section};

/// Most workgroups per grid dimension (WebGPU's limit).
pub(crate) const MAX_GROUPS_PER_DIMENSION: u32 = 65_535;

/// The grid of `num_groups` workgroups: 1-D, or 2-D when wider than a dimension allows (kernels
/// number groups with `group_index` and skip the ones past `num_groups`).
pub(crate) fn grid(num_groups: u32) -> [u32; 3] {
    if num_groups <= MAX_GROUPS_PER_DIMENSION {
        [num_groups.max(1), 1, 1]
    } else {
        [MAX_GROUPS_PER_DIMENSION, num_groups.div_ceil(MAX_GROUPS_PER_DIMENSION), 1]
    }
}

/// Dispatches recorded before they are submitted: the device starts on the first layers while
/// the CPU records the next ones, instead of idling until the whole pass is recorded.
const SUBMIT_EVERY: usize = 64;

/// Bytes of the uniform arena; a pass needing more submits and starts it again.
const ARENA_BYTES: u64 = 1 << 20;

/// What a bind group binds: the kernel's layout, the parameter arena (bound at a dynamic offset)
/// and the storage buffers with their ranges.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BindKey {
    layout: wgpu::BindGroupLayout,
    params: Option<(wgpu::Buffer, u64)>, // the arena, and the bytes of one dispatch's parameters
    buffers: Vec<(wgpu::Buffer, u64, Option<wgpu::BufferSize>)>,
}

/// Bind groups kept between dispatches and passes. A decode step binds the same weights and the
/// same pooled activation buffers in the same order every time, and creating (then freeing)
/// hundreds of bind groups per step was most of its CPU time.
#[derive(Debug, Default)]
pub(crate) struct BindGroups {
    cached: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

/// Bind groups kept at most; past it the cache starts again (a cached group holds its buffers).
const MAX_BIND_GROUPS: usize = 8192;

impl BindGroups {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cached.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn get(&self, context: &GpuContext, key: BindKey) -> wgpu::BindGroup {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = cached.get(&key) {
            return group.clone();
        }
        let mut entries = Vec::with_capacity(key.buffers.len() + 1);
        if let Some((arena, size)) = &key.params {
            entries.push(wgpu::BufferBinding {
                buffer: arena,
                offset: 0,
                size: wgpu::BufferSize::new(*size),
            });
        }
        entries.extend(key.buffers.iter().map(|(buffer, offset, size)| wgpu::BufferBinding {
            buffer,
            offset: *offset,
            size: *size,
        }));
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .into_iter()
            .enumerate()
            .map(|(i, binding)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(binding),
            })
            .collect();
        let group = context.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &key.layout,
            entries: &entries,
        });
        if cached.len() >= MAX_BIND_GROUPS {
            cached.clear();
        }
        cached.insert(key, group.clone());
        group
    }
}

/// The dispatches of one pass, not yet submitted.
#[derive(Debug)]
pub(crate) struct Recorder {
    context: Arc<GpuContext>,
    bind_groups: Arc<BindGroups>,
    stats: Arc<GpuStats>,
    /// Dispatches recorded since the last submission.
    unsubmitted_dispatches: usize,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    arena: Option<wgpu::Buffer>,
    staged: Vec<u8>, // parameters recorded since the last submission, from `arena_start`
    arena_start: u64,
    /// Timestamps around the unsubmitted dispatches, when profiling.
    profile: Option<Profile>,
    /// The pool whose buffers this pass holds until it submits, and the pass's id there.
    pool: Option<(Arc<BufferPool>, PassId)>,
}

/// A query set with two timestamps per dispatch of one submission, and each dispatch's kernel.
#[derive(Debug)]
struct Profile {
    timestamps: wgpu::QuerySet,
    kernels: Vec<Arc<str>>,
}

impl Recorder {
    pub(crate) fn new(
        context: Arc<GpuContext>,
        bind_groups: Arc<BindGroups>,
        stats: Arc<GpuStats>,
        arena: wgpu::Buffer,
    ) -> Recorder {
        stats.count_pass();
        Recorder {
            context,
            bind_groups,
            stats,
            unsubmitted_dispatches: 0,
            encoder: None,
            pass: None,
            arena: Some(arena),
            staged: Vec::new(),
            arena_start: 0,
            profile: None,
            pool: None,
        }
    }

    /// A uniform arena for [`Recorder::new`] (passes reuse one: the queue orders its writes).
    /// This recorder as pass `id` of `pool`: buffers the pass drops wait for its submissions.
    pub(crate) fn with_pool(mut self, pool: Arc<BufferPool>, id: PassId) -> Recorder {
        pool.begin(id);
        self.pool = Some((pool, id));
        self
    }

    pub(crate) fn new_arena(context: &GpuContext) -> wgpu::Buffer {
        context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uma parameters"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let device = &self.context.device;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("uma") })
        })
    }

    fn end_compute_pass(&mut self) {
        self.pass = None;
    }

    /// Records `kernel` over `groups` workgroups with uniform `params` at binding 0 (when not
    /// empty) and `buffers` at the following bindings, in order.
    pub(crate) fn dispatch(
        &mut self,
        kernel: &Kernel,
        params: &[u8],
        buffers: &[wgpu::BufferBinding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        if self.unsubmitted_dispatches >= SUBMIT_EVERY {
            self.submit()?;
        }
        let started = Instant::now();
        let offsets: &[u32] = if params.is_empty() { &[] } else { &[self.stage(params)? as u32] };
        let key = BindKey {
            layout: kernel.layout.clone(),
            params: (!params.is_empty()).then(|| {
                let arena = self.arena.as_ref().expect("held until the recorder is done");
                (arena.clone(), params.len() as u64)
            }),
            buffers: buffers.iter().map(|b| (b.buffer.clone(), b.offset, b.size)).collect(),
        };
        let bind_group = self.bind_groups.get(&self.context, key);
        if self.pass.is_none() {
            let pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("uma step"),
                timestamp_writes: None,
            });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("begun above");
        let profile = self.context.timestamp_period.map(|_| {
            self.profile.get_or_insert_with(|| Profile {
                timestamps: self.context.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("uma profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * SUBMIT_EVERY as u32,
                }),
                kernels: Vec::with_capacity(SUBMIT_EVERY),
            })
        });
        let slot = profile.as_ref().map(|p| 2 * p.kernels.len() as u32);
        if let (Some(profile), Some(slot)) = (&profile, slot) {
            pass.write_timestamp(&profile.timestamps, slot);
        }
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, offsets);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        if let (Some(profile), Some(slot)) = (profile, slot) {
            pass.write_timestamp(&profile.timestamps, slot + 1);
            profile.kernels.push(kernel.name.clone());
        }
        self.unsubmitted_dispatches += 1;
        self.stats.count_dispatch();
        self.stats.add(Section::Recording, started);
        Ok(())
    }

    /// Copies `params` into the arena; its offset there.
    fn stage(&mut self, params: &[u8]) -> Result<u64> {
        let alignment = self.context.uniform_alignment.max(16) as usize;
        let padded = params.len().div_ceil(alignment) * alignment;
        if self.arena_start + (self.staged.len() + padded) as u64 > ARENA_BYTES {
            // Submitted work keeps the values it was recorded with: the queue runs it before
            // the next write to the arena.
            self.submit()?;
            self.arena_start = 0;
        }
        let offset = self.arena_start + self.staged.len() as u64;
        self.staged.extend_from_slice(params);
        self.staged.resize(self.staged.len() + padded - params.len(), 0);
        Ok(offset)
    }

    /// Records a copy of `bytes` bytes between buffers.
    pub(crate) fn copy(
        &mut self,
        source: &wgpu::Buffer,
        source_offset: u64,
        destination: &wgpu::Buffer,
        destination_offset: u64,
        bytes: u64,
    ) {
        self.end_compute_pass();
        self.encoder().copy_buffer_to_buffer(
            source,
            source_offset,
            destination,
            destination_offset,
            bytes,
        );
    }

    /// Records zeroing the first `bytes` (a multiple of 4) of `buffer`.
    pub(crate) fn clear(&mut self, buffer: &wgpu::Buffer, bytes: u64) {
        self.end_compute_pass();
        self.encoder().clear_buffer(buffer, 0, Some(bytes));
    }

    /// Submits everything recorded so far.
    pub(crate) fn submit(&mut self) -> Result<()> {
        self.context.check_alive()?;
        let started = Instant::now();
        self.end_compute_pass();
        self.unsubmitted_dispatches = 0;
        if !self.staged.is_empty() {
            let arena = self.arena.as_ref().expect("held until the recorder is done");
            self.context.queue.write_buffer(arena, self.arena_start, &self.staged);
            self.arena_start += self.staged.len() as u64;
            self.staged.clear();
        }
        let profiled = self.resolve_profile();
        if let Some(encoder) = self.encoder.take() {
            self.context.queue.submit([encoder.finish()]);
            self.stats.count_submission();
            self.stats.add(Section::Submitting, started);
        }
        if let Some((pool, id)) = &self.pool {
            pool.submitted(*id);
        }
        if let Some((kernels, staging)) = profiled {
            self.add_kernel_times(&kernels, &staging)?;
        }
        Ok(())
    }

    /// Profiling: copies the submission's timestamps into a mappable buffer (in the encoder
    /// about to be submitted), with the kernels they time.
    fn resolve_profile(&mut self) -> Option<(Vec<Arc<str>>, wgpu::Buffer)> {
        let profile = self.profile.as_mut().filter(|p| !p.kernels.is_empty())?;
        let kernels = std::mem::take(&mut profile.kernels);
        let count = 2 * kernels.len() as u32;
        let bytes = u64::from(count) * 8;
        let buffer = |usage| {
            self.context.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("uma profile"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolved = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let timestamps = profile.timestamps.clone();
        let encoder = self.encoder();
        encoder.resolve_query_set(&timestamps, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        Some((kernels, staging))
    }

    /// Profiling: waits for the submission and adds each dispatch's device time to its kernel's
    /// (profiled steps run without overlap of recording and device work).
    fn add_kernel_times(&self, kernels: &[Arc<str>], staging: &wgpu::Buffer) -> Result<()> {
        let bytes = self.map_and_read(staging)?;
        let ticks: &[u64] = bytemuck::cast_slice(&bytes);
        let period = f64::from(self.context.timestamp_period.unwrap_or(1.0));
        for (kernel, pair) in kernels.iter().zip(ticks.chunks_exact(2)) {
            let nanos = (pair[1].saturating_sub(pair[0]) as f64 * period) as u64;
            self.stats.add_kernel_time(kernel, std::time::Duration::from_nanos(nanos));
        }
        Ok(())
    }

    /// The contents of a MAP_READ buffer once the device has written it.
    fn map_and_read(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        self.context.wait()?;
        receiver
            .recv()
            .map_err(|_| GpuError::DeviceFailed { reason: "a read back never finished".into() })?
            .map_err(|e| GpuError::DeviceFailed { reason: format!("reading back: {e}") })?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::DeviceFailed { reason: format!("reading back: {e}") })?;
        Ok(data.to_vec())
    }

    /// Runs everything recorded so far and reads back each `(buffer, offset, bytes)`, with one
    /// submission and one wait for all (each read back is a round trip to the device).
    pub(crate) fn read_many(
        &mut self,
        parts: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let sizes: Vec<u64> =
            parts.iter().map(|&(_, _, bytes)| bytes.next_multiple_of(4)).collect();
        let staging = self.context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uma read back"),
            size: sizes.iter().sum::<u64>().max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut at = 0;
        for (&(buffer, offset, _), &size) in parts.iter().zip(&sizes) {
            if size > 0 {
                self.copy(buffer, offset, &staging, at, size);
            }
            at += size;
        }
        self.submit()?;
        let started = Instant::now();
        let values = self.map_and_read(&staging)?;
        self.stats.add(Section::Waiting, started);
        let mut at = 0;
        let out = parts
            .iter()
            .zip(&sizes)
            .map(|(&(_, _, bytes), &size)| {
                let part = values[at as usize..(at + bytes) as usize].to_vec();
                at += size;
                part
            })
            .collect();
        Ok(out)
    }
}

impl Recorder {
    /// Submits what is left and hands the arena back for the next pass.
    pub(crate) fn take_arena(&mut self) -> wgpu::Buffer {
        let _ = self.submit();
        self.arena.take().expect("taken once, when the pass ends")
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A pass dropped before its results were read (an error on the way) still submits what
        // it recorded, so that buffers returned to the pool see their work finish in order.
        let _ = self.submit();
        if let Some((pool, id)) = &self.pool {
            pool.end(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::GpuBackend;
    use crate::ops::elementwise::add;
    use crate::test_support::{backend, read, with_pass};

    #[test]
    fn a_long_pass_is_submitted_in_parts_and_reuses_one_bind_group() {
        let Some(shared) = backend() else { return };
        // A backend of its own: its counters and bind groups start empty.
        let backend = GpuBackend::new(shared.context().clone());
        let steps = 3 * super::SUBMIT_EVERY + 5;
        let (x, y) = (vec![1.0f32; 100], vec![2.0f32; 100]);
        let got = with_pass(&backend, 1, 0, |pass| {
            let mut gx = pass.upload_activations(&x, 1, 100);
            let gy = pass.upload_activations(&y, 1, 100);
            for _ in 0..steps {
                add(pass, &mut gx, &gy).unwrap();
            }
            read(pass, &gx)
        });
        assert_eq!(got, vec![1.0 + 2.0 * steps as f32; 100], "every dispatch ran, in order");
        let stats = backend.stats().snapshot();
        assert_eq!((stats.passes, stats.dispatches), (1, steps as u64));
        assert_eq!(stats.submissions, 4, "one submission per {} dispatches", super::SUBMIT_EVERY);
        assert_eq!(backend.bind_groups.len(), 1, "the same buffers bind once");
    }
}
