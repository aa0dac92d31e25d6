//! The element type of the KV cache.

use serde::Serialize;

use crate::error::{PlannerError, Result};

/// Elements per Q8_0 block and its bytes: 32 signed bytes and one f16 scale.
const Q8_0_BLOCK_ELEMENTS: u64 = 32;
const Q8_0_BLOCK_BYTES: u64 = 34;

/// How K and V are stored: f16 (uma's cache, llama.cpp's default) or Q8_0 (llama.cpp's
/// `--cache-type-k/v q8_0`, about half the bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheType {
    F16,
    Q8_0,
}

impl KvCacheType {
    /// `"f16"` or `"q8_0"` (case-insensitive).
    pub fn from_name(name: &str) -> Result<KvCacheType> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f16" => Ok(KvCacheType::F16),
            "q8_0" => Ok(KvCacheType::Q8_0),
            _ => Err(PlannerError::invalid(
                "KV cache type",
                format!("{name:?} is neither f16 nor q8_0"),
            )),
        }
    }

    /// The name [`KvCacheType::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            KvCacheType::F16 => "f16",
            KvCacheType::Q8_0 => "q8_0",
        }
    }

    /// Bytes of one row of `num_elements` elements (Q8_0 rows are whole blocks).
    pub fn bytes_for(self, num_elements: u64) -> u64 {
        match self {
            KvCacheType::F16 => 2 * num_elements,
            KvCacheType::Q8_0 => num_elements.div_ceil(Q8_0_BLOCK_ELEMENTS) * Q8_0_BLOCK_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_row() {
        assert_eq!(KvCacheType::F16.bytes_for(128), 256);
        assert_eq!(KvCacheType::Q8_0.bytes_for(128), 136);
        assert_eq!(KvCacheType::Q8_0.bytes_for(33), 68);
        assert_eq!(KvCacheType::from_name("Q8_0").expect("known"), KvCacheType::Q8_0);
        assert!(KvCacheType::from_name("q4_0").is_err());
    }
}
