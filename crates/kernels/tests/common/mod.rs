//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `crates/kernels/tests/golden`.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Reads a golden file, failing (never skipping) with a message naming the generator when it is
/// missing.
pub fn read_golden(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing or unreadable ({e}); regenerate the goldens with \
             `scripts/golden/make-golden.sh`",
            path.display()
        )
    })
}

/// The data lines of a golden TSV (comment lines starting with `#` and blank lines dropped),
/// split on tabs.
pub fn tsv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = String::from_utf8(read_golden(path)).expect("golden TSV is UTF-8");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of f32 values as little-endian bytes.
pub fn sha256_f32(values: &[f32]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bytemuck::cast_slice::<f32, u8>(values));
    hex(&hasher.finalize())
}

/// Little-endian f32 values from bytes.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0, "f32 file length is a multiple of 4");
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
