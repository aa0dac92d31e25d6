//! Matrix products of quantized weights with a batch of activation rows, the way ggml computes
//! them: every activation row is quantized once to the weight type's
//! [`vec_dot_type`](crate::vec_dot_type), then each output element is an integer block dot
//! product.
//!
//! Layout: a weight matrix is `[num_rows, row_length]` (ggml shape `[row_length, num_rows]`:
//! one row per output feature, rows contiguous). `y = W·x` for every token row `x`.
//!
//! This is the general path, straight from the mapped blocks, for every type with a dot
//! product. Models use the faster repacked path in [`crate::packed`], which every such type has;
//! this one serves the matrices it cannot take (float rows that are not whole groups of 8). The
//! row loop is the scalar `vec_dot` of each format, compiled a second time with AVX2 enabled on
//! x86-64 and chosen at run time; work is split over output rows on the thread pool.
//!
//! Exactness: every output element is the scalar [`crate::vec_dot`], whatever the batch size,
//! thread count or code path, so a token's results are bit-identical alone or batched.

use uma_gguf::GgmlType;

use crate::bytes::blocks_from_bytes_or_copy;
use crate::error::{KernelError, Result};
use crate::formats::mxfp4::BlockMXFP4;
use crate::formats::q2_k::BlockQ2_K;
use crate::formats::q3_k::BlockQ3_K;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4_K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5_K;
use crate::formats::q6_k::BlockQ6_K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8_K;
use crate::formats::{self, VecDot};
use crate::parallel::{for_each_task, num_threads, SharedSlice};

/// A weight matrix borrowed from tensor bytes (usually the memory-mapped file).
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    ty: GgmlType,
    data: &'a [u8], // [num_rows, row_length] in blocks of `ty`
    num_rows: usize,
    row_length: usize,
}

impl<'a> WeightMatrix<'a> {
    /// Views `data` as `num_rows` rows of `row_length` elements of type `ty`.
    ///
    /// Errors: no dot product for `ty`, rows that are not whole blocks, or a byte length that
    /// does not match.
    pub fn new(ty: GgmlType, data: &'a [u8], num_rows: usize, row_length: usize) -> Result<Self> {
        if crate::vec_dot_type(ty).is_none() {
            return Err(KernelError::UnsupportedType { ty, operation: "matmul" });
        }
        if !row_length.is_multiple_of(ty.block_size()) {
            return Err(KernelError::NotWholeBlocks {
                ty,
                num_elements: row_length,
                block_size: ty.block_size(),
            });
        }
        let expected = num_rows * (row_length / ty.block_size()) * ty.type_size();
        if data.len() != expected {
            return Err(KernelError::ByteLengthMismatch {
                ty,
                num_elements: num_rows * row_length,
                expected,
                actual: data.len(),
            });
        }
        Ok(WeightMatrix { ty, data, num_rows, row_length })
    }

    /// The weight type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// Output features.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Input features.
    pub fn row_length(&self) -> usize {
        self.row_length
    }

    /// The bytes of row `row`.
    pub fn row_bytes(&self, row: usize) -> &'a [u8] {
        let len = self.data.len() / self.num_rows.max(1);
        &self.data[row * len..(row + 1) * len]
    }
}

/// Activation rows quantized to one weight type's `vec_dot_type`, reusable across calls (the
/// buffers keep their capacity).
#[derive(Debug, Default)]
pub struct QuantizedActivations {
    ty: Option<GgmlType>,
    num_rows: usize,
    row_length: usize,
    f32: Vec<f32>,        // [num_rows, row_length] when ty is F32
    q8_0: Vec<BlockQ8_0>, // [num_rows, row_length / 32] when ty is Q8_0 (Q4_0, Q5_0, Q8_0, MXFP4)
    q8_1: Vec<BlockQ8_1>, // [num_rows, row_length / 32] when ty is Q8_1
    q8_k: Vec<BlockQ8_K>, // [num_rows, row_length / 256] when ty is Q8_K
}

impl QuantizedActivations {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The activation type held, once [`quantize_for`](Self::quantize_for) has run.
    pub fn ggml_type(&self) -> Option<GgmlType> {
        self.ty
    }

    /// Number of activation rows (tokens).
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Quantizes `x` (`[num_rows, row_length]`, row-major) for a product with weights of type
    /// `weight_type`. Rows are quantized in parallel when there are several.
    pub fn quantize_for(
        &mut self,
        weight_type: GgmlType,
        x: &[f32],
        row_length: usize,
    ) -> Result<()> {
        let ty = crate::vec_dot_type(weight_type)
            .ok_or(KernelError::UnsupportedType { ty: weight_type, operation: "matmul" })?;
        if row_length == 0 || !x.len().is_multiple_of(row_length) {
            return Err(KernelError::LengthMismatch {
                what: "activation rows",
                expected: row_length,
                actual: x.len(),
            });
        }
        self.ty = Some(ty);
        self.num_rows = x.len() / row_length;
        self.row_length = row_length;
        match ty {
            GgmlType::F32 => {
                self.f32.clear();
                self.f32.extend_from_slice(x);
                Ok(())
            }
            GgmlType::Q8_0 => quantize_rows(x, row_length, &mut self.q8_0),
            GgmlType::Q8_1 => quantize_rows(x, row_length, &mut self.q8_1),
            GgmlType::Q8_K => quantize_rows(x, row_length, &mut self.q8_k),
            _ => Err(KernelError::UnsupportedType { ty, operation: "matmul activations" }),
        }
    }
}

#[allow(unsafe_code)] // disjoint rows written from tasks
fn quantize_rows<B: formats::Quantize + Send>(
    x: &[f32],
    row_length: usize,
    out: &mut Vec<B>,
) -> Result<()> {
    let blocks_per_row = formats::num_blocks::<B>(row_length)?;
    let num_rows = x.len() / row_length;
    out.clear();
    out.resize(num_rows * blocks_per_row, B::zeroed());
    if num_rows == 1 {
        return formats::quantize_blocks(x, out);
    }
    let shared = SharedSlice::new(out);
    for_each_task(num_rows, &|t| {
        // SAFETY: each token writes its own row of blocks.
        let blocks = unsafe { shared.slice_mut(t * blocks_per_row, blocks_per_row) };
        formats::quantize_blocks(&x[t * row_length..(t + 1) * row_length], blocks)
            .expect("lengths checked by num_blocks");
    });
    Ok(())
}

/// `out[t, r] = Σ_k W[r, k] · x[t, k]` for every token row `t` of `x` and weight row `r`:
/// `out` is `[x.num_rows(), w.num_rows()]`, row-major.
///
/// Errors: activations quantized for another type, or lengths that do not agree.
pub fn matmul(w: &WeightMatrix<'_>, x: &QuantizedActivations, out: &mut [f32]) -> Result<()> {
    let expected_ty = crate::vec_dot_type(w.ty);
    if x.ty != expected_ty {
        return Err(KernelError::UnsupportedType {
            ty: x.ty.unwrap_or(GgmlType::F32),
            operation: "matmul with activations quantized for another weight type",
        });
    }
    if x.row_length != w.row_length {
        return Err(KernelError::LengthMismatch {
            what: "activation row",
            expected: w.row_length,
            actual: x.row_length,
        });
    }
    if out.len() != x.num_rows * w.num_rows {
        return Err(KernelError::LengthMismatch {
            what: "matmul output",
            expected: x.num_rows * w.num_rows,
            actual: out.len(),
        });
    }
    use GgmlType::*;
    match w.ty {
        F32 => run::<f32>(w, &x.f32, x.num_rows, out),
        F16 => run::<half::f16>(w, &x.f32, x.num_rows, out),
        BF16 => run::<half::bf16>(w, &x.f32, x.num_rows, out),
        Q4_0 => run::<BlockQ4_0>(w, &x.q8_0, x.num_rows, out),
        Q5_0 => run::<BlockQ5_0>(w, &x.q8_0, x.num_rows, out),
        Q8_0 => run::<BlockQ8_0>(w, &x.q8_0, x.num_rows, out),
        MXFP4 => run::<BlockMXFP4>(w, &x.q8_0, x.num_rows, out),
        Q4_1 => run::<BlockQ4_1>(w, &x.q8_1, x.num_rows, out),
        Q5_1 => run::<BlockQ5_1>(w, &x.q8_1, x.num_rows, out),
        Q2_K => run::<BlockQ2_K>(w, &x.q8_k, x.num_rows, out),
        Q3_K => run::<BlockQ3_K>(w, &x.q8_k, x.num_rows, out),
        Q4_K => run::<BlockQ4_K>(w, &x.q8_k, x.num_rows, out),
        Q5_K => run::<BlockQ5_K>(w, &x.q8_k, x.num_rows, out),
        Q6_K => run::<BlockQ6_K>(w, &x.q8_k, x.num_rows, out),
        Q8_K => run::<BlockQ8_K>(w, &x.q8_k, x.num_rows, out),
        ty => Err(KernelError::UnsupportedType { ty, operation: "matmul" }),
    }
}

/// Quantizes `x` for `w` into `scratch` and multiplies: [`QuantizedActivations::quantize_for`]
/// then [`matmul`].
pub fn matmul_f32(
    w: &WeightMatrix<'_>,
    x: &[f32],
    scratch: &mut QuantizedActivations,
    out: &mut [f32],
) -> Result<()> {
    scratch.quantize_for(w.ty, x, w.row_length)?;
    matmul(w, scratch, out)
}

/// A weight block type with a row kernel: the dot products of one weight row with every token.
trait RowKernel: VecDot + Sync
where
    Self::Activation: Sync,
{
    /// `out[t] = row · acts[t]` where `acts` holds `out.len()` token rows of `row.len()` blocks.
    fn dot_tokens(row: &[Self], acts: &[Self::Activation], out: &mut [f32]) {
        let nb = row.len();
        for (t, o) in out.iter_mut().enumerate() {
            *o = Self::vec_dot_blocks(row, &acts[t * nb..(t + 1) * nb]);
        }
    }
}

impl RowKernel for BlockQ4_1 {}
impl RowKernel for BlockQ5_1 {}
impl RowKernel for BlockQ2_K {}
impl RowKernel for BlockQ3_K {}
// The types the model repacks (crate::packed) keep only this generic path here.
impl RowKernel for f32 {}
impl RowKernel for half::f16 {}
impl RowKernel for half::bf16 {}
impl RowKernel for BlockQ5_K {}
impl RowKernel for BlockQ4_0 {}
impl RowKernel for BlockQ5_0 {}
impl RowKernel for BlockQ8_0 {}
impl RowKernel for BlockQ4_K {}
impl RowKernel for BlockQ6_K {}
impl RowKernel for BlockQ8_K {}
impl RowKernel for BlockMXFP4 {}

/// Rows handed to one task: enough tasks to balance, few enough to keep overhead low.
fn rows_per_task(num_rows: usize) -> usize {
    (num_rows / (num_threads() * 16)).clamp(1, 64)
}

#[allow(unsafe_code)] // disjoint rows written from tasks
fn run<W: RowKernel>(
    w: &WeightMatrix<'_>,
    acts: &[W::Activation],
    num_tokens: usize,
    out: &mut [f32],
) -> Result<()>
where
    W::Activation: Sync,
{
    let weights = blocks_from_bytes_or_copy::<W>(w.data)?;
    let nb = w.row_length / W::NUM_ELEMENTS;
    if acts.len() != nb * num_tokens {
        return Err(KernelError::LengthMismatch {
            what: "activation blocks",
            expected: nb * num_tokens,
            actual: acts.len(),
        });
    }
    if num_tokens == 0 || w.num_rows == 0 {
        return Ok(());
    }
    let chunk_rows = rows_per_task(w.num_rows);
    let rows_out = |first_row: usize, dst: &mut [f32]| {
        // dst: [rows, num_tokens]
        for (i, per_token) in dst.chunks_exact_mut(num_tokens).enumerate() {
            let r = first_row + i;
            dot_tokens_dispatch::<W>(&weights[r * nb..(r + 1) * nb], acts, per_token);
        }
    };
    let num_tasks = w.num_rows.div_ceil(chunk_rows);
    let in_tasks = |dst: &mut [f32]| {
        let shared = SharedSlice::new(dst);
        for_each_task(num_tasks, &|c| {
            let rows = chunk_rows.min(w.num_rows - c * chunk_rows);
            // SAFETY: each task writes its own rows.
            let dst = unsafe { shared.slice_mut(c * chunk_rows * num_tokens, rows * num_tokens) };
            rows_out(c * chunk_rows, dst);
        });
    };
    if num_tokens == 1 {
        in_tasks(out);
        return Ok(());
    }
    // Compute [num_rows, num_tokens], then transpose into [num_tokens, num_rows].
    let mut transposed = vec![0.0f32; w.num_rows * num_tokens];
    in_tasks(&mut transposed);
    for (r, per_token) in transposed.chunks_exact(num_tokens).enumerate() {
        for (t, &v) in per_token.iter().enumerate() {
            out[t * w.num_rows + r] = v;
        }
    }
    Ok(())
}

#[inline]
fn dot_tokens_dispatch<W: RowKernel>(row: &[W], acts: &[W::Activation], out: &mut [f32])
where
    W::Activation: Sync,
{
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            avx2::dot_tokens::<W>(row, acts, out);
            return;
        }
    }
    W::dot_tokens(row, acts, out);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    //! The row kernels compiled with AVX2 enabled: the same source, so the same results.
    use super::RowKernel;
    use crate::cpu::CpuFeatures;

    pub(super) fn available() -> bool {
        CpuFeatures::detected().avx2
    }

    #[inline]
    pub(super) fn dot_tokens<W: RowKernel>(row: &[W], acts: &[W::Activation], out: &mut [f32])
    where
        W::Activation: Sync,
    {
        // SAFETY: callers check `available()`, so the CPU supports AVX2.
        unsafe { dot_tokens_avx2::<W>(row, acts, out) }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn dot_tokens_avx2<W: RowKernel>(row: &[W], acts: &[W::Activation], out: &mut [f32])
    where
        W::Activation: Sync,
    {
        W::dot_tokens(row, acts, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::test_support::{gaussian, uniform};

    fn reference(w: &WeightMatrix<'_>, x: &[f32], num_tokens: usize) -> Vec<f32> {
        let act_ty = crate::vec_dot_type(w.ty).expect("supported");
        let act_bytes = act_ty.bytes_for(w.row_length as u64).expect("fits") as usize;
        let mut out = vec![0.0; num_tokens * w.num_rows];
        for t in 0..num_tokens {
            let mut a = vec![0u8; act_bytes];
            crate::quantize(act_ty, &x[t * w.row_length..(t + 1) * w.row_length], &mut a)
                .expect("quantize");
            for r in 0..w.num_rows {
                out[t * w.num_rows + r] = crate::vec_dot(w.ty, w.row_bytes(r), &a).expect("dot");
            }
        }
        out
    }

    fn random_weights(ty: GgmlType, num_rows: usize, row_length: usize, seed: u64) -> Vec<u8> {
        let values = gaussian(num_rows * row_length, seed);
        if crate::can_quantize(ty) {
            let n = ty.bytes_for((num_rows * row_length) as u64).expect("fits") as usize;
            let mut bytes = vec![0u8; n];
            crate::quantize(ty, &values, &mut bytes).expect("quantize");
            bytes
        } else {
            // Random bytes with sane scales are enough for formats without a quantizer: the
            // test compares two computations on the same blocks.
            let n = ty.bytes_for((num_rows * row_length) as u64).expect("fits") as usize;
            let mut rng = crate::formats::test_support::rng(seed);
            let mut bytes = crate::formats::test_support::bytes(n, seed);
            // Make every f16 scale finite: rewrite each block's scale fields with sane values.
            let block = ty.type_size();
            for chunk in bytes.chunks_exact_mut(block) {
                let s = crate::formats::test_support::scale(&mut rng).to_le_bytes();
                match ty {
                    GgmlType::Q2_K => {
                        chunk[80..82].copy_from_slice(&s);
                        chunk[82..84].copy_from_slice(&s);
                    }
                    GgmlType::Q3_K => chunk[108..110].copy_from_slice(&s),
                    GgmlType::Q5_K => {
                        chunk[0..2].copy_from_slice(&s);
                        chunk[2..4].copy_from_slice(&s);
                    }
                    _ => {}
                }
            }
            bytes
        }
    }

    #[test]
    fn matmul_matches_vec_dot_for_every_format() {
        use GgmlType::*;
        for ty in [
            F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, MXFP4,
        ] {
            let row_length = 512;
            let num_rows = 70;
            let bytes = random_weights(ty, num_rows, row_length, 11);
            let w = WeightMatrix::new(ty, &bytes, num_rows, row_length).expect("valid");
            for num_tokens in [1, 3, 11] {
                let x = uniform(num_tokens * row_length, 5 + num_tokens as u64);
                let mut scratch = QuantizedActivations::new();
                let mut out = vec![0.0; num_tokens * num_rows];
                matmul_f32(&w, &x, &mut scratch, &mut out).expect("matmul");
                let expected = reference(&w, &x, num_tokens);
                let mut single = vec![0.0; num_rows];
                for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{ty} tokens {num_tokens} at {i}");
                }
                // Each token's row is bit-identical whatever the batch around it.
                for t in 0..num_tokens {
                    let xt = &x[t * row_length..(t + 1) * row_length];
                    matmul_f32(&w, xt, &mut scratch, &mut single).expect("matmul");
                    let batched = &out[t * num_rows..(t + 1) * num_rows];
                    for (a, b) in single.iter().zip(batched) {
                        assert_eq!(a.to_bits(), b.to_bits(), "{ty}: batched differs from alone");
                    }
                }
            }
        }
    }

    #[test]
    fn shape_errors() {
        let bytes = vec![0u8; 34 * 2];
        assert!(WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 64).is_err());
        assert!(WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 48).is_err());
        let w = WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 32).expect("valid");
        let mut scratch = QuantizedActivations::new();
        let mut out = vec![0.0; 3];
        assert!(matmul_f32(&w, &[0.0; 32], &mut scratch, &mut out).is_err());
        assert!(matmul_f32(&w, &[0.0; 33], &mut scratch, &mut out[..2]).is_err());
        let mut out = vec![0.0; 2];
        scratch.quantize_for(GgmlType::Q4_K, &[0.0; 256], 256).expect("quantize");
        assert!(matmul(&w, &scratch, &mut out).is_err());
    }
}
