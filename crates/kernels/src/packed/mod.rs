//! Matrix products over weights repacked into interleaved row groups ([`layout`]): GEMV for
//! decode and GEMM for prefill and batched decode with one set of kernels.
//!
//! A weight matrix is repacked once at load ([`PackedMatrix::pack`]); each product quantizes its
//! activation rows once ([`PackedActivations`]) and runs one kernel per row group and token
//! block, the groups spread over threads. The kernel is chosen once per process from CPU
//! features ([`Isa::detected`]): AVX-512 VNNI, AVX2, NEON dot product, or the portable scalar
//! kernel, which every SIMD path matches bit for bit. Float weights (F32, F16, BF16) take the
//! f32 activations as they are, with fused multiply-adds in one fixed order.

#![allow(unsafe_code)]

mod activations;
mod buffer;
pub mod layout;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;
use std::sync::{Arc, OnceLock};

pub use activations::PackedActivations;
pub use layout::{ActivationFormat, PackedFormat, ROWS};

use crate::cpu::CpuFeatures;
use crate::error::{KernelError, Result};
use crate::parallel::{self, for_each_task, SharedSlice};
use buffer::AlignedBytes;

/// An instruction set the packed kernels have a path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no SIMD intrinsics.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI (on 256-bit vectors).
    Avx512Vnni,
    /// aarch64 NEON with the dot-product instructions (`sdot`; Apple M1 and later).
    NeonDotprod,
}

impl Isa {
    /// The best path this CPU supports, detected once.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| Isa::available().last().copied().unwrap_or(Isa::Scalar))
    }

    /// Every path this CPU can run, from the portable one to the best.
    pub fn available() -> Vec<Isa> {
        let cpu = CpuFeatures::detected();
        let mut isas = vec![Isa::Scalar];
        if cpu.avx2 {
            isas.push(Isa::Avx2);
        }
        if cpu.avx512_vnni {
            isas.push(Isa::Avx512Vnni);
        }
        if cpu.neon_dotprod {
            isas.push(Isa::NeonDotprod);
        }
        isas
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::NeonDotprod => "neon-dotprod",
        }
    }
}

/// `out[t][r] = row r of the group · token first_token + t`, for `out.len()` tokens.
type GroupDot = unsafe fn(PackedFormat, &[u8], &PackedActivations, usize, &mut [[f32; ROWS]]);

/// The scalar kernel behind the common signature.
///
/// # Safety
/// None beyond the signature: it is safe code.
unsafe fn scalar_group_dot(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    scalar::group_dot(format, group, acts, first_token, out);
}

fn kernel(isa: Isa) -> Result<GroupDot> {
    if !Isa::available().contains(&isa) {
        return Err(KernelError::UnsupportedType {
            ty: uma_gguf::GgmlType::F32,
            operation: "a kernel path this CPU does not support",
        });
    }
    Ok(match isa {
        Isa::Scalar => scalar_group_dot,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::group_dot_avx2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::group_dot_avx512_vnni,
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512Vnni => unreachable!("not in Isa::available() off x86-64"),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod => neon::group_dot_neon_dotprod,
        #[cfg(not(target_arch = "aarch64"))]
        Isa::NeonDotprod => unreachable!("not in Isa::available() off aarch64"),
    })
}

/// Tokens per block of the GEMM loop: a block's activations stay in L2 while a thread's row
/// groups stream past them.
const TOKEN_BLOCK: usize = 64;

/// A weight matrix in the interleaved layout, owned (it replaces the mapped tensor's pages).
pub struct PackedMatrix {
    format: PackedFormat,
    num_rows: usize,
    row_length: usize,
    /// The buffer holding this matrix, alone or with the other experts of its stacked tensor.
    storage: Arc<AlignedBytes>,
    /// Where in `storage`: [ceil(num_rows / 8) groups][row_length / block blocks][group-block
    /// bytes].
    bytes: Range<usize>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("format", &self.format)
            .field("num_rows", &self.num_rows)
            .field("row_length", &self.row_length)
            .finish_non_exhaustive()
    }
}

impl PackedMatrix {
    /// Repacks `num_rows × row_length` weights of type `format` from ggml blocks (row-major),
    /// in parallel over row groups.
    ///
    /// Errors: rows that are not whole blocks or bytes that do not match the shape.
    pub fn pack(
        format: PackedFormat,
        bytes: &[u8],
        num_rows: usize,
        row_length: usize,
    ) -> Result<PackedMatrix> {
        let mut matrices = Self::pack_stacked(format, bytes, 1, num_rows, row_length)?;
        Ok(matrices.pop().expect("one matrix"))
    }

    /// Repacks `count` matrices stored one after the other in `bytes` (a stacked expert tensor,
    /// `[row_length, num_rows, count]`) into one buffer: a matrix of a few MB alone would be
    /// rounded up to whole 2 MiB huge pages (a 4.4 MB gpt-oss expert to 6 MiB, +43%); together
    /// only the last page is partly empty.
    ///
    /// Errors: as [`Self::pack`], or bytes that are not `count` equal matrices.
    pub fn pack_stacked(
        format: PackedFormat,
        bytes: &[u8],
        count: usize,
        num_rows: usize,
        row_length: usize,
    ) -> Result<Vec<PackedMatrix>> {
        if count == 0 {
            let what = "stacked matrices (at least one)";
            return Err(KernelError::LengthMismatch { what, expected: 1, actual: 0 });
        }
        if !bytes.len().is_multiple_of(count) {
            return Err(KernelError::LengthMismatch {
                what: "stacked matrices' bytes (a multiple of their count)",
                expected: bytes.len().next_multiple_of(count),
                actual: bytes.len(),
            });
        }
        let share = bytes.len() / count;
        let (len, stride) = Self::packed_len_and_stride(format, num_rows, row_length);
        let mut storage = AlignedBytes::zeroed(count * stride);
        for e in 0..count {
            let source = &bytes[e * share..(e + 1) * share];
            let dst = &mut storage.as_mut_slice()[e * stride..e * stride + len];
            Self::pack_into(format, source, num_rows, row_length, dst)?;
        }
        let storage = Arc::new(storage);
        Ok((0..count)
            .map(|e| PackedMatrix {
                format,
                num_rows,
                row_length,
                storage: storage.clone(),
                bytes: e * stride..e * stride + len,
            })
            .collect())
    }

    /// Packs one matrix into `dst` (its packed length), in parallel over row groups.
    fn pack_into(
        format: PackedFormat,
        bytes: &[u8],
        num_rows: usize,
        row_length: usize,
        dst: &mut [u8],
    ) -> Result<()> {
        layout::check_source(format, bytes, num_rows, row_length)?;
        let num_groups = num_rows.div_ceil(ROWS);
        let group_bytes = row_length / format.block_elements() * format.group_block_bytes();
        let groups_per_task = num_groups.div_ceil(parallel::num_threads() * 8).max(1);
        let num_tasks = num_groups.div_ceil(groups_per_task);
        let shared = SharedSlice::new(dst);
        let failed = std::sync::Mutex::new(None);
        for_each_task(num_tasks, &|task| {
            let first = task * groups_per_task;
            let count = groups_per_task.min(num_groups - first);
            // SAFETY: each task writes its own groups.
            let dst = unsafe { shared.slice_mut(first * group_bytes, count * group_bytes) };
            if let Err(error) = layout::pack_groups(format, bytes, num_rows, row_length, first, dst)
            {
                *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
            }
        });
        match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The format.
    pub fn format(&self) -> PackedFormat {
        self.format
    }

    /// Output features.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Input features.
    pub fn row_length(&self) -> usize {
        self.row_length
    }

    /// Bytes held.
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes of memory `count` packed matrices of this shape take, packed together as
    /// [`Self::pack_stacked`] packs them (one matrix: [`Self::pack`]), with the allocation's
    /// rounding: what a planner must count.
    pub fn allocated_bytes(
        format: PackedFormat,
        count: usize,
        num_rows: usize,
        row_length: usize,
    ) -> usize {
        let (_, stride) = Self::packed_len_and_stride(format, num_rows, row_length);
        buffer::allocation_size(count * stride)
    }

    /// A packed matrix's bytes, and the distance between stacked ones (cache-line aligned).
    fn packed_len_and_stride(
        format: PackedFormat,
        num_rows: usize,
        row_length: usize,
    ) -> (usize, usize) {
        let group_bytes = row_length / format.block_elements() * format.group_block_bytes();
        let len = num_rows.div_ceil(ROWS) * group_bytes;
        (len, len.next_multiple_of(64))
    }

    /// The packed groups.
    fn data(&self) -> &[u8] {
        &self.storage.as_slice()[self.bytes.clone()]
    }

    /// `out[t, r] = Σ_k W[r, k] · x[t, k]` (`out` is `[num_tokens, num_rows]`), with the best
    /// kernel this CPU has.
    pub fn matmul(&self, x: &PackedActivations, out: &mut [f32]) -> Result<()> {
        self.matmul_with(Isa::detected(), x, out)
    }

    /// [`matmul`](Self::matmul) with a chosen kernel path (tests and benchmarks).
    pub fn matmul_with(&self, isa: Isa, x: &PackedActivations, out: &mut [f32]) -> Result<()> {
        matmul_many_with(isa, &mut [Product { matrix: self, out }], x)
    }

    /// Checks that `x` and an output of `out_len` values fit this matrix.
    fn check(&self, x: &PackedActivations, out_len: usize) -> Result<()> {
        if x.format() != Some(self.format.activation_format()) {
            return Err(KernelError::UnsupportedType {
                ty: self.format.ggml_type(),
                operation: "matmul with activations quantized for another weight type",
            });
        }
        if x.row_length() != self.row_length {
            return Err(KernelError::LengthMismatch {
                what: "activation row",
                expected: self.row_length,
                actual: x.row_length(),
            });
        }
        if out_len != x.num_tokens() * self.num_rows {
            return Err(KernelError::LengthMismatch {
                what: "matmul output",
                expected: x.num_tokens() * self.num_rows,
                actual: out_len,
            });
        }
        Ok(())
    }
}

/// One matrix of [`matmul_many`] and where its product goes (`[num_tokens, num_rows]`).
#[derive(Debug)]
pub struct Product<'a> {
    pub matrix: &'a PackedMatrix,
    pub out: &'a mut [f32],
}

/// Several products of the same activations (q, k and v; gate and up) in one parallel region:
/// one barrier instead of one per matrix, and the threads balance over all their rows.
pub fn matmul_many(products: &mut [Product<'_>], x: &PackedActivations) -> Result<()> {
    matmul_many_with(Isa::detected(), products, x)
}

/// [`matmul_many`] with a chosen kernel path.
pub fn matmul_many_with(
    isa: Isa,
    products: &mut [Product<'_>],
    x: &PackedActivations,
) -> Result<()> {
    let jobs = products.iter_mut().map(|p| (p.matrix, x, &mut *p.out));
    run_products(isa, jobs)
}

/// One product of [`matmul_each`]: `out = x · matrixᵀ` with activations of its own.
#[derive(Debug)]
pub struct ProductOf<'a> {
    pub matrix: &'a PackedMatrix,
    pub x: &'a PackedActivations,
    pub out: &'a mut [f32],
}

/// Several products, each of its own activations, in one parallel region (llama.cpp's
/// `mul_mat_id`: the experts a step selected, each on its tokens; DeepSeek's per-head latent
/// projections). Each result is bit-identical to the product computed alone.
pub fn matmul_each(products: &mut [ProductOf<'_>]) -> Result<()> {
    matmul_each_with(Isa::detected(), products)
}

/// [`matmul_each`] with a chosen kernel path.
pub fn matmul_each_with(isa: Isa, products: &mut [ProductOf<'_>]) -> Result<()> {
    let jobs = products.iter_mut().map(|p| (p.matrix, p.x, &mut *p.out));
    run_products(isa, jobs)
}

/// The products `(matrix, x, out)` in one parallel region over all their row groups.
fn run_products<'a>(
    isa: Isa,
    products: impl Iterator<Item = (&'a PackedMatrix, &'a PackedActivations, &'a mut [f32])>,
) -> Result<()> {
    let group_dot = kernel(isa)?;
    // Every matrix's row groups, one after another, in one index space.
    struct Job<'a> {
        matrix: &'a PackedMatrix,
        x: &'a PackedActivations,
        first_group: usize,
        num_groups: usize,
        out: SharedSlice<'a, f32>,
    }
    let mut jobs = Vec::with_capacity(products.size_hint().0);
    let (mut total_groups, mut max_tokens) = (0, 0);
    for (matrix, x, out) in products {
        matrix.check(x, out.len())?;
        if x.num_tokens() == 0 {
            continue;
        }
        let num_groups = matrix.num_rows.div_ceil(ROWS);
        max_tokens = max_tokens.max(x.num_tokens());
        jobs.push(Job {
            matrix,
            x,
            first_group: total_groups,
            num_groups,
            out: SharedSlice::new(out),
        });
        total_groups += num_groups;
    }
    if total_groups == 0 {
        return Ok(());
    }
    // Several tasks per thread so that uneven progress balances; contiguous groups per task so
    // that each thread streams its part of the weights. Decode streams weights from memory and
    // each task restarts the prefetchers, so it takes fewer, longer tasks (measured: Qwen 1.5B
    // decode ~28 tok/s with 4 per thread, ~30 with 2).
    let tasks_per_thread = if max_tokens <= 4 { 2 } else { 4 };
    let groups_per_task = total_groups.div_ceil(parallel::num_threads() * tasks_per_thread).max(1);
    let num_tasks = total_groups.div_ceil(groups_per_task);
    for_each_task(num_tasks, &|task| {
        let start = task * groups_per_task;
        let end = (start + groups_per_task).min(total_groups);
        let mut tile = [[0.0f32; ROWS]; TOKEN_BLOCK];
        for first_token in (0..max_tokens).step_by(TOKEN_BLOCK) {
            for job in &jobs {
                let job_end = job.first_group + job.num_groups;
                let (from, to) = (start.max(job.first_group), end.min(job_end));
                let num_tokens = job.x.num_tokens();
                if from >= to || first_token >= num_tokens {
                    continue;
                }
                let tokens = TOKEN_BLOCK.min(num_tokens - first_token);
                let matrix = job.matrix;
                let num_rows = matrix.num_rows;
                let data = matrix.data();
                let group_bytes = data.len() / job.num_groups;
                for g in from - job.first_group..to - job.first_group {
                    let group = &data[g * group_bytes..(g + 1) * group_bytes];
                    // SAFETY: `kernel` returned a path this CPU supports; the shapes of
                    // `group`, `x` and the tile were checked above.
                    unsafe {
                        group_dot(matrix.format, group, job.x, first_token, &mut tile[..tokens])
                    };
                    let rows = ROWS.min(num_rows - g * ROWS);
                    for (t, values) in tile[..tokens].iter().enumerate() {
                        let at = (first_token + t) * num_rows + g * ROWS;
                        // SAFETY: this task alone writes the rows of its groups.
                        let dst = unsafe { job.out.slice_mut(at, rows) };
                        dst.copy_from_slice(&values[..rows]);
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests;
