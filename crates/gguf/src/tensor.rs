//! The tensor index and zero-copy views of tensor data.

use crate::GgmlType;

/// One entry of the tensor index, validated: its data lies inside the file, aligned, overlapping
/// no other tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order: `shape[0]` is the row length (contiguous), at most 4 entries.
    pub shape: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Product of `shape`.
    pub num_elements: u64,
    /// Bytes of data.
    pub size_in_bytes: u64,
    /// Offset from the start of the data section, as stored.
    pub relative_offset: u64,
    /// Offset from the start of the file.
    pub absolute_offset: u64,
}

impl TensorInfo {
    /// Elements per row (`shape[0]`).
    pub fn row_length(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of `shape[1..]`).
    pub fn num_rows(&self) -> u64 {
        self.shape.iter().skip(1).product()
    }
}

/// A tensor's metadata and its bytes, borrowed from the mapped file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    info: &'a TensorInfo,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub(crate) fn new(info: &'a TensorInfo, data: &'a [u8]) -> Self {
        debug_assert_eq!(data.len() as u64, info.size_in_bytes);
        TensorView { info, data }
    }

    /// The index entry.
    pub fn info(&self) -> &'a TensorInfo {
        self.info
    }

    /// Tensor name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    /// Element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.info.ggml_type
    }

    /// Shape in ggml order (`shape[0]` is the row length).
    pub fn shape(&self) -> &'a [u64] {
        &self.info.shape
    }

    /// Number of elements.
    pub fn num_elements(&self) -> u64 {
        self.info.num_elements
    }

    /// The raw bytes, zero-copy from the mapped file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Offset of the data from the start of the file.
    pub fn file_offset(&self) -> u64 {
        self.info.absolute_offset
    }
}
