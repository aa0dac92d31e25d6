//! Builders shared by the gguf integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use uma_gguf::{GgmlType, GgufWriter, MetadataArray, MetadataValue};

/// A valid file exercising every metadata value type (nested arrays included) and several tensors
/// of different types and shapes.
pub fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    let values: Vec<(&str, MetadataValue)> = vec![
        ("general.architecture", "llama".into()),
        ("general.name", "tiny test".into()),
        ("t.u8", MetadataValue::U8(200)),
        ("t.i8", MetadataValue::I8(-100)),
        ("t.u16", MetadataValue::U16(60000)),
        ("t.i16", MetadataValue::I16(-30000)),
        ("t.u32", MetadataValue::U32(4_000_000_000)),
        ("t.i32", MetadataValue::I32(-2_000_000_000)),
        ("t.f32", MetadataValue::F32(1.25)),
        ("t.bool", MetadataValue::Bool(true)),
        ("t.u64", MetadataValue::U64(u64::MAX)),
        ("t.i64", MetadataValue::I64(i64::MIN)),
        ("t.f64", MetadataValue::F64(-0.5)),
        ("t.empty_string", "".into()),
        ("t.unicode", "héllo 世界 🦀".into()),
        (
            "t.strings",
            MetadataValue::Array(MetadataArray::String(vec!["a".into(), "".into(), "ç".into()])),
        ),
        ("t.bools", MetadataValue::Array(MetadataArray::Bool(vec![true, false]))),
        ("t.f32s", MetadataValue::Array(MetadataArray::F32(vec![0.0, -1.5, 3.25]))),
        ("t.bytes", MetadataValue::Array(MetadataArray::U8(vec![1, 2, 3]))),
        ("t.empty", MetadataValue::Array(MetadataArray::I64(vec![]))),
        (
            "t.nested",
            MetadataValue::Array(MetadataArray::Array(vec![
                MetadataArray::I32(vec![1, -2]),
                MetadataArray::String(vec!["x".into()]),
                MetadataArray::Array(vec![MetadataArray::U16(vec![7])]),
            ])),
        ),
        ("llama.block_count", MetadataValue::U32(2)),
        ("llama.context_length", MetadataValue::U32(128)),
        ("llama.embedding_length", MetadataValue::U32(64)),
        ("llama.attention.head_count", MetadataValue::U32(4)),
        ("llama.attention.head_count_kv", MetadataValue::U32(2)),
    ];
    for (key, value) in values {
        w.add_metadata(key, value).unwrap();
    }
    let f32_data: Vec<u8> = (0..64 * 3).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.add_tensor("a.f32", GgmlType::F32, &[64, 3], f32_data).unwrap();
    w.add_tensor("b.q8_0", GgmlType::Q8_0, &[64, 2], vec![7u8; 34 * 4]).unwrap();
    w.add_tensor("c.q4_k", GgmlType::Q4_K, &[256], vec![9u8; 144]).unwrap();
    w.add_tensor("d.f16.4d", GgmlType::F16, &[2, 1, 3, 1], vec![1u8; 12]).unwrap();
    w
}

/// Hand-assembles GGUF bytes field by field, to produce files the writer would refuse to write.
#[derive(Default)]
pub struct RawGguf {
    pub bytes: Vec<u8>,
}

impl RawGguf {
    pub fn header(version: u32, num_tensors: u64, num_metadata: u64) -> Self {
        let mut r = RawGguf::default();
        r.bytes.extend_from_slice(b"GGUF");
        r.u32(version).u64(num_tensors).u64(num_metadata);
        r
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }
    /// A `u32` metadata entry.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.string(key).u32(4).u32(v)
    }
    /// A tensor info entry.
    pub fn tensor(&mut self, name: &str, shape: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.string(name).u32(shape.len() as u32);
        for &d in shape {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }
    /// Pads to 32 bytes and appends `len` bytes of tensor data.
    pub fn data(&mut self, len: usize) -> &mut Self {
        let padded = self.bytes.len().next_multiple_of(32);
        self.bytes.resize(padded + len, 0xAB);
        self
    }
    pub fn build(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}
