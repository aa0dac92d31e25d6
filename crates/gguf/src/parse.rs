//! Parsing and validation of the header, metadata and tensor index.

use std::collections::{HashMap, HashSet};

use crate::cursor::{Cursor, PREALLOCATION_LIMIT};
use crate::error::{GgufError, Result};
use crate::metadata::Metadata;
use crate::tensor::TensorInfo;
use crate::value::{MetadataArray, MetadataValue, ValueType};
use crate::{keys, GgmlType, DEFAULT_ALIGNMENT, MAX_DIMS};

/// The magic bytes at offset 0.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// Arrays nested deeper than this are rejected: real files nest at most once, and unbounded
/// recursion on hostile input would overflow the stack.
pub const MAX_ARRAY_NESTING: usize = 8;

/// Smallest possible encoded key-value pair: key length (8) + 1 byte key + type (4) + u8 value (1).
const MIN_KV_SIZE: u64 = 14;
/// Smallest possible tensor info: name length (8) + 1 byte name + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 25;

/// Limits far above any real model (the largest vocabularies have ~256k entries, the largest
/// models a few thousand tensors) that bound memory on hostile input even for huge mapped files.
pub const MAX_TENSORS: u64 = 1 << 20;
pub const MAX_METADATA_ENTRIES: u64 = 1 << 20;
pub const MAX_ARRAY_LENGTH: u64 = 1 << 24;

/// Everything before the tensor data: version, metadata, tensor index, and where the data begins.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    /// 2 or 3.
    pub version: u32,
    /// Key-value metadata in file order.
    pub metadata: Metadata,
    /// Tensor index in file order, validated against the file's size.
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment`, or 32.
    pub alignment: u64,
    /// Absolute offset of the data section (tensor offsets are relative to it).
    pub data_offset: u64,
}

impl GgufHeader {
    /// Parses and validates `bytes`, the whole file. Never panics and never reads out of bounds;
    /// allocations are bounded by `bytes.len()` times a small factor.
    pub fn parse(bytes: &[u8]) -> Result<GgufHeader> {
        let mut cursor = Cursor::new(bytes);
        let magic = cursor
            .take(4, "magic")
            .map_err(|_| GgufError::BadMagic { found: bytes[..bytes.len().min(4)].to_vec() })?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic { found: magic.to_vec() });
        }
        let version = cursor.u32("version")?;
        if !(2..=3).contains(&version) {
            // A big-endian file has its small version number in the high bytes.
            if version != 0 && version.swap_bytes() <= 3 {
                return Err(GgufError::BigEndian);
            }
            return Err(GgufError::UnsupportedVersion { version });
        }
        let num_tensors = cursor.count("tensor", MIN_TENSOR_INFO_SIZE, MAX_TENSORS)?;
        let num_metadata = cursor.count("metadata key-value", MIN_KV_SIZE, MAX_METADATA_ENTRIES)?;

        let metadata = parse_metadata(&mut cursor, num_metadata)?;
        let alignment = alignment_of(&metadata)?;
        let mut tensors = parse_tensor_infos(&mut cursor, num_tensors)?;

        let end_of_index = cursor.position();
        let data_offset = end_of_index.div_ceil(alignment) * alignment;
        validate_tensor_data(&mut tensors, data_offset, alignment, bytes.len() as u64)?;
        Ok(GgufHeader { version, metadata, tensors, alignment, data_offset })
    }
}

fn parse_metadata(cursor: &mut Cursor<'_>, count: u64) -> Result<Metadata> {
    let mut metadata = Metadata::default();
    for _ in 0..count {
        let offset = cursor.position();
        let key = cursor.string("metadata key")?;
        let value_type = value_type(cursor)?;
        let value = parse_value(cursor, value_type, 0)?;
        if !metadata.insert(key.clone(), value) {
            return Err(GgufError::DuplicateKey { offset, key });
        }
    }
    Ok(metadata)
}

fn value_type(cursor: &mut Cursor<'_>) -> Result<ValueType> {
    let offset = cursor.position();
    let type_id = cursor.u32("value type")?;
    ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType { offset, type_id })
}

fn parse_bool(cursor: &mut Cursor<'_>) -> Result<bool> {
    let offset = cursor.position();
    match cursor.u8("bool value")? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool { offset, value }),
    }
}

fn parse_value(
    cursor: &mut Cursor<'_>,
    value_type: ValueType,
    depth: usize,
) -> Result<MetadataValue> {
    const W: &str = "metadata value";
    Ok(match value_type {
        ValueType::U8 => MetadataValue::U8(cursor.u8(W)?),
        ValueType::I8 => MetadataValue::I8(cursor.i8(W)?),
        ValueType::U16 => MetadataValue::U16(cursor.u16(W)?),
        ValueType::I16 => MetadataValue::I16(cursor.i16(W)?),
        ValueType::U32 => MetadataValue::U32(cursor.u32(W)?),
        ValueType::I32 => MetadataValue::I32(cursor.i32(W)?),
        ValueType::F32 => MetadataValue::F32(cursor.f32(W)?),
        ValueType::U64 => MetadataValue::U64(cursor.u64(W)?),
        ValueType::I64 => MetadataValue::I64(cursor.i64(W)?),
        ValueType::F64 => MetadataValue::F64(cursor.f64(W)?),
        ValueType::Bool => MetadataValue::Bool(parse_bool(cursor)?),
        ValueType::String => MetadataValue::String(cursor.string("string value")?),
        ValueType::Array => MetadataValue::Array(parse_array(cursor, depth + 1)?),
    })
}

fn parse_array(cursor: &mut Cursor<'_>, depth: usize) -> Result<MetadataArray> {
    if depth > MAX_ARRAY_NESTING {
        return Err(GgufError::NestingTooDeep {
            offset: cursor.position(),
            limit: MAX_ARRAY_NESTING,
        });
    }
    let element_type = value_type(cursor)?;
    let len = cursor.count("array element", element_type.min_encoded_size(), MAX_ARRAY_LENGTH)?;
    // `count` proved that `len` elements fit in the file, so `len` fits in usize.
    let len = len as usize;
    const W: &str = "array element";
    fn collect<T>(len: usize, mut read: impl FnMut() -> Result<T>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(len.min(PREALLOCATION_LIMIT));
        for _ in 0..len {
            out.push(read()?);
        }
        Ok(out)
    }
    Ok(match element_type {
        ValueType::U8 => MetadataArray::U8(cursor.take(len as u64, W)?.to_vec()),
        ValueType::I8 => MetadataArray::I8(collect(len, || cursor.i8(W))?),
        ValueType::U16 => MetadataArray::U16(collect(len, || cursor.u16(W))?),
        ValueType::I16 => MetadataArray::I16(collect(len, || cursor.i16(W))?),
        ValueType::U32 => MetadataArray::U32(collect(len, || cursor.u32(W))?),
        ValueType::I32 => MetadataArray::I32(collect(len, || cursor.i32(W))?),
        ValueType::F32 => MetadataArray::F32(collect(len, || cursor.f32(W))?),
        ValueType::U64 => MetadataArray::U64(collect(len, || cursor.u64(W))?),
        ValueType::I64 => MetadataArray::I64(collect(len, || cursor.i64(W))?),
        ValueType::F64 => MetadataArray::F64(collect(len, || cursor.f64(W))?),
        ValueType::Bool => MetadataArray::Bool(collect(len, || parse_bool(cursor))?),
        ValueType::String => {
            MetadataArray::String(collect(len, || cursor.string("string element"))?)
        }
        ValueType::Array => MetadataArray::Array(collect(len, || parse_array(cursor, depth + 1))?),
    })
}

pub(crate) fn alignment_of(metadata: &Metadata) -> Result<u64> {
    let Some(value) = metadata.get(keys::GENERAL_ALIGNMENT) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let alignment = value.as_i128().unwrap_or(0).clamp(0, u64::MAX.into()) as u64;
    if !(1..=1 << 30).contains(&alignment) || !alignment.is_power_of_two() {
        return Err(GgufError::BadAlignment { value: alignment });
    }
    Ok(alignment)
}

fn parse_tensor_infos(cursor: &mut Cursor<'_>, count: u64) -> Result<Vec<TensorInfo>> {
    let capacity = (count as usize).min(PREALLOCATION_LIMIT);
    let mut tensors = Vec::with_capacity(capacity);
    let mut names = HashSet::with_capacity(capacity);
    for _ in 0..count {
        let offset = cursor.position();
        let name = cursor.string("tensor name")?;
        let num_dims = cursor.u32("tensor dimension count")?;
        if num_dims as usize > MAX_DIMS {
            return Err(GgufError::TooManyDimensions { offset, tensor: name, num_dims });
        }
        let mut shape = Vec::with_capacity(num_dims as usize);
        for _ in 0..num_dims {
            shape.push(cursor.u64("tensor dimension")?);
        }
        let type_offset = cursor.position();
        let type_id = cursor.u32("tensor type")?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownGgmlType {
            offset: type_offset,
            tensor: name.clone(),
            type_id,
        })?;
        let relative_offset = cursor.u64("tensor data offset")?;

        let num_elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let size_in_bytes = num_elements.and_then(|n| ggml_type.bytes_for(n));
        let Some(num_elements) = num_elements else {
            return Err(GgufError::ElementCountOverflow { offset, tensor: name, shape });
        };
        let row_length = shape.first().copied().unwrap_or(1);
        let block_size = ggml_type.block_size() as u64;
        if row_length % block_size != 0 {
            return Err(GgufError::PartialBlock {
                offset,
                tensor: name,
                ggml_type,
                row_length,
                block_size,
            });
        }
        let Some(size_in_bytes) = size_in_bytes else {
            return Err(GgufError::ElementCountOverflow { offset, tensor: name, shape });
        };
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor { offset, tensor: name });
        }
        tensors.push(TensorInfo {
            name,
            shape,
            ggml_type,
            num_elements,
            size_in_bytes,
            relative_offset,
            absolute_offset: 0, // set by validate_tensor_data
        });
    }
    Ok(tensors)
}

/// Places every tensor in the data section and checks alignment, bounds and overlap.
fn validate_tensor_data(
    tensors: &mut [TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_size: u64,
) -> Result<()> {
    for tensor in tensors.iter_mut() {
        if tensor.relative_offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: tensor.name.clone(),
                data_offset: tensor.relative_offset,
                alignment,
            });
        }
        let start = data_offset.checked_add(tensor.relative_offset);
        let end = start.and_then(|s| s.checked_add(tensor.size_in_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_size => tensor.absolute_offset = start,
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: tensor.name.clone(),
                    start: tensor.relative_offset,
                    size: tensor.size_in_bytes,
                    file_size,
                })
            }
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| (t.absolute_offset, t.size_in_bytes));
    for pair in by_offset.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        let overlaps = first.absolute_offset + first.size_in_bytes > second.absolute_offset
            && first.size_in_bytes > 0
            && second.size_in_bytes > 0;
        if overlaps {
            return Err(GgufError::OverlappingTensors {
                first: first.name.clone(),
                second: second.name.clone(),
            });
        }
    }
    Ok(())
}

/// Index of tensors by name, for O(1) lookup.
pub(crate) fn index_by_name(tensors: &[TensorInfo]) -> HashMap<String, usize> {
    tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect()
}
