//! Reuse of device buffers between passes: activations and a step's layout are allocated every
//! step with the same few sizes, and creating device buffers is not free. Sizes are rounded up to
//! powers of two so that steps of different token counts share buffers.
//!
//! A buffer dropped while its pass still has unsubmitted work on it is *held* for that pass: the
//! pass itself may take it again for kernels (its commands run in recording order), but no other
//! pass, and no upload (`queue.write_buffer` lands before the next submission, ahead of the work
//! already recorded), gets it before the pass submits. Without this, two passes on one backend in
//! two threads corrupted each other's activations on a real GPU (tests run so).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::context::GpuContext;

/// Free buffers kept per size class at most.
const MAX_FREE_PER_SIZE: usize = 32;

/// The pass (its recorder) that a buffer's recorded work belongs to.
pub(crate) type PassId = u64;

/// A new pass id, unique in the process.
pub(crate) fn new_pass_id() -> PassId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a taken buffer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// Written and read by the pass's kernels: its own held buffers will do.
    Kernels,
    /// Filled by `queue.write_buffer`: only a buffer with no unsubmitted work anywhere.
    Upload,
}

/// Free storage buffers by size, and the buffers held for live passes.
#[derive(Debug)]
pub(crate) struct BufferPool {
    context: Arc<GpuContext>,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Per live pass, the buffers dropped since its last submission.
    held: HashMap<PassId, Vec<wgpu::Buffer>>,
}

impl PoolState {
    fn free(&mut self, buffer: wgpu::Buffer) {
        let list = self.free.entry(buffer.size()).or_default();
        if list.len() < MAX_FREE_PER_SIZE {
            list.push(buffer);
        }
    }
}

/// A buffer that goes back to its pool when dropped (see the module's documentation).
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    pool: Arc<BufferPool>,
    pass: PassId,
}

impl BufferPool {
    pub(crate) fn new(context: Arc<GpuContext>) -> Arc<BufferPool> {
        Arc::new(BufferPool { context, state: Mutex::new(PoolState::default()) })
    }

    /// A storage buffer of at least `bytes` (at least 4) bytes for `pass`, with unspecified
    /// contents.
    pub(crate) fn take(self: &Arc<Self>, bytes: u64, pass: PassId, purpose: Use) -> PooledBuffer {
        let size = bytes.max(4).next_power_of_two();
        let reused = {
            let mut state = self.lock();
            let own = match purpose {
                Use::Kernels => state.held.get_mut(&pass).and_then(|held| {
                    let at = held.iter().position(|b| b.size() == size)?;
                    Some(held.swap_remove(at))
                }),
                Use::Upload => None,
            };
            own.or_else(|| state.free.get_mut(&size).and_then(Vec::pop))
        };
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
        PooledBuffer { buffer: Some(buffer), pool: self.clone(), pass }
    }

    /// `pass` is recording: buffers it drops are held for it until it submits.
    pub(crate) fn begin(&self, pass: PassId) {
        self.lock().held.entry(pass).or_default();
    }

    /// `pass` submitted everything it recorded: its held buffers are free.
    pub(crate) fn submitted(&self, pass: PassId) {
        let mut state = self.lock();
        let held = state.held.get_mut(&pass).map(std::mem::take).unwrap_or_default();
        for buffer in held {
            state.free(buffer);
        }
    }

    /// `pass` is over (everything submitted): buffers it drops later are free at once.
    pub(crate) fn end(&self, pass: PassId) {
        self.submitted(pass);
        self.lock().held.remove(&pass);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn free_count(&self) -> usize {
        self.lock().free.values().map(Vec::len).sum()
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
            let mut state = self.pool.lock();
            match state.held.get_mut(&self.pass) {
                Some(held) => held.push(buffer),
                None => state.free(buffer),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::backend;

    #[test]
    fn a_buffer_dropped_mid_pass_goes_to_no_other_pass_or_upload_before_a_submission() {
        let Some(backend) = backend() else { return };
        let pool = BufferPool::new(backend.context().clone());
        let (a, b) = (new_pass_id(), new_pass_id());
        pool.begin(a);
        pool.begin(b);
        let buffer = pool.take(1000, a, Use::Kernels);
        let id = buffer.buffer().clone();
        drop(buffer);
        // Held for a: not free, not for b, not for an upload by a; a's kernels may reuse it.
        assert_eq!(pool.free_count(), 0);
        assert_ne!(*pool.take(1000, b, Use::Kernels).buffer(), id);
        assert_ne!(*pool.take(1000, a, Use::Upload).buffer(), id);
        let again = pool.take(1000, a, Use::Kernels);
        assert_eq!(*again.buffer(), id, "the same pass reuses its own buffer");
        drop(again);
        // Once a submitted, anyone may take it.
        pool.submitted(a);
        assert_eq!(*pool.take(1000, b, Use::Upload).buffer(), id);
        // After a pass ends, its late drops are free at once.
        pool.end(a);
        let late = pool.take(64, a, Use::Kernels);
        let late_id = late.buffer().clone();
        drop(late);
        assert_eq!(*pool.take(64, b, Use::Upload).buffer(), late_id);
    }
}
