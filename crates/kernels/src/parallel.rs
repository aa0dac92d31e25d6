//! How the kernels spread work over threads (the global [`ThreadPool`]): one place to change.
#![allow(unsafe_code)]

use std::marker::PhantomData;

use crate::thread_pool::ThreadPool;

/// Runs `task(i)` for every `i` in `0..num_tasks` on the worker threads and waits for all.
pub(crate) fn for_each_task(num_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    ThreadPool::global().run(num_tasks, task);
}

/// Threads available to [`for_each_task`].
pub(crate) fn num_threads() -> usize {
    ThreadPool::global().num_threads()
}

/// A mutable slice that parallel tasks write in disjoint parts.
pub(crate) struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: tasks only touch disjoint ranges (the callers' contract in `slice_mut`), and T is Send.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        SharedSlice { ptr: slice.as_mut_ptr(), len: slice.len(), _borrow: PhantomData }
    }

    /// `len` elements from `start`.
    ///
    /// # Safety
    /// No two live slices obtained from `self` may overlap.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "shared slice range out of bounds");
        // SAFETY: in bounds (checked), exclusive by the caller's contract, alive for 'a.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
