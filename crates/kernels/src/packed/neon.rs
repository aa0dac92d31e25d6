//! aarch64 kernel on the packed layout: NEON with the dot-product instructions (`sdot`; Apple M1
//! and later, Arm v8.2+ cores with FEAT_DotProd). Eight rows are two 4-lane vectors (rows 0–3 and
//! 4–7: each 32-byte chunk is two 16-byte registers), and `sdot` by element multiplies one
//! 16-byte weight register against 4 activation quants taken from a lane of a 16-byte activation
//! register, so one activation load serves four quads.
//!
//! `sdot` multiplies signed by signed: Q8_0's and Q8_K's quants go in as stored, MXFP4's codes
//! are looked up as their signed values (`tbl`), the other formats' unsigned quants (below 64)
//! have their offset subtracted in the weight registers, which gives the same integer sums as the
//! reference. The `sdot` intrinsics are not stable Rust yet, so `sdot` is one
//! line of inline assembly.
//!
//! Arithmetic: integer sums per block exactly as the scalar reference, then the reference's f32
//! operations (multiplies and adds, never fused) in its order — bit-identical to
//! [`super::scalar`], which the tests check. The float formats convert 8 rows' element to f32 in
//! registers (`fcvtl` for F16, a shift for BF16) and fuse multiply-adds (`fmla` by element: one
//! activation load serves 4 elements) in the order of [`FLOAT_CHAINS`], as the scalar kernel.
#![allow(unsafe_code)]
// Half, token and chain loops index several arrays in step; iterators would hide that.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;
use std::arch::asm;

use crate::formats::mxfp4::KVALUES;
use crate::packed::activations::PackedActivations;
use crate::packed::layout::*;
use crate::packed::scalar::FLOAT_CHAINS;

// The float kernels keep one accumulator array per chain: even and odd elements.
const _: () = assert!(FLOAT_CHAINS == 2);

/// One vector per half of the group: rows 0–3, rows 4–7.
type Rows<T> = [T; 2];

/// `acc + Σ₄ w·a` per 32-bit lane, `a` being the 4 bytes in lane `LANE` of `a`.
#[inline(always)]
unsafe fn sdot<const LANE: i32>(mut acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    // SAFETY: only called from functions compiled with `dotprod`; registers only, no memory.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[{lane}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            lane = const LANE,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// [`sdot`] on both halves of the group.
#[inline(always)]
unsafe fn sdot_rows<const LANE: i32>(acc: &mut Rows<int32x4_t>, w: &Rows<int8x16_t>, a: int8x16_t) {
    // SAFETY: forwarded from the caller.
    unsafe {
        acc[0] = sdot::<LANE>(acc[0], w[0], a);
        acc[1] = sdot::<LANE>(acc[1], w[1], a);
    }
}

/// Adds four weight quads (8 rows × 4 quants each) times 16 activation quants at `at` of every
/// token to the tokens' chains: quad `i` meets lane `i`, into chain `i % CH`.
#[inline(always)]
unsafe fn dot_quads<const NT: usize, const CH: usize>(
    sums: &mut [[Rows<int32x4_t>; CH]; NT],
    quads: &[Rows<int8x16_t>; 4],
    quants: &[*const i8; NT],
    at: usize,
) {
    // SAFETY: callers pass token pointers with 16 readable quants at `at`.
    unsafe {
        for (chains, q) in sums.iter_mut().zip(quants) {
            let a = vld1q_s8(q.add(at));
            sdot_rows::<0>(&mut chains[0], &quads[0], a);
            sdot_rows::<1>(&mut chains[1 % CH], &quads[1], a);
            sdot_rows::<2>(&mut chains[2 % CH], &quads[2], a);
            sdot_rows::<3>(&mut chains[3 % CH], &quads[3], a);
        }
    }
}

/// The sum of independent accumulator chains (several chains hide `sdot`'s latency when few
/// tokens share the weights; integer sums, so the order does not matter).
#[inline(always)]
unsafe fn sum_chains<const CH: usize>(chains: [Rows<int32x4_t>; CH]) -> Rows<int32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let mut sum = chains[0];
        for chain in &chains[1..] {
            sum = [vaddq_s32(sum[0], chain[0]), vaddq_s32(sum[1], chain[1])];
        }
        sum
    }
}

// The kernels build their small register arrays with loops over constant bounds, not
// `array::map` or `array::from_fn`: those stayed out-of-line calls (`try_map`) inside the block
// loops of the release build.

/// Two consecutive nibble chunks (64 bytes) as four quads: low nibbles of the first chunk, its
/// high nibbles, then the second chunk's.
#[inline(always)]
unsafe fn nibble_quads(p: *const u8) -> [Rows<uint8x16_t>; 4] {
    // SAFETY: callers pass pointers to 64 readable bytes.
    unsafe {
        let mask = vdupq_n_u8(0x0f);
        let mut quads = [[mask; 2]; 4];
        for c in 0..2 {
            for h in 0..2 {
                let v = vld1q_u8(p.add(32 * c + 16 * h));
                quads[2 * c][h] = vandq_u8(v, mask);
                quads[2 * c + 1][h] = vshrq_n_u8::<4>(v);
            }
        }
        quads
    }
}

/// Unsigned quants minus the format's offset (both below 64, so the results fit `i8`).
#[inline(always)]
unsafe fn signed(quads: [Rows<uint8x16_t>; 4], format: PackedFormat) -> [Rows<int8x16_t>; 4] {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let offset = vdupq_n_u8(format.offset() as u8);
        let mut out = [[vdupq_n_s8(0); 2]; 4];
        for (o, q) in out.iter_mut().zip(quads) {
            for h in 0..2 {
                o[h] = vreinterpretq_s8_u8(vsubq_u8(q[h], offset));
            }
        }
        out
    }
}

/// MXFP4: four quads of codes (0..16) looked up as their signed values, [`KVALUES`] (`tbl`).
#[inline(always)]
unsafe fn mxfp4_values(quads: [Rows<uint8x16_t>; 4]) -> [Rows<int8x16_t>; 4] {
    // SAFETY: NEON is baseline on aarch64; the table is 16 readable bytes.
    unsafe {
        let table = vld1q_s8(KVALUES.as_ptr());
        let mut out = [[vdupq_n_s8(0); 2]; 4];
        for (o, q) in out.iter_mut().zip(quads) {
            for h in 0..2 {
                o[h] = vqtbl1q_s8(table, q[h]);
            }
        }
        out
    }
}

/// MXFP4: the 8 rows' E8M0 bytes at `p` as ggml's `e8m0_to_fp32_half`, `2^(e − 128)`: the
/// exponent field `e − 1` for `e ≥ 2`, the subnormals `0x0020_0000 << e` below.
///
/// # Safety
/// `p` points to 8 readable bytes.
#[inline(always)]
unsafe fn e8m0_half_rows(p: *const u8) -> Rows<float32x4_t> {
    // SAFETY: callers pass pointers to 8 bytes; NEON is baseline on aarch64.
    unsafe {
        let e = vmovl_u8(vld1_u8(p));
        let mut out = [vdupq_n_f32(0.0); 2];
        for (h, o) in out.iter_mut().enumerate() {
            let e = vmovl_u16(if h == 0 { vget_low_u16(e) } else { vget_high_u16(e) });
            let normal = vshlq_n_u32::<23>(vsubq_u32(e, vdupq_n_u32(1)));
            // Only e < 2 is kept: shifts by 0 or 1.
            let subnormal = vshlq_u32(vdupq_n_u32(0x0020_0000), vreinterpretq_s32_u32(e));
            let below_two = vcltq_u32(e, vdupq_n_u32(2));
            *o = vreinterpretq_f32_u32(vbslq_u32(below_two, subnormal, normal));
        }
        out
    }
}

/// `0x10` in byte `j` of the quad where bit `j` of `mask` is set: Q5_0's fifth bits.
#[inline(always)]
unsafe fn fifth_bits(mask: u32) -> Rows<uint8x16_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        // Byte j of half h takes mask byte 2h + j / 8, then tests its bit j % 8.
        let bytes = vreinterpretq_u8_u32(vdupq_n_u32(mask));
        let bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
        let sixteen = vdupq_n_u8(0x10);
        let mut out = [sixteen; 2];
        for (h, o) in out.iter_mut().enumerate() {
            let index = vcombine_u8(vdup_n_u8(2 * h as u8), vdup_n_u8(2 * h as u8 + 1));
            *o = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, index), bits), sixteen);
        }
        out
    }
}

/// Four quads (two nibble chunks) with their fifth bits from the 4 quad masks at `masks`
/// (Q5_0, Q5_K).
///
/// # Safety
/// `masks` points to 4 readable quad masks.
#[inline(always)]
unsafe fn with_fifth_bits(
    mut quads: [Rows<uint8x16_t>; 4],
    masks: *const u8,
) -> [Rows<uint8x16_t>; 4] {
    // SAFETY: callers pass pointers to 4 readable masks.
    unsafe {
        for (i, quad) in quads.iter_mut().enumerate() {
            let bits = fifth_bits(masks.cast::<u32>().add(i).read_unaligned());
            *quad = [vorrq_u8(quad[0], bits[0]), vorrq_u8(quad[1], bits[1])];
        }
    }
    quads
}

/// A bit field of every byte moved by `n` bits (left, or right for negative `n`) and kept where
/// `mask` is set.
#[inline(always)]
unsafe fn move_bits(v: Rows<uint8x16_t>, n: i8, mask: u8) -> Rows<uint8x16_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let (n, mask) = (vdupq_n_s8(n), vdupq_n_u8(mask));
        [vandq_u8(vshlq_u8(v[0], n), mask), vandq_u8(vshlq_u8(v[1], n), mask)]
    }
}

#[inline(always)]
unsafe fn or(a: Rows<uint8x16_t>, b: Rows<uint8x16_t>) -> Rows<uint8x16_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vorrq_u8(a[0], b[0]), vorrq_u8(a[1], b[1])] }
}

/// One 32-byte chunk of the group: rows 0–3, rows 4–7.
#[inline(always)]
unsafe fn load_chunk(p: *const u8) -> Rows<uint8x16_t> {
    // SAFETY: callers pass pointers to 32 readable bytes.
    unsafe { [vld1q_u8(p), vld1q_u8(p.add(16))] }
}

/// `mins[t] += m_i · sum(t, i)` for the two sub-blocks `i` of a pair whose u8 mins sit side by
/// side for each row at `p` (`vld2` de-interleaves them), the mins at bits `shift..` of the byte
/// (Q2_K keeps them in the high nibble).
///
/// # Safety
/// `p` points to 16 readable bytes.
#[inline(always)]
unsafe fn add_min_pair<const NT: usize>(
    mins: &mut [Rows<int32x4_t>; NT],
    p: *const u8,
    shift: i8,
    sum: impl Fn(usize, usize) -> i32,
) {
    // SAFETY: callers pass pointers to 16 readable bytes.
    unsafe {
        let pair = vld2_u8(p);
        for (i, m) in [pair.0, pair.1].into_iter().enumerate() {
            let m = widen_u8(vshl_u8(m, vdup_n_s8(-shift)));
            for (t, mins) in mins.iter_mut().enumerate() {
                *mins = add_scaled(*mins, m, [vdupq_n_s32(sum(t, i)); 2]);
            }
        }
    }
}

/// The four quads (quants `16s..16s + 16` of each row, unsigned) of sub-block `s` of a Q6_K,
/// Q3_K or Q2_K group-block: nibbles and 2-bit high parts, 2-bit low parts and high bits, or
/// 2-bit quants.
///
/// # Safety
/// `blk` points to a whole group-block of the format.
#[inline(always)]
unsafe fn k16_quads<const F: u8>(blk: *const u8, s: usize) -> [Rows<uint8x16_t>; 4] {
    // SAFETY: the chunks of sub-block `s` lie inside the group-block.
    unsafe {
        if F == Q6_K_CODE {
            // High parts of quad i at bits 2i..2i+2, moved to bits 4..6.
            let h = load_chunk(blk.add(q6_k_high(s)));
            let mut quads = nibble_quads(blk.add(q6_k_low(s)));
            for (i, quad) in quads.iter_mut().enumerate() {
                *quad = or(*quad, move_bits(h, 4 - 2 * i as i8, 0x30));
            }
            quads
        } else if F == Q2_K_CODE {
            let v = load_chunk(blk.add(q2_k_quants(s)));
            let mut quads = [v; 4];
            for (i, quad) in quads.iter_mut().enumerate() {
                *quad = move_bits(v, -2 * i as i8, 0x03);
            }
            quads
        } else {
            // Q3_K: low parts of quad i at bits 2i..2i+2, its high bit at bit 4·(s % 2) + i.
            let (low, high) = (load_chunk(blk.add(q3_k_low(s))), load_chunk(blk.add(q3_k_high(s))));
            let mut quads = [low; 4];
            for (i, quad) in quads.iter_mut().enumerate() {
                let high_bit = (4 * (s % 2) + i) as i8;
                *quad = or(move_bits(low, -2 * i as i8, 0x03), move_bits(high, 2 - high_bit, 0x04));
            }
            quads
        }
    }
}

/// Eight f16 row scales as f32.
#[inline(always)]
unsafe fn row_scales(p: *const u8) -> Rows<float32x4_t> {
    // SAFETY: callers pass pointers to 8 f16 values; the conversions (base Armv8 `fcvtl`,
    // exact) touch registers only. `vcvt_f32_f16` would need Rust 1.94.
    unsafe {
        let h = vld1q_u16(p.cast());
        let (lo, hi): (float32x4_t, float32x4_t);
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo, // not `lateout`: written before `h` is read again
            hi = lateout(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
        [lo, hi]
    }
}

/// Eight per-row `u8` widened to `i32`.
#[inline(always)]
unsafe fn widen_u8(v: uint8x8_t) -> Rows<int32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { widen_i16(vreinterpretq_s16_u16(vmovl_u8(v))) }
}

/// Eight per-row `i16` widened to `i32`.
#[inline(always)]
unsafe fn widen_i16(v: int16x8_t) -> Rows<int32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vmovl_s16(vget_low_s16(v)), vmovl_s16(vget_high_s16(v))] }
}

/// `total + sum · scales` per lane (integers: exact in any order).
#[inline(always)]
unsafe fn add_scaled(
    total: Rows<int32x4_t>,
    sum: Rows<int32x4_t>,
    scales: Rows<int32x4_t>,
) -> Rows<int32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vmlaq_s32(total[0], sum[0], scales[0]), vmlaq_s32(total[1], sum[1], scales[1])] }
}

/// The f32 operations the finishing steps need, on both halves.
#[inline(always)]
unsafe fn mul(a: Rows<float32x4_t>, b: Rows<float32x4_t>) -> Rows<float32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vmulq_f32(a[0], b[0]), vmulq_f32(a[1], b[1])] }
}

#[inline(always)]
unsafe fn add(a: Rows<float32x4_t>, b: Rows<float32x4_t>) -> Rows<float32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vaddq_f32(a[0], b[0]), vaddq_f32(a[1], b[1])] }
}

#[inline(always)]
unsafe fn sub(a: Rows<float32x4_t>, b: Rows<float32x4_t>) -> Rows<float32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vsubq_f32(a[0], b[0]), vsubq_f32(a[1], b[1])] }
}

#[inline(always)]
unsafe fn splat(x: f32) -> Rows<float32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vdupq_n_f32(x); 2] }
}

#[inline(always)]
unsafe fn to_f32(v: Rows<int32x4_t>) -> Rows<float32x4_t> {
    // SAFETY: NEON is baseline on aarch64 (round to nearest, as `as f32`).
    unsafe { [vcvtq_f32_s32(v[0]), vcvtq_f32_s32(v[1])] }
}

/// Pointers to the quants of tokens `first_token..first_token + NT`.
#[inline(always)]
unsafe fn token_quants<const NT: usize>(
    acts: &PackedActivations,
    first_token: usize,
) -> [*const i8; NT] {
    let k = acts.row_length();
    // SAFETY: callers pass tokens inside the activations.
    unsafe { std::array::from_fn(|t| acts.quants.as_ptr().add((first_token + t) * k)) }
}

#[inline(always)]
unsafe fn store<const NT: usize>(out: &mut [[f32; ROWS]], acc: [Rows<float32x4_t>; NT]) {
    // SAFETY: callers pass `out` with at least NT tokens.
    unsafe {
        for (o, a) in out.iter_mut().zip(acc) {
            vst1q_f32(o.as_mut_ptr(), a[0]);
            vst1q_f32(o.as_mut_ptr().add(4), a[1]);
        }
    }
}

#[inline(always)]
unsafe fn zero() -> Rows<int32x4_t> {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { [vdupq_n_s32(0); 2] }
}

/// Q4_0, Q5_0, Q4_1, Q5_1, MXFP4, Q8_0 and Q8_K (Q8_0 with 256-element blocks and f32 scales)
/// for `NT` tokens from `first_token`.
#[inline(always)]
unsafe fn legacy<const F: u8, const NT: usize, const CH: usize>(
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let format = const { PackedFormat::from_code(F) };
    let (n, block_bytes) = (format.block_elements(), format.group_block_bytes());
    let nb = acts.row_length() / n;
    debug_assert!(group.len() >= nb * block_bytes && out.len() >= NT);
    // SAFETY: the driver checked the shapes: `group` holds nb group-blocks, the activations
    // hold tokens first_token..first_token + NT of k quants and k / n scales each.
    unsafe {
        let quants = token_quants::<NT>(acts, first_token);
        let mut acc = [splat(0.0); NT];
        for b in 0..nb {
            let blk = group.as_ptr().add(b * block_bytes);
            let mut isum = [[zero(); CH]; NT];
            // Quads 4p..4p + 4 against quants 16p..16p + 16.
            for p in 0..n / 16 {
                let quads = match F {
                    Q8_0_CODE | Q8_K_CODE => {
                        let first = if F == Q8_K_CODE { Q8_K_QUANTS } else { Q8_0_QUANTS };
                        let mut quads = [[vdupq_n_s8(0); 2]; 4];
                        for (i, quad) in quads.iter_mut().enumerate() {
                            let w = blk.add(first + 32 * (4 * p + i)).cast::<i8>();
                            *quad = [vld1q_s8(w), vld1q_s8(w.add(16))];
                        }
                        quads
                    }
                    MXFP4_CODE => mxfp4_values(nibble_quads(blk.add(MXFP4_QUANTS + 64 * p))),
                    _ => {
                        let quads = nibble_quads(blk.add(format.legacy_quants() + 64 * p));
                        let quads = match format.legacy_masks() {
                            Some(masks) => with_fifth_bits(quads, blk.add(masks + 16 * p)),
                            None => quads,
                        };
                        signed(quads, format)
                    }
                };
                dot_quads::<NT, CH>(&mut isum, &quads, &quants, n * b + 16 * p);
            }
            let dw = match F {
                Q8_K_CODE => {
                    let d = blk.add(SCALES).cast::<f32>();
                    [vld1q_f32(d), vld1q_f32(d.add(4))]
                }
                MXFP4_CODE => e8m0_half_rows(blk.add(SCALES)),
                _ => row_scales(blk.add(SCALES)),
            };
            let with_min = format.has_dmin();
            let m = if with_min { row_scales(blk.add(DMIN)) } else { splat(0.0) };
            for t in 0..NT {
                let at = (first_token + t) * nb + b;
                let da = splat(acts.scales[at]);
                let sumi = to_f32(sum_chains(isum[t]));
                let mut term =
                    if F == Q4_0_CODE { mul(mul(sumi, dw), da) } else { mul(mul(dw, da), sumi) };
                if with_min {
                    // ggml's `+ m · s`, inside the block's term.
                    term = add(term, mul(m, splat(acts.scaled_sums[at])));
                }
                acc[t] = add(acc[t], term);
            }
        }
        store(out, acc);
    }
}

/// Q4_K, or Q5_K when `FIVE` (the same scales and mins, a fifth bit per quant), for `NT` tokens
/// from `first_token`.
#[inline(always)]
unsafe fn q4_k<const FIVE: bool, const NT: usize, const CH: usize>(
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
        let quants = token_quants::<NT>(acts, first_token);
        let mut acc = [splat(0.0); NT];
        for sb in 0..nsb {
            let blk = group.as_ptr().add(sb * block_bytes);
            let mut total = [zero(); NT];
            let mut mins = [zero(); NT];
            for s in 0..8 {
                let mut sub = [[zero(); CH]; NT];
                for p in 0..2 {
                    let quads = if FIVE {
                        let quads = nibble_quads(blk.add(q5_k_quants(s) + 64 * p));
                        with_fifth_bits(quads, blk.add(q5_k_masks(s) + 16 * p))
                    } else {
                        nibble_quads(blk.add(Q4_K_QUANTS + 128 * s + 64 * p))
                    };
                    let quads = signed(quads, format);
                    dot_quads::<NT, CH>(&mut sub, &quads, &quants, 256 * sb + 32 * s + 16 * p);
                }
                let scales = widen_u8(vld1_u8(blk.add(Q4_K_SUB_SCALES + 8 * s)));
                for t in 0..NT {
                    total[t] = add_scaled(total[t], sum_chains(sub[t]), scales);
                }
            }
            for p in 0..4 {
                add_min_pair(&mut mins, blk.add(Q4_K_MINS + 16 * p), 0, |t, i| {
                    acts.sums32[(first_token + t) * (k / 32) + 8 * sb + 2 * p + i]
                });
            }
            let d = row_scales(blk.add(SCALES));
            let dmin = row_scales(blk.add(DMIN));
            for t in 0..NT {
                let dy = splat(acts.scales[(first_token + t) * nsb + sb]);
                let scaled = mul(mul(d, dy), to_f32(total[t]));
                let m = mul(mul(dmin, dy), to_f32(mins[t]));
                acc[t] = sub(add(acc[t], scaled), m);
            }
        }
        store(out, acc);
    }
}

/// Sub-block `s`'s integer scale of the 8 rows: Q6_K's and Q3_K's i8, Q2_K's low nibble.
///
/// # Safety
/// `blk` points to a whole group-block of the format.
#[inline(always)]
unsafe fn k16_scales<const F: u8>(blk: *const u8, s: usize) -> Rows<int32x4_t> {
    // SAFETY: the scales of sub-block `s` lie inside the group-block.
    unsafe {
        if F == Q2_K_CODE {
            // Each row's bytes of sub-blocks 2p and 2p + 1 sit side by side: de-interleave.
            let pair = vld2_u8(blk.add(Q2_K_SCALES + 16 * (s / 2)));
            let bytes = if s.is_multiple_of(2) { pair.0 } else { pair.1 };
            widen_u8(vand_u8(bytes, vdup_n_u8(0x0f)))
        } else {
            widen_i16(vmovl_s8(vld1_s8(blk.add(I8_SUB_SCALES + 8 * s).cast())))
        }
    }
}

/// Q6_K, Q3_K and Q2_K (16 sub-blocks of 16 quants, an integer scale each, an f16 `d`, and
/// Q2_K's mins) for `NT` tokens from `first_token`.
#[inline(always)]
unsafe fn k16<const F: u8, const NT: usize, const CH: usize>(
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let format = const { PackedFormat::from_code(F) };
    let k = acts.row_length();
    let nsb = k / 256;
    let block_bytes = format.group_block_bytes();
    debug_assert!(group.len() >= nsb * block_bytes && out.len() >= NT);
    // SAFETY: as in `legacy`, with k / 256 scales and k / 16 sums per token.
    unsafe {
        let quants = token_quants::<NT>(acts, first_token);
        let mut acc = [splat(0.0); NT];
        for sb in 0..nsb {
            let blk = group.as_ptr().add(sb * block_bytes);
            let mut total = [zero(); NT];
            for s in 0..16 {
                let quads = signed(k16_quads::<F>(blk, s), format);
                let mut sub = [[zero(); CH]; NT];
                dot_quads::<NT, CH>(&mut sub, &quads, &quants, 256 * sb + 16 * s);
                let scales = k16_scales::<F>(blk, s);
                for t in 0..NT {
                    total[t] = add_scaled(total[t], sum_chains(sub[t]), scales);
                }
            }
            let d = row_scales(blk.add(SCALES));
            if F == Q2_K_CODE {
                let mut mins = [zero(); NT];
                for p in 0..8 {
                    add_min_pair(&mut mins, blk.add(Q2_K_SCALES + 16 * p), 4, |t, i| {
                        acts.sums16[(first_token + t) * (k / 16) + 16 * sb + 2 * p + i]
                    });
                }
                let dmin = row_scales(blk.add(DMIN));
                for t in 0..NT {
                    let dy = splat(acts.scales[(first_token + t) * nsb + sb]);
                    let scaled = mul(mul(d, dy), to_f32(total[t]));
                    let m = mul(mul(dmin, dy), to_f32(mins[t]));
                    // ggml's order: the block's two terms first (Q4_K adds them one by one).
                    acc[t] = add(acc[t], sub(scaled, m));
                }
            } else {
                for t in 0..NT {
                    let dy = splat(acts.scales[(first_token + t) * nsb + sb]);
                    acc[t] = add(acc[t], mul(mul(d, dy), to_f32(total[t])));
                }
            }
        }
        store(out, acc);
    }
}

/// Element `e` of the 8 rows of a float group-block, as f32 (exact conversions).
///
/// # Safety
/// `p` points to 8 readable values of the format.
#[inline(always)]
unsafe fn float_rows<const F: u8>(p: *const u8) -> Rows<float32x4_t> {
    // SAFETY: callers pass pointers to 8 values of the format.
    unsafe {
        match F {
            F32_CODE => [vld1q_f32(p.cast()), vld1q_f32(p.cast::<f32>().add(4))],
            F16_CODE => row_scales(p),
            _ => {
                let bits = vld1q_u16(p.cast());
                [
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(bits))),
                    vreinterpretq_f32_u32(vshll_high_n_u16::<16>(bits)),
                ]
            }
        }
    }
}

/// `acc + w · x[LANE]` on both halves, fused (`fmla` by element).
///
/// # Safety
/// None beyond NEON, which aarch64 always has.
#[inline(always)]
unsafe fn fma_rows<const LANE: i32>(
    acc: &mut Rows<float32x4_t>,
    w: &Rows<float32x4_t>,
    x: float32x4_t,
) {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        acc[0] = vfmaq_laneq_f32::<LANE>(acc[0], w[0], x);
        acc[1] = vfmaq_laneq_f32::<LANE>(acc[1], w[1], x);
    }
}

/// F32, F16 and BF16 for `NT` tokens from `first_token`: each weight vector pair (one element of
/// the 8 rows) meets every token's activation, in the chains of [`FLOAT_CHAINS`].
///
/// # Safety
/// `group`, `acts` and `out` have the shapes the driver checks (the group's k elements, k
/// values per token, `NT` tokens from `first_token`).
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
        // One array per chain (as on x86: accumulators indexed by token only stay in registers).
        let (mut even, mut odd) = ([splat(0.0); NT], [splat(0.0); NT]);
        // Four elements at a time: one activation load per token, lane i for element j + i.
        for j in (0..acts.row_length()).step_by(4) {
            let p = group.as_ptr().add(j * step);
            let w = [
                float_rows::<F>(p),
                float_rows::<F>(p.add(step)),
                float_rows::<F>(p.add(2 * step)),
                float_rows::<F>(p.add(3 * step)),
            ];
            for t in 0..NT {
                let a = vld1q_f32(x[t].add(j));
                fma_rows::<0>(&mut even[t], &w[0], a);
                fma_rows::<1>(&mut odd[t], &w[1], a);
                fma_rows::<2>(&mut even[t], &w[2], a);
                fma_rows::<3>(&mut odd[t], &w[3], a);
            }
        }
        let mut sums = even;
        for (sum, odd) in sums.iter_mut().zip(odd) {
            *sum = add(*sum, odd);
        }
        store(out, sums);
    }
}

/// One tile of `NT` tokens of any format.
#[inline(always)]
unsafe fn tile<const NT: usize, const CH: usize>(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match format {
            PackedFormat::Q4_0 => legacy::<Q4_0_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q5_0 => legacy::<Q5_0_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q8_0 => legacy::<Q8_0_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q4_1 => legacy::<Q4_1_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q5_1 => legacy::<Q5_1_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q4_K => q4_k::<false, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q5_K => q4_k::<true, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q6_K => k16::<Q6_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q3_K => k16::<Q3_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q2_K => k16::<Q2_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::Q8_K => legacy::<Q8_K_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::MXFP4 => legacy::<MXFP4_CODE, NT, CH>(group, acts, first_token, out),
            PackedFormat::F32 => float::<F32_CODE, NT>(group, acts, first_token, out),
            PackedFormat::F16 => float::<F16_CODE, NT>(group, acts, first_token, out),
            PackedFormat::BF16 => float::<BF16_CODE, NT>(group, acts, first_token, out),
        }
    }
}

/// `out[t][r]` = row `r` of the group · token `first_token + t`, for `out.len()` tokens, in
/// tiles of 4 tokens per weight load (then 2, then 1, with more accumulator chains).
///
/// # Safety
/// The CPU must support NEON and the dot-product instructions; shapes as checked by the driver.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn group_dot_neon_dotprod(
    format: PackedFormat,
    group: &[u8],
    acts: &PackedActivations,
    first_token: usize,
    out: &mut [[f32; ROWS]],
) {
    let mut t = 0;
    // SAFETY: forwarded from the caller; each tile stays inside `out`.
    unsafe {
        while out.len() - t >= 4 {
            tile::<4, 1>(format, group, acts, first_token + t, &mut out[t..]);
            t += 4;
        }
        while out.len() - t >= 2 {
            tile::<2, 2>(format, group, acts, first_token + t, &mut out[t..]);
            t += 2;
        }
        if t < out.len() {
            tile::<1, 4>(format, group, acts, first_token + t, &mut out[t..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::packed::Isa;

    /// The parity tests in `packed::tests` cover this kernel wherever the CPU (or the emulator:
    /// `qemu-aarch64 -cpu max`) has the dot-product instructions.
    #[test]
    fn dotprod_cpus_run_the_neon_kernel() {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            assert!(Isa::available().contains(&Isa::NeonDotprod));
            assert_eq!(Isa::detected(), Isa::NeonDotprod);
        }
    }
}
