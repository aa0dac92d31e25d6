//! MXFP4 (OCP microscaling FP4, the weight type of OpenAI's gpt-oss): 32 weights, one E8M0
//! power-of-two scale, 4-bit E2M1 codes (4.25 bits/weight).
//!
//! ggml doubles the E2M1 values so that they are integers ([`KVALUES`]) and halves the scale to
//! match ([`e8m0_to_fp32_half`]); every product of a value and a scale is then exact in f32
//! (barring overflow and underflow), and dot products run on integers like Q4_0's.

use bytemuck::{Pod, Zeroable};
use uma_gguf::GgmlType;

use super::q4_0::{nibble, pack_nibbles};
use super::q8_0::BlockQ8_0;
use super::{abs_max, in_array, out_array, Block, Quantize, VecDot, QK};

/// ggml's `kvalues_mxfp4`: the value of each 4-bit E2M1 code, doubled (code 8 is −0, which is
/// 0 here as in ggml).
pub const KVALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml's `block_mxfp4`: `x[j] = KVALUES[code[j]] · 2^(e − 128)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockMXFP4 {
    /// E8M0 scale: `2^(e − 127)`, applied as half that to the doubled [`KVALUES`].
    pub e: u8,
    /// Codes: element `j < 16` in the low nibble of `qs[j]`, element `j + 16` in its high nibble
    /// (Q4_0's layout).
    pub qs: [u8; QK / 2],
}

const _: () = assert!(size_of::<BlockMXFP4>() == 17);

/// ggml's `ggml_e8m0_to_fp32_half`: `2^(e − 128)` as f32, exactly. `e` 0 and 1 give the
/// subnormals 2⁻¹²⁸ and 2⁻¹²⁷; 255, which E8M0 reserves for NaN, gives 2¹²⁷ (ggml does not
/// handle NaN scales, and neither does gguf-py).
#[inline(always)]
pub fn e8m0_to_fp32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { u32::from(e - 1) << 23 };
    f32::from_bits(bits)
}

impl BlockMXFP4 {
    /// The doubled E2M1 value of element `j` (−12..=12).
    #[inline]
    fn value(&self, j: usize) -> i32 {
        i32::from(KVALUES[usize::from(nibble(&self.qs, j))])
    }

    /// ggml's `dequantize_row_mxfp4` for one block: `y = KVALUES[code] · d` in f32 with
    /// `d = e8m0_to_fp32_half(e)` (exact unless it overflows to ±inf, as ggml's does for
    /// `e ≥ 253`).
    pub fn dequantize(&self, dst: &mut [f32; QK]) {
        let d = e8m0_to_fp32_half(self.e);
        for (j, y) in dst.iter_mut().enumerate() {
            *y = self.value(j) as f32 * d;
        }
    }

    /// ggml's `quantize_row_mxfp4_ref` for one block: `e = floor(log2(amax)) − 2 + 127` (0 for
    /// an all-zero block), then each element takes the code whose value `KVALUES[i] · d` is
    /// nearest, the first such in table order on ties.
    ///
    /// `log2f` is computed as the f64 logarithm rounded to f32, which is the correctly rounded
    /// `log2f` (glibc's, which ggml calls, is the same computation); so the exponent is the same
    /// on every platform, including values just below a power of two whose `log2f` rounds up to
    /// the integer. For `amax < 2⁻¹²⁵` ggml's conversion of a negative float to `uint8_t` is
    /// undefined in C (x86-64 wraps, aarch64 saturates); uma saturates to `e = 0`.
    pub fn quantize(src: &[f32; QK]) -> Self {
        let amax = abs_max(src);
        let e = if amax > 0.0 {
            let log2 = f64::from(amax).log2() as f32;
            (log2.floor() - 2.0 + 127.0) as u8
        } else {
            0
        };
        let d = e8m0_to_fp32_half(e);
        let codes: [u8; QK] = std::array::from_fn(|j| best_code(src[j], d));
        Self { e, qs: pack_nibbles(&codes) }
    }
}

/// ggml's `best_index_mxfp4`: the first code `i` with the least `|KVALUES[i] · d − x|`, in f32.
#[inline]
fn best_code(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES[0]) * d - x).abs();
    for (i, &k) in KVALUES.iter().enumerate().skip(1) {
        let err = (f32::from(k) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

impl Block for BlockMXFP4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    const NUM_ELEMENTS: usize = QK;
    fn dequantize_block(&self, dst: &mut [f32]) {
        self.dequantize(out_array(dst));
    }
}

impl Quantize for BlockMXFP4 {
    fn quantize_block(src: &[f32]) -> Self {
        Self::quantize(in_array(src))
    }
}

/// ggml's `ggml_vec_dot_mxfp4_q8_0_generic`: integer sum per block of `KVALUES[code] · q`, then
/// `(dy · d_half) · sumi`.
pub fn vec_dot_mxfp4_q8_0(weights: &[BlockMXFP4], activations: &[BlockQ8_0]) -> f32 {
    assert_eq!(weights.len(), activations.len(), "vec_dot callers check lengths");
    let mut sumf = 0.0f32;
    for (x, y) in weights.iter().zip(activations) {
        let d = y.d.to_f32() * e8m0_to_fp32_half(x.e);
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += x.value(j) * i32::from(y.qs[j]);
        }
        sumf += d * sumi as f32;
    }
    sumf
}

impl VecDot for BlockMXFP4 {
    type Activation = BlockQ8_0;
    fn vec_dot_blocks(weights: &[Self], activations: &[BlockQ8_0]) -> f32 {
        vec_dot_mxfp4_q8_0(weights, activations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quantize_to_vec;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn scales_are_powers_of_two_including_the_edges() {
        assert_eq!(e8m0_to_fp32_half(0).to_bits(), 0x0020_0000, "2⁻¹²⁸, subnormal");
        assert_eq!(e8m0_to_fp32_half(1).to_bits(), 0x0040_0000, "2⁻¹²⁷, subnormal");
        assert_eq!(e8m0_to_fp32_half(2), f32::MIN_POSITIVE, "2⁻¹²⁶");
        assert_eq!(e8m0_to_fp32_half(127), 0.5);
        assert_eq!(e8m0_to_fp32_half(128), 1.0);
        assert_eq!(e8m0_to_fp32_half(254), 2.0f32.powi(126));
        assert_eq!(e8m0_to_fp32_half(255), 2.0f32.powi(127), "no NaN, as ggml");
        for e in 0..=255u8 {
            let expected = 2.0f64.powi(i32::from(e) - 128);
            assert_eq!(f64::from(e8m0_to_fp32_half(e)), expected, "e = {e}");
        }
    }

    #[test]
    fn known_values() {
        // Codes 0..16 in elements 0..16 (low nibbles), 15 − code in elements 16..32.
        let qs: [u8; 16] = std::array::from_fn(|j| j as u8 | (15 - j as u8) << 4);
        let block = BlockMXFP4 { e: 128, qs }; // d = 1: the doubled E2M1 values themselves
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        for j in 0..16 {
            assert_eq!(out[j], f32::from(KVALUES[j]));
            assert_eq!(out[16 + j], f32::from(KVALUES[15 - j]));
        }
        assert_eq!(out[8].to_bits(), 0, "code 8 (−0 in E2M1) decodes to +0 as in ggml");
        let block = BlockMXFP4 { e: 126, qs };
        block.dequantize(&mut out);
        assert_eq!(&out[..8], &[0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0], "the E2M1 grid / 2");
    }

    #[test]
    fn edge_scales_decode_like_ggml() {
        let qs: [u8; 16] = std::array::from_fn(|j| j as u8 | (15 - j as u8) << 4);
        let mut out = [0.0f32; 32];
        // e = 0: subnormal products, exact.
        BlockMXFP4 { e: 0, qs }.dequantize(&mut out);
        assert_eq!(out[7], 12.0 * 2.0f32.powi(-128));
        assert_eq!(out[3].to_bits(), 3 << 21, "3 · 2⁻¹²⁸");
        // e = 254: values from 4 on overflow to ±inf, as in ggml and gguf-py.
        BlockMXFP4 { e: 254, qs }.dequantize(&mut out);
        assert_eq!(out[3], 3.0 * 2.0f32.powi(126));
        assert_eq!(out[4], f32::INFINITY);
        assert_eq!(out[12], -f32::INFINITY);
        // e = 255: from 2 on.
        BlockMXFP4 { e: 255, qs }.dequantize(&mut out);
        assert_eq!(out[1], 2.0f32.powi(127));
        assert_eq!(out[2], f32::INFINITY);
        assert_eq!(out[0], 0.0, "zero times any scale");
    }

    #[test]
    fn quantize_known_block() {
        let mut x = [0.0f32; 32];
        x[0] = 6.0; // amax: floor(log2 6) = 2 → e = 127, d = 0.5, grid 0, 0.5, …, 6
        x[1] = -1.25; // between −1 and −1.5: a tie, the first in table order (−1) wins
        x[2] = 5.0; // between 4 and 6: tie → 4
        x[3] = 0.2; // nearest 0
        x[4] = 0.3; // nearest 0.5
        x[16] = -6.0;
        x[17] = 2.4; // nearest 2
        let block = BlockMXFP4::quantize(&x);
        assert_eq!(block.e, 127);
        let mut out = [0.0f32; 32];
        block.dequantize(&mut out);
        assert_eq!(&out[..5], &[6.0, -1.0, 4.0, 0.0, 0.5]);
        assert_eq!(&out[16..18], &[-6.0, 2.0]);
        assert_eq!(nibble(&block.qs, 3), 0, "zeros take code 0, not 8");
        assert_eq!(BlockMXFP4::quantize(&[0.0; 32]), BlockMXFP4 { e: 0, qs: [0; 16] });
    }

    #[test]
    fn exponent_at_powers_of_two() {
        // floorf(log2f(amax)) − 2 + 127, with the correctly rounded log2f.
        for k in -100i32..=127 {
            let p = 2.0f32.powi(k);
            let mut x = [0.0f32; 32];
            x[5] = -p;
            let expected = (k + 125).max(0) as u8;
            assert_eq!(BlockMXFP4::quantize(&x).e, expected, "amax 2^{k}");
            // Just below a power of two log2f rounds up to the integer once the spacing of f32
            // near k exceeds twice the distance (k ≥ 3, k ≤ −2): the larger exponent, as ggml
            // computes it (checked against glibc's log2f and numpy, see docs/kernels.md).
            x[5] = f32::from_bits(p.to_bits() - 1);
            let e = BlockMXFP4::quantize(&x).e;
            if (-1..=2).contains(&k) {
                assert_eq!(e, expected - 1, "2^{k} − ulp stays below");
            } else {
                assert_eq!(e, expected, "2^{k} − ulp rounds up");
            }
        }
        // The largest finite value: log2 rounds to 128 → e = 253 (d = 2¹²⁵, 12·d overflows).
        let mut x = [0.0f32; 32];
        x[0] = f32::MAX;
        assert_eq!(BlockMXFP4::quantize(&x).e, 253);
        // Below 2⁻¹²⁵ ggml's cast is undefined; uma saturates to 0.
        x[0] = 2.0f32.powi(-130);
        assert_eq!(BlockMXFP4::quantize(&x).e, 0);
    }

    #[test]
    fn round_trip_bounds() {
        // d = 2^(E − 3) for amax in [2^E, 2^(E+1)) = [8d, 16d): values up to 12d round to the
        // nearest grid point (gap at most 4d, error ≤ 2d ≤ amax/4), beyond 12d they clip
        // (error < 16d − 12d = 4d < amax/4). RMS: measured 0.143 (uniform: amax just below 1
        // clips everything above 0.75) and 0.128 (gaussian with outliers); bounds ~1.2x.
        for (data, rms_bound) in [(uniform(4096, 1), 0.17), (gaussian(4096, 2), 0.155)] {
            let (max_rel, rms_rel) = round_trip_errors::<BlockMXFP4>(&data);
            assert!(max_rel < 0.25, "max {max_rel}");
            assert!(rms_rel <= rms_bound, "rms {rms_rel}");
        }
    }

    #[test]
    fn dot_matches_dequantized() {
        let mut rng = rng(3);
        let mut weights: Vec<BlockMXFP4> = bytemuck::pod_collect_to_vec(&bytes(17 * 64, 4));
        for w in &mut weights {
            w.e = rand::Rng::gen_range(&mut rng, 110..140);
        }
        let acts: Vec<BlockQ8_0> = quantize_to_vec(&gaussian(32 * 64, 5)).expect("whole");
        assert_dot_matches_dequantized(&weights, &acts);
    }
}
