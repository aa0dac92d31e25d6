//! The bytes of a packed matrix: zeroed, 64-byte aligned, and on Linux backed by transparent
//! huge pages when the matrix is large. Decode streams hundreds of megabytes per token; with
//! 4 KiB pages the hardware prefetchers stop at every page boundary and every page costs a
//! TLB walk, with 2 MiB pages they run on (see docs/kernels.md for the measurements).
//!
//! Large buffers are mapped from the operating system directly (on Unix), not taken from
//! malloc: glibc raises its mmap threshold after such a buffer is freed and then serves the next
//! ones from arenas it never returns, so each unload and reload of a model kept its weights'
//! size of memory resident (about 190 MiB per cycle for Gemma 3 270M). Unmapped on drop, an
//! unloaded model's weights go back to the system at once.
#![allow(unsafe_code)]

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// Huge pages are worth asking for from this size on.
const HUGE_PAGE: usize = 2 << 20;

/// An owned, zero-initialised byte buffer.
pub(crate) struct AlignedBytes {
    ptr: NonNull<u8>,
    len: usize,
    /// Where the memory came from, to give it back the same way.
    source: Source,
}

enum Source {
    Heap(Layout),
    /// An anonymous mapping of this many bytes at `ptr`.
    #[cfg(unix)]
    Mapped(usize),
}

// SAFETY: the buffer is plain owned memory, like a Vec<u8>.
unsafe impl Send for AlignedBytes {}
// SAFETY: shared references only read.
unsafe impl Sync for AlignedBytes {}

impl AlignedBytes {
    /// `len` zero bytes. Aborts on allocation failure, as `vec![0; len]` does.
    pub(crate) fn zeroed(len: usize) -> AlignedBytes {
        let align = if len >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        let size = allocation_size(len);
        let layout = Layout::from_size_align(size, align).expect("size fits with the alignment");
        #[cfg(unix)]
        if align == HUGE_PAGE {
            let Some(ptr) = map_aligned(size) else { std::alloc::handle_alloc_error(layout) };
            advise_huge_pages(ptr.as_ptr(), size);
            // Fresh anonymous pages read as zero: nothing to write.
            return AlignedBytes { ptr, len, source: Source::Mapped(size) };
        }
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        // Advise before the first touch: pages are backed when first written.
        if align == HUGE_PAGE {
            advise_huge_pages(ptr.as_ptr(), size);
        }
        // SAFETY: `ptr` is valid for `size` bytes.
        unsafe { ptr.as_ptr().write_bytes(0, size) };
        AlignedBytes { ptr, len, source: Source::Heap(layout) }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` holds `len` initialised (zeroed, then written) bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBytes {
    fn drop(&mut self) {
        match self.source {
            // SAFETY: allocated in `zeroed` with this layout.
            Source::Heap(layout) => unsafe { dealloc(self.ptr.as_ptr(), layout) },
            // SAFETY: mapped in `zeroed` with this size; nothing borrows it past `self`.
            #[cfg(unix)]
            Source::Mapped(size) => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), size);
            },
        }
    }
}

/// Bytes a buffer of `len` bytes holds: whole huge pages from [`HUGE_PAGE`] up (a tail on 4 KiB
/// pages made Qwen 1.5B's decode 15% slower: 44 -> 38 tok/s), whole cache lines below. Many small
/// matrices share one buffer instead ([`super::PackedMatrix::pack_stacked`]).
pub(crate) fn allocation_size(len: usize) -> usize {
    let align = if len >= HUGE_PAGE { HUGE_PAGE } else { 64 };
    len.max(1).next_multiple_of(align)
}

/// `size` bytes (a multiple of [`HUGE_PAGE`]) of fresh anonymous memory aligned to
/// [`HUGE_PAGE`]: a mapping one huge page larger, trimmed at both ends. `None` when the system
/// refuses.
#[cfg(unix)]
fn map_aligned(size: usize) -> Option<NonNull<u8>> {
    let total = size.checked_add(HUGE_PAGE)?;
    // SAFETY: a new private anonymous mapping; it aliases nothing.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (aligned - start, total - (aligned - start) - size);
    // SAFETY: both ranges lie in the mapping just made, outside the part kept; page aligned
    // (mmap returns page-aligned memory, and HUGE_PAGE and `size` are multiples of the page).
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + size) as *mut libc::c_void, tail);
        }
    }
    NonNull::new(aligned as *mut u8)
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    // SAFETY: the range is one allocation owned by the caller; MADV_HUGEPAGE changes only how the
    // kernel backs it, never its contents. A refusal (THP disabled) is harmless: 4 KiB pages.
    unsafe {
        libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_aligned_and_writable() {
        for len in [0, 1, 100, 3 << 20] {
            let mut buffer = AlignedBytes::zeroed(len);
            assert_eq!(buffer.as_slice().len(), len);
            assert!(buffer.as_slice().iter().all(|&b| b == 0));
            assert_eq!(buffer.as_slice().as_ptr() as usize % 64, 0);
            if len >= HUGE_PAGE {
                assert_eq!(buffer.as_slice().as_ptr() as usize % HUGE_PAGE, 0);
            }
            buffer.as_mut_slice().iter_mut().for_each(|b| *b = 7);
            assert!(buffer.as_slice().iter().all(|&b| b == 7));
        }
    }
}
