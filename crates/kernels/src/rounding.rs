//! ggml's two float-to-integer roundings, reproduced bit for bit.
//!
//! ggml uses two different roundings and which one a quantizer uses changes its output bytes:
//! - `roundf` (round half away from zero) in `quantize_row_q8_0_ref` / `q8_1`: Rust's
//!   [`f32::round`] is the same function (gguf-py's `np_roundf` reproduces it too).
//! - `nearest_int` (round half to even, via the 1.5·2²³ magic-number trick) in the K-quants.
//!
//! The legacy 4/5-bit quantizers truncate `x + 8.5` (or `+ 16.5`, `+ 0.5`) with a C cast; Rust's
//! `as` cast truncates the same way for the in-range values those produce.

/// ggml's `nearest_int`: adds 1.5·2²³ so that the FPU's round-to-nearest-even lands the integer in
/// the low mantissa bits, then reads it back.
///
/// Valid for `|fval| <= 4194303` (2²² − 1), as in ggml (which only asserts it). Outside that range
/// the result is meaningless but never a panic.
#[inline]
pub fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    // Reinterpreting the f32 bits as i32 is exactly what ggml's memcpy does.
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// C's `roundf`: round half away from zero, as truncation plus a correction (both exact), so
/// that loops over it vectorise where `f32::round` is a library call per element.
#[inline(always)]
pub fn round_half_away(x: f32) -> f32 {
    let truncated = x.trunc();
    if (x - truncated).abs() >= 0.5 {
        truncated + 1.0f32.copysign(x)
    } else {
        truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(2.4999), 2);
        assert_eq!(nearest_int(-7.6), -8);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
    }

    #[test]
    fn nearest_int_matches_round_ties_even() {
        let mut x = -300.0f32;
        while x < 300.0 {
            assert_eq!(nearest_int(x), x.round_ties_even() as i32, "x = {x}");
            x += 0.0625 / 3.0;
        }
    }

    #[test]
    fn round_half_away_equals_f32_round_everywhere_that_matters() {
        // Every f32 with |x| < 2²⁴ in steps that hit every tie, plus the specials.
        let mut x = -300.0f32;
        while x < 300.0 {
            assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "x = {x}");
            x += 1.0 / 64.0;
        }
        for x in [0.499_999_97, -0.499_999_97, 8_388_607.5, -8_388_607.5, 1e30, f32::INFINITY] {
            assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "x = {x}");
        }
        assert!(round_half_away(f32::NAN).is_nan());
    }

    #[test]
    fn roundf_is_half_away_from_zero() {
        assert_eq!(round_half_away(0.5), 1.0);
        assert_eq!(round_half_away(-0.5), -1.0);
        assert_eq!(round_half_away(2.5), 3.0);
        assert_eq!(round_half_away(0.49999997), 0.0);
    }
}
