//! Matrix products `out = x · weightᵀ` of quantized weights: a matrix-vector kernel for a few
//! tokens (decode, memory-bound: every weight read once, coalesced) and a tiled kernel for many
//! (prefill, compute-bound: each dequantized weight reused across a tile of tokens). Both take
//! the weights' format from `shaders/quant_formats.wgsl` and run once per chunk of rows.

use uma_model::HiddenActivation;

use uma_model::backend::Rows;

use crate::backend::{GpuActivations, GpuPass, GpuVector};
use crate::error::{GpuError, Result};
use crate::matrix::GpuMatrix;
use crate::ops::elementwise::ACTIVATIONS;
use crate::recorder::grid;
use crate::shader::{Kernel, COMMON};

pub(crate) const QUANT_FORMATS: &str = include_str!("../shaders/quant_formats.wgsl");
const MATVEC: &str = include_str!("../shaders/matvec.wgsl");
const MATMUL_TILED: &str = include_str!("../shaders/matmul_tiled.wgsl");

/// Most tokens the matrix-vector kernel takes (its per-token sums live in registers; lane `t`
/// of a row writes token `t`, so every shape has at least this many lanes).
const MATVEC_MAX_TOKENS: usize = 8;

/// How a matrix-vector thread walks its row (matvec.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Walk {
    /// One quad per iteration, neighbouring threads on neighbouring quads.
    Quads,
    /// One 32-value unit per iteration (its scale decoded once).
    Units,
    /// One chunk of the format's neighbouring words per iteration (quant_formats.wgsl).
    Chunks,
}

impl Walk {
    fn name(self) -> &'static str {
        match self {
            Walk::Quads => "quads",
            Walk::Units => "units",
            Walk::Chunks => "chunks",
        }
    }
}

/// The formats with their own chunks; the others' chunks are their units.
const FORMATS_WITH_CHUNKS: [&str; 3] = ["FORMAT_Q4_K", "FORMAT_Q5_K", "FORMAT_Q6_K"];

/// How the matrix-vector kernel splits its work: rows per workgroup, threads per row, how a
/// thread walks its row, and how many rows a thread computes at once (each x value it loads
/// serving all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatvecShape {
    pub(crate) rows: usize,
    pub(crate) lanes: usize,
    pub(crate) walk: Walk,
    pub(crate) rows_per_thread: usize,
}

impl MatvecShape {
    /// Rows one workgroup computes.
    fn rows_per_group(&self) -> usize {
        self.rows * self.rows_per_thread
    }
}

/// The shape of the formats without their own chunks on a hardware GPU, measured with the
/// `throughput` benchmark below on an H200 (docs/gpu.md): neighbouring threads reading
/// neighbouring words, each x value serving two rows (F16 3.4 TB/s, Q8_0 2.0, Q4_0 0.9 on Llama
/// 8B's 14336×4096 matrix).
const HARDWARE_SHAPE: MatvecShape =
    MatvecShape { rows: 4, lanes: 64, walk: Walk::Quads, rows_per_thread: 2 };

/// The K-quants' shape on a hardware GPU: chunks, two rows per thread (Q4_K 1.1 TB/s, Q5_K 1.1,
/// Q6_K 1.4 on the H200, where quads reached 0.6-0.9).
const HARDWARE_K_SHAPE: MatvecShape =
    MatvecShape { rows: 4, lanes: 32, walk: Walk::Chunks, rows_per_thread: 2 };

/// The shape on a software GPU (lavapipe: CI), where a thread's loads cost the same wherever
/// they fall and the decodes dominate: units decode 3.7 times faster there.
const SOFTWARE_SHAPE: MatvecShape =
    MatvecShape { rows: 4, lanes: 32, walk: Walk::Units, rows_per_thread: 1 };

/// The shape `UMA_GPU_MATVEC` sets for every format (tuning on a new GPU:
/// `WALK,ROWS,LANES,ROWS_PER_THREAD`, e.g. `chunks,8,32,1`), when set and valid.
pub(crate) fn matvec_shape_override() -> Option<MatvecShape> {
    let setting = std::env::var_os("UMA_GPU_MATVEC")?;
    let setting = setting.to_string_lossy();
    let shape = MatvecShape::parse(&setting);
    if shape.is_none() {
        tracing::warn!(
            %setting,
            "UMA_GPU_MATVEC is not WALK,ROWS,LANES,ROWS_PER_THREAD (walk quads, units or \
             chunks; lanes a power of two from 8 to 256, rows × lanes at most 256, \
             1 to 4 rows per thread): using the defaults"
        );
    }
    shape
}

impl MatvecShape {
    /// `WALK,ROWS,LANES,ROWS_PER_THREAD`, when it is a shape the kernel can take.
    fn parse(setting: &str) -> Option<MatvecShape> {
        let parts: Vec<&str> = setting.split(',').map(str::trim).collect();
        let [walk, rows, lanes, rows_per_thread] = parts[..] else { return None };
        let walk = match walk {
            "quads" => Walk::Quads,
            "units" => Walk::Units,
            "chunks" => Walk::Chunks,
            _ => return None,
        };
        let (rows, lanes, rows_per_thread): (usize, usize, usize) =
            (rows.parse().ok()?, lanes.parse().ok()?, rows_per_thread.parse().ok()?);
        let lanes_fit = lanes.is_power_of_two() && (MATVEC_MAX_TOKENS..=256).contains(&lanes);
        let group_fits = rows >= 1 && rows * lanes <= 256;
        (lanes_fit && group_fits && (1..=4).contains(&rows_per_thread)).then_some(MatvecShape {
            rows,
            lanes,
            walk,
            rows_per_thread,
        })
    }
}

/// The matrix-vector shape for products of `weight` on the pass's device.
fn matvec_shape(pass: &GpuPass<'_>, weight: &GpuMatrix) -> MatvecShape {
    let backend = pass.backend();
    if let Some(shape) = backend.matvec_override() {
        shape
    } else if backend.context().info().is_software {
        SOFTWARE_SHAPE
    } else if FORMATS_WITH_CHUNKS.contains(&weight.format.define) {
        HARDWARE_K_SHAPE
    } else {
        HARDWARE_SHAPE
    }
}

/// The shapes the `throughput` benchmark compares on a real GPU (and the tests check): the
/// three in use, one row per thread, and four rows per thread (the second sweep: two rows beat
/// one everywhere, x then being loaded once for both).
#[cfg(test)]
pub(crate) const MATVEC_SHAPES: [MatvecShape; 9] = [
    SOFTWARE_SHAPE,
    HARDWARE_SHAPE,
    HARDWARE_K_SHAPE,
    MatvecShape { rows: 4, lanes: 64, walk: Walk::Quads, rows_per_thread: 1 },
    MatvecShape { rows: 4, lanes: 32, walk: Walk::Chunks, rows_per_thread: 1 },
    MatvecShape { rows: 2, lanes: 64, walk: Walk::Quads, rows_per_thread: 4 },
    MatvecShape { rows: 2, lanes: 32, walk: Walk::Chunks, rows_per_thread: 4 },
    MatvecShape { rows: 4, lanes: 32, walk: Walk::Chunks, rows_per_thread: 4 },
    MatvecShape { rows: 8, lanes: 16, walk: Walk::Chunks, rows_per_thread: 2 },
];
/// Rows and tokens of a tiled workgroup's tile.
const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::NoUninit)]
struct Params {
    num_rows: u32,
    row_length: u32,
    num_tokens: u32,
    out_width: u32,
    row_offset: u32,
    rows0: u32,
    rows1: u32,
    base0: u32,
    base1: u32,
    base2: u32,
    eps: f32,
    bias0: u32,
    bias1: u32,
    bias2: u32,
}

/// An RMS norm folded into the products of a decode step: its weights and epsilon.
type Norm<'a> = Option<(&'a GpuVector, f32)>;

/// The fused variant's kernel name suffix and defines, with NORM added when `norm` is some.
fn with_norm(
    variant: &str,
    defines: &[&'static str],
    norm: Norm<'_>,
) -> (String, Vec<&'static str>) {
    let mut all = defines.to_vec();
    match norm {
        Some(_) => {
            all.push("NORM");
            (format!("{variant}_norm"), all)
        }
        None => (variant.to_owned(), all),
    }
}

/// The bindings of `norm`'s weights (after the outputs) and its epsilon for the parameters.
fn norm_binding<'a>(
    norm: Norm<'a>,
    x: &GpuActivations,
) -> Result<(Option<wgpu::BufferBinding<'a>>, f32)> {
    match norm {
        Some((weight, _)) if weight.len != x.width => Err(GpuError::Validation {
            reason: format!("a norm of {} values over rows of {}", weight.len, x.width),
        }),
        Some((weight, eps)) => Ok((Some(weight.binding()), eps)),
        None => Ok((None, 0.0)),
    }
}

/// What a product does with its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Store,
    /// `out += x · weightᵀ`.
    Accumulate,
}

/// Refuses operands whose shapes do not make `out = x · weightᵀ`.
fn check_shapes(weight: &GpuMatrix, x: &GpuActivations, out: &GpuActivations) -> Result<()> {
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
    Ok(())
}

/// `out = x · weightᵀ`: `out[t, r] = Σ_k x[t, k] · weight[r, k]`.
pub(crate) fn matmul(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,       // [num_tokens, row_length]
    out: &mut GpuActivations, // [num_tokens, num_rows]
) -> Result<()> {
    let shape = matvec_shape(pass, weight);
    product(pass, weight, x, out, shape, Output::Store, None, None)
}

/// `acc += x · weightᵀ`, in one kernel.
pub(crate) fn matmul_add(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,
    acc: &mut GpuActivations,
) -> Result<()> {
    let shape = matvec_shape(pass, weight);
    product(pass, weight, x, acc, shape, Output::Accumulate, None, None)
}

/// [`matmul`] with the matrix-vector kernel of `shape` (for few tokens).
#[cfg(test)]
pub(crate) fn matmul_shaped(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,
    out: &mut GpuActivations,
    shape: MatvecShape,
) -> Result<()> {
    product(pass, weight, x, out, shape, Output::Store, None, None)
}

/// The matrix-vector kernel of `shape` for `tokens` (a power of two) and `format`, with the
/// fused variant `defines` (matvec.wgsl) named by `variant`.
fn matvec_kernel(
    pass: &GpuPass<'_>,
    format: &str,
    tokens: usize,
    shape: MatvecShape,
    variant: &str,
    defines: &[&str],
) -> Result<std::sync::Arc<Kernel>> {
    let MatvecShape { rows, lanes, walk, rows_per_thread } = shape;
    // Gate and up are a thread's two rows.
    let rpt = if defines.contains(&"GATED") { 2 } else { rows_per_thread };
    // Subgroups add a row's lanes when none can span two rows.
    let max_subgroup = pass.backend().context().info().features.max_subgroup_size as usize;
    let subgroups = pass.backend().kernels().subgroups() && (1..=lanes).contains(&max_subgroup);
    let name = format!(
        "matvec_{format}_t{tokens}_r{rows}x{rpt}_l{lanes}_{}_s{}{variant}",
        walk.name(),
        u8::from(subgroups)
    );
    // The source is made only the first time (this runs on every dispatch).
    pass.backend().kernels().get_or_build(&name, || {
        let prelude = format!(
            "const MAX_TOKENS: u32 = {tokens}u;\nconst ROWS: u32 = {rows}u;\n\
             const LANES: u32 = {lanes}u;\nconst RPT: u32 = {rpt}u;\n"
        );
        // NORM's and BIAS's bindings come after the outputs: one, two (MULTI) or three (OUTS3).
        let outputs =
            1 + usize::from(defines.contains(&"MULTI")) + usize::from(defines.contains(&"OUTS3"));
        let mut tail = String::new();
        let mut next = 3 + outputs;
        for (define, declaration) in
            [("NORM", "norm_weight: array<vec4<f32>>"), ("BIAS", "bias: array<f32>")]
        {
            if defines.contains(&define) {
                tail += &format!("@group(0) @binding({next}) var<storage, read> {declaration};\n");
                next += 1;
            }
        }
        let mut all = vec![format];
        all.extend_from_slice(defines);
        match walk {
            Walk::Quads => all.push("PER_QUAD"),
            Walk::Units => {}
            Walk::Chunks => {
                all.push("CHUNKED");
                if !FORMATS_WITH_CHUNKS.contains(&format) {
                    all.push("UNIT_CHUNKS");
                }
            }
        }
        all.extend(subgroups.then_some("SUBGROUP_REDUCE"));
        ([prelude.as_str(), COMMON, ACTIVATIONS, QUANT_FORMATS, MATVEC, &tail].concat(), all)
    })
}

/// One product, its rows chunk by chunk; `norm` and `bias` (decode steps only) fold an RMS norm
/// of `x` and a bias into it.
#[allow(clippy::too_many_arguments)]
fn product(
    pass: &mut GpuPass<'_>,
    weight: &GpuMatrix,
    x: &GpuActivations,
    out: &mut GpuActivations,
    shape: MatvecShape,
    output: Output,
    norm: Norm<'_>,
    bias: Option<&GpuVector>,
) -> Result<()> {
    check_shapes(weight, x, out)?;
    let num_tokens = x.num_rows;
    if num_tokens == 0 || weight.num_rows == 0 {
        return Ok(());
    }
    let define = weight.format.define;
    let tiled = num_tokens > MATVEC_MAX_TOKENS;
    let (variant, defines): (&str, &[&'static str]) = match output {
        Output::Store => ("", &[]),
        Output::Accumulate => ("_acc", &["ACCUMULATE"]),
    };
    let (mut variant, mut defines) = with_norm(variant, defines, norm);
    if let Some(bias) = bias {
        if bias.len != weight.num_rows {
            return Err(GpuError::Validation {
                reason: format!(
                    "{}: a bias of {} for {} rows",
                    weight.name, bias.len, weight.num_rows
                ),
            });
        }
        variant += "_bias";
        defines.push("BIAS");
    }
    let (norm_weights, eps) = norm_binding(norm, x)?;
    let kernel = if tiled {
        if norm.is_some() || bias.is_some() {
            return Err(GpuError::Validation {
                reason: "a norm or bias folded into a prefill".into(),
            });
        }
        let mut all = vec![define];
        all.extend_from_slice(&defines);
        pass.kernel(
            &format!("matmul_tiled_{define}{variant}"),
            &[COMMON, QUANT_FORMATS, MATMUL_TILED],
            &all,
        )?
    } else {
        matvec_kernel(pass, define, num_tokens.next_power_of_two(), shape, &variant, &defines)?
    };
    for chunk in weight.chunks() {
        let params = Params {
            num_rows: chunk.num_rows as u32,
            row_length: weight.row_length as u32,
            num_tokens: num_tokens as u32,
            out_width: out.width as u32,
            row_offset: chunk.first_row as u32,
            eps,
            ..Params::default()
        };
        let groups = if tiled {
            chunk.num_rows.div_ceil(TILE) * num_tokens.div_ceil(TILE)
        } else {
            chunk.num_rows.div_ceil(shape.rows_per_group())
        };
        let mut buffers = vec![chunk.binding(), x.binding(), out.binding()];
        buffers.extend(norm_weights.clone());
        buffers.extend(bias.map(GpuVector::binding));
        pass.dispatch(&kernel, &params, &buffers, grid(groups as u32))?;
    }
    Ok(())
}

/// One binding over matrices that [`GpuMatrix::load_group`] put side by side, in order, and
/// each one's first word in it; `None` when they are not (then they run one by one).
fn side_by_side<'m>(matrices: &[&'m GpuMatrix]) -> Option<(wgpu::BufferBinding<'m>, Vec<u32>)> {
    let first = matrices.first()?;
    let mut chunks = Vec::with_capacity(matrices.len());
    for matrix in matrices {
        let [chunk] = matrix.chunks() else { return None };
        let same = matrix.format == first.format && matrix.row_length == first.row_length;
        if !same || chunk.buffer != first.chunks()[0].buffer {
            return None;
        }
        chunks.push(chunk);
    }
    if !chunks.windows(2).all(|pair| pair[0].offset + pair[0].size <= pair[1].offset) {
        return None;
    }
    let (start, last) = (chunks[0].offset, chunks[chunks.len() - 1]);
    let bases = chunks.iter().map(|c| ((c.offset - start) / 4) as u32).collect();
    let binding = wgpu::BufferBinding {
        buffer: &chunks[0].buffer,
        offset: start,
        size: wgpu::BufferSize::new(last.offset + last.size - start),
    };
    Some((binding, bases))
}

/// Whether `x` is a decode step's (the matrix-vector kernel's, where products fuse).
fn is_decode(x: &GpuActivations) -> bool {
    (1..=MATVEC_MAX_TOKENS).contains(&x.num_rows)
}

/// Several products of the same `x` (q, k, v): for a decode step, one kernel for each run of
/// matrices of one format lying side by side (q and k in Q5_0 and v in Q8_0: two), else one
/// product each.
pub(crate) fn matmul_many(
    pass: &mut GpuPass<'_>,
    products: &mut [(&GpuMatrix, &mut GpuActivations)],
    x: &GpuActivations,
) -> Result<()> {
    products_of(pass, products, x, None, None)
}

/// [`matmul_many`] of `rms_norm(x) · norm`, plus `biases` (one per product) when given: for a
/// decode step the norm and the biases are folded into the products' kernels (`normed` is left
/// as it was), else `normed` takes the norm first and the biases are added after.
pub(crate) fn normed_matmul_many(
    pass: &mut GpuPass<'_>,
    x: &GpuActivations,
    (norm, eps): (&GpuVector, f32),
    normed: &mut GpuActivations,
    products: &mut [(&GpuMatrix, &mut GpuActivations)],
    biases: Option<&[&GpuVector]>,
) -> Result<()> {
    if biases.is_some_and(|b| b.len() != products.len()) {
        return Err(GpuError::Validation { reason: "one bias per product".into() });
    }
    if is_decode(x) {
        return products_of(pass, products, x, Some((norm, eps)), biases);
    }
    super::norm::rms_norm(pass, x, Rows::All, norm, eps, normed)?;
    products_of(pass, products, normed, None, None)?;
    if let Some(biases) = biases {
        for ((_, out), bias) in products.iter_mut().zip(biases) {
            super::elementwise::add_bias(pass, out, bias)?;
        }
    }
    Ok(())
}

/// The first word of bias `k` in a fused bias binding (0 without one).
fn bias_base(bias: &Option<(wgpu::BufferBinding<'_>, Vec<u32>)>, k: usize) -> u32 {
    bias.as_ref().and_then(|(_, bases)| bases.get(k).copied()).unwrap_or(0)
}

/// One binding over vectors side by side in one buffer ([`GpuVector::group`]) and each one's
/// first word in it.
fn vectors_side_by_side<'v>(
    vectors: &[&'v GpuVector],
) -> Option<(wgpu::BufferBinding<'v>, Vec<u32>)> {
    let (first, last) = (vectors.first()?, vectors.last()?);
    let same = vectors.iter().all(|v| v.buffer == first.buffer);
    if !same
        || !vectors.windows(2).all(|pair| pair[0].offset + pair[0].len as u64 * 4 <= pair[1].offset)
    {
        return None;
    }
    let bases = vectors.iter().map(|v| ((v.offset - first.offset) / 4) as u32).collect();
    let binding = wgpu::BufferBinding {
        buffer: &first.buffer,
        offset: first.offset,
        size: wgpu::BufferSize::new(last.offset + last.len.max(1) as u64 * 4 - first.offset),
    };
    Some((binding, bases))
}

/// The products of `x` (normed by `norm` and biased by `biases`: decode steps only), one kernel
/// per run of matrices lying side by side, one per matrix otherwise.
fn products_of(
    pass: &mut GpuPass<'_>,
    products: &mut [(&GpuMatrix, &mut GpuActivations)],
    x: &GpuActivations,
    norm: Norm<'_>,
    biases: Option<&[&GpuVector]>,
) -> Result<()> {
    for (weight, out) in products.iter() {
        check_shapes(weight, x, out)?;
    }
    let mut done = 0;
    while done < products.len() {
        let rest = &mut products[done..];
        let run_biases = |n: usize| biases.map(|b| &b[done..done + n]);
        // The longest run (up to three) from the first product that one kernel can take.
        let fused = (2..=rest.len().min(3)).rev().find_map(|n| {
            let matrices: Vec<&GpuMatrix> = rest[..n].iter().map(|(w, _)| *w).collect();
            side_by_side(&matrices).filter(|_| is_decode(x)).map(|shared| (n, shared))
        });
        let taken = match fused {
            Some((n, (binding, bases))) => {
                let (run, _) = rest.split_at_mut(n);
                let bias = run_biases(n).map(|b| (b, vectors_side_by_side(b)));
                let fused_bias = bias.as_ref().and_then(|(_, shared)| shared.clone());
                multi_product(pass, run, x, (binding, &bases), norm, fused_bias)?;
                // Biases that do not lie side by side are added after.
                if let Some((b, None)) = bias {
                    for ((_, out), bias) in run.iter_mut().zip(b) {
                        super::elementwise::add_bias(pass, out, bias)?;
                    }
                }
                n
            }
            None => {
                let (weight, out) = &mut rest[0];
                let bias = run_biases(1).map(|b| b[0]);
                let shape = matvec_shape(pass, weight);
                product(pass, weight, x, out, shape, Output::Store, norm, bias)?;
                1
            }
        };
        done += taken;
    }
    Ok(())
}

/// The products of two or three matrices of one format lying side by side in `binding`, at
/// words `bases`, in one dispatch.
fn multi_product(
    pass: &mut GpuPass<'_>,
    products: &mut [(&GpuMatrix, &mut GpuActivations)],
    x: &GpuActivations,
    (binding, bases): (wgpu::BufferBinding<'_>, &[u32]),
    norm: Norm<'_>,
    bias: Option<(wgpu::BufferBinding<'_>, Vec<u32>)>,
) -> Result<()> {
    let shape = matvec_shape(pass, products[0].0);
    let (variant, defines): (&str, &[&'static str]) = if products.len() == 3 {
        ("_multi3", &["MULTI", "OUTS3"])
    } else {
        ("_multi2", &["MULTI"])
    };
    let (mut variant, mut defines) = with_norm(variant, defines, norm);
    if bias.is_some() {
        variant += "_bias";
        defines.push("BIAS");
    }
    let (norm_weights, eps) = norm_binding(norm, x)?;
    let tokens = x.num_rows.next_power_of_two();
    let format = products[0].0.format.define;
    let kernel = matvec_kernel(pass, format, tokens, shape, &variant, &defines)?;
    let rows: Vec<usize> = products.iter().map(|(m, _)| m.num_rows).collect();
    let total: usize = rows.iter().sum();
    let params = Params {
        num_rows: total as u32,
        row_length: products[0].0.row_length as u32,
        num_tokens: x.num_rows as u32,
        rows0: rows[0] as u32,
        rows1: rows[1] as u32,
        base0: bases[0],
        base1: bases[1],
        base2: bases.get(2).copied().unwrap_or(0),
        eps,
        bias0: bias_base(&bias, 0),
        bias1: bias_base(&bias, 1),
        bias2: bias_base(&bias, 2),
        ..Params::default()
    };
    let mut buffers = vec![binding, x.binding()];
    buffers.extend(products.iter().map(|(_, out)| out.binding()));
    buffers.extend(norm_weights);
    buffers.extend(bias.map(|(binding, _)| binding));
    pass.dispatch(&kernel, &params, &buffers, grid(total.div_ceil(shape.rows_per_group()) as u32))
}

/// `gate_out = activation(x · gateᵀ) · (x · upᵀ)`: one kernel when gate and up lie side by
/// side and the step is a decode, else two products and the element-wise activation.
pub(crate) fn gated_matmul(
    pass: &mut GpuPass<'_>,
    gate: &GpuMatrix,
    up: &GpuMatrix,
    x: &GpuActivations,
    activation: HiddenActivation,
    gate_out: &mut GpuActivations,
    up_out: &mut GpuActivations,
) -> Result<()> {
    check_shapes(gate, x, gate_out)?;
    check_shapes(up, x, up_out)?;
    if !gated_product(pass, (gate, up), x, activation, gate_out, None)? {
        matmul_many(pass, &mut [(gate, &mut *gate_out), (up, &mut *up_out)], x)?;
        super::elementwise::gated_activation(pass, gate_out, up_out, activation)?;
    }
    Ok(())
}

/// [`gated_matmul`] of `rms_norm(x) · norm`: for a decode step the norm is folded into the
/// kernel (`normed` is left as it was), else `normed` takes the norm first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn normed_gated_matmul(
    pass: &mut GpuPass<'_>,
    x: &GpuActivations,
    (norm, eps): (&GpuVector, f32),
    normed: &mut GpuActivations,
    (gate, up): (&GpuMatrix, &GpuMatrix),
    activation: HiddenActivation,
    gate_out: &mut GpuActivations,
    up_out: &mut GpuActivations,
) -> Result<()> {
    check_shapes(gate, x, gate_out)?;
    check_shapes(up, x, up_out)?;
    if gated_product(pass, (gate, up), x, activation, gate_out, Some((norm, eps)))? {
        return Ok(());
    }
    super::norm::rms_norm(pass, x, Rows::All, norm, eps, normed)?;
    gated_matmul(pass, gate, up, normed, activation, gate_out, up_out)
}

/// The fused gate/up kernel when gate and up lie side by side and `x` is a decode step's;
/// `false` (nothing recorded) otherwise.
fn gated_product(
    pass: &mut GpuPass<'_>,
    (gate, up): (&GpuMatrix, &GpuMatrix),
    x: &GpuActivations,
    activation: HiddenActivation,
    gate_out: &mut GpuActivations,
    norm: Norm<'_>,
) -> Result<bool> {
    let Some((binding, bases)) = side_by_side(&[gate, up]) else { return Ok(false) };
    if gate.num_rows != up.num_rows || !is_decode(x) {
        return Ok(false);
    }
    let shape = matvec_shape(pass, gate);
    let (variant, defines): (&str, &[&'static str]) = match activation {
        HiddenActivation::Silu => ("_swiglu", &["GATED", "SILU"]),
        HiddenActivation::GeluTanh => ("_geglu", &["GATED"]),
        // Not fused: the separate products and the element-wise kernel.
        HiddenActivation::SwigluOai => return Ok(false),
    };
    let (variant, defines) = with_norm(variant, defines, norm);
    let (norm_weights, eps) = norm_binding(norm, x)?;
    let tokens = x.num_rows.next_power_of_two();
    let kernel = matvec_kernel(pass, gate.format.define, tokens, shape, &variant, &defines)?;
    let params = Params {
        num_rows: gate.num_rows as u32,
        row_length: gate.row_length as u32,
        num_tokens: x.num_rows as u32,
        out_width: gate_out.width as u32,
        base0: bases[0],
        base1: bases[1],
        eps,
        ..Params::default()
    };
    let mut buffers = vec![binding, x.binding(), gate_out.binding()];
    buffers.extend(norm_weights);
    let groups = grid(gate.num_rows.div_ceil(shape.rows) as u32);
    pass.dispatch(&kernel, &params, &buffers, groups)?;
    Ok(true)
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

    /// A seeded matrix of `ty` on the device, with its values as the CPU dequantizes them.
    fn seeded_matrix(
        backend: &GpuBackend,
        ty: GgmlType,
        num_rows: usize,
        row_length: usize,
        seed: u64,
    ) -> (GpuMatrix, Vec<f32>) {
        let data = bytes(ty, num_rows, row_length, seed);
        let w = dequantized(ty, &data, num_rows * row_length);
        (GpuMatrix::from_bytes(backend, "w", ty, &data, num_rows, row_length).unwrap(), w)
    }

    /// Asserts that `got` is `x · wᵀ` within [`TOLERANCE`], naming the case `what`.
    fn assert_product(got: &[f32], w: &[f32], x: &[f32], num_rows: usize, what: &str) {
        let expected = reference(w, x, num_rows, w.len() / num_rows);
        let error = relative_error(got, &expected);
        assert!(error < TOLERANCE, "{what}: relative error {error}");
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
        // The device's kernels (subgroup reductions where it has them: lavapipe's subgroups
        // are 8 wide), then the portable ones.
        let portable = GpuBackend::portable(backend.context().clone());
        for backend in [backend, &portable] {
            check_every_shape(backend);
        }
    }

    fn check_every_shape(backend: &GpuBackend) {
        // 256 values: 8 units, fewer than most shapes' lanes; 1056: 33 units, one past 32.
        for (seed, (ty, num_rows, row_length)) in
            [(GgmlType::Q4_K, 11, 1024), (GgmlType::Q8_0, 13, 1056), (GgmlType::Q6_K, 9, 256)]
                .into_iter()
                .enumerate()
        {
            let (matrix, w) = seeded_matrix(backend, ty, num_rows, row_length, 80 + seed as u64);
            for shape in MATVEC_SHAPES {
                for num_tokens in [1, 3, 8] {
                    let x = values(300 + num_tokens as u64, num_tokens * row_length);
                    let got = shaped_product(backend, &matrix, &x, num_tokens, shape);
                    assert_product(
                        &got,
                        &w,
                        &x,
                        num_rows,
                        &format!("{ty:?} {shape:?} × {num_tokens}"),
                    );
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
            let (matrix, w) = seeded_matrix(backend, ty, num_rows, row_length, seed as u64);
            // 1 and 3 tokens take the matrix-vector kernel, 40 and 70 the tiled one (70: two
            // token tiles, the second partial).
            for num_tokens in [1, 3, 8, 40, 70] {
                let x = values(100 + num_tokens as u64, num_tokens * row_length);
                let got = product(backend, &matrix, &x, num_tokens);
                assert_product(&got, &w, &x, num_rows, &format!("{ty:?}, {num_tokens} tokens"));
            }
            // Each walk's decode kernel (each format's chunks).
            for walk in [Walk::Quads, Walk::Units, Walk::Chunks] {
                let shape = MatvecShape { rows: 4, lanes: 32, walk, rows_per_thread: 1 };
                for num_tokens in [1, 3] {
                    let x = values(150 + num_tokens as u64, num_tokens * row_length);
                    let got = shaped_product(backend, &matrix, &x, num_tokens, shape);
                    let what = format!("{ty:?}, {num_tokens} tokens by {walk:?}");
                    assert_product(&got, &w, &x, num_rows, &what);
                }
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
            let (matrix, w) = seeded_matrix(backend, ty, num_rows, row_length, 60 + seed as u64);
            for num_tokens in [1, 5, 40] {
                let x = values(200 + num_tokens as u64, num_tokens * row_length);
                let got = product(backend, &matrix, &x, num_tokens);
                let what = format!("{ty:?} rows of {row_length}, {num_tokens} tokens");
                assert_product(&got, &w, &x, num_rows, &what);
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

    /// Matrices of `(type, rows)` with rows of `row_length` values loaded as one group, with
    /// their dequantized values.
    fn group(
        backend: &GpuBackend,
        matrices: &[(GgmlType, usize)],
        row_length: usize,
    ) -> Vec<(GpuMatrix, Vec<f32>)> {
        let mut writer = uma_gguf::GgufWriter::new();
        let mut values = Vec::new();
        for (i, &(ty, num_rows)) in matrices.iter().enumerate() {
            let data = bytes(ty, num_rows, row_length, 40 + i as u64);
            values.push(dequantized(ty, &data, num_rows * row_length));
            let shape = [row_length as u64, num_rows as u64];
            writer.add_tensor(&format!("m{i}.weight"), ty, &shape, data).unwrap();
        }
        let file = std::sync::Arc::new(uma_gguf::GgufFile::from_bytes(writer.to_bytes()).unwrap());
        let views: Vec<_> =
            (0..matrices.len()).map(|i| file.tensor(&format!("m{i}.weight")).unwrap()).collect();
        let usage = uma_model::backend::MatrixUse::Products;
        let matrices = GpuMatrix::load_group(backend, &file, &views, usage).unwrap();
        matrices.into_iter().zip(values).collect()
    }

    /// The backend with each default shape and a quad walk of one row per thread: the fused
    /// kernels under every walk, whichever the device takes by default.
    fn every_walk(backend: &GpuBackend) -> Vec<GpuBackend> {
        let one_row = MatvecShape { rows: 4, lanes: 64, walk: Walk::Quads, rows_per_thread: 1 };
        [SOFTWARE_SHAPE, HARDWARE_SHAPE, HARDWARE_K_SHAPE, one_row]
            .map(|shape| backend.clone().with_matvec_shape(shape))
            .to_vec()
    }

    #[test]
    fn matvec_shapes_parse_only_when_the_kernel_can_take_them() {
        let chunks = MatvecShape { rows: 8, lanes: 32, walk: Walk::Chunks, rows_per_thread: 1 };
        assert_eq!(MatvecShape::parse("chunks,8,32,1"), Some(chunks));
        assert_eq!(MatvecShape::parse(" chunks, 8, 32, 1 "), Some(chunks));
        for bad in [
            "",
            "chunks,8,32",
            "rows,8,32,1",
            "chunks,0,32,1",
            "chunks,8,24,1",
            "chunks,8,4,1",
            "chunks,16,32,1",
            "chunks,8,32,5",
            "chunks,8,32,1,1",
            "chunks,-1,32,1",
        ] {
            assert_eq!(MatvecShape::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn products_of_a_group_in_one_kernel_match_the_cpu() {
        let Some(backend) = backend() else { return };
        for backend in &every_walk(backend) {
            let row_length = 256;
            let (q8, q5, q6) = (GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q6_K);
            // Three of one format (one kernel), two, and a run of two then one of another format.
            for rows in [
                &[(q8, 37), (q8, 13), (q8, 13)][..],
                &[(q8, 20), (q8, 9)],
                &[(q5, 20), (q5, 9), (q6, 9)],
            ] {
                let group = group(backend, rows, row_length);
                let matrices: Vec<&GpuMatrix> = group.iter().map(|(m, _)| m).collect();
                assert!(side_by_side(&matrices[..2]).is_some(), "{rows:?} share a buffer");
                for num_tokens in [1, 3, 8, 12] {
                    let x = values(500 + num_tokens as u64, num_tokens * row_length);
                    let got = with_pass(backend, num_tokens, 0, |pass| {
                        let gx = pass.upload_activations(&x, num_tokens, row_length);
                        let mut outs: Vec<_> = group
                            .iter()
                            .map(|(m, _)| GpuBackend::activations(pass, num_tokens, m.num_rows))
                            .collect();
                        let mut products: Vec<_> =
                            group.iter().map(|(m, _)| m).zip(outs.iter_mut()).collect();
                        matmul_many(pass, &mut products, &gx).unwrap();
                        outs.iter().map(|out| read(pass, out)).collect::<Vec<_>>()
                    });
                    for ((matrix, w), got) in group.iter().zip(got) {
                        let what = format!("{rows:?} × {num_tokens}");
                        assert_product(&got, w, &x, matrix.num_rows, &what);
                    }
                }
            }
        }
    }

    #[test]
    fn gated_products_and_residual_products_in_one_kernel_match_the_cpu() {
        use uma_model::layers::gelu_ggml;
        let Some(backend) = backend() else { return };
        for backend in &every_walk(backend) {
            let (rows, row_length) = (45, 512);
            let group =
                group(backend, &[(GgmlType::Q8_0, rows), (GgmlType::Q8_0, rows)], row_length);
            let [(gate, wg), (up, wu)] = &group[..] else { unreachable!() };
            let activations =
                [HiddenActivation::Silu, HiddenActivation::GeluTanh, HiddenActivation::SwigluOai];
            for activation in activations {
                for num_tokens in [1, 5, 20] {
                    let x = values(600 + num_tokens as u64, num_tokens * row_length);
                    let (g, u) =
                        (reference(wg, &x, rows, row_length), reference(wu, &x, rows, row_length));
                    let expected: Vec<f32> = g
                        .iter()
                        .zip(&u)
                        .map(|(&g, &u)| match activation {
                            HiddenActivation::Silu => g / (1.0 + (-g).exp()) * u,
                            HiddenActivation::GeluTanh => gelu_ggml(g) * u,
                            HiddenActivation::SwigluOai => uma_model::layers::swiglu_oai(g, u),
                        })
                        .collect();
                    let got = with_pass(backend, num_tokens, 0, |pass| {
                        let gx = pass.upload_activations(&x, num_tokens, row_length);
                        let mut gate_out = GpuBackend::activations(pass, num_tokens, rows);
                        let mut up_out = GpuBackend::activations(pass, num_tokens, rows);
                        gated_matmul(pass, gate, up, &gx, activation, &mut gate_out, &mut up_out)
                            .unwrap();
                        read(pass, &gate_out)
                    });
                    // GELU's f16 rounding of the gate: one f16 step of the gate at most.
                    let error = relative_error(&got, &expected);
                    assert!(error < 1e-3, "{activation:?} × {num_tokens}: {error}");
                }
            }
            // `acc += x · gateᵀ` for a decode step and a prefill.
            for num_tokens in [2, 20] {
                let x = values(700 + num_tokens as u64, num_tokens * row_length);
                let start = values(800, num_tokens * rows);
                let product = reference(wg, &x, rows, row_length);
                let expected: Vec<f32> = start.iter().zip(&product).map(|(a, b)| a + b).collect();
                let got = with_pass(backend, num_tokens, 0, |pass| {
                    let gx = pass.upload_activations(&x, num_tokens, row_length);
                    let mut acc = pass.upload_activations(&start, num_tokens, rows);
                    matmul_add(pass, gate, &gx, &mut acc).unwrap();
                    read(pass, &acc)
                });
                let error = relative_error(&got, &expected);
                assert!(error < TOLERANCE, "accumulated × {num_tokens}: {error}");
            }
        }
    }

    #[test]
    fn a_norm_folded_into_the_products_matches_norming_first() {
        let Some(backend) = backend() else { return };
        for backend in &every_walk(backend) {
            let row_length = 256;
            let (q8, q5, q6) = (GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q6_K);
            let qkv = group(backend, &[(q5, 20), (q5, 9), (q6, 9)], row_length);
            let gate_up = group(backend, &[(q8, 30), (q8, 30)], row_length);
            let norm_weights = values(900, row_length);
            let eps = 1e-6;
            let bias_values: Vec<Vec<f32>> =
                qkv.iter().map(|(m, _)| values(950 + m.num_rows as u64, m.num_rows)).collect();
            // Biases side by side (in the kernels) and apart (added after).
            let grouped = GpuVector::group(backend, "biases", &bias_values).unwrap();
            let apart: Vec<GpuVector> = bias_values
                .iter()
                .map(|b| {
                    GpuVector::new(
                        backend.upload("bias", bytemuck::cast_slice(b)).unwrap(),
                        b.len(),
                    )
                })
                .collect();
            // 3 tokens fold the norm into the kernels, 12 (a prefill) norm first.
            for (num_tokens, biases) in [(3, &grouped), (3, &apart), (12, &grouped)] {
                let x: Vec<f32> = values(901 + num_tokens as u64, num_tokens * row_length)
                    .iter()
                    .map(|v| 3.0 * v)
                    .collect();
                let mut normed_x = x.clone();
                for row in normed_x.chunks_mut(row_length) {
                    uma_model::layers::rms_norm_in_place(row, &norm_weights, eps);
                }
                let got = with_pass(backend, num_tokens, 0, |pass| {
                    let gx = pass.upload_activations(&x, num_tokens, row_length);
                    let buffer =
                        pass.backend().upload("norm", bytemuck::cast_slice(&norm_weights)).unwrap();
                    let norm = GpuVector::new(buffer, row_length);
                    let mut normed = GpuBackend::activations(pass, num_tokens, row_length);
                    let mut outs: Vec<_> = qkv
                        .iter()
                        .map(|(m, _)| GpuBackend::activations(pass, num_tokens, m.num_rows))
                        .collect();
                    let mut products: Vec<_> =
                        qkv.iter().map(|(m, _)| m).zip(outs.iter_mut()).collect();
                    let biases: Vec<&GpuVector> = biases.iter().collect();
                    let biases = Some(&biases[..]);
                    normed_matmul_many(pass, &gx, (&norm, eps), &mut normed, &mut products, biases)
                        .unwrap();
                    let [(gate, _), (up, _)] = &gate_up[..] else { unreachable!() };
                    let mut gate_out = GpuBackend::activations(pass, num_tokens, 30);
                    let mut up_out = GpuBackend::activations(pass, num_tokens, 30);
                    let activation = HiddenActivation::Silu;
                    normed_gated_matmul(
                        pass,
                        &gx,
                        (&norm, eps),
                        &mut normed,
                        (gate, up),
                        activation,
                        &mut gate_out,
                        &mut up_out,
                    )
                    .unwrap();
                    outs.push(gate_out);
                    outs.iter().map(|out| read(pass, out)).collect::<Vec<_>>()
                });
                for (((matrix, w), got), bias) in qkv.iter().zip(&got).zip(&bias_values) {
                    let mut expected = reference(w, &normed_x, matrix.num_rows, row_length);
                    for (i, e) in expected.iter_mut().enumerate() {
                        *e += bias[i % bias.len()];
                    }
                    let error = relative_error(got, &expected);
                    assert!(error < TOLERANCE, "{} × {num_tokens}: {error}", matrix.name);
                }
                let (g, u) = (
                    reference(&gate_up[0].1, &normed_x, 30, row_length),
                    reference(&gate_up[1].1, &normed_x, 30, row_length),
                );
                let expected: Vec<f32> =
                    g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
                let error = relative_error(&got[3], &expected);
                assert!(error < TOLERANCE, "gated × {num_tokens}: {error}");
            }
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
        // A Llama 8B feed-forward matrix, Qwen2.5 1.5B's gate and down matrices, and a Qwen
        // 0.5B one (decode of small models: few blocks per row).
        for (num_rows, row_length) in [(14336, 4096), (8960, 1536), (1536, 8960), (4864, 896)] {
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
                for num_tokens in [1, 8] {
                    for shape in MATVEC_SHAPES {
                        let seconds = seconds_per_product(backend, &matrix, num_tokens, shape);
                        let MatvecShape { rows, lanes, walk, rows_per_thread } = shape;
                        // The shape as UMA_GPU_MATVEC takes it (device-run.sh picks the best).
                        println!(
                            "{name} × {num_tokens} tokens, {rows}×{rows_per_thread} rows × {lanes} \
                             lanes by {}: {:.1} µs, {:.0} GB/s, UMA_GPU_MATVEC={},{rows},{lanes},\
                             {rows_per_thread}",
                            walk.name(),
                            seconds * 1e6,
                            data.len() as f64 / seconds / 1e9,
                            walk.name(),
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
