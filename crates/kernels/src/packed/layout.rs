//! The interleaved layout: weight rows in groups of [`ROWS`], one block of every row of a group
//! stored together so that one 32-byte vector holds 4 consecutive quants of each of the 8 rows.
//! A 4-byte integer dot product per 32-bit lane (`vpdpbusd`, `sdot`) then yields 8 rows' partial
//! sums against one broadcast group of 4 activations, and per-block scales become vectors of 8
//! row scales. The layout and the reasons for it are in `docs/kernels.md`.
//!
//! Quants are stored unsigned (`q + offset`, the offset subtracted through the activation block
//! sums) except Q8_0's and Q8_K's, which stay signed. Every format keeps its bytes per weight,
//! except Q4_K, Q5_K and Q3_K whose 6-bit scales (and mins) are widened to bytes (+2.8%, +2.3%,
//! +3.6%).
//! Q4_1 and Q5_1 keep their f16 min beside the scale; the kernels add `m · s` with the
//! activation block's Q8_1 sum `s`, as ggml does.
//! MXFP4 keeps its E8M0 scale bytes and its 4-bit E2M1 codes in Q4_0's nibble chunks; the
//! kernels look the codes up in a 16-entry table in registers and build the 8 rows' f32 scales
//! from the exponent bytes.
//!
//! The float formats (F32, F16, BF16) keep their width too: a group-block is 8 elements of the
//! 8 rows, element by element, so one 8-lane vector (converted to f32 in registers) holds one
//! element of every row.

use uma_gguf::GgmlType;

use crate::bytes::blocks_from_bytes_or_copy;
use crate::error::{KernelError, Result};
use crate::formats::float::bf16_to_f32;
use crate::formats::k_scales::{get_scale_min_k4, q3_k_scales};
use crate::formats::mxfp4::BlockMXFP4;
use crate::formats::q2_k::BlockQ2_K;
use crate::formats::q3_k::BlockQ3_K;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4_K;
use crate::formats::q5_0::{quant5, BlockQ5_0};
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5_K;
use crate::formats::q6_k::BlockQ6_K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_k::BlockQ8_K;
use crate::formats::{Block, QK, QK_K};

/// Rows per interleaved group: one 32-bit lane per row in a 256-bit vector.
pub const ROWS: usize = 8;

/// The weight formats with an interleaved layout. The discriminants are the SIMD kernels'
/// const-generic format codes ([`PackedFormat::from_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
#[repr(u8)]
pub enum PackedFormat {
    Q4_0,
    Q5_0,
    Q8_0,
    Q4_1,
    Q5_1,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    Q3_K,
    Q2_K,
    F32,
    F16,
    BF16,
    MXFP4,
}

// `ALL` lists the formats in discriminant order, so `from_code` is an index.
const _: () = {
    let mut i = 0;
    while i < PackedFormat::ALL.len() {
        assert!(PackedFormat::ALL[i] as usize == i);
        i += 1;
    }
};

/// The activation quantization a packed format pairs with (ggml's `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum ActivationFormat {
    /// Q8_0: 32-element blocks, an f16 scale each.
    Q8_0,
    /// Q8_1: Q8_0 plus each block's `s`, the f16-rounded `d · Σ quants` (for Q4_1 and Q5_1).
    Q8_1,
    /// Q8_K: 256-element blocks, an f32 scale each, sums of every 16.
    Q8_K,
    /// The f32 values themselves (for F32, F16 and BF16 weights).
    F32,
}

/// Elements per group-block of the float formats: rows need only be multiples of 8 elements.
pub const FLOAT_BLOCK: usize = 8;

// The formats as the SIMD kernels' const-generic codes (PackedFormat::from_code reads them).
pub(crate) const Q4_0_CODE: u8 = PackedFormat::Q4_0 as u8;
pub(crate) const Q5_0_CODE: u8 = PackedFormat::Q5_0 as u8;
pub(crate) const Q8_0_CODE: u8 = PackedFormat::Q8_0 as u8;
pub(crate) const Q4_1_CODE: u8 = PackedFormat::Q4_1 as u8;
pub(crate) const Q5_1_CODE: u8 = PackedFormat::Q5_1 as u8;
pub(crate) const Q8_K_CODE: u8 = PackedFormat::Q8_K as u8;
pub(crate) const Q6_K_CODE: u8 = PackedFormat::Q6_K as u8;
pub(crate) const Q3_K_CODE: u8 = PackedFormat::Q3_K as u8;
pub(crate) const Q2_K_CODE: u8 = PackedFormat::Q2_K as u8;
pub(crate) const F32_CODE: u8 = PackedFormat::F32 as u8;
pub(crate) const F16_CODE: u8 = PackedFormat::F16 as u8;
pub(crate) const BF16_CODE: u8 = PackedFormat::BF16 as u8;
pub(crate) const MXFP4_CODE: u8 = PackedFormat::MXFP4 as u8;

// Byte offsets inside one group-block (one block of each of the 8 rows).
pub(crate) const SCALES: usize = 0; // [8] f16 (Q8_K: f32): d of each row
pub(crate) const DMIN: usize = 16; // [8] f16: Q4_K's, Q5_K's, Q2_K's dmin; Q4_1's, Q5_1's m
pub(crate) const Q5_0_MASKS: usize = 16; // [8 quads] u32: bit 4·row + k = fifth bit
pub(crate) const Q5_0_QUANTS: usize = 48; // [4 chunks] of 32 bytes
pub(crate) const Q4_0_QUANTS: usize = 16;
pub(crate) const Q4_1_QUANTS: usize = 32; // [4 chunks] of 32 bytes
pub(crate) const Q5_1_MASKS: usize = 32; // as Q5_0's, after the mins
pub(crate) const Q5_1_QUANTS: usize = 64;
pub(crate) const Q8_0_QUANTS: usize = 16; // [8 quads] of 32 signed bytes
pub(crate) const Q8_K_QUANTS: usize = 32; // [64 quads] of 32 signed bytes
pub(crate) const Q4_K_SUB_SCALES: usize = 32; // [8 sub-blocks][8 rows] u8
pub(crate) const Q4_K_MINS: usize = 96; // [4 sub-block pairs][8 rows][2] u8
pub(crate) const Q4_K_QUANTS: usize = 160; // [8 sub-blocks][4 chunks] of 32 bytes

// Q5_K: Q4_K's d, dmin, sub-scales and mins at the same offsets, then its sub-blocks.
pub(crate) const Q5_K_SUB_BLOCKS: usize = 160; // [8 sub-blocks] of 160 bytes, see q5_k_masks
pub(crate) const I8_SUB_SCALES: usize = 16; // Q6_K, Q3_K: [16 sub-blocks][8 rows] i8
pub(crate) const Q6_K_SUB_BLOCKS: usize = 144; // [16 sub-blocks] of 96 bytes, see q6_k_low
pub(crate) const Q3_K_SUB_BLOCKS: usize = 144; // [8 sub-block pairs] of 96 bytes, see q3_k_low
                                               // Q2_K: d and dmin as Q4_K's, then ggml's scale bytes (scale | min << 4) of sub-block pairs side
                                               // by side (`vpmaddwd` multiplies a pair of mins by a pair of activation sums), then the quants.
pub(crate) const Q2_K_SCALES: usize = 32; // [8 sub-block pairs][8 rows][2] u8
pub(crate) const Q2_K_QUANTS: usize = 160; // [16 sub-blocks] of 32 bytes, see q2_k_quants

/// MXFP4: the rows' E8M0 bytes at [`SCALES`] (`[8] u8`), then Q4_0's 4 nibble chunks of codes.
pub(crate) const MXFP4_QUANTS: usize = 8;

/// MXFP4's offset ([`PackedFormat::offset`]): the x86 kernels look each code up as its doubled
/// E2M1 value plus 12 (0..=24, unsigned for `vpdpbusd` and `vpmaddubsw`) and remove the offset
/// with the activation block sums as Q4_0's 8 is; NEON's `sdot` takes the signed values
/// ([`KVALUES`](crate::formats::mxfp4::KVALUES)) directly.
pub(crate) const MXFP4_OFFSET: i32 = 12;

/// Q6_K sub-block `s` (16 quants of each row) is two nibble chunks then one chunk of 2-bit high
/// parts, in the order the kernels read them: the weights stream strictly sequentially (two
/// interleaved streams, low and high parts apart, stalled the prefetchers).
pub(crate) const fn q6_k_low(s: usize) -> usize {
    Q6_K_SUB_BLOCKS + 96 * s
}

/// Q5_K sub-block `s` (32 quants of each row) is 8 u32 fifth-bit masks (one per quad, bit
/// `4·row + k`, as Q5_0's) then 4 nibble chunks, so the weights stream sequentially.
pub(crate) const fn q5_k_masks(s: usize) -> usize {
    Q5_K_SUB_BLOCKS + 160 * s
}

/// The 4 nibble chunks of Q5_K sub-block `s`.
pub(crate) const fn q5_k_quants(s: usize) -> usize {
    q5_k_masks(s) + 32
}

/// The high-parts chunk of Q6_K sub-block `s`: byte `4·row + k`, bits `2i..2i+2` for quad `i`.
pub(crate) const fn q6_k_high(s: usize) -> usize {
    q6_k_low(s) + 64
}

/// Q3_K sub-blocks `2p` and `2p + 1` (16 quants of each row each) are a pair: the low 2 bits of
/// each (a chunk like Q6_K's high parts: byte `4·row + k`, bits `2i..2i+2` for quad `i`), then
/// one chunk of their high bits (bit `i` for quad `i` of sub-block `2p`, bit `4 + i` of `2p + 1`).
/// Separate bit planes cost two ALU operations per quad to join and keep 3 bits per weight.
pub(crate) const fn q3_k_low(s: usize) -> usize {
    Q3_K_SUB_BLOCKS + 96 * (s / 2) + 32 * (s % 2)
}

/// Q2_K sub-block `s`: one chunk of its 2-bit quants (byte `4·row + k`, bits `2i..2i+2` for
/// quad `i`, as Q3_K's low parts).
pub(crate) const fn q2_k_quants(s: usize) -> usize {
    Q2_K_QUANTS + 32 * s
}

/// The high-bit chunk shared by Q3_K sub-block `s` and its pair.
pub(crate) const fn q3_k_high(s: usize) -> usize {
    Q3_K_SUB_BLOCKS + 96 * (s / 2) + 64
}

impl PackedFormat {
    /// The packed format of a ggml type, if it has one.
    pub fn of(ty: GgmlType) -> Option<PackedFormat> {
        Some(match ty {
            GgmlType::Q4_0 => PackedFormat::Q4_0,
            GgmlType::Q5_0 => PackedFormat::Q5_0,
            GgmlType::Q8_0 => PackedFormat::Q8_0,
            GgmlType::Q4_1 => PackedFormat::Q4_1,
            GgmlType::Q5_1 => PackedFormat::Q5_1,
            GgmlType::Q4_K => PackedFormat::Q4_K,
            GgmlType::Q5_K => PackedFormat::Q5_K,
            GgmlType::Q6_K => PackedFormat::Q6_K,
            GgmlType::Q3_K => PackedFormat::Q3_K,
            GgmlType::Q2_K => PackedFormat::Q2_K,
            GgmlType::Q8_K => PackedFormat::Q8_K,
            GgmlType::F32 => PackedFormat::F32,
            GgmlType::F16 => PackedFormat::F16,
            GgmlType::BF16 => PackedFormat::BF16,
            GgmlType::MXFP4 => PackedFormat::MXFP4,
            _ => return None,
        })
    }

    /// The ggml type it repacks.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            PackedFormat::Q4_0 => GgmlType::Q4_0,
            PackedFormat::Q5_0 => GgmlType::Q5_0,
            PackedFormat::Q8_0 => GgmlType::Q8_0,
            PackedFormat::Q4_1 => GgmlType::Q4_1,
            PackedFormat::Q5_1 => GgmlType::Q5_1,
            PackedFormat::Q4_K => GgmlType::Q4_K,
            PackedFormat::Q5_K => GgmlType::Q5_K,
            PackedFormat::Q6_K => GgmlType::Q6_K,
            PackedFormat::Q3_K => GgmlType::Q3_K,
            PackedFormat::Q2_K => GgmlType::Q2_K,
            PackedFormat::Q8_K => GgmlType::Q8_K,
            PackedFormat::F32 => GgmlType::F32,
            PackedFormat::F16 => GgmlType::F16,
            PackedFormat::BF16 => GgmlType::BF16,
            PackedFormat::MXFP4 => GgmlType::MXFP4,
        }
    }

    /// Every packed format, in the order of their discriminants.
    pub const ALL: [PackedFormat; 15] = [
        PackedFormat::Q4_0,
        PackedFormat::Q5_0,
        PackedFormat::Q8_0,
        PackedFormat::Q4_1,
        PackedFormat::Q5_1,
        PackedFormat::Q4_K,
        PackedFormat::Q5_K,
        PackedFormat::Q6_K,
        PackedFormat::Q8_K,
        PackedFormat::Q3_K,
        PackedFormat::Q2_K,
        PackedFormat::F32,
        PackedFormat::F16,
        PackedFormat::BF16,
        PackedFormat::MXFP4,
    ];

    /// The format whose discriminant is `code` (the SIMD kernels' const generics).
    pub(crate) const fn from_code(code: u8) -> PackedFormat {
        Self::ALL[code as usize]
    }

    /// Elements per block.
    pub fn block_elements(self) -> usize {
        match self {
            PackedFormat::Q4_0
            | PackedFormat::Q5_0
            | PackedFormat::Q8_0
            | PackedFormat::Q4_1
            | PackedFormat::Q5_1
            | PackedFormat::MXFP4 => QK,
            PackedFormat::Q4_K
            | PackedFormat::Q5_K
            | PackedFormat::Q6_K
            | PackedFormat::Q8_K
            | PackedFormat::Q3_K
            | PackedFormat::Q2_K => QK_K,
            PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => FLOAT_BLOCK,
        }
    }

    /// Bytes of one group-block: one block of each of the [`ROWS`] rows.
    pub fn group_block_bytes(self) -> usize {
        match self {
            PackedFormat::Q4_0 => Q4_0_QUANTS + 128,
            PackedFormat::Q5_0 => Q5_0_QUANTS + 128,
            PackedFormat::Q8_0 => Q8_0_QUANTS + 256,
            PackedFormat::Q4_1 => Q4_1_QUANTS + 128,
            PackedFormat::Q5_1 => Q5_1_QUANTS + 128,
            PackedFormat::MXFP4 => MXFP4_QUANTS + 128,
            PackedFormat::Q4_K => Q4_K_QUANTS + 1024,
            PackedFormat::Q5_K => q5_k_masks(8),
            PackedFormat::Q6_K => q6_k_low(16),
            PackedFormat::Q3_K => q3_k_low(16),
            PackedFormat::Q2_K => q2_k_quants(16),
            PackedFormat::Q8_K => Q8_K_QUANTS + 2048,
            PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => {
                FLOAT_BLOCK * ROWS * self.ggml_type().type_size()
            }
        }
    }

    /// The activation format it multiplies with.
    pub fn activation_format(self) -> ActivationFormat {
        match self {
            PackedFormat::Q4_0 | PackedFormat::Q5_0 | PackedFormat::Q8_0 | PackedFormat::MXFP4 => {
                ActivationFormat::Q8_0
            }
            PackedFormat::Q4_1 | PackedFormat::Q5_1 => ActivationFormat::Q8_1,
            PackedFormat::Q4_K
            | PackedFormat::Q5_K
            | PackedFormat::Q6_K
            | PackedFormat::Q8_K
            | PackedFormat::Q3_K
            | PackedFormat::Q2_K => ActivationFormat::Q8_K,
            PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => ActivationFormat::F32,
        }
    }

    /// Whether it is a float format (no quants: f32 fused multiply-adds, see `float_group_dot`).
    pub fn is_float(self) -> bool {
        matches!(self, PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16)
    }

    /// Q4_0, Q5_0, Q4_1, Q5_1 and MXFP4: where the nibble chunks start.
    pub(crate) fn legacy_quants(self) -> usize {
        match self {
            PackedFormat::Q4_0 => Q4_0_QUANTS,
            PackedFormat::Q5_0 => Q5_0_QUANTS,
            PackedFormat::Q4_1 => Q4_1_QUANTS,
            PackedFormat::MXFP4 => MXFP4_QUANTS,
            _ => Q5_1_QUANTS,
        }
    }

    /// Q5_0 and Q5_1: where the fifth-bit masks start (`None`: a 4-bit format).
    pub(crate) fn legacy_masks(self) -> Option<usize> {
        match self {
            PackedFormat::Q5_0 => Some(Q5_0_MASKS),
            PackedFormat::Q5_1 => Some(Q5_1_MASKS),
            _ => None,
        }
    }

    /// Whether the rows' f16 mins follow their scales ([`DMIN`]): Q4_K's, Q5_K's and Q2_K's
    /// `dmin`, and Q4_1's and Q5_1's block min `m` (added as `m · s` with the activation
    /// block's Q8_1 sum).
    pub(crate) fn has_dmin(self) -> bool {
        matches!(
            self,
            PackedFormat::Q4_1
                | PackedFormat::Q5_1
                | PackedFormat::Q4_K
                | PackedFormat::Q5_K
                | PackedFormat::Q2_K
        )
    }

    /// What the stored unsigned quants exceed the signed ones by (Q8_0 and Q8_K store signed
    /// quants). MXFP4 stores E2M1 codes; the offset is that of the unsigned values the x86
    /// kernels look them up as (the doubled E2M1 value + 12).
    pub fn offset(self) -> i32 {
        match self {
            PackedFormat::MXFP4 => MXFP4_OFFSET,
            PackedFormat::Q4_0 => 8,
            PackedFormat::Q5_0 => 16,
            PackedFormat::Q8_0 | PackedFormat::Q8_K => 0,
            PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => 0,
            // Their mins play the offset's role.
            PackedFormat::Q4_1
            | PackedFormat::Q5_1
            | PackedFormat::Q4_K
            | PackedFormat::Q5_K
            | PackedFormat::Q2_K => 0,
            PackedFormat::Q6_K => 32,
            PackedFormat::Q3_K => 4,
        }
    }
}

/// One block of one row, decoded to what the packed layout stores: the quants (unsigned, or
/// signed for Q8_0 and Q8_K, MXFP4's E2M1 codes, as `i32`), and the scales.
pub(crate) struct RowBlock {
    pub(crate) quants: [i32; QK_K],   // first block_elements() used
    pub(crate) d: u16,                // f16 bits (all but Q8_K); MXFP4: the E8M0 byte
    pub(crate) d32: f32,              // Q8_K's f32 d
    pub(crate) dmin: u16,             // f16 bits: Q4_K's, Q5_K's, Q2_K's dmin, Q4_1's, Q5_1's m
    pub(crate) sub_scales: [i32; 16], // Q4_K, Q5_K: 8 u6; Q6_K, Q3_K: 16 i8; Q2_K: 16 u4
    pub(crate) mins: [i32; 16],       // Q4_K, Q5_K: 8 u6; Q2_K: 16 u4
}

impl RowBlock {
    fn zero() -> RowBlock {
        RowBlock { quants: [0; QK_K], d: 0, d32: 0.0, dmin: 0, sub_scales: [0; 16], mins: [0; 16] }
    }
}

fn decode_q4_0(b: &BlockQ4_0, out: &mut RowBlock) {
    for j in 0..16 {
        out.quants[j] = i32::from(b.qs[j] & 0x0f);
        out.quants[j + 16] = i32::from(b.qs[j] >> 4);
    }
    out.d = b.d.to_bits();
}

fn decode_mxfp4(b: &BlockMXFP4, out: &mut RowBlock) {
    decode_q4_0(&BlockQ4_0 { d: half::f16::ZERO, qs: b.qs }, out);
    out.d = u16::from(b.e);
}

fn decode_q5_0(b: &BlockQ5_0, out: &mut RowBlock) {
    for j in 0..QK {
        out.quants[j] = quant5(b.qh, &b.qs, j);
    }
    out.d = b.d.to_bits();
}

fn decode_q4_1(b: &BlockQ4_1, out: &mut RowBlock) {
    decode_q4_0(&BlockQ4_0 { d: b.d, qs: b.qs }, out);
    out.dmin = b.m.to_bits();
}

fn decode_q5_1(b: &BlockQ5_1, out: &mut RowBlock) {
    decode_q5_0(&BlockQ5_0 { d: b.d, qh: b.qh, qs: b.qs }, out);
    out.dmin = b.m.to_bits();
}

fn decode_q8_0(b: &BlockQ8_0, out: &mut RowBlock) {
    for j in 0..QK {
        out.quants[j] = i32::from(b.qs[j]);
    }
    out.d = b.d.to_bits();
}

fn decode_q8_k(b: &BlockQ8_K, out: &mut RowBlock) {
    for (q, &v) in out.quants.iter_mut().zip(&b.qs) {
        *q = i32::from(v);
    }
    out.d32 = b.d;
}

fn decode_q4_k(b: &BlockQ4_K, out: &mut RowBlock) {
    for c in 0..4 {
        for l in 0..32 {
            let byte = b.qs[32 * c + l];
            out.quants[64 * c + l] = i32::from(byte & 0x0f);
            out.quants[64 * c + 32 + l] = i32::from(byte >> 4);
        }
    }
    decode_k4_scales(b.d, b.dmin, &b.scales, out);
}

fn decode_q5_k(b: &BlockQ5_K, out: &mut RowBlock) {
    for (j, q) in out.quants.iter_mut().enumerate() {
        *q = i32::from(b.quant(j));
    }
    decode_k4_scales(b.d, b.dmin, &b.scales, out);
}

/// Q4_K's and Q5_K's super-block scales and 6-bit sub-block scales and mins.
fn decode_k4_scales(d: half::f16, dmin: half::f16, scales: &[u8; 12], out: &mut RowBlock) {
    for s in 0..8 {
        let (sc, m) = get_scale_min_k4(s, scales);
        out.sub_scales[s] = i32::from(sc);
        out.mins[s] = i32::from(m);
    }
    out.d = d.to_bits();
    out.dmin = dmin.to_bits();
}

fn decode_q3_k(b: &BlockQ3_K, out: &mut RowBlock) {
    for (j, q) in out.quants.iter_mut().enumerate() {
        *q = b.quant(j) + 4;
    }
    for (sub_scale, sc) in out.sub_scales.iter_mut().zip(q3_k_scales(&b.scales)) {
        *sub_scale = i32::from(sc);
    }
    out.d = b.d.to_bits();
}

fn decode_q2_k(b: &BlockQ2_K, out: &mut RowBlock) {
    for (j, q) in out.quants.iter_mut().enumerate() {
        *q = i32::from(b.quant(j));
    }
    for (s, &sc) in b.scales.iter().enumerate() {
        out.sub_scales[s] = i32::from(sc & 0x0f);
        out.mins[s] = i32::from(sc >> 4);
    }
    out.d = b.d.to_bits();
    out.dmin = b.dmin.to_bits();
}

fn decode_q6_k(b: &BlockQ6_K, out: &mut RowBlock) {
    for h in 0..2 {
        for l in 0..32 {
            let ql0 = b.ql[64 * h + l];
            let ql1 = b.ql[64 * h + 32 + l];
            let qh = b.qh[32 * h + l];
            out.quants[128 * h + l] = i32::from((ql0 & 0x0f) | ((qh & 0x03) << 4));
            out.quants[128 * h + 32 + l] = i32::from((ql1 & 0x0f) | (((qh >> 2) & 0x03) << 4));
            out.quants[128 * h + 64 + l] = i32::from((ql0 >> 4) | (((qh >> 4) & 0x03) << 4));
            out.quants[128 * h + 96 + l] = i32::from((ql1 >> 4) | (((qh >> 6) & 0x03) << 4));
        }
    }
    for s in 0..16 {
        out.sub_scales[s] = i32::from(b.scales[s]);
    }
    out.d = b.d.to_bits();
}

/// Byte `4·row + k` of a 32-byte chunk holding quants `first + k` (low nibble) and
/// `first + 4 + k` (high nibble) of every row: two 4-quant groups per chunk.
fn write_nibble_chunk(dst: &mut [u8], rows: &[RowBlock; ROWS], first: usize) {
    for (r, row) in rows.iter().enumerate() {
        for k in 0..4 {
            let lo = row.quants[first + k] as u8 & 0x0f;
            let hi = row.quants[first + 4 + k] as u8 & 0x0f;
            dst[4 * r + k] = lo | (hi << 4);
        }
    }
}

/// A 32-byte chunk of `width`-bit fields: byte `4·row + k` holds bits `shift..shift + width` of
/// quant `first + 4i + k` of the row at bits `width·i..width·(i + 1)`, for the `8 / width` quads
/// `i` from `first` (Q6_K's high parts, Q3_K's low parts and high bits).
fn write_bit_chunk(dst: &mut [u8], rows: &[RowBlock; ROWS], first: usize, shift: u32, width: u32) {
    for (r, row) in rows.iter().enumerate() {
        for k in 0..4 {
            let mut byte = 0u8;
            for i in 0..8 / width {
                let field = (row.quants[first + 4 * i as usize + k] >> shift) & ((1 << width) - 1);
                byte |= (field as u8) << (width * i);
            }
            dst[4 * r + k] = byte;
        }
    }
}

/// The `width`-bit field of quant `j` of row `r` in a chunk that [`write_bit_chunk`] wrote from
/// quant `first` on.
fn read_bit_chunk(chunk: &[u8], r: usize, first: usize, j: usize, width: u32) -> i32 {
    let (i, k) = ((j - first) / 4, j % 4);
    i32::from((chunk[4 * r + k] >> (width as usize * i)) & ((1 << width) - 1))
}

/// Bit `4·row + k` set where quant `first + k` of the row has its fifth bit (Q5_0, Q5_K).
fn fifth_bit_mask(rows: &[RowBlock; ROWS], first: usize) -> [u8; 4] {
    let mut mask = 0u32;
    for (r, row) in rows.iter().enumerate() {
        for k in 0..4 {
            mask |= (((row.quants[first + k] >> 4) & 1) as u32) << (4 * r + k);
        }
    }
    mask.to_le_bytes()
}

/// Writes one group-block of `format` from the decoded blocks of its 8 rows.
fn write_group_block(format: PackedFormat, rows: &[RowBlock; ROWS], dst: &mut [u8]) {
    for (r, row) in rows.iter().enumerate() {
        match format {
            PackedFormat::Q8_K => {
                dst[SCALES + 4 * r..SCALES + 4 * r + 4].copy_from_slice(&row.d32.to_le_bytes())
            }
            PackedFormat::MXFP4 => dst[SCALES + r] = row.d as u8,
            _ => dst[SCALES + 2 * r..SCALES + 2 * r + 2].copy_from_slice(&row.d.to_le_bytes()),
        }
        if format.has_dmin() {
            dst[DMIN + 2 * r..DMIN + 2 * r + 2].copy_from_slice(&row.dmin.to_le_bytes());
        }
    }
    match format {
        PackedFormat::Q4_0
        | PackedFormat::Q5_0
        | PackedFormat::Q4_1
        | PackedFormat::Q5_1
        | PackedFormat::MXFP4 => {
            let quants = format.legacy_quants();
            for c in 0..4 {
                write_nibble_chunk(&mut dst[quants + 32 * c..quants + 32 * c + 32], rows, 8 * c);
            }
            if let Some(masks) = format.legacy_masks() {
                for quad in 0..8 {
                    let at = masks + 4 * quad;
                    dst[at..at + 4].copy_from_slice(&fifth_bit_mask(rows, 4 * quad));
                }
            }
        }
        PackedFormat::Q8_0 | PackedFormat::Q8_K => {
            let quants = if format == PackedFormat::Q8_K { Q8_K_QUANTS } else { Q8_0_QUANTS };
            for quad in 0..format.block_elements() / 4 {
                for (r, row) in rows.iter().enumerate() {
                    for k in 0..4 {
                        dst[quants + 32 * quad + 4 * r + k] = row.quants[4 * quad + k] as u8;
                    }
                }
            }
        }
        PackedFormat::Q4_K | PackedFormat::Q5_K => {
            for (r, row) in rows.iter().enumerate() {
                for s in 0..8 {
                    dst[Q4_K_SUB_SCALES + 8 * s + r] = row.sub_scales[s] as u8;
                }
                for p in 0..4 {
                    dst[Q4_K_MINS + 16 * p + 2 * r] = row.mins[2 * p] as u8;
                    dst[Q4_K_MINS + 16 * p + 2 * r + 1] = row.mins[2 * p + 1] as u8;
                }
            }
            let five = format == PackedFormat::Q5_K;
            for s in 0..8 {
                let quants = if five { q5_k_quants(s) } else { Q4_K_QUANTS + 128 * s };
                for c in 0..4 {
                    let at = quants + 32 * c;
                    write_nibble_chunk(&mut dst[at..at + 32], rows, 32 * s + 8 * c);
                }
                if five {
                    for quad in 0..8 {
                        let at = q5_k_masks(s) + 4 * quad;
                        dst[at..at + 4].copy_from_slice(&fifth_bit_mask(rows, 32 * s + 4 * quad));
                    }
                }
            }
        }
        PackedFormat::Q6_K | PackedFormat::Q3_K => {
            for (r, row) in rows.iter().enumerate() {
                for s in 0..16 {
                    dst[I8_SUB_SCALES + 8 * s + r] = row.sub_scales[s] as i8 as u8;
                }
            }
            for s in 0..16 {
                if format == PackedFormat::Q6_K {
                    for c in 0..2 {
                        let at = q6_k_low(s) + 32 * c;
                        write_nibble_chunk(&mut dst[at..at + 32], rows, 16 * s + 8 * c);
                    }
                    write_bit_chunk(&mut dst[q6_k_high(s)..], rows, 16 * s, 4, 2);
                } else {
                    write_bit_chunk(&mut dst[q3_k_low(s)..], rows, 16 * s, 0, 2);
                    if s.is_multiple_of(2) {
                        write_bit_chunk(&mut dst[q3_k_high(s)..], rows, 16 * s, 2, 1);
                    }
                }
            }
        }
        PackedFormat::Q2_K => {
            for (r, row) in rows.iter().enumerate() {
                for s in 0..16 {
                    let byte = (row.sub_scales[s] | row.mins[s] << 4) as u8;
                    dst[Q2_K_SCALES + 16 * (s / 2) + 2 * r + s % 2] = byte;
                }
            }
            for s in 0..16 {
                write_bit_chunk(&mut dst[q2_k_quants(s)..], rows, 16 * s, 0, 2);
            }
        }
        PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => {
            unreachable!("pack_groups packs floats first")
        }
    }
}

fn decode_rows<B: Block>(
    bytes: &[u8],
    row_length: usize,
    group: usize,
    num_rows: usize,
    block: usize,
    decode: fn(&B, &mut RowBlock),
    rows: &mut [RowBlock; ROWS],
) -> Result<()> {
    let blocks_per_row = row_length / B::NUM_ELEMENTS;
    for (r, out) in rows.iter_mut().enumerate() {
        let row = group * ROWS + r;
        if row >= num_rows {
            *out = RowBlock::zero(); // padding rows: zero scales, results discarded
            continue;
        }
        let start = (row * blocks_per_row + block) * std::mem::size_of::<B>();
        let one = blocks_from_bytes_or_copy::<B>(&bytes[start..start + std::mem::size_of::<B>()])?;
        decode(&one[0], out);
    }
    Ok(())
}

/// Repacks `num_rows × row_length` weights of `format` (ggml blocks, row-major) into groups:
/// `[ceil(num_rows / 8) groups][row_length / block_elements blocks]` of group-blocks. Rows past
/// `num_rows` in the last group are zero.
pub(crate) fn pack_groups(
    format: PackedFormat,
    bytes: &[u8],
    num_rows: usize,
    row_length: usize,
    first_group: usize,
    dst: &mut [u8], // whole groups starting at `first_group`
) -> Result<()> {
    if format.is_float() {
        // Group-block `b` holds elements `8b..8b + 8` of the 8 rows as `[element][row]`, each
        // value in the format's own bytes.
        let width = format.ggml_type().type_size();
        let row_bytes = row_length * width;
        for (i, group_dst) in dst.chunks_exact_mut(ROWS * row_bytes).enumerate() {
            for r in 0..ROWS {
                let row = (first_group + i) * ROWS + r;
                let src = (row < num_rows).then(|| &bytes[row * row_bytes..(row + 1) * row_bytes]);
                for j in 0..row_length {
                    let at = float_offset(format, r, j);
                    let value = src.map_or(&[0u8; 4][..width], |src| &src[j * width..][..width]);
                    group_dst[at..at + width].copy_from_slice(value);
                }
            }
        }
        return Ok(());
    }
    let blocks_per_row = row_length / format.block_elements();
    let group_bytes = blocks_per_row * format.group_block_bytes();
    let mut rows: Box<[RowBlock; ROWS]> = Box::new(std::array::from_fn(|_| RowBlock::zero()));
    for (i, group_dst) in dst.chunks_exact_mut(group_bytes).enumerate() {
        let group = first_group + i;
        for (b, block_dst) in group_dst.chunks_exact_mut(format.group_block_bytes()).enumerate() {
            let rows: &mut [RowBlock; ROWS] = &mut rows;
            macro_rules! decode {
                ($block:ty, $decode:expr) => {
                    decode_rows::<$block>(bytes, row_length, group, num_rows, b, $decode, rows)?
                };
            }
            match format {
                PackedFormat::Q4_0 => decode!(BlockQ4_0, decode_q4_0),
                PackedFormat::Q5_0 => decode!(BlockQ5_0, decode_q5_0),
                PackedFormat::Q8_0 => decode!(BlockQ8_0, decode_q8_0),
                PackedFormat::Q4_1 => decode!(BlockQ4_1, decode_q4_1),
                PackedFormat::Q5_1 => decode!(BlockQ5_1, decode_q5_1),
                PackedFormat::Q4_K => decode!(BlockQ4_K, decode_q4_k),
                PackedFormat::Q5_K => decode!(BlockQ5_K, decode_q5_k),
                PackedFormat::Q6_K => decode!(BlockQ6_K, decode_q6_k),
                PackedFormat::Q3_K => decode!(BlockQ3_K, decode_q3_k),
                PackedFormat::Q2_K => decode!(BlockQ2_K, decode_q2_k),
                PackedFormat::Q8_K => decode!(BlockQ8_K, decode_q8_k),
                PackedFormat::MXFP4 => decode!(BlockMXFP4, decode_mxfp4),
                PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => {
                    unreachable!("floats are packed above")
                }
            }
            write_group_block(format, rows, block_dst);
        }
    }
    Ok(())
}

/// Reads back row `r`'s decoded block from a group-block (the scalar kernel and tests use it).
pub(crate) fn read_row_block(format: PackedFormat, src: &[u8], r: usize, out: &mut RowBlock) {
    out.d = if format == PackedFormat::MXFP4 {
        u16::from(src[SCALES + r])
    } else {
        u16::from_le_bytes([src[SCALES + 2 * r], src[SCALES + 2 * r + 1]])
    };
    if format.has_dmin() {
        out.dmin = u16::from_le_bytes([src[DMIN + 2 * r], src[DMIN + 2 * r + 1]]);
    }
    let nibble = |chunk: &[u8], first_in_chunk: usize| -> i32 {
        // Quant `first_in_chunk` (0..8) of row r in a chunk.
        let byte = chunk[4 * r + first_in_chunk % 4];
        i32::from(if first_in_chunk < 4 { byte & 0x0f } else { byte >> 4 })
    };
    let fifth_bit = |masks: usize, j: usize| -> i32 {
        // Bit 4 of quant `j` of row r, from the masks of quads at `masks` (quad j / 4).
        let at = masks + 4 * (j / 4);
        let mask = u32::from_le_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]]);
        (((mask >> (4 * r + j % 4)) & 1) << 4) as i32
    };
    match format {
        PackedFormat::Q4_0
        | PackedFormat::Q5_0
        | PackedFormat::Q4_1
        | PackedFormat::Q5_1
        | PackedFormat::MXFP4 => {
            let quants = format.legacy_quants();
            for j in 0..QK {
                let chunk = &src[quants + 32 * (j / 8)..];
                out.quants[j] = nibble(chunk, j % 8);
                if let Some(masks) = format.legacy_masks() {
                    out.quants[j] |= fifth_bit(masks, j);
                }
            }
        }
        PackedFormat::Q8_0 | PackedFormat::Q8_K => {
            let quants = if format == PackedFormat::Q8_K { Q8_K_QUANTS } else { Q8_0_QUANTS };
            for j in 0..format.block_elements() {
                out.quants[j] = i32::from(src[quants + 32 * (j / 4) + 4 * r + j % 4] as i8);
            }
            let d32 = &src[SCALES + 4 * r..SCALES + 4 * r + 4];
            out.d32 = f32::from_le_bytes([d32[0], d32[1], d32[2], d32[3]]);
        }
        PackedFormat::Q4_K | PackedFormat::Q5_K => {
            for s in 0..8 {
                out.sub_scales[s] = i32::from(src[Q4_K_SUB_SCALES + 8 * s + r]);
                out.mins[s] = i32::from(src[Q4_K_MINS + 16 * (s / 2) + 2 * r + s % 2]);
            }
            for j in 0..QK_K {
                let (s, in_sub) = (j / 32, j % 32);
                if format == PackedFormat::Q5_K {
                    let chunk = &src[q5_k_quants(s) + 32 * (in_sub / 8)..];
                    out.quants[j] = nibble(chunk, j % 8) | fifth_bit(q5_k_masks(s), in_sub);
                } else {
                    out.quants[j] = nibble(&src[Q4_K_QUANTS + 32 * (j / 8)..], j % 8);
                }
            }
        }
        PackedFormat::Q6_K | PackedFormat::Q3_K => {
            for s in 0..16 {
                out.sub_scales[s] = i32::from(src[I8_SUB_SCALES + 8 * s + r] as i8);
            }
            for j in 0..QK_K {
                let (s, first) = (j / 16, j / 16 * 16);
                out.quants[j] = if format == PackedFormat::Q6_K {
                    let chunk = &src[q6_k_low(s) + 32 * ((j % 16) / 8)..];
                    nibble(chunk, j % 8) | read_bit_chunk(&src[q6_k_high(s)..], r, first, j, 2) << 4
                } else {
                    let low = read_bit_chunk(&src[q3_k_low(s)..], r, first, j, 2);
                    let pair_first = j / 32 * 32;
                    low | read_bit_chunk(&src[q3_k_high(s)..], r, pair_first, j, 1) << 2
                };
            }
        }
        PackedFormat::Q2_K => {
            for s in 0..16 {
                let byte = src[Q2_K_SCALES + 16 * (s / 2) + 2 * r + s % 2];
                out.sub_scales[s] = i32::from(byte & 0x0f);
                out.mins[s] = i32::from(byte >> 4);
            }
            for j in 0..QK_K {
                let s = j / 16;
                out.quants[j] = read_bit_chunk(&src[q2_k_quants(s)..], r, 16 * s, j, 2);
            }
        }
        PackedFormat::F32 | PackedFormat::F16 | PackedFormat::BF16 => {
            unreachable!("float groups are read with float_value")
        }
    }
}

/// Where element `j` of row `r` sits in a float group.
fn float_offset(format: PackedFormat, r: usize, j: usize) -> usize {
    let width = format.ggml_type().type_size();
    j / FLOAT_BLOCK * format.group_block_bytes() + (j % FLOAT_BLOCK * ROWS + r) * width
}

/// Element `j` of row `r` of a float group, as f32 (exact: every f16 and bf16 is an f32).
pub(crate) fn float_value(format: PackedFormat, group: &[u8], r: usize, j: usize) -> f32 {
    let at = float_offset(format, r, j);
    let bits16 = || u16::from_le_bytes([group[at], group[at + 1]]);
    match format {
        PackedFormat::F16 => half::f16::from_bits(bits16()).to_f32(),
        PackedFormat::BF16 => bf16_to_f32(half::bf16::from_bits(bits16())),
        _ => f32::from_le_bytes([group[at], group[at + 1], group[at + 2], group[at + 3]]),
    }
}

/// A zero row block, for callers outside this module.
pub(crate) fn empty_row_block() -> Box<RowBlock> {
    Box::new(RowBlock::zero())
}

/// Checks `bytes` against a `num_rows × row_length` matrix of `format`.
pub(crate) fn check_source(
    format: PackedFormat,
    bytes: &[u8],
    num_rows: usize,
    row_length: usize,
) -> Result<()> {
    let ty = format.ggml_type();
    if row_length == 0 || !row_length.is_multiple_of(format.block_elements()) {
        return Err(KernelError::NotWholeBlocks {
            ty,
            num_elements: row_length,
            block_size: format.block_elements(),
        });
    }
    let expected = num_rows * (row_length / ty.block_size()) * ty.type_size();
    if bytes.len() != expected {
        return Err(KernelError::ByteLengthMismatch {
            ty,
            num_elements: num_rows * row_length,
            expected,
            actual: bytes.len(),
        });
    }
    Ok(())
}
