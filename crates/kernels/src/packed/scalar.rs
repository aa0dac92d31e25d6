//! The portable kernel on the packed layout: every row and token with the scalar reference's
//! arithmetic (integer sums per block, then ggml's f32 operations in ggml's order), so it is
//! bit-identical to [`crate::vec_dot`]. It is the fallback on CPUs without a SIMD path and the
//! reference every SIMD path is tested against.
//!
//! The float formats define their own order instead (see [`FLOAT_CHAINS`]): f32 fused
//! multiply-adds, which the SIMD paths perform exactly, against the f64 sums of `vec_dot` they
//! differ from by rounding only (the bound is in `docs/kernels.md` and the tests).

use crate::formats::mxfp4::{e8m0_to_fp32_half, KVALUES};
use crate::formats::{QK, QK_K};
use crate::packed::activations::PackedActivations;
use crate::packed::layout::{
    empty_row_block, float_value, read_row_block, PackedFormat, RowBlock, ROWS,
};

/// Accumulator chains per row of the float formats: element `j` of a row is fused-multiply-added
/// into chain `j % FLOAT_CHAINS`, in order, and the chains are added (0 + 1) at the end. Every
/// path follows this order, so they agree bit for bit and a token's result does not depend on
/// the batch around it; two chains halve the dependency chain of one-token decode.
pub(crate) const FLOAT_CHAINS: usize = 2;

/// `out[t][r]` = row `r` of the group · token `first_token + t`.
pub(crate) fn group_dot(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    if format.is_float() {
        float_group_dot(format, group, acts, first_token, out);
        return;
    }
    let k = acts.row_length();
    let block_elements = format.block_elements();
    let nb = k / block_elements;
    let block_bytes = format.group_block_bytes();
    for o in out.iter_mut() {
        *o = [0.0; ROWS];
    }
    let mut row: Box<RowBlock> = empty_row_block();
    for b in 0..nb {
        let src = &group[b * block_bytes..(b + 1) * block_bytes];
        for r in 0..ROWS {
            read_row_block(format, src, r, &mut row);
            for (t, o) in out.iter_mut().enumerate() {
                let token = first_token + t;
                let a = &acts.quants[token * k + b * block_elements..][..block_elements];
                o[r] = accumulate(format, &row, a, acts, token, b, o[r]);
            }
        }
    }
}

/// The float formats' [`group_dot`], in the order [`FLOAT_CHAINS`] describes.
fn float_group_dot(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let k = acts.row_length();
    for (t, o) in out.iter_mut().enumerate() {
        let x = &acts.values[(first_token + t) * k..][..k];
        for (r, o) in o.iter_mut().enumerate() {
            let mut chains = [0.0f32; FLOAT_CHAINS];
            for (j, &x) in x.iter().enumerate() {
                let chain = &mut chains[j % FLOAT_CHAINS];
                *chain = float_value(format, group, r, j).mul_add(x, *chain);
            }
            *o = chains[0] + chains[1];
        }
    }
}

/// `sumf` plus one block's term, as ggml's scalar `vec_dot` computes it.
fn accumulate(
    format: PackedFormat,
    row: &RowBlock,
    a: &[i8],
    acts: &PackedActivations,
    token: usize,
    block: usize,
    sumf: f32,
) -> f32 {
    let k = acts.row_length();
    let dw = match format {
        PackedFormat::Q8_K => row.d32,
        PackedFormat::MXFP4 => e8m0_to_fp32_half(row.d as u8),
        _ => half::f16::from_bits(row.d).to_f32(),
    };
    let offset = format.offset();
    match format {
        PackedFormat::Q4_0 | PackedFormat::Q5_0 | PackedFormat::Q8_0 | PackedFormat::Q8_K => {
            let n = format.block_elements();
            let da = acts.scales[token * (k / n) + block];
            let sumi: i32 = (0..n).map(|j| (row.quants[j] - offset) * i32::from(a[j])).sum();
            if format == PackedFormat::Q4_0 {
                sumf + sumi as f32 * dw * da
            } else {
                sumf + (dw * da) * sumi as f32
            }
        }
        PackedFormat::MXFP4 => {
            let da = acts.scales[token * (k / QK) + block];
            let value = |j: usize| i32::from(KVALUES[row.quants[j] as usize]);
            let sumi: i32 = (0..QK).map(|j| value(j) * i32::from(a[j])).sum();
            sumf + (dw * da) * sumi as f32
        }
        PackedFormat::Q4_1 | PackedFormat::Q5_1 => {
            let at = token * (k / QK) + block;
            let sumi: i32 = (0..QK).map(|j| row.quants[j] * i32::from(a[j])).sum();
            let m = half::f16::from_bits(row.dmin).to_f32();
            sumf + ((dw * acts.scales[at]) * sumi as f32 + m * acts.scaled_sums[at])
        }
        PackedFormat::Q4_K
        | PackedFormat::Q5_K
        | PackedFormat::Q6_K
        | PackedFormat::Q3_K
        | PackedFormat::Q2_K => {
            let da = acts.scales[token * (k / QK_K) + block];
            let dmin = half::f16::from_bits(row.dmin).to_f32();
            // Q4_K and Q5_K: 8 sub-blocks of 32; the others 16 of 16.
            let (len, sums) = if matches!(format, PackedFormat::Q4_K | PackedFormat::Q5_K) {
                (32, &acts.sums32[token * (k / 32) + block * 8..][..8])
            } else {
                (16, &acts.sums16[token * (k / 16) + block * 16..][..16])
            };
            let (sumi, summins) = sub_block_sums(row, a, len, offset, sums);
            match format {
                PackedFormat::Q4_K | PackedFormat::Q5_K => {
                    sumf + dw * da * sumi as f32 - dmin * da * summins as f32
                }
                // ggml's order: the block's two terms first, then the sum.
                PackedFormat::Q2_K => sumf + (dw * da * sumi as f32 - dmin * da * summins as f32),
                _ => sumf + dw * da * sumi as f32,
            }
        }
        PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => {
            unreachable!("group_dot sends floats to float_group_dot")
        }
    }
}

/// One k-quant block's integer sums over its sub-blocks of `len` quants:
/// `(Σ_s scale_s · Σ (q − offset)·a, Σ_s min_s · sums[s])` (no mins: the second is 0).
fn sub_block_sums(row: &RowBlock, a: &[i8], len: usize, offset: i32, sums: &[i32]) -> (i32, i32) {
    let mut sumi = 0i32;
    let mut summins = 0i32;
    for (s, &sum) in sums.iter().enumerate() {
        let sub: i32 =
            (len * s..len * (s + 1)).map(|j| (row.quants[j] - offset) * i32::from(a[j])).sum();
        sumi += row.sub_scales[s] * sub;
        summins += row.mins[s] * sum;
    }
    (sumi, summins)
}
