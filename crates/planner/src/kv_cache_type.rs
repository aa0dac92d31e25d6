//! The element type of the KV cache: the model crate's [`KvCacheType`], which the planner sizes
//! with the same arithmetic the cache allocates with.

pub use uma_model::KvCacheType;

/// Serializes a [`KvCacheType`] by its name (`"f16"`, `"q8_0"`), as plans print it.
pub(crate) fn serialize_name<S: serde::Serializer>(
    kv_cache_type: &KvCacheType,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kv_cache_type.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_row() {
        assert_eq!(KvCacheType::F16.bytes_for(128), 256);
        assert_eq!(KvCacheType::Q8_0.bytes_for(128), 136);
        assert_eq!(KvCacheType::Q8_0.bytes_for(33), 68);
        assert_eq!(KvCacheType::from_name("Q8_0"), Some(KvCacheType::Q8_0));
        assert_eq!(KvCacheType::from_name("q4_0"), None);
    }
}
