//! A bounds-checked little-endian reader over the file's bytes. Every read names what it reads, so
//! a short file yields `Truncated` with the offset and the field, never an out-of-bounds access.

use crate::error::{GgufError, Result};

/// Vectors sized from a count in the file start with at most this capacity and grow as elements
/// are actually parsed, so a lying count costs nothing up front.
pub(crate) const PREALLOCATION_LIMIT: usize = 4096;

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }

    pub(crate) fn position(&self) -> u64 {
        self.position as u64
    }

    pub(crate) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.position) as u64
    }

    pub(crate) fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8]> {
        let available = self.remaining();
        if len > available {
            return Err(GgufError::Truncated {
                offset: self.position(),
                what,
                needed: len,
                available,
            });
        }
        // `len <= remaining <= usize::MAX`, so the cast is lossless.
        let len = len as usize;
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let slice = self.take(N as u64, what)?;
        Ok(slice.try_into().expect("take returned exactly N bytes"))
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8> {
        Ok(i8::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &'static str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String> {
        let len = self.u64(what)?;
        let start = self.position();
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| GgufError::InvalidUtf8 { offset: start })
    }

    /// Reads an element count and rejects it unless it is at most `hard_limit` and `count` elements
    /// of at least `min_size` bytes each could still fit in the file. With capacities capped at
    /// [`PREALLOCATION_LIMIT`], this bounds every allocation by the bytes actually parsed.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_size: u64,
        hard_limit: u64,
    ) -> Result<u64> {
        let offset = self.position();
        let count = self.u64(what)?;
        let limit = (self.remaining() / min_size.max(1)).min(hard_limit);
        if count > limit {
            return Err(GgufError::CountTooLarge { offset, what, count, limit });
        }
        Ok(count)
    }
}
