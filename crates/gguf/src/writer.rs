//! Writes valid GGUF files: used by tests to build tiny models of any architecture, and by tools
//! that produce models.

use std::io::Write;
use std::path::Path;

use crate::error::{GgufError, Result};
use crate::metadata::Metadata;
use crate::parse::alignment_of;
use crate::value::{MetadataArray, MetadataValue};
use crate::{GgmlType, MAX_DIMS};

struct PendingTensor {
    name: String,
    shape: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then writes them as one GGUF file.
///
/// ```
/// use uma_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
/// let mut writer = GgufWriter::new();
/// writer.add_metadata("general.architecture", MetadataValue::String("llama".into())).unwrap();
/// writer.add_tensor("x", GgmlType::F32, &[2], 1.5f32.to_le_bytes().repeat(2)).unwrap();
/// let file = GgufFile::from_bytes(writer.to_bytes()).unwrap();
/// assert_eq!(file.tensor("x").unwrap().data().len(), 8);
/// ```
#[derive(Default)]
pub struct GgufWriter {
    version: Option<u32>,
    metadata: Metadata,
    tensors: Vec<PendingTensor>,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("num_metadata", &self.metadata.len())
            .field("num_tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufWriter {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes version 2 instead of 3 (the layouts are identical; readers must accept both).
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// Adds a metadata entry; a duplicate key is an error.
    pub fn add_metadata(&mut self, key: &str, value: MetadataValue) -> Result<&mut Self> {
        if !self.metadata.insert(key.to_owned(), value) {
            return Err(GgufError::DuplicateKey { offset: 0, key: key.to_owned() });
        }
        Ok(self)
    }

    /// Adds a tensor with `shape` in ggml order (`shape[0]` is the row length); `data` must hold
    /// exactly the bytes the type and shape need.
    pub fn add_tensor(
        &mut self,
        name: &str,
        ggml_type: GgmlType,
        shape: &[u64],
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let invalid = |reason: String| GgufError::InvalidTensor { tensor: name.to_owned(), reason };
        if shape.len() > MAX_DIMS {
            return Err(invalid(format!("{} dimensions (at most {MAX_DIMS})", shape.len())));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(invalid("a tensor with this name was already added".into()));
        }
        let row_length = shape.first().copied().unwrap_or(1);
        if row_length % ggml_type.block_size() as u64 != 0 {
            return Err(invalid(format!(
                "row length {row_length} is not a multiple of {ggml_type}'s block size {}",
                ggml_type.block_size()
            )));
        }
        let expected = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| ggml_type.bytes_for(n))
            .ok_or_else(|| invalid(format!("shape {shape:?} overflows")))?;
        if expected != data.len() as u64 {
            return Err(invalid(format!(
                "{} bytes of data, but {ggml_type} {shape:?} needs {expected}",
                data.len()
            )));
        }
        self.tensors.push(PendingTensor {
            name: name.to_owned(),
            shape: shape.to_vec(),
            ggml_type,
            data,
        });
        Ok(self)
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Writes the file to `path` (created or truncated).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let file = std::fs::File::create(path.as_ref()).map_err(GgufError::Write)?;
        let mut writer = std::io::BufWriter::new(file);
        self.write(&mut writer)?;
        writer.flush().map_err(GgufError::Write)
    }

    /// Writes the file to `out`.
    pub fn write(&self, out: &mut impl Write) -> Result<()> {
        // The same rule the reader applies, so the writer never produces a file it would refuse.
        let alignment = alignment_of(&self.metadata)?;
        let mut header = Vec::new();
        header.extend_from_slice(crate::parse::MAGIC);
        header.extend_from_slice(&self.version.unwrap_or(3).to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in self.metadata.iter() {
            put_string(&mut header, key);
            header.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            put_value(&mut header, value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for tensor in &self.tensors {
            put_string(&mut header, &tensor.name);
            header.extend_from_slice(&(tensor.shape.len() as u32).to_le_bytes());
            for dim in &tensor.shape {
                header.extend_from_slice(&dim.to_le_bytes());
            }
            header.extend_from_slice(&tensor.ggml_type.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + tensor.data.len() as u64).next_multiple_of(alignment);
        }
        pad_to(&mut header, alignment);
        out.write_all(&header).map_err(GgufError::Write)?;
        let mut written = 0u64;
        for (tensor, &start) in self.tensors.iter().zip(&offsets) {
            let padding = vec![0u8; (start - written) as usize];
            out.write_all(&padding).map_err(GgufError::Write)?;
            out.write_all(&tensor.data).map_err(GgufError::Write)?;
            written = start + tensor.data.len() as u64;
        }
        Ok(())
    }
}

fn pad_to(buffer: &mut Vec<u8>, alignment: u64) {
    let padded = (buffer.len() as u64).next_multiple_of(alignment) as usize;
    buffer.resize(padded, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &MetadataValue) {
    match value {
        MetadataValue::U8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Bool(v) => out.push(u8::from(*v)),
        MetadataValue::String(s) => put_string(out, s),
        MetadataValue::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, array: &MetadataArray) {
    out.extend_from_slice(&(array.element_type() as u32).to_le_bytes());
    out.extend_from_slice(&(array.len() as u64).to_le_bytes());
    fn each<T>(out: &mut Vec<u8>, items: &[T], put: impl Fn(&mut Vec<u8>, &T)) {
        for item in items {
            put(out, item);
        }
    }
    match array {
        MetadataArray::U8(v) => out.extend_from_slice(v),
        MetadataArray::I8(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::U16(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::I16(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::U32(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::I32(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::F32(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::U64(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::I64(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::F64(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::Bool(v) => each(out, v, |o, x| o.push(u8::from(*x))),
        MetadataArray::String(v) => each(out, v, |o, x| put_string(o, x)),
        MetadataArray::Array(v) => each(out, v, put_array),
    }
}

/// Convenience: a value from a string slice.
impl From<&str> for MetadataValue {
    fn from(s: &str) -> Self {
        MetadataValue::String(s.to_owned())
    }
}
