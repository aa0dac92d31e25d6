//! Matrix products `out = x · weightᵀ` of quantized weights: a matrix-vector kernel for a few
//! tokens (decode, memory-bound: every weight read once, coalesced) and a tiled kernel for many
//! (prefill, compute-bound: each dequantized weight reused across a tile of tokens). Both take
//! the weights' format from `shaders/quant_formats.wgsl` and run once per chunk of rows.

use crate::backend::{GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::matrix::GpuMatrix;
use crate::recorder::grid;
use crate::shader::COMMON;

pub(crate) const QUANT_FORMATS: &str = include_str!("../shaders/quant_formats.wgsl");
const MATVEC: &str = include_str!("../shaders/matvec.wgsl");
const MATMUL_TILED: &str = include_str!("../shaders/matmul_tiled.wgsl");

/// Most tokens the matrix-vector kernel takes (its per-token sums live in registers).
const MATVEC_MAX_TOKENS: usize = 8;

/// How the matrix-vector kernel splits its work: rows per workgroup, threads per row, and
/// whether a thread takes 32-value units (one scale decode each) or single quads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatvecShape {
    pub(crate) rows: usize,
    pub(crate) lanes: usize,
    pub(crate) per_quad: bool,
}

/// The shape products take on a hardware GPU, measured with the `throughput` benchmark below
/// on an H200 (docs/gpu.md): neighbouring threads reading neighbouring words beat fewer scale
/// decodes, at every format and size (Q8_0 1.2 TB/s against 0.8, F16 2.4 against 0.9).
const HARDWARE_SHAPE: MatvecShape = MatvecShape { rows: 4, lanes: 64, per_quad: true };

/// The shape on a software GPU (lavapipe: CI), where a thread's loads cost the same wherever
/// they fall and the decodes dominate: units decode 3.7 times faster there.
const SOFTWARE_SHAPE: MatvecShape = MatvecShape { rows: 4, lanes: 32, per_quad: false };

/// The matrix-vector shape for the pass's device.
fn matvec_shape(pass: &GpuPass<'_>) -> MatvecShape {
    if pass.backend().context().info().is_software {
        SOFTWARE_SHAPE
    } else {
        HARDWARE_SHAPE
    }
}

/// The shapes the `throughput` benchmark compares on a real GPU (and the tests check).
#[cfg(test)]
pub(crate) const MATVEC_SHAPES: [MatvecShape; 7] = [
    SOFTWARE_SHAPE,
    MatvecShape { rows: 2, lanes: 32, per_quad: false },
    MatvecShape { rows: 8, lanes: 32, per_quad: false },
    MatvecShape { rows: 8, lanes: 16, per_quad: false },
    MatvecShape { rows: 16, lanes: 8, per_quad: false },
    MatvecShape { rows: 8, lanes: 32, per_quad: true },
    HARDWARE_SHAPE,
];
/// Rows and tokens of a tiled workgroup's tile.
const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct Params {
    num_rows: u32,
    row_length: u32,
    num_tokens: u32,
    out_width: u32,
    row_offset: u32,
}

/// `out = x · weightᵀ`: `out[t, r] = Σ_k x[t, k] · weight[r, k]`.
pub(crate) fn matmul(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,       // [num_tokens, row_length]
    out: &mut GpuActivations, // [num_tokens, num_rows]
) -> Result<()> {
    let shape = matvec_shape(pass);
    matmul_shaped(pass, weight, x, out, shape)
}

/// [`matmul`] with the matrix-vector kernel of `shape` (for few tokens).
pub(crate) fn matmul_shaped(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,
    out: &mut GpuActivations,
    shape: MatvecShape,
) -> Result<()> {
    if x.width != weight.row_length || out.width != weight.num_rows || out.num_rows != x.num_rows {
        return Err(GpuError::Validation {
            reason: format!(
                "{}: [{}, {}] · [{}, {}]ᵀ into [{}, {}]",
                weight.name,
                x.num_rows,
                x.width,
                weight.num_rows,
                weight.row_length,
                out.num_rows,
                out.width
            ),
        });
    }
    let num_tokens = x.num_rows;
    if num_tokens == 0 || weight.num_rows == 0 {
        return Ok(());
    }
    let define = weight.format.define;
    let tiled = num_tokens > MATVEC_MAX_TOKENS;
    let kernel = if tiled {
        pass.kernel(
            &format!("matmul_tiled_{define}"),
            &[COMMON, QUANT_FORMATS, MATMUL_TILED],
            &[define],
        )?
    } else {
        let tokens = num_tokens.next_power_of_two();
        let MatvecShape { rows, lanes, per_quad } = shape;
        let prelude = format!(
            "const MAX_TOKENS: u32 = {tokens}u;\nconst ROWS: u32 = {rows}u;\nconst LANES: u32 = {lanes}u;\n"
        );
        let name = format!("matvec_{define}_t{tokens}_r{rows}_l{lanes}_q{}", u8::from(per_quad));
        let defines: &[&str] = if per_quad { &[define, "PER_QUAD"] } else { &[define] };
        pass.kernel(&name, &[&prelude, COMMON, QUANT_FORMATS, MATVEC], defines)?
    };
    for chunk in weight.chunks() {
        let params = Params {
            num_rows: chunk.num_rows as u32,
            row_length: weight.row_length as u32,
            num_tokens: num_tokens as u32,
            out_width: out.width as u32,
            row_offset: chunk.first_row as u32,
        };
        let groups = if tiled {
            chunk.num_rows.div_ceil(TILE) * num_tokens.div_ceil(TILE)
        } else {
            chunk.num_rows.div_ceil(shape.rows)
        };
        let buffers = [chunk.buffer.as_entire_buffer_binding(), x.binding(), out.binding()];
        pass.dispatch(&kernel, &params, &buffers, grid(groups as u32))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::GpuBackend;
    use crate::matrix::test_matrices::{bytes, dequantized, TYPES};
    use crate::test_support::{backend, read, relative_error, values, with_pass};
    use uma_gguf::GgmlType;
    use uma_model::backend::Backend;

    /// Largest error relative to the largest |output|: f32 sums of 512 products against an f64
    /// reference of the same dequantized weights.
    const TOLERANCE: f32 = 1e-5;

    /// `x · wᵀ` in f64 from the CPU's dequantized weights.
    fn reference(w: &[f32], x: &[f32], num_rows: usize, row_length: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for token in x.chunks_exact(row_length) {
            for row in w.chunks_exact(row_length).take(num_rows) {
                out.push(
                    token.iter().zip(row).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
                        as f32,
                );
            }
        }
        out
    }

    /// The GPU product of `matrix` with `x` (`num_tokens` rows).
    fn product(backend: &GpuBackend, matrix: &GpuMatrix, x: &[f32], num_tokens: usize) -> Vec<f32> {
        with_pass(backend, num_tokens, 0, |pass| {
            let gx = pass.upload_activations(x, num_tokens, matrix.row_length);
            let mut out = GpuBackend::activations(pass, num_tokens, matrix.num_rows);
            matmul(pass, matrix, &gx, &mut out).unwrap();
            read(pass, &out)
        })
    }

    fn shaped_product(
        backend: &GpuBackend,
        matrix: &GpuMatrix,
        x: &[f32],
        num_tokens: usize,
        shape: MatvecShape,
    ) -> Vec<f32> {
        with_pass(backend, num_tokens, 0, |pass| {
            let gx = pass.upload_activations(x, num_tokens, matrix.row_length);
            let mut out = GpuBackend::activations(pass, num_tokens, matrix.num_rows);
            matmul_shaped(pass, matrix, &gx, &mut out, shape).unwrap();
            read(pass, &out)
        })
    }

    #[test]
    fn every_matrix_vector_shape_gives_the_cpus_products() {
        let Some(backend) = backend() else { return };
        // 256 values: 8 units, fewer than most shapes' lanes; 1056: 33 units, one past 32.
        for (seed, (ty, num_rows, row_length)) in
            [(GgmlType::Q4_K, 11, 1024), (GgmlType::Q8_0, 13, 1056), (GgmlType::Q6_K, 9, 256)]
                .into_iter()
                .enumerate()
        {
            let data = bytes(ty, num_rows, row_length, 80 + seed as u64);
            let w = dequantized(ty, &data, num_rows * row_length);
            let matrix =
                GpuMatrix::from_bytes(backend, "w", ty, &data, num_rows, row_length).unwrap();
            for shape in MATVEC_SHAPES {
                for num_tokens in [1, 2, 3, 8] {
                    let x = values(300 + num_tokens as u64, num_tokens * row_length);
                    let expected = reference(&w, &x, num_rows, row_length);
                    let got = shaped_product(backend, &matrix, &x, num_tokens, shape);
                    let error = relative_error(&got, &expected);
                    assert!(error < TOLERANCE, "{ty:?} {shape:?} × {num_tokens}: {error}");
                }
            }
        }
    }

    #[test]
    fn every_format_matches_the_cpu_for_decode_and_prefill_shapes() {
        let Some(backend) = backend() else { return };
        // 37 rows: not a multiple of a matrix-vector workgroup's rows nor of a 64-row tile.
        let (num_rows, row_length) = (37, 512);
        for (seed, ty) in TYPES.into_iter().enumerate() {
            let data = bytes(ty, num_rows, row_length, seed as u64);
            let w = dequantized(ty, &data, num_rows * row_length);
            let matrix =
                GpuMatrix::from_bytes(backend, "w", ty, &data, num_rows, row_length).unwrap();
            // 1 and 3 tokens take the matrix-vector kernel, 40 and 70 the tiled one (70: two
            // token tiles, the second partial).
            for num_tokens in [1, 3, 8, 40, 70] {
                let x = values(100 + num_tokens as u64, num_tokens * row_length);
                let expected = reference(&w, &x, num_rows, row_length);
                let got = product(backend, &matrix, &x, num_tokens);
                let error = relative_error(&got, &expected);
                assert!(error < TOLERANCE, "{ty:?}, {num_tokens} tokens: relative error {error}");
            }
        }
    }

    #[test]
    fn short_rows_match_the_cpu() {
        let Some(backend) = backend() else { return };
        // 32 values: 8 quads, fewer than the 32 lanes of a row; 160: 40 quads, a second quad
        // for 8 lanes only.
        for (seed, (ty, row_length)) in
            [(GgmlType::Q4_0, 32), (GgmlType::F16, 160), (GgmlType::Q5_1, 160)]
                .into_iter()
                .enumerate()
        {
            let num_rows = 13;
            let data = bytes(ty, num_rows, row_length, 60 + seed as u64);
            let w = dequantized(ty, &data, num_rows * row_length);
            let matrix =
                GpuMatrix::from_bytes(backend, "w", ty, &data, num_rows, row_length).unwrap();
            for num_tokens in [1, 5, 40] {
                let x = values(200 + num_tokens as u64, num_tokens * row_length);
                let expected = reference(&w, &x, num_rows, row_length);
                let error = relative_error(&product(backend, &matrix, &x, num_tokens), &expected);
                assert!(
                    error < TOLERANCE,
                    "{ty:?} rows of {row_length}, {num_tokens} tokens: {error}"
                );
            }
        }
    }

    #[test]
    fn row_chunks_give_the_same_products_as_one_binding() {
        let Some(backend) = backend() else { return };
        let (num_rows, row_length, ty) = (75, 256, GgmlType::Q8_0);
        let data = bytes(ty, num_rows, row_length, 7);
        let whole = GpuMatrix::from_bytes(backend, "w", ty, &data, num_rows, row_length).unwrap();
        // 9 words per 32 values: 288 bytes a row; chunks of 10 rows (the last of 5).
        let row_bytes = 288;
        let split =
            GpuMatrix::upload(backend, "w", ty, &data, num_rows, row_length, row_bytes * 10 + 7)
                .unwrap();
        assert_eq!(split.chunks().len(), 8);
        for num_tokens in [2, 40] {
            let x = values(3, num_tokens * row_length);
            let expected = product(backend, &whole, &x, num_tokens);
            assert_eq!(product(backend, &split, &x, num_tokens), expected, "{num_tokens} tokens");
            let reference =
                reference(&dequantized(ty, &data, num_rows * row_length), &x, num_rows, row_length);
            assert!(relative_error(&expected, &reference) < TOLERANCE);
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let Some(backend) = backend() else { return };
        let data = bytes(GgmlType::F32, 4, 32, 1);
        let matrix = GpuMatrix::from_bytes(backend, "w", GgmlType::F32, &data, 4, 32).unwrap();
        with_pass(backend, 1, 0, |pass| {
            let x = pass.upload_activations(&[0.0; 64], 1, 64);
            let mut out = GpuBackend::activations(pass, 1, 4);
            assert!(matmul(pass, &matrix, &x, &mut out).is_err());
        });
    }
}

/// Throughput on a real GPU (ignored: lavapipe timings mean nothing). Run with
/// `UMA_REQUIRE_GPU=1 cargo test -p uma-gpu --release -- --ignored --nocapture throughput`.
#[cfg(test)]
mod throughput {
    use super::*;
    use crate::backend::GpuBackend;
    use crate::test_support::{backend, read, values, with_pass};
    use rand::{Rng, SeedableRng};
    use std::time::Instant;
    use uma_gguf::GgmlType;
    use uma_model::backend::Backend;

    /// Seconds per product of `matrix` with `num_tokens` tokens, from the difference of two
    /// passes of `few` and `many` products (cancelling the submission and read-back).
    fn seconds_per_product(
        backend: &GpuBackend,
        matrix: &GpuMatrix,
        num_tokens: usize,
        shape: MatvecShape,
    ) -> f64 {
        let x = values(1, num_tokens * matrix.row_length);
        let run = |count: usize| {
            let start = Instant::now();
            with_pass(backend, num_tokens, 0, |pass| {
                let gx = pass.upload_activations(&x, num_tokens, matrix.row_length);
                let mut out = GpuBackend::activations(pass, num_tokens, matrix.num_rows);
                for _ in 0..count {
                    matmul_shaped(pass, matrix, &gx, &mut out, shape).unwrap();
                }
                read(pass, &out);
            });
            start.elapsed().as_secs_f64()
        };
        run(2);
        let (few, many) = (10, 110);
        let mut best = f64::MAX;
        for _ in 0..3 {
            best = best.min((run(many) - run(few)) / (many - few) as f64);
        }
        best
    }

    #[test]
    #[ignore]
    fn throughput() {
        let Some(backend) = backend() else { return };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // A Llama 8B feed-forward matrix, and a Qwen 0.5B one (decode of small models).
        for (num_rows, row_length) in [(14336, 4096), (4864, 896)] {
            for ty in [
                GgmlType::Q4_0,
                GgmlType::Q8_0,
                GgmlType::Q4_K,
                GgmlType::Q5_K,
                GgmlType::Q6_K,
                GgmlType::F16,
            ] {
                let (block_values, block_bytes) = (ty.block_size(), ty.type_size());
                if row_length % block_values != 0 {
                    continue; // 896 is not whole K-quant blocks of 256
                }
                let mut data = vec![0u8; num_rows * row_length / block_values * block_bytes];
                rng.fill(&mut data[..]);
                let matrix =
                    GpuMatrix::from_bytes(backend, "w", ty, &data, num_rows, row_length).unwrap();
                let name = format!("{ty:?} [{num_rows}, {row_length}]");
                for num_tokens in [1, 4, 8] {
                    for shape in MATVEC_SHAPES {
                        let seconds = seconds_per_product(backend, &matrix, num_tokens, shape);
                        let MatvecShape { rows, lanes, per_quad } = shape;
                        let walk = if per_quad { "quads" } else { "units" };
                        println!(
                            "{name} × {num_tokens} tokens, {rows} rows × {lanes} lanes by {walk}: \
                             {:.1} µs, {:.0} GB/s",
                            seconds * 1e6,
                            data.len() as f64 / seconds / 1e9
                        );
                    }
                }
                for num_tokens in [64, 512] {
                    let seconds = seconds_per_product(backend, &matrix, num_tokens, HARDWARE_SHAPE);
                    println!(
                        "{name} × {num_tokens} tokens: {:.1} µs, {:.1} TFLOP/s",
                        seconds * 1e6,
                        2.0 * (num_rows * row_length * num_tokens) as f64 / seconds / 1e12
                    );
                }
            }
        }
    }
}
