//! Writes the tiny random models of every architecture into a folder:
//! `cargo run -p uma-test-models --example write_tiny_models -- OUTDIR` → `OUTDIR/tiny-<arch>.gguf`;
//! with `--quantized`, the quantized mixture-of-experts family instead:
//! `OUTDIR/tiny-<arch>-<f32|q8_0|q4_k_m>.gguf`.
use std::path::PathBuf;

use uma_test_models::tiny::{
    write_tiny_model, write_tiny_quantized_model, TinyQuant, TINY_ARCHS, TINY_QUANTIZED_ARCHS,
};

fn main() -> std::io::Result<()> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let quantized = args.first().is_some_and(|a| a == "--quantized");
    if quantized {
        args.remove(0);
    }
    let out = args.first().map(PathBuf::from).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "usage: write_tiny_models [--quantized] OUTDIR",
        )
    })?;
    std::fs::create_dir_all(&out)?;
    if quantized {
        for arch in TINY_QUANTIZED_ARCHS {
            for &quant in TinyQuant::of_arch(arch) {
                let name = format!("tiny-{arch}-{}.gguf", quant.name().to_lowercase());
                let path = out.join(name);
                write_tiny_quantized_model(arch, quant, &path)?;
                println!("{}", path.display());
            }
        }
        return Ok(());
    }
    for arch in TINY_ARCHS {
        let path = out.join(format!("tiny-{arch}.gguf"));
        write_tiny_model(arch, &path)?;
        println!("{}", path.display());
    }
    Ok(())
}
