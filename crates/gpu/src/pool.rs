//! Reuse of device buffers between passes: activations and a step's layout are allocated every
//! step with the same few sizes, and creating device buffers is not free. Sizes are rounded up to
//! powers of two so that steps of different token counts share buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::GpuContext;

/// Free buffers kept per size class at most.
const MAX_FREE_PER_SIZE: usize = 32;

/// Free storage buffers by size.
#[derive(Debug)]
pub(crate) struct BufferPool {
    context: Arc<GpuContext>,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
}

/// A buffer that goes back to its pool when dropped. Work already recorded on it still runs
/// first: the queue executes in order, and a reuse is recorded later.
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    pool: Arc<BufferPool>,
}

impl BufferPool {
    pub(crate) fn new(context: Arc<GpuContext>) -> Arc<BufferPool> {
        Arc::new(BufferPool { context, free: Mutex::new(HashMap::new()) })
    }

    /// A storage buffer of at least `bytes` (at least 4) bytes, with unspecified contents.
    pub(crate) fn take(self: &Arc<Self>, bytes: u64) -> PooledBuffer {
        let size = bytes.max(4).next_power_of_two();
        let reused = self.lock().get_mut(&size).and_then(Vec::pop);
        let buffer = reused.unwrap_or_else(|| {
            self.context.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("uma pooled"),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        });
        PooledBuffer { buffer: Some(buffer), pool: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<wgpu::Buffer>>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PooledBuffer {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until dropped")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let mut free = self.pool.lock();
            let list = free.entry(buffer.size()).or_default();
            if list.len() < MAX_FREE_PER_SIZE {
                list.push(buffer);
            }
        }
    }
}
