//! An opened GGUF file: the validated header plus the bytes, memory-mapped from disk.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{GgufError, Result};
use crate::metadata::Metadata;
use crate::parse::{index_by_name, GgufHeader};
use crate::tensor::{TensorInfo, TensorView};

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

/// A validated GGUF file whose tensors can be viewed without copying.
pub struct GgufFile {
    storage: Storage,
    header: GgufHeader,
    by_name: HashMap<String, usize>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("num_metadata", &self.header.metadata.len())
            .field("num_tensors", &self.header.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` read-only and validates it.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let io_error = |error| GgufError::Io { path: path.to_owned(), error };
        let file = File::open(path).map_err(io_error)?;
        let map = map_read_only(&file).map_err(io_error)?;
        let mut gguf = Self::from_storage(Storage::Mapped(map))?;
        gguf.path = Some(path.to_owned());
        Ok(gguf)
    }

    /// Validates a file held in memory (tests, fuzzing, files built by the writer).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<GgufFile> {
        let header = GgufHeader::parse(storage.bytes())?;
        let by_name = index_by_name(&header.tensors);
        Ok(GgufFile { storage, header, by_name, path: None })
    }

    /// The path it was opened from, if it came from disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The parsed header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The key-value metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// The tensor index, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// Views of every tensor, in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorView<'_>> {
        self.header.tensors.iter().map(|info| self.view(info))
    }

    /// The view of tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        self.by_name
            .get(name)
            .map(|&i| self.view(&self.header.tensors[i]))
            .ok_or_else(|| GgufError::TensorNotFound { name: name.to_owned() })
    }

    /// Drops this process's mapping of the whole pages inside tensor `name`. The bytes stay in the
    /// OS page cache and a later read faults them back in unchanged; meanwhile they no longer
    /// count in this process's resident memory. For callers that keep their own copy (a
    /// repacked matrix), so that the weights are resident once. A no-op for files held in
    /// memory and off Unix.
    pub fn release_tensor_pages(&self, name: &str) -> Result<()> {
        let view = self.tensor(name)?;
        let Storage::Mapped(map) = &self.storage else { return Ok(()) };
        // 64 KiB is a multiple of every page size in use (4, 16 and 64 KiB): only pages wholly
        // inside the tensor are released.
        const CHUNK: usize = 64 << 10;
        let start = (view.info().absolute_offset as usize).next_multiple_of(CHUNK);
        let end =
            (view.info().absolute_offset + view.info().size_in_bytes) as usize / CHUNK * CHUNK;
        if end > start {
            advise_dont_need(map, start, end - start).map_err(|error| GgufError::Io {
                path: self.path.clone().unwrap_or_default(),
                error,
            })?;
        }
        Ok(())
    }

    /// Whether a tensor called `name` exists.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorView<'a> {
        // Parsing proved `absolute_offset + size_in_bytes <= file_size`, so this cannot fail.
        let start = info.absolute_offset as usize;
        let end = start + info.size_in_bytes as usize;
        TensorView::new(info, &self.storage.bytes()[start..end])
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn advise_dont_need(map: &Mmap, offset: usize, len: usize) -> std::io::Result<()> {
    // SAFETY: the mapping is a read-only shared file mapping: MADV_DONTNEED only unmaps the pages
    // from this process, and the next access reads the same bytes back from the file, so
    // borrowed views stay valid and unchanged.
    unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }
}

#[cfg(not(unix))]
fn advise_dont_need(_map: &Mmap, _offset: usize, _len: usize) -> std::io::Result<()> {
    Ok(())
}

#[allow(unsafe_code)]
fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only. Like every mmap-based model loader, we rely on the file not
    // being truncated or rewritten by another process while it is mapped (see
    // docs/architecture.md, "Memory"); nothing in this process writes to it.
    unsafe { Mmap::map(file) }
}
