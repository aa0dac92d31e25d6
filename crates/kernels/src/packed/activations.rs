//! Activation rows quantized once per matrix product, in planes the SIMD kernels read directly:
//! the quants of every token contiguous, the block scales and block sums beside them.
//!
//! The quants and scales are exactly ggml's Q8_0 / Q8_1 / Q8_K quantization (the same functions
//! produce them), so packed products match the scalar [`crate::vec_dot`] reference. Float
//! weights take the f32 values as they are.

#![allow(unsafe_code)]

use crate::error::{KernelError, Result};
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8_K;
use crate::formats::{Quantize, QK, QK_K};
use crate::packed::layout::{ActivationFormat, PackedFormat, FLOAT_BLOCK};
use crate::parallel::{for_each_task, SharedSlice};

/// Quantized activation rows, reusable across calls (the buffers keep their capacity).
#[derive(Debug, Default)]
pub struct PackedActivations {
    format: Option<ActivationFormat>,
    num_tokens: usize,
    row_length: usize,
    pub(crate) quants: Vec<i8>,       // [num_tokens, row_length]
    pub(crate) scales: Vec<f32>,      // [num_tokens, row_length / block]; Q8_0, Q8_1: the f16 scale
    pub(crate) sums: Vec<i32>,        // [num_tokens, row_length / block] Σ quants per block
    pub(crate) scaled_sums: Vec<f32>, // Q8_1 only: [num_tokens, row_length / 32] the f16 `s`
    pub(crate) sums16: Vec<i32>,      // Q8_K only: [num_tokens, row_length / 16] ggml's bsums
    pub(crate) sums32: Vec<i32>,      // Q8_K only: [num_tokens, row_length / 32] Σ quants per 32
    // Q8_K only, ready to broadcast (the x86 kernels' per-token work in prefill):
    pub(crate) sum32_pairs: Vec<i32>, // [num_tokens, row_length / 64] two sums32 as i16 halves
    pub(crate) sum16_pairs: Vec<i32>, // [num_tokens, row_length / 32] two sums16 as i16 halves
    pub(crate) values: Vec<f32>,      // F32 only: [num_tokens, row_length]
}

impl PackedActivations {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The format held, once [`quantize`](Self::quantize) has run.
    pub fn format(&self) -> Option<ActivationFormat> {
        self.format
    }

    /// Number of token rows.
    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    /// Elements per row.
    pub fn row_length(&self) -> usize {
        self.row_length
    }

    /// Quantizes `x` (`[num_tokens, row_length]`, row-major) to `format`. Rows are quantized in
    /// parallel when there are several.
    pub fn quantize(
        &mut self,
        format: ActivationFormat,
        x: &[f32],
        row_length: usize,
    ) -> Result<()> {
        let block = match format {
            ActivationFormat::Q8_0 | ActivationFormat::Q8_1 => QK,
            ActivationFormat::Q8_K => QK_K,
            ActivationFormat::F32 => FLOAT_BLOCK,
        };
        if row_length == 0 || !row_length.is_multiple_of(block) {
            return Err(KernelError::LengthMismatch {
                what: "activation row (whole blocks)",
                expected: row_length.div_ceil(block.max(1)) * block,
                actual: row_length,
            });
        }
        if !x.len().is_multiple_of(row_length) {
            return Err(KernelError::LengthMismatch {
                what: "activation rows",
                expected: x.len().div_ceil(row_length) * row_length,
                actual: x.len(),
            });
        }
        let num_tokens = x.len() / row_length;
        self.format = Some(format);
        self.num_tokens = num_tokens;
        self.row_length = row_length;
        if format == ActivationFormat::F32 {
            self.values.clear();
            self.values.extend_from_slice(x);
            return Ok(());
        }
        let k_quant = format == ActivationFormat::Q8_K;
        let per_token_sums = row_length / block;
        resize(&mut self.quants, num_tokens * row_length);
        resize(&mut self.scales, num_tokens * (row_length / block));
        resize(&mut self.sums, num_tokens * per_token_sums);
        let q8_1 = format == ActivationFormat::Q8_1;
        resize(&mut self.scaled_sums, if q8_1 { num_tokens * per_token_sums } else { 0 });
        let k_quant_len = |n: usize| if k_quant { num_tokens * (row_length / n) } else { 0 };
        resize(&mut self.sums32, k_quant_len(QK));
        resize(&mut self.sum32_pairs, k_quant_len(64));
        resize(&mut self.sum16_pairs, k_quant_len(32));
        resize(&mut self.sums16, k_quant_len(16));

        let quants = SharedSlice::new(&mut self.quants);
        let scales = SharedSlice::new(&mut self.scales);
        let sums = SharedSlice::new(&mut self.sums);
        let scaled_sums = SharedSlice::new(&mut self.scaled_sums);
        let sums32 = SharedSlice::new(&mut self.sums32);
        let sum32_pairs = SharedSlice::new(&mut self.sum32_pairs);
        let sum16_pairs = SharedSlice::new(&mut self.sum16_pairs);
        let sums16 = SharedSlice::new(&mut self.sums16);
        let nb = row_length / block;
        let quantize_token = |t: usize| {
            let src = &x[t * row_length..(t + 1) * row_length];
            // K-quant planes are empty for Q8_0: zero-length rows.
            let per_k = |n: usize| if k_quant { row_length / n } else { 0 };
            let per_q8_1 = if q8_1 { nb } else { 0 };
            // SAFETY: each token writes only its own rows of every plane.
            let (q, s, sm, ss, s32, pairs32, s16, pairs16) = unsafe {
                (
                    quants.slice_mut(t * row_length, row_length),
                    scales.slice_mut(t * nb, nb),
                    sums.slice_mut(t * per_token_sums, per_token_sums),
                    scaled_sums.slice_mut(t * per_q8_1, per_q8_1),
                    sums32.slice_mut(t * per_k(QK), per_k(QK)),
                    sum32_pairs.slice_mut(t * per_k(64), per_k(64)),
                    sums16.slice_mut(t * per_k(16), per_k(16)),
                    sum16_pairs.slice_mut(t * per_k(32), per_k(32)),
                )
            };
            let planes = TokenPlanes { q, s, sm, ss, s32, pairs32, s16, pairs16 };
            quantize_token_dispatch(format, src, planes);
        };
        for_each_task(num_tokens, &quantize_token);
        Ok(())
    }
}

impl PackedActivations {
    /// What a SIMD float kernel (format code `F`, `NT` tokens from `first_token`) reads: the
    /// bytes of one element of the 8 rows (element `j` of a group starts at `j` times that), and
    /// pointers to the tokens' values.
    pub(crate) fn float_operands<const F: u8, const NT: usize>(
        &self,
        group: &[u8],
        first_token: usize,
    ) -> (usize, [*const f32; NT]) {
        let step = PackedFormat::from_code(F).group_block_bytes() / FLOAT_BLOCK;
        debug_assert!(group.len() >= self.row_length * step);
        let rows =
            std::array::from_fn(|t| self.values[(first_token + t) * self.row_length..].as_ptr());
        (step, rows)
    }
}

/// Two sums of at most 32 quants as the i16 halves of an i32 (`vpmaddwd` operands): their
/// magnitudes, at most 32 · 128, fit.
fn i16_pair(lo: i32, hi: i32) -> i32 {
    (lo & 0xffff) | (hi << 16)
}

fn resize<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    v.clear();
    v.resize(len, T::default());
}

/// One token's rows of every activation plane.
struct TokenPlanes<'a> {
    q: &'a mut [i8],
    s: &'a mut [f32],
    sm: &'a mut [i32],
    ss: &'a mut [f32],
    s32: &'a mut [i32],
    pairs32: &'a mut [i32],
    s16: &'a mut [i32],
    pairs16: &'a mut [i32],
}

/// Quantizes one token with the widest vectors this CPU has: compiled for the instruction set,
/// the rounding and scale loops vectorise (the portable build calls `truncf` per element). The
/// arithmetic is the same on every path, so are the bits.
fn quantize_token_dispatch(format: ActivationFormat, src: &[f32], planes: TokenPlanes<'_>) {
    #[cfg(target_arch = "x86_64")]
    match super::Isa::detected() {
        // SAFETY: the CPU has the features (detected).
        super::Isa::Avx512Vnni => return unsafe { quantize_token_avx512(format, src, planes) },
        // SAFETY: the CPU has the features (detected).
        super::Isa::Avx2 => return unsafe { quantize_token_avx2(format, src, planes) },
        _ => {}
    }
    quantize_token(format, src, planes);
}

/// # Safety
/// The CPU must support AVX-512 F/BW/VL, AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn quantize_token_avx512(format: ActivationFormat, src: &[f32], planes: TokenPlanes<'_>) {
    quantize_token(format, src, planes);
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_token_avx2(format: ActivationFormat, src: &[f32], planes: TokenPlanes<'_>) {
    quantize_token(format, src, planes);
}

#[inline(always)]
fn quantize_token(format: ActivationFormat, src: &[f32], planes: TokenPlanes<'_>) {
    let TokenPlanes { q, s, sm, ss, s32, pairs32, s16, pairs16 } = planes;
    let nb = s.len();
    match format {
        ActivationFormat::Q8_0 | ActivationFormat::Q8_1 => {
            for b in 0..nb {
                let x = &src[b * QK..(b + 1) * QK];
                // Q8_1 is Q8_0 (the same scale and quants) plus the block's f16 sum `s`.
                let (d, qs) = if format == ActivationFormat::Q8_1 {
                    let block = BlockQ8_1::quantize_block(x);
                    ss[b] = block.s.to_f32();
                    (block.d, block.qs)
                } else {
                    let block = BlockQ8_0::quantize_block(x);
                    (block.d, block.qs)
                };
                q[b * QK..(b + 1) * QK].copy_from_slice(&qs);
                s[b] = d.to_f32();
                sm[b] = qs.iter().map(|&v| i32::from(v)).sum();
            }
        }
        ActivationFormat::Q8_K => {
            for b in 0..nb {
                let block = BlockQ8_K::quantize_block(&src[b * QK_K..(b + 1) * QK_K]);
                q[b * QK_K..(b + 1) * QK_K].copy_from_slice(&block.qs);
                s[b] = block.d;
                sm[b] = block.bsums.iter().map(|&v| i32::from(v)).sum();
                for k in 0..16 {
                    s16[b * 16 + k] = i32::from(block.bsums[k]);
                }
                for k in 0..8 {
                    s32[b * 8 + k] = s16[b * 16 + 2 * k] + s16[b * 16 + 2 * k + 1];
                    pairs16[b * 8 + k] = i16_pair(s16[b * 16 + 2 * k], s16[b * 16 + 2 * k + 1]);
                }
                for p in 0..4 {
                    pairs32[b * 4 + p] = i16_pair(s32[b * 8 + 2 * p], s32[b * 8 + 2 * p + 1]);
                }
            }
        }
        ActivationFormat::F32 => unreachable!("returned above: F32 values are copied"),
    }
}
