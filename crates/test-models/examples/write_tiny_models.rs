//! Writes the tiny random models of every architecture into a folder:
//! `cargo run -p uma-test-models --example write_tiny_models -- OUTDIR` → `OUTDIR/tiny-<arch>.gguf`.
use std::path::PathBuf;

use uma_test_models::tiny::{write_tiny_model, TINY_ARCHS};

fn main() -> std::io::Result<()> {
    let out = std::env::args_os().nth(1).map(PathBuf::from).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "usage: write_tiny_models OUTDIR")
    })?;
    std::fs::create_dir_all(&out)?;
    for arch in TINY_ARCHS {
        let path = out.join(format!("tiny-{arch}.gguf"));
        write_tiny_model(arch, &path)?;
        println!("{}", path.display());
    }
    Ok(())
}
