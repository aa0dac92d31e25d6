//! ggml's scale searches for the K-quant quantizers (`make_qkx2_quants`, `make_qx_quants`),
//! reproduced operation for operation (f32 arithmetic in ggml's order, `nearest_int` rounding)
//! so that the quantized bytes match `quantize_row_*_ref`.

use crate::rounding::nearest_int;

/// ggml's `GROUP_MAX_EPS`: groups whose max magnitude is below this quantize to zeros.
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `make_qkx2_quants`: weighted search for the scale and (non-positive) minimum of an
/// asymmetric `nmax`-level quantization of `x`. Writes the levels to `levels` and returns
/// `(scale, -min)`.
#[allow(clippy::too_many_arguments)] // ggml's signature, kept for a line-by-line comparison
pub fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    debug_assert!(weights.len() == n && levels.len() == n);
    let mut laux = [0u8; 32];
    debug_assert!(n <= laux.len());

    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        let diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let big_d = sum_w * sum_l2 - sum_l * sum_l;
        if big_d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / big_d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / big_d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                let diff = if use_mad { diff.abs() } else { diff * diff };
                error += weights[i] * diff;
            }
            if error < best_error {
                levels.copy_from_slice(&laux[..n]);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants` with `qw = NULL`: search for the scale of a symmetric quantization to
/// levels `-nmax..nmax` (stored offset by `nmax` in `levels`). `rmse_type` picks the error
/// weights as in ggml (1: x², 2: 1, 3: |x|, else √|x|; negative: return early).
pub fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [i8], rmse_type: i32) -> f32 {
    let n = x.len();
    debug_assert_eq!(levels.len(), n);
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    if rmse_type == 0 {
        for (level, &v) in levels.iter_mut().zip(x) {
            let l = nearest_int(iscale * v);
            *level = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
        }
        return 1.0 / iscale;
    }
    let return_early = rmse_type < 0;
    let rmse_type = rmse_type.abs();
    let weight = |v: f32| match rmse_type {
        1 => v * v,
        2 => 1.0,
        3 => v.abs(),
        _ => v.abs().sqrt(),
    };
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (level, &v) in levels.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *level = (l + nmax) as i8;
        let w = weight(v);
        let lf = l as f32;
        sumlx += w * v * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 { 0.5 * (scale + 1.0 / iscale) } else { 1.0 / iscale };
    }
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            let w = weight(v);
            let lf = l as f32;
            sumlx += w * v * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (level, &v) in levels.iter_mut().zip(x) {
                let l = nearest_int(iscale * v);
                *level = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qkx2_exact_grid_is_found() {
        // Values on the grid 0.5·l − 1 are reproduced exactly.
        let x: Vec<f32> = (0..32).map(|i| 0.5 * (i % 16) as f32 - 1.0).collect();
        let w = vec![1.0f32; 32];
        let mut levels = [0u8; 32];
        let (scale, neg_min) = make_qkx2_quants(15, &x, &w, &mut levels, -1.0, 0.1, 20, false);
        for i in 0..32 {
            let y = scale * f32::from(levels[i]) - neg_min;
            assert!((y - x[i]).abs() < 1e-6, "{i}: {y} vs {}", x[i]);
        }
    }

    #[test]
    fn qkx2_constant_block() {
        let x = [0.25f32; 16];
        let mut levels = [9u8; 16];
        let (scale, neg_min) =
            make_qkx2_quants(15, &x, &[1.0; 16], &mut levels, -1.0, 0.1, 20, false);
        // min is clamped to 0, so the block is not constant relative to it: scale > 0.
        assert!(scale > 0.0 && neg_min == 0.0);
        let zero = [0.0f32; 16];
        let (scale, neg_min) =
            make_qkx2_quants(15, &zero, &[1.0; 16], &mut levels, -1.0, 0.1, 20, false);
        assert_eq!((scale, neg_min, levels), (0.0, 0.0, [0u8; 16]));
    }

    #[test]
    fn qx_symmetric_grid() {
        let x: Vec<f32> = (0..16).map(|i| 0.25 * (i as f32 - 8.0)).collect();
        let mut levels = [0i8; 16];
        let scale = make_qx_quants(32, &x, &mut levels, 1);
        for i in 0..16 {
            let y = scale * f32::from(levels[i] - 32);
            assert!((y - x[i]).abs() <= 0.5 * scale.abs() + 1e-6, "{i}: {y} vs {}", x[i]);
        }
        let mut levels = [5i8; 16];
        assert_eq!(make_qx_quants(32, &[0.0; 16], &mut levels, 1), 0.0);
        assert_eq!(levels, [0i8; 16]);
    }
}
