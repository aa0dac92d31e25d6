//! The key-value metadata of a file, in file order, with typed accessors that say what is wrong
//! when a key is missing or of the wrong type.

use std::collections::HashMap;

use crate::error::{GgufError, Result};
use crate::value::{MetadataArray, MetadataValue};

/// Metadata in file order, indexed by key.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    entries: Vec<(String, MetadataValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Adds `key`; returns false (and changes nothing) when the key is already present.
    pub fn insert(&mut self, key: String, value: MetadataValue) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// `key` as a string; `Ok(None)` when absent, an error when present with another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "string", other)),
        }
    }

    /// `key` as an unsigned integer, from whichever integer type the file used.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let n = value.as_i128().ok_or_else(|| wrong_type(key, "integer", value))?;
        u64::try_from(n).map(Some).map_err(|_| out_of_range(key, n, "an unsigned integer"))
    }

    /// `key` as a `u32`, from whichever integer type the file used.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get_u64(key)? {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| out_of_range(key, n, "u32")),
        }
    }

    /// `key` as a float, from f32, f64 or an integer.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        value.as_f64().map(Some).ok_or_else(|| wrong_type(key, "number", value))
    }

    /// `key` as a boolean.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(key, "bool", other)),
        }
    }

    /// `key` as an array of any element type.
    pub fn get_array(&self, key: &str) -> Result<Option<&MetadataArray>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Array(a)) => Ok(Some(a)),
            Some(other) => Err(wrong_type(key, "array", other)),
        }
    }

    /// `key` as an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>> {
        match self.get_array(key)? {
            None => Ok(None),
            Some(MetadataArray::String(v)) => Ok(Some(v)),
            Some(_) => Err(GgufError::WrongType {
                key: key.to_owned(),
                expected: "array of string",
                found: "array of another type",
            }),
        }
    }

    /// `key` as an unsigned integer, or the largest element when the file stores one value per
    /// layer (some architectures vary head counts or FFN sizes by layer).
    pub fn get_u64_or_max(&self, key: &str) -> Result<Option<u64>> {
        let Some(MetadataValue::Array(array)) = self.get(key) else { return self.get_u64(key) };
        let values = array.to_i128_vec().ok_or(GgufError::WrongType {
            key: key.to_owned(),
            expected: "integer or array of integer",
            found: "array of another type",
        })?;
        match values.iter().max() {
            None => Ok(None),
            Some(&n) => u64::try_from(n).map(Some).map_err(|_| out_of_range(key, n, "u64")),
        }
    }

    /// Like the `get_*` accessors, but a missing key is an error.
    pub fn require<'a, T>(
        &'a self,
        key: &str,
        get: impl Fn(&'a Self, &str) -> Result<Option<T>>,
    ) -> Result<T> {
        get(self, key)?.ok_or_else(|| GgufError::MissingKey { key: key.to_owned() })
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &MetadataValue) -> GgufError {
    GgufError::WrongType { key: key.to_owned(), expected, found: found.value_type().name() }
}

fn out_of_range(key: &str, value: impl ToString, expected: &'static str) -> GgufError {
    GgufError::OutOfRange { key: key.to_owned(), value: value.to_string(), expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::default();
        assert!(m.insert("a.u32".into(), MetadataValue::U32(7)));
        assert!(m.insert("a.i32".into(), MetadataValue::I32(-1)));
        assert!(m.insert("a.f32".into(), MetadataValue::F32(0.5)));
        assert!(m.insert("a.s".into(), MetadataValue::String("x".into())));
        assert!(
            m.insert("a.per_layer".into(), MetadataValue::Array(MetadataArray::I32(vec![2, 8, 4])))
        );
        assert!(!m.insert("a.u32".into(), MetadataValue::U8(1)), "duplicate keys are refused");
        m
    }

    #[test]
    fn typed_accessors_coerce_and_refuse() {
        let m = sample();
        assert_eq!(m.get_u64("a.u32").unwrap(), Some(7));
        assert_eq!(m.get_u32("a.missing").unwrap(), None);
        assert!(matches!(m.get_u64("a.i32"), Err(GgufError::OutOfRange { .. })));
        assert!(matches!(m.get_u64("a.s"), Err(GgufError::WrongType { found: "string", .. })));
        assert_eq!(m.get_f64("a.f32").unwrap(), Some(0.5));
        assert_eq!(m.get_f64("a.u32").unwrap(), Some(7.0));
        assert_eq!(m.get_str("a.s").unwrap(), Some("x"));
        assert_eq!(m.get_u64_or_max("a.per_layer").unwrap(), Some(8));
        assert_eq!(m.get_u64_or_max("a.u32").unwrap(), Some(7));
        assert!(matches!(
            m.require("a.nope", Metadata::get_str),
            Err(GgufError::MissingKey { key }) if key == "a.nope"
        ));
        assert_eq!(m.iter().map(|(k, _)| k).collect::<Vec<_>>()[0], "a.u32", "file order kept");
    }
}
