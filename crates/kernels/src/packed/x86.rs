//! x86-64 kernels on the packed layout, written once over [`Isa`] and compiled twice:
//! AVX2+FMA+F16C (`vpmaddubsw`/`vpmaddwd` for the 4-byte dot products, byte masks built with a
//! shuffle) and AVX-512 F/BW/VL + VNNI on 256-bit vectors (`vpdpbusd`, mask registers for Q5_0's
//! fifth bit, 32 vector registers for wider token tiles). Zen 4 splits 512-bit operations in
//! two, and 256-bit vectors also serve AVX-VNNI-only CPUs later, so the vectors stay 256 bits.
//!
//! Arithmetic: integer sums per block exactly as the scalar reference, then the reference's f32
//! operations (multiplies and adds, never fused) in its order — bit-identical to
//! [`super::scalar`], which the tests check. The float formats convert 8 rows' element to f32 in
//! registers (`vcvtph2ps` for F16, a shift for BF16) and fuse multiply-adds in the order of
//! [`FLOAT_CHAINS`], again as the scalar kernel does.
#![allow(unsafe_code)]
// Token and chain loops index several arrays in step; iterators would hide that.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::formats::mxfp4::KVALUES;
use crate::packed::activations::PackedActivations;
use crate::packed::layout::*;
use crate::packed::scalar::FLOAT_CHAINS;

// The float kernels keep one accumulator array per chain: even and odd elements.
const _: () = assert!(FLOAT_CHAINS == 2);

/// The instructions that differ between the two x86 paths.
pub(super) trait Isa {
    /// Tokens per register tile.
    const TILE: usize;
    /// What Q8_0's and Q8_K's signed weights are shifted by before [`Isa::dot_q8_0`] multiplies
    /// them.
    const Q8_0_OFFSET: i32;
    /// `acc + Σ₄ w·a` per 32-bit lane; `w` unsigned and below 64, `a` signed.
    unsafe fn dot_u8(acc: __m256i, w: __m256i, a: __m256i) -> __m256i;
    /// `acc + Σ₄ (w + Q8_0_OFFSET)·a` per 32-bit lane; `w` signed.
    unsafe fn dot_q8_0(acc: __m256i, w: __m256i, a: __m256i) -> __m256i;
    /// Sets bit 4 of byte `j` of `v` where bit `j` of `mask` is set (bit 4 is clear in `v`).
    unsafe fn set_bit4(v: __m256i, mask: u32) -> __m256i;
}

pub(super) struct Avx2;
pub(super) struct Avx512Vnni;

impl Isa for Avx2 {
    // 16 vector registers: more tokens would spill.
    const TILE: usize = 2;
    const Q8_0_OFFSET: i32 = 0;

    #[inline(always)]
    unsafe fn dot_u8(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // Pairs of u8·i8 in i16 cannot saturate: 2 · 63 · 127 < 2¹⁵.
        // SAFETY: only called from functions compiled with the features.
        unsafe {
            let pairs = _mm256_maddubs_epi16(w, a);
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn dot_q8_0(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // |w|·sign(a, w): unsigned times signed, 2 · 128 · 127 < 2¹⁵.
        // SAFETY: only called from functions compiled with the features.
        unsafe {
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn set_bit4(v: __m256i, mask: u32) -> __m256i {
        // SAFETY: only called from functions compiled with the features.
        unsafe {
            let spread = _mm256_shuffle_epi8(
                _mm256_set1_epi32(mask as i32),
                _mm256_setr_epi64x(
                    0,
                    0x0101_0101_0101_0101,
                    0x0202_0202_0202_0202,
                    0x0303_0303_0303_0303,
                ),
            );
            let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
            _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
        }
    }
}

impl Isa for Avx512Vnni {
    // 32 vector registers: 8 tokens' accumulators fit beside the unpacked weights.
    const TILE: usize = 8;
    const Q8_0_OFFSET: i32 = 128;

    #[inline(always)]
    unsafe fn dot_u8(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: only called from functions compiled with the features.
        unsafe { _mm256_dpbusd_epi32(acc, w, a) }
    }

    #[inline(always)]
    unsafe fn dot_q8_0(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // w + 128 as unsigned bytes: flip the sign bit.
        // SAFETY: only called from functions compiled with the features.
        unsafe { _mm256_dpbusd_epi32(acc, _mm256_xor_si256(w, _mm256_set1_epi8(-128)), a) }
    }

    #[inline(always)]
    unsafe fn set_bit4(v: __m256i, mask: u32) -> __m256i {
        // SAFETY: only called from functions compiled with the features.
        unsafe { _mm256_mask_add_epi8(v, mask, v, _mm256_set1_epi8(0x10)) }
    }
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: callers pass pointers to 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Four activation quants broadcast to every lane.
#[inline(always)]
unsafe fn broadcast4(p: *const i8) -> __m256i {
    // SAFETY: callers pass pointers to 4 readable bytes.
    unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
}

/// How far ahead of the block being read a decode product asks for weights: with one or two
/// tokens the kernel does little work per byte, and without explicit prefetches too few loads
/// are in flight to reach the memory bandwidth (measured on Zen 4: Q6_K 23 → see docs).
const PREFETCH_DISTANCE: usize = 2048;

/// Prefetches the cache lines of the block `PREFETCH_DISTANCE` bytes ahead (decode only: with
/// more tokens the weights are reused from cache and the compute hides the latency).
#[inline(always)]
unsafe fn prefetch_ahead<const NT: usize>(block: *const u8, block_bytes: usize) {
    if NT <= 2 {
        let ahead = block.wrapping_add(PREFETCH_DISTANCE);
        for line in (0..block_bytes).step_by(64) {
            // SAFETY: prefetches never fault, whatever the address; wrapping_add keeps the
            // pointer arithmetic defined past the end of the weights.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast()) };
        }
    }
}

/// Where the quants of tokens `first_token..first_token + NT` start.
#[inline(always)]
unsafe fn token_rows<const NT: usize>(
    acts: &PackedActivations,
    first_token: usize,
) -> [*const i8; NT] {
    let k = acts.row_length();
    let mut rows = [acts.quants.as_ptr(); NT];
    for (t, row) in rows.iter_mut().enumerate() {
        // SAFETY: the driver checked that the activations hold these tokens.
        *row = unsafe { row.add((first_token + t) * k) };
    }
    rows
}

/// The 8 row results of each token of the tile.
#[inline(always)]
unsafe fn store<const NT: usize>(acc: [__m256; NT], out: &mut [[f32; ROWS]]) {
    for (values, o) in acc.iter().zip(out.iter_mut()) {
        // SAFETY: `o` holds 8 f32.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *values) };
    }
}

#[inline(always)]
unsafe fn row_scales(p: *const u8) -> __m256 {
    // SAFETY: callers pass pointers to 8 f16 values.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

#[inline(always)]
unsafe fn low_nibbles(v: __m256i) -> __m256i {
    // SAFETY: compiled with AVX2.
    unsafe { _mm256_and_si256(v, _mm256_set1_epi8(0x0f)) }
}

#[inline(always)]
unsafe fn high_nibbles(v: __m256i) -> __m256i {
    // SAFETY: compiled with AVX2.
    unsafe { _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)) }
}

/// Nibble chunk `c`'s two quads with their fifth bits (Q5_0, Q5_K) from the quad masks at
/// `masks`: quad `2c` for `lo`, `2c + 1` for `hi`.
///
/// # Safety
/// `masks` points to the 8 readable quad masks; the CPU has the features `I` needs.
#[inline(always)]
unsafe fn fifth_bits<I: Isa>(
    masks: *const u8,
    c: usize,
    lo: __m256i,
    hi: __m256i,
) -> (__m256i, __m256i) {
    // SAFETY: callers pass pointers to the 8 masks of a Q5_0 block or Q5_K sub-block.
    unsafe {
        let masks = masks.cast::<u32>();
        (
            I::set_bit4(lo, masks.add(2 * c).read_unaligned()),
            I::set_bit4(hi, masks.add(2 * c + 1).read_unaligned()),
        )
    }
}

/// MXFP4's doubled E2M1 values plus [`MXFP4_OFFSET`], by code: unsigned operands for
/// `vpdpbusd` and `vpmaddubsw`, the offset removed like Q4_0's.
const MXFP4_UNSIGNED_VALUES: [u8; 16] = {
    let mut table = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        table[i] = (KVALUES[i] as i32 + MXFP4_OFFSET) as u8;
        i += 1;
    }
    table
};

/// MXFP4: each byte's code (0..16) looked up as its unsigned value, [`MXFP4_UNSIGNED_VALUES`]
/// (`vpshufb` with the table in both 128-bit lanes).
#[inline(always)]
unsafe fn mxfp4_values(codes: __m256i) -> __m256i {
    // SAFETY: compiled with AVX2; the table is 16 readable bytes.
    unsafe {
        let table = _mm_loadu_si128(MXFP4_UNSIGNED_VALUES.as_ptr().cast());
        _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(table), codes)
    }
}

/// MXFP4: the 8 rows' E8M0 bytes at `p` as ggml's `e8m0_to_fp32_half`, `2^(e − 128)`: the
/// exponent field `e − 1` for `e ≥ 2`, the subnormals `0x0020_0000 << e` below.
///
/// # Safety
/// `p` points to 8 readable bytes; the CPU has AVX2.
#[inline(always)]
unsafe fn e8m0_half_rows(p: *const u8) -> __m256 {
    // SAFETY: callers pass pointers to 8 bytes; compiled with AVX2.
    unsafe {
        let e = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()));
        let normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
        let subnormal = _mm256_sllv_epi32(_mm256_set1_epi32(0x0020_0000), e);
        let below_two = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
        _mm256_castsi256_ps(_mm256_blendv_epi8(normal, subnormal, below_two))
    }
}

/// Q4_0, Q5_0, Q4_1, Q5_1, MXFP4, Q8_0 and Q8_K (Q8_0 with 256-element blocks and f32 scales)
/// for `NT` tokens from `first_token`.
#[inline(always)]
unsafe fn legacy<I: Isa, const F: u8, const NT: usize, const CH: usize>(
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let format = const { PackedFormat::from_code(F) };
    let (n, block_bytes) = (format.block_elements(), format.group_block_bytes());
    let signed = F == Q8_0_CODE || F == Q8_K_CODE;
    let offset = if signed { I::Q8_0_OFFSET } else { format.offset() };
    let nb = acts.row_length() / n;
    debug_assert!(group.len() >= nb * block_bytes && out.len() >= NT);
    // SAFETY: the driver checked the shapes: `group` holds nb group-blocks, the activations
    // hold tokens first_token..first_token + NT of k quants, k / n scales and sums each.
    unsafe {
        let quants = token_rows::<NT>(acts, first_token);
        let mut acc = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let blk = group.as_ptr().add(b * block_bytes);
            prefetch_ahead::<NT>(blk, block_bytes);
            // The offset's correction starts chain 0: Σ (q + offset)·a − offset·Σa.
            let mut isum = [[_mm256_setzero_si256(); CH]; NT];
            if offset != 0 {
                for (t, chains) in isum.iter_mut().enumerate() {
                    chains[0] = _mm256_set1_epi32(-offset * acts.sums[(first_token + t) * nb + b]);
                }
            }
            if signed {
                let first = if F == Q8_K_CODE { Q8_K_QUANTS } else { Q8_0_QUANTS };
                for quad in 0..n / 4 {
                    let w = load(blk.add(first + 32 * quad));
                    for t in 0..NT {
                        let a = broadcast4(quants[t].add(n * b + 4 * quad));
                        isum[t][quad % CH] = I::dot_q8_0(isum[t][quad % CH], w, a);
                    }
                }
            } else {
                for c in 0..4 {
                    let v = load(blk.add(format.legacy_quants() + 32 * c));
                    let (mut lo, mut hi) = (low_nibbles(v), high_nibbles(v));
                    if let Some(masks) = format.legacy_masks() {
                        (lo, hi) = fifth_bits::<I>(blk.add(masks), c, lo, hi);
                    }
                    if F == MXFP4_CODE {
                        (lo, hi) = (mxfp4_values(lo), mxfp4_values(hi));
                    }
                    dot_chunk::<I, NT, CH>(&mut isum, &quants, 32 * b + 8 * c, c, lo, hi);
                }
            }
            let dw = match F {
                Q8_K_CODE => _mm256_loadu_ps(blk.add(SCALES).cast()),
                MXFP4_CODE => e8m0_half_rows(blk.add(SCALES)),
                _ => row_scales(blk.add(SCALES)),
            };
            let with_min = format.has_dmin();
            let m = if with_min { row_scales(blk.add(DMIN)) } else { _mm256_setzero_ps() };
            for t in 0..NT {
                let at = (first_token + t) * nb + b;
                let da = _mm256_set1_ps(acts.scales[at]);
                let sumi = _mm256_cvtepi32_ps(sum_chains(isum[t]));
                let mut term = if F == Q4_0_CODE {
                    _mm256_mul_ps(_mm256_mul_ps(sumi, dw), da)
                } else {
                    _mm256_mul_ps(_mm256_mul_ps(dw, da), sumi)
                };
                if with_min {
                    // ggml's `+ m · s`, inside the block's term.
                    let s = _mm256_set1_ps(acts.scaled_sums[at]);
                    term = _mm256_add_ps(term, _mm256_mul_ps(m, s));
                }
                acc[t] = _mm256_add_ps(acc[t], term);
            }
        }
        store(acc, out);
    }
}

/// Q4_K, or Q5_K when `FIVE` (the same scales and mins, a fifth bit per quant), for `NT` tokens
/// from `first_token`.
#[inline(always)]
unsafe fn q4_k<I: Isa, const FIVE: bool, const NT: usize, const CH: usize>(
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let k = acts.row_length();
    let nsb = k / 256;
    let format = if FIVE { PackedFormat::Q5_K } else { PackedFormat::Q4_K };
    let block_bytes = format.group_block_bytes();
    debug_assert!(group.len() >= nsb * block_bytes && out.len() >= NT);
    // SAFETY: as in `legacy`, with k / 256 scales and k / 32 sums32 per token.
    unsafe {
        let quants = token_rows::<NT>(acts, first_token);
        let mut acc = [_mm256_setzero_ps(); NT];
        for sb in 0..nsb {
            let blk = group.as_ptr().add(sb * block_bytes);
            prefetch_ahead::<NT>(blk, block_bytes);
            let mut total = [_mm256_setzero_si256(); NT];
            for s in 0..8 {
                let sc =
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(Q4_K_SUB_SCALES + 8 * s).cast()));
                let mut sub = [[_mm256_setzero_si256(); CH]; NT];
                let quants_at = if FIVE { q5_k_quants(s) } else { Q4_K_QUANTS + 128 * s };
                for c in 0..4 {
                    let v = load(blk.add(quants_at + 32 * c));
                    let (mut lo, mut hi) = (low_nibbles(v), high_nibbles(v));
                    if FIVE {
                        (lo, hi) = fifth_bits::<I>(blk.add(q5_k_masks(s)), c, lo, hi);
                    }
                    let at = 256 * sb + 32 * s + 8 * c;
                    dot_chunk::<I, NT, CH>(&mut sub, &quants, at, c, lo, hi);
                }
                add_scaled(&mut total, &sub, sc);
            }
            let mut mins = [_mm256_setzero_si256(); NT];
            for p in 0..4 {
                let m = _mm256_cvtepu8_epi16(_mm_loadu_si128(blk.add(Q4_K_MINS + 16 * p).cast()));
                add_min_pairs(&mut mins, m, |t| {
                    acts.sum32_pairs[(first_token + t) * (k / 64) + 4 * sb + p]
                });
            }
            let d = row_scales(blk.add(SCALES));
            let dmin = row_scales(blk.add(DMIN));
            for t in 0..NT {
                let dy = _mm256_set1_ps(acts.scales[(first_token + t) * nsb + sb]);
                let scaled = _mm256_mul_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(total[t]));
                let m = _mm256_mul_ps(_mm256_mul_ps(dmin, dy), _mm256_cvtepi32_ps(mins[t]));
                acc[t] = _mm256_sub_ps(_mm256_add_ps(acc[t], scaled), m);
            }
        }
        store(acc, out);
    }
}

/// `mins[t] += m · pair(t)` as pairs of i16 (`vpmaddwd`): lane r holds row r's mins of two
/// sub-blocks, `pair(t)` token t's activation sums of the same two.
#[inline(always)]
unsafe fn add_min_pairs<const NT: usize>(
    mins: &mut [__m256i; NT],
    m: __m256i,
    pair: impl Fn(usize) -> i32,
) {
    for (t, mins) in mins.iter_mut().enumerate() {
        // SAFETY: compiled with AVX2.
        unsafe {
            *mins = _mm256_add_epi32(*mins, _mm256_madd_epi16(m, _mm256_set1_epi32(pair(t))))
        };
    }
}

/// A bit field of every byte moved by `n` bits (left, or right for negative `n`) and kept where
/// `mask` is set. The shifts are 16-bit ones, so the kept bits must come from the same byte:
/// mask bits at `n` or above for left shifts, at `7 − |n|` or below for right shifts.
#[inline(always)]
unsafe fn move_bits(v: __m256i, n: i32, mask: u8) -> __m256i {
    debug_assert!(if n >= 0 { mask >> n << n == mask } else { u16::from(mask) << -n <= 0xff });
    // SAFETY: compiled with AVX2.
    unsafe {
        let moved = match n {
            4 => _mm256_slli_epi16(v, 4),
            2 => _mm256_slli_epi16(v, 2),
            1 => _mm256_slli_epi16(v, 1),
            0 => v,
            -1 => _mm256_srli_epi16(v, 1),
            -2 => _mm256_srli_epi16(v, 2),
            -4 => _mm256_srli_epi16(v, 4),
            -6 => _mm256_srli_epi16(v, 6),
            _ => unreachable!("no packed field moves by {n} bits"),
        };
        _mm256_and_si256(moved, _mm256_set1_epi8(mask as i8))
    }
}

/// The four quads (quants `16s..16s + 16` of each row, unsigned) of sub-block `s` of a Q6_K,
/// Q3_K or Q2_K group-block: nibbles and 2-bit high parts, 2-bit low parts and high bits, or
/// 2-bit quants.
///
/// # Safety
/// `blk` points to a whole group-block of the format; the CPU has AVX2.
#[inline(always)]
unsafe fn k16_quads<const F: u8>(blk: *const u8, s: usize) -> [__m256i; 4] {
    // SAFETY: the chunks of sub-block `s` lie inside the group-block.
    unsafe {
        let mut quads = [_mm256_setzero_si256(); 4];
        if F == Q6_K_CODE {
            // High parts of quad i at bits 2i..2i+2, moved to bits 4..6.
            let h = load(blk.add(q6_k_high(s)));
            for c in 0..2 {
                let v = load(blk.add(q6_k_low(s) + 32 * c));
                quads[2 * c] =
                    _mm256_or_si256(low_nibbles(v), move_bits(h, 4 - 4 * c as i32, 0x30));
                quads[2 * c + 1] =
                    _mm256_or_si256(high_nibbles(v), move_bits(h, 2 - 4 * c as i32, 0x30));
            }
        } else if F == Q2_K_CODE {
            let v = load(blk.add(q2_k_quants(s)));
            for (i, quad) in quads.iter_mut().enumerate() {
                *quad = move_bits(v, -2 * i as i32, 0x03);
            }
        } else {
            // Q3_K: low parts of quad i at bits 2i..2i+2, its high bit at bit 4·(s % 2) + i. The
            // shifts stay constants (unrolled quad loop) with sub-block 2p + 1's bits moved down.
            let low = load(blk.add(q3_k_low(s)));
            let high = load(blk.add(q3_k_high(s)));
            let high = _mm256_srl_epi16(high, _mm_cvtsi32_si128(4 * (s % 2) as i32));
            for (i, quad) in quads.iter_mut().enumerate() {
                let i = i as i32;
                *quad = _mm256_or_si256(move_bits(low, -2 * i, 0x03), move_bits(high, 2 - i, 0x04));
            }
        }
        quads
    }
}

/// Sub-block `s`'s integer scale of the 8 rows: Q6_K's and Q3_K's i8, Q2_K's low nibble.
///
/// # Safety
/// `blk` points to a whole group-block of the format; the CPU has AVX2.
#[inline(always)]
unsafe fn k16_scales<const F: u8>(blk: *const u8, s: usize) -> __m256i {
    // SAFETY: the scales of sub-block `s` lie inside the group-block.
    unsafe {
        if F == Q2_K_CODE {
            // Lane r: row r's bytes of sub-blocks 2p and 2p + 1 as u16 halves.
            let pair =
                _mm256_cvtepu8_epi16(_mm_loadu_si128(blk.add(Q2_K_SCALES + 16 * (s / 2)).cast()));
            let byte = _mm256_srl_epi32(pair, _mm_cvtsi32_si128(16 * (s % 2) as i32));
            _mm256_and_si256(byte, _mm256_set1_epi32(0x0f))
        } else {
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(blk.add(I8_SUB_SCALES + 8 * s).cast()))
        }
    }
}

/// Q6_K, Q3_K and Q2_K (16 sub-blocks of 16 quants, an integer scale each, an f16 `d`, and
/// Q2_K's mins) for `NT` tokens from `first_token`.
#[inline(always)]
unsafe fn k16<I: Isa, const F: u8, const NT: usize, const CH: usize>(
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let format = const { PackedFormat::from_code(F) };
    let k = acts.row_length();
    let nsb = k / 256;
    let block_bytes = format.group_block_bytes();
    let offset = format.offset();
    debug_assert!(group.len() >= nsb * block_bytes && out.len() >= NT);
    // SAFETY: as in `legacy`, with k / 256 scales, k / 16 sums and k / 32 sum pairs per token.
    unsafe {
        let quants = token_rows::<NT>(acts, first_token);
        let mut acc = [_mm256_setzero_ps(); NT];
        for sb in 0..nsb {
            let blk = group.as_ptr().add(sb * block_bytes);
            prefetch_ahead::<NT>(blk, block_bytes);
            let mut total = [_mm256_setzero_si256(); NT];
            for s in 0..16 {
                let sc = k16_scales::<F>(blk, s);
                let quads = k16_quads::<F>(blk, s);
                let mut sub = [[_mm256_setzero_si256(); CH]; NT];
                if offset != 0 {
                    // The offset's correction starts chain 0: Σ (q + offset)·a − offset·Σa.
                    for (t, chains) in sub.iter_mut().enumerate() {
                        let at = (first_token + t) * (k / 16) + 16 * sb + s;
                        chains[0] = _mm256_set1_epi32(-offset * acts.sums16[at]);
                    }
                }
                let at = 256 * sb + 16 * s;
                dot_chunk::<I, NT, CH>(&mut sub, &quants, at, 0, quads[0], quads[1]);
                dot_chunk::<I, NT, CH>(&mut sub, &quants, at + 8, 1, quads[2], quads[3]);
                add_scaled(&mut total, &sub, sc);
            }
            let d = row_scales(blk.add(SCALES));
            if F == Q2_K_CODE {
                let mut mins = [_mm256_setzero_si256(); NT];
                for p in 0..8 {
                    // Lane r: row r's mins of sub-blocks 2p and 2p + 1 (high nibbles) as i16.
                    let bytes = _mm_loadu_si128(blk.add(Q2_K_SCALES + 16 * p).cast());
                    let m = _mm256_srli_epi16(_mm256_cvtepu8_epi16(bytes), 4);
                    add_min_pairs(&mut mins, m, |t| {
                        acts.sum16_pairs[(first_token + t) * (k / 32) + 8 * sb + p]
                    });
                }
                let dmin = row_scales(blk.add(DMIN));
                for t in 0..NT {
                    let dy = _mm256_set1_ps(acts.scales[(first_token + t) * nsb + sb]);
                    let scaled = _mm256_mul_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(total[t]));
                    let m = _mm256_mul_ps(_mm256_mul_ps(dmin, dy), _mm256_cvtepi32_ps(mins[t]));
                    // ggml's order: the block's two terms first (Q4_K adds them one by one).
                    acc[t] = _mm256_add_ps(acc[t], _mm256_sub_ps(scaled, m));
                }
            } else {
                for t in 0..NT {
                    let dy = _mm256_set1_ps(acts.scales[(first_token + t) * nsb + sb]);
                    let term = _mm256_mul_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(total[t]));
                    acc[t] = _mm256_add_ps(acc[t], term);
                }
            }
        }
        store(acc, out);
    }
}

/// Element `e` of the 8 rows of a float group-block, as f32 (exact conversions).
///
/// # Safety
/// `p` points to 8 readable values of the format; the CPU has AVX2 and F16C.
#[inline(always)]
unsafe fn float_rows<const F: u8>(p: *const u8) -> __m256 {
    // SAFETY: callers pass pointers to 8 values of the format; compiled with AVX2 and F16C.
    unsafe {
        match F {
            F32_CODE => _mm256_loadu_ps(p.cast()),
            F16_CODE => row_scales(p),
            _ => {
                let bits = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16))
            }
        }
    }
}

/// F32, F16 and BF16 for `NT` tokens from `first_token`: each weight vector (one element of the
/// 8 rows) meets every token's activation, broadcast, in the chains of [`FLOAT_CHAINS`].
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `group`, `acts` and `out` have the shapes the driver checks
/// (the group's k elements, k values per token, `NT` tokens from `first_token`).
#[inline(always)]
unsafe fn float<const F: u8, const NT: usize>(
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let (step, x) = acts.float_operands::<F, NT>(group, first_token);
    // SAFETY: the driver checked the shapes: `group` holds the rows' k elements, the activations
    // k values for each token, `out` NT tokens.
    unsafe {
        // One array per chain, indexed by token only: with the chain picked by a loop index the
        // 8-token tile kept its accumulators on the stack (measured 4x slower than AVX2's tile).
        let (mut even, mut odd) = ([_mm256_setzero_ps(); NT], [_mm256_setzero_ps(); NT]);
        for j in (0..acts.row_length()).step_by(FLOAT_BLOCK) {
            prefetch_ahead::<NT>(group.as_ptr().add(j * step), FLOAT_BLOCK * step);
            for e in (j..j + FLOAT_BLOCK).step_by(FLOAT_CHAINS) {
                let w0 = float_rows::<F>(group.as_ptr().add(e * step));
                let w1 = float_rows::<F>(group.as_ptr().add((e + 1) * step));
                for t in 0..NT {
                    even[t] = _mm256_fmadd_ps(w0, _mm256_set1_ps(x[t].add(e).read()), even[t]);
                    odd[t] = _mm256_fmadd_ps(w1, _mm256_set1_ps(x[t].add(e + 1).read()), odd[t]);
                }
            }
        }
        let mut sums = even;
        for (sum, odd) in sums.iter_mut().zip(odd) {
            *sum = _mm256_add_ps(*sum, odd);
        }
        store(sums, out);
    }
}

/// One tile of `NT` tokens of any format.
#[inline(always)]
unsafe fn tile<I: Isa, const NT: usize, const CH: usize>(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match format {
            PackedFormat::Q4_0 => legacy::<I, Q4_0_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q5_0 => legacy::<I, Q5_0_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q8_0 => legacy::<I, Q8_0_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q4_1 => legacy::<I, Q4_1_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q5_1 => legacy::<I, Q5_1_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q4_K => q4_k::<I, false, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q5_K => q4_k::<I, true, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q6_K => k16::<I, Q6_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q3_K => k16::<I, Q3_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q2_K => k16::<I, Q2_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q8_K => legacy::<I, Q8_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::MXFP4 => legacy::<I, MXFP4_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::F32 => float::<F32_CODE, NT>(group, acts, first_token, out),
            PackedFormat::F16 => float::<F16_CODE, NT>(group, acts, first_token, out),
            PackedFormat::BF16 => float::<BF16_CODE, NT>(group, acts, first_token, out),
        }
    }
}

/// Adds one nibble chunk's products for every token: `lo` (quants `at..at + 4` of each row) and
/// `hi` (`at + 4..at + 8`) against the tokens' activations there, into chains `2c` and `2c + 1`
/// (mod `CH`).
#[inline(always)]
unsafe fn dot_chunk<I: Isa, const NT: usize, const CH: usize>(
    sums: &mut [[__m256i; CH]; NT],
    quants: &[*const i8; NT],
    at: usize,
    c: usize,
    lo: __m256i,
    hi: __m256i,
) {
    let (i, j) = ((2 * c) % CH, (2 * c + 1) % CH);
    for (chains, &q) in sums.iter_mut().zip(quants) {
        // SAFETY: the caller's activations hold 8 quants at `at` for every token.
        unsafe {
            let a = q.add(at);
            chains[i] = I::dot_u8(chains[i], lo, broadcast4(a));
            chains[j] = I::dot_u8(chains[j], hi, broadcast4(a.add(4)));
        }
    }
}

/// `total[t] += (Σ chains of sub[t]) · scales`, lane by lane (integer sub-block scales).
#[inline(always)]
unsafe fn add_scaled<const NT: usize, const CH: usize>(
    total: &mut [__m256i; NT],
    sub: &[[__m256i; CH]; NT],
    scales: __m256i,
) {
    for (total, chains) in total.iter_mut().zip(sub) {
        // SAFETY: compiled with AVX2.
        unsafe {
            *total = _mm256_add_epi32(*total, _mm256_mullo_epi32(sum_chains(*chains), scales))
        };
    }
}

/// The sum of independent accumulator chains (several chains hide `vpdpbusd`'s latency when
/// few tokens share the weights; integer sums, so the order does not matter).
#[inline(always)]
unsafe fn sum_chains<const CH: usize>(chains: [__m256i; CH]) -> __m256i {
    // SAFETY: compiled with AVX2.
    unsafe {
        let mut sum = chains[0];
        for &chain in &chains[1..] {
            sum = _mm256_add_epi32(sum, chain);
        }
        sum
    }
}

/// All of `out`'s tokens, in tiles of `I::TILE` (then 4, 2, 1).
#[inline(always)]
unsafe fn group_dot<I: Isa>(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let mut t = 0;
    // SAFETY: forwarded from the caller; each tile stays inside `out`.
    unsafe {
        while out.len() - t >= 8 && I::TILE >= 8 {
            tile::<I, 8, 1>(format, group, acts, first_token + t, &mut out[t..]);
            t += 8;
        }
        while out.len() - t >= 4 && I::TILE >= 4 {
            tile::<I, 4, 1>(format, group, acts, first_token + t, &mut out[t..]);
            t += 4;
        }
        while out.len() - t >= 2 {
            tile::<I, 2, 2>(format, group, acts, first_token + t, &mut out[t..]);
            t += 2;
        }
        if t < out.len() {
            tile::<I, 1, 4>(format, group, acts, first_token + t, &mut out[t..]);
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; shapes as checked by the driver.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn group_dot_avx2(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    // SAFETY: forwarded from the caller.
    unsafe { group_dot::<Avx2>(format, group, acts, first_token, out) }
}

/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; shapes as checked by the
/// driver.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn group_dot_avx512_vnni(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    // SAFETY: forwarded from the caller.
    unsafe { group_dot::<Avx512Vnni>(format, group, acts, first_token, out) }
}
