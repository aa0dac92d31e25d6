//! How a KV cache stores keys and values, whatever the backend: the element type and the number
//! of positions per block.

/// Token positions per block unless the caller chooses otherwise.
pub const DEFAULT_BLOCK_SIZE: usize = 16;

/// How the cache stores keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvCacheType {
    /// IEEE half precision: llama.cpp's default cache type.
    #[default]
    F16,
    /// ggml's Q8_0 (llama.cpp's `--cache-type-k/v q8_0`): per 32 elements of a head's key or
    /// value, signed bytes and one f16 scale, 34 bytes instead of 64 — about half the memory and
    /// half the bytes attention reads per position.
    Q8_0,
}

/// Elements that share one Q8_0 scale (ggml's `QK8_0`).
pub(crate) const Q8_0_GROUP: usize = uma_kernels::QK;

impl KvCacheType {
    /// `"f16"` or `"q8_0"` (case-insensitive), as llama.cpp's `--cache-type-k` spells them.
    pub fn from_name(name: &str) -> Option<KvCacheType> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f16" => Some(KvCacheType::F16),
            "q8_0" => Some(KvCacheType::Q8_0),
            _ => None,
        }
    }

    /// The name [`KvCacheType::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            KvCacheType::F16 => "f16",
            KvCacheType::Q8_0 => "q8_0",
        }
    }

    /// Bytes of one head row (or several) of `num_elements` elements; Q8_0 rows are whole groups.
    pub fn bytes_for(self, num_elements: u64) -> u64 {
        match self {
            KvCacheType::F16 => 2 * num_elements,
            KvCacheType::Q8_0 => {
                num_elements.div_ceil(Q8_0_GROUP as u64)
                    * size_of::<uma_kernels::BlockQ8_0>() as u64
            }
        }
    }
}
