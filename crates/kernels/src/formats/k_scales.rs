//! The packed 6-bit sub-block scales shared by the K-quants.

/// ggml's `get_scale_min_k4`: the 6-bit scale and 6-bit min of sub-block `j` (0..8) of a Q4_K
/// or Q5_K block, packed in 12 bytes as
///
/// ```text
///  0..4   scale[j] low 6 bits   | scale[j+4] bits 4..6 in bits 6..8
///  4..8   min[j]   low 6 bits   | min[j+4]   bits 4..6 in bits 6..8
///  8..12  scale[j+4] low 4 bits | min[j+4] low 4 bits in the high nibble
/// ```
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Packs eight 6-bit scales and mins the way `quantize_row_q4_K_ref` does (inverse of
/// [`get_scale_min_k4`]).
/// One block of the Q4_K/Q5_K · Q8_K dot product (ggml's generic kernels), which differ only in
/// how a quant is read: integer sums `Σ_s sc[s]·Σ q·q8` and `Σ_s m[s]·(bsums of s)`, returned as
/// the f32 terms `(d·dy·sumi, dmin·dy·summins)` that the caller adds and subtracts in that order.
pub(super) fn dot_scale_min_k4_block(
    d: half::f16,
    dmin: half::f16,
    scales: &[u8; 12],
    quant: impl Fn(usize) -> u8,
    y: &super::q8_k::BlockQ8_K,
) -> (f32, f32) {
    let mut sumi = 0i32;
    let mut summins = 0i32;
    for s in 0..8 {
        let (sc, m) = get_scale_min_k4(s, scales);
        let sub: i32 =
            (32 * s..32 * s + 32).map(|j| i32::from(quant(j)) * i32::from(y.qs[j])).sum();
        sumi += i32::from(sc) * sub;
        summins += i32::from(m) * (i32::from(y.bsums[2 * s]) + i32::from(y.bsums[2 * s + 1]));
    }
    (d.to_f32() * y.d * sumi as f32, dmin.to_f32() * y.d * summins as f32)
}

pub fn pack_scale_min_k4(scales: &[u8; 8], mins: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        let (ls, lm) = (scales[j], mins[j]);
        if j < 4 {
            q[j] = ls;
            q[j + 4] = lm;
        } else {
            q[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            q[j - 4] |= (ls >> 4) << 6;
            q[j] |= (lm >> 4) << 6;
        }
    }
    q
}

/// The sixteen 6-bit scales of a Q3_K block (stored with an offset of 32), packed in 12 bytes:
/// scale `j` has its low 4 bits in nibble `j / 8` of byte `j % 8` and its high 2 bits in bits
/// `2·(j / 4)` of byte `8 + j % 4` (ggml's `kmask` shuffle in `dequantize_row_q3_K`).
#[inline]
pub fn q3_k_scales(q: &[u8; 12]) -> [i8; 16] {
    std::array::from_fn(|j| {
        let low = (q[j % 8] >> (4 * (j / 8))) & 0x0f;
        let high = (q[8 + j % 4] >> (2 * (j / 4))) & 0x03;
        ((low | (high << 4)) as i8) - 32
    })
}

/// What `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` share for one block of 256 values:
/// per 32-value sub-block `make_qkx2_quants(nmax, …)` with weights `√(mean x²) + |x|`, the
/// scales and mins quantized to 6 bits against their maxima (`d`, `dmin`), then every quant
/// recomputed against the rounded scales, in `0..=nmax`.
pub(super) struct KQuantLevels {
    pub(super) levels: [u8; super::QK_K],
    pub(super) scales: [u8; 12],
    pub(super) d: half::f16,
    pub(super) dmin: half::f16,
}

/// [`KQuantLevels`] of `x` with `nmax` levels and `make_qkx2_quants`'s `rmin` and `nstep`
/// (Q4_K: 15, −1, 20; Q5_K: 31, −0.5, 15).
pub(super) fn k_quant_levels(
    x: &[f32; super::QK_K],
    nmax: u8,
    rmin: f32,
    nstep: i32,
) -> KQuantLevels {
    use super::search::make_qkx2_quants;
    use crate::rounding::nearest_int;
    let mut levels = [0u8; super::QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|l| av_x + xs[l].abs());
        let sub_levels = &mut levels[32 * j..32 * j + 32];
        let nmax_i = i32::from(nmax);
        (scales[j], mins[j]) =
            make_qkx2_quants(nmax_i, xs, &weights, sub_levels, rmin, 0.1, nstep, false);
        max_scale = max_scale.max(scales[j]);
        max_min = max_min.max(mins[j]);
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int's result in a uint8_t (wrapping), then takes MIN(63, ·).
    let ls: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = half::f16::from_f32(max_scale / 63.0);
    let dmin = half::f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dj = d.to_f32() * f32::from(sc);
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for i in 32 * j..32 * j + 32 {
            levels[i] = nearest_int((x[i] + dm) / dj).clamp(0, i32::from(nmax)) as u8;
        }
    }
    KQuantLevels { levels, scales: packed, d, dmin }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_pack_unpack() {
        let scales: [u8; 8] = std::array::from_fn(|j| (j as u8 * 9 + 5) % 64);
        let mins: [u8; 8] = std::array::from_fn(|j| (j as u8 * 23 + 60) % 64);
        let packed = pack_scale_min_k4(&scales, &mins);
        for j in 0..8 {
            assert_eq!(get_scale_min_k4(j, &packed), (scales[j], mins[j]), "sub-block {j}");
        }
    }

    #[test]
    fn q3_k_scales_known() {
        // All low nibbles 0xF (bytes 0..8 = 0xFF), high bits: byte 8 = 0b11_10_01_00.
        let mut q = [0xffu8; 12];
        q[8] = 0b1110_0100;
        q[9] = 0;
        q[10] = 0;
        q[11] = 0;
        let s = q3_k_scales(&q);
        // j = 0: high bits (q[8] >> 0) & 3 = 0 → 15 − 32.
        assert_eq!(s[0], 15 - 32);
        // j = 4: (q[8] >> 2) & 3 = 1 → 31 − 32.
        assert_eq!(s[4], -1);
        // j = 8: (q[8] >> 4) & 3 = 2 → 47 − 32; j = 12: 3 → 63 − 32.
        assert_eq!((s[8], s[12]), (15, 31));
        assert_eq!(s[1], -17);
    }
}
