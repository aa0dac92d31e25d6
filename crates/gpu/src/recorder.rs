//! Recording a step's work: every kernel dispatch of a forward pass goes into one command
//! encoder (one compute pass), submitted once when the results are read, so a step costs one
//! submission, not one per operation. Each dispatch's small parameters go into one uniform
//! arena, written to the device with the submission.

use std::sync::Arc;

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::shader::Kernel;

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

/// Bytes of the uniform arena; a pass needing more submits and starts it again.
const ARENA_BYTES: u64 = 1 << 20;

/// The dispatches of one pass, not yet submitted.
#[derive(Debug)]
pub(crate) struct Recorder {
    context: Arc<GpuContext>,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    arena: Option<wgpu::Buffer>,
    staged: Vec<u8>, // parameters recorded since the last submission, from `arena_start`
    arena_start: u64,
}

impl Recorder {
    pub(crate) fn new(context: Arc<GpuContext>, arena: wgpu::Buffer) -> Recorder {
        Recorder {
            context,
            encoder: None,
            pass: None,
            arena: Some(arena),
            staged: Vec::new(),
            arena_start: 0,
        }
    }

    /// A uniform arena for [`Recorder::new`] (passes reuse one: the queue orders its writes).
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
        let mut entries = Vec::with_capacity(buffers.len() + 1);
        let mut next_binding = 0;
        if !params.is_empty() {
            let offset = self.stage(params)?;
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: self.arena.as_ref().expect("held until the recorder is done"),
                    offset,
                    size: wgpu::BufferSize::new(params.len() as u64),
                }),
            });
            next_binding = 1;
        }
        for (i, binding) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: next_binding + i as u32,
                resource: wgpu::BindingResource::Buffer(binding.clone()),
            });
        }
        let bind_group = self.context.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        });
        if self.pass.is_none() {
            let pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("uma step"),
                timestamp_writes: None,
            });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("begun above");
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
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
        self.end_compute_pass();
        if !self.staged.is_empty() {
            let arena = self.arena.as_ref().expect("held until the recorder is done");
            self.context.queue.write_buffer(arena, self.arena_start, &self.staged);
            self.arena_start += self.staged.len() as u64;
            self.staged.clear();
        }
        if let Some(encoder) = self.encoder.take() {
            self.context.queue.submit([encoder.finish()]);
        }
        Ok(())
    }

    /// Runs everything recorded so far and reads `bytes` bytes of `buffer` from `offset`.
    pub(crate) fn read(
        &mut self,
        buffer: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uma read back"),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.copy(buffer, offset, &staging, 0, bytes.next_multiple_of(4));
        self.submit()?;
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
        Ok(data[..bytes as usize].to_vec())
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
    }
}
