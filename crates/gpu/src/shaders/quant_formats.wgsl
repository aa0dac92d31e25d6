// Weight formats on the device, shared by the matrix kernels and the embedding lookup. Exactly
// one `FORMAT_*` define is set. A kernel declares `weights: array<u32>` (one chunk of rows, see
// matrix.rs for the padded block layouts) and calls `dequant_quad(block, unit, quad)`: values
// `32·unit + 4·quad .. +4` of the block whose first word is `block`, with the CPU's
// (uma_kernels') arithmetic, so an embedding row is bit-identical to `uma_kernels::dequantize`.
// BLOCK_WORDS: u32 words of one padded block; UNITS_PER_BLOCK: 32-value units in a block.
//
// The matrix-vector kernel's chunked walk calls `dequant_chunk(block, chunk)` instead: the
// CHUNK_QUADS quads that one contiguous run of the block's words encodes (CHUNKS_PER_BLOCK runs
// per block, neighbouring chunks in neighbouring words), quad `i` of it being the block's quad
// `chunk_quad(chunk, i)`. A thread then issues several loads at once and decodes each scale once
// for many values; the K-quants' chunks take both nibbles of each word (two units at once).
// Formats without their own (UNIT_CHUNKS) take a block's units quad by quad.

//#if FORMAT_F32
const BLOCK_WORDS: u32 = 32u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let w = block + 4u * quad;
    return vec4<f32>(bitcast<f32>(weights[w]), bitcast<f32>(weights[w + 1u]),
                     bitcast<f32>(weights[w + 2u]), bitcast<f32>(weights[w + 3u]));
}
//#endif

//#if FORMAT_F16
const BLOCK_WORDS: u32 = 16u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let a = unpack2x16float(weights[block + 2u * quad]);
    let b = unpack2x16float(weights[block + 2u * quad + 1u]);
    return vec4<f32>(a.x, a.y, b.x, b.y);
}
//#endif

//#if FORMAT_BF16
const BLOCK_WORDS: u32 = 16u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let a = weights[block + 2u * quad];
    let b = weights[block + 2u * quad + 1u];
    return vec4<f32>(bf16_of(a, false), bf16_of(a, true), bf16_of(b, false), bf16_of(b, true));
}
//#endif

// Nibble `i` of the four bytes of `word`, from the low (`shift` 0) or high (`shift` 4) halves.
fn nibbles(word: u32, shift: u32) -> vec4<u32> {
    return (vec4<u32>(word, word >> 8u, word >> 16u, word >> 24u) >> vec4<u32>(shift)) & vec4<u32>(0xfu);
}

// The low 4 bits of quad `quad` (0..8) of a Q4_0/Q4_1/Q5_0/Q5_1 block whose 16 bytes of nibbles
// start at word `qs`: elements j < 16 are the low nibbles of byte j, j + 16 the high ones.
fn low_nibbles(qs: u32, quad: u32) -> vec4<u32> {
    return nibbles(weights[qs + (quad & 3u)], select(0u, 4u, quad >= 4u));
}

// The 5-bit values of quad `quad` of a Q5_0/Q5_1 block: nibbles at word `qs`, fifth bits in
// word `qh` (bit j is element j's).
fn five_bits(qs: u32, qh: u32, quad: u32) -> vec4<u32> {
    return low_nibbles(qs, quad) | (bits4(weights[qh], 4u * quad) << vec4<u32>(4u));
}

// Bit `first + i` of `bits`, for i in 0..4.
fn bits4(bits: u32, first: u32) -> vec4<u32> {
    return (vec4<u32>(bits) >> (vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
}

//#if FORMAT_Q4_0
// [d: f16, pad: 2 bytes][qs: 16 bytes]: element j < 16 the low nibble of qs[j], j + 16 its high.
const BLOCK_WORDS: u32 = 5u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let d = half_of(weights[block], false);
    return vec4<f32>(vec4<i32>(low_nibbles(block + 1u, quad)) - vec4<i32>(8)) * d;
}
//#endif

//#if FORMAT_Q4_1
// [d: f16, m: f16][qs: 16 bytes].
const BLOCK_WORDS: u32 = 5u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let head = weights[block];
    return vec4<f32>(low_nibbles(block + 1u, quad)) * half_of(head, false) + half_of(head, true);
}
//#endif

//#if FORMAT_Q5_0
// [d: f16, pad: 2 bytes][qh: 4 bytes][qs: 16 bytes]; bit j of qh is element j's fifth bit.
const BLOCK_WORDS: u32 = 6u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let d = half_of(weights[block], false);
    return vec4<f32>(vec4<i32>(five_bits(block + 2u, block + 1u, quad)) - vec4<i32>(16)) * d;
}
//#endif

//#if FORMAT_Q5_1
// [d: f16, m: f16][qh: 4 bytes][qs: 16 bytes].
const BLOCK_WORDS: u32 = 6u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let head = weights[block];
    let q = five_bits(block + 2u, block + 1u, quad);
    return vec4<f32>(q) * half_of(head, false) + half_of(head, true);
}
//#endif

//#if FORMAT_MXFP4
// [e: E8M0 scale byte, pad: 3 bytes][qs: 16 bytes of E2M1 codes, Q4_0's nibble order]: element
// = ggml's doubled E2M1 value (0, 1, 2, 3, 4, 6, 8, 12, negated by bit 3) times 2^(e − 128)
// (`GGML_E8M0_TO_FP32_HALF`, subnormal for e < 2).
const BLOCK_WORDS: u32 = 5u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let e = weights[block] & 0xffu;
    let d = select(bitcast<f32>((e - 1u) << 23u), bitcast<f32>(0x00200000u << e), e < 2u);
    let n = low_nibbles(block + 1u, quad);
    let m = n & vec4<u32>(7u);
    // m < 4: m; else (2 or 3) << (m / 2 − 1): 4, 6, 8, 12.
    let large = (vec4<u32>(2u) + (m & vec4<u32>(1u))) << ((m >> vec4<u32>(1u)) - vec4<u32>(1u));
    let magnitude = vec4<f32>(select(m, large, m >= vec4<u32>(4u)));
    // 0 − x, not −x: a zero code is +0 whichever its sign bit, as ggml's int8 table gives.
    let value = select(magnitude, vec4<f32>(0.0) - magnitude, n >= vec4<u32>(8u));
    return value * d;
}
//#endif

//#if FORMAT_Q8_0
// [d: f16, pad: 2 bytes][qs: 32 signed bytes].
const BLOCK_WORDS: u32 = 9u;
const UNITS_PER_BLOCK: u32 = 1u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let d = half_of(weights[block], false);
    let word = weights[block + 1u + quad];
    let q = vec4<i32>(signed_byte_of(word, 0u), signed_byte_of(word, 1u),
                      signed_byte_of(word, 2u), signed_byte_of(word, 3u));
    return vec4<f32>(q) * d;
}
//#endif

// Shared by Q4_K and Q5_K (unused, and so not compiled into, the others).
// ggml's get_scale_min_k4 for a Q4_K/Q5_K block (scales in words 1..4): the 6-bit (scale, min)
// of sub-block `j` (0..8), as f32.
fn scale_min_k4(block: u32, j: u32) -> vec2<f32> {
    let lo = weights[block + 1u]; // bytes 0..4: scale[j] | scale[j+4] high bits
    let mid = weights[block + 2u]; // bytes 4..8: min[j] | min[j+4] high bits
    let hi = weights[block + 3u]; // bytes 8..12: scale[j+4] low 4 | min[j+4] low 4
    if j < 4u {
        return vec2<f32>(f32(byte_of(lo, j) & 63u), f32(byte_of(mid, j) & 63u));
    }
    let i = j - 4u;
    let sc = (byte_of(hi, i) & 0xfu) | ((byte_of(lo, i) >> 6u) << 4u);
    let m = (byte_of(hi, i) >> 4u) | ((byte_of(mid, i) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

//#if UNIT_CHUNKS
const CHUNK_QUADS: u32 = 8u;
const CHUNKS_PER_BLOCK: u32 = UNITS_PER_BLOCK;
fn dequant_chunk(block: u32, chunk: u32) -> array<vec4<f32>, CHUNK_QUADS> {
    var w: array<vec4<f32>, CHUNK_QUADS>;
//#unroll $i CHUNK_QUADS
    w[$i] = dequant_quad(block, chunk, $i);
//#endunroll
    return w;
}
fn chunk_quad(chunk: u32, i: u32) -> u32 {
    return chunk * 8u + i;
}
//#endif

// Q4_K and Q5_K chunks: words `4g..4g+4` (g = chunk % 2) of the 8 qs words that hold units
// 2p and 2p + 1 (p = chunk / 2): quads 4g.. of unit 2p in the low nibbles, of 2p + 1 in the high.
// The scales (x, y) and mins (z, w) of units 2·pair and 2·pair + 1 of a Q4_K/Q5_K block.
fn paired_scales(block: u32, pair: u32) -> vec4<f32> {
    let head = weights[block];
    let sm0 = scale_min_k4(block, 2u * pair);
    let sm1 = scale_min_k4(block, 2u * pair + 1u);
    return vec4<f32>(half_of(head, false) * vec2<f32>(sm0.x, sm1.x),
                     half_of(head, true) * vec2<f32>(sm0.y, sm1.y));
}

// A Q4_K (`fifth` false, qs at word 4) or Q5_K chunk (qs at word 12; the fifth bits of quad q
// of every unit in qh word 4 + q, bit `unit` of each byte).
fn paired_chunk(block: u32, chunk: u32, qs_word: u32, fifth: bool) -> array<vec4<f32>, 8> {
    let pair = chunk / 2u;
    let dm = paired_scales(block, pair);
    let g = 4u * (chunk % 2u);
    let qs = block + qs_word + 8u * pair + g;
    var w: array<vec4<f32>, 8>;
//#unroll $k 4
    let word = weights[qs + $k];
    var h0 = vec4<u32>(0u);
    var h1 = vec4<u32>(0u);
    if fifth {
        let high = weights[block + 4u + g + $k];
        h0 = (nibbles(high, 2u * pair) & vec4<u32>(1u)) << vec4<u32>(4u);
        h1 = (nibbles(high, 2u * pair + 1u) & vec4<u32>(1u)) << vec4<u32>(4u);
    }
    w[$k] = dm.x * vec4<f32>(nibbles(word, 0u) | h0) - dm.z;
    w[$k + 4u] = dm.y * vec4<f32>(nibbles(word, 4u) | h1) - dm.w;
//#endunroll
    return w;
}

fn paired_chunk_quad(chunk: u32, i: u32) -> u32 {
    return (2u * (chunk / 2u) + i / 4u) * 8u + 4u * (chunk % 2u) + i % 4u;
}

//#if FORMAT_Q4_K
// 144 bytes, as stored: [d: f16, dmin: f16][scales: 12 bytes][qs: 128 bytes]; each 32 bytes of
// qs hold 64 values, the first 32 in the low nibbles.
const BLOCK_WORDS: u32 = 36u;
const UNITS_PER_BLOCK: u32 = 8u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let head = weights[block];
    let sm = scale_min_k4(block, unit);
    let d1 = half_of(head, false) * sm.x;
    let m1 = half_of(head, true) * sm.y;
    let q = nibbles(weights[block + 4u + (unit / 2u) * 8u + quad], 4u * (unit % 2u));
    return d1 * vec4<f32>(q) - m1;
}
const CHUNK_QUADS: u32 = 8u;
const CHUNKS_PER_BLOCK: u32 = 8u;
fn dequant_chunk(block: u32, chunk: u32) -> array<vec4<f32>, CHUNK_QUADS> {
    return paired_chunk(block, chunk, 4u, false);
}
fn chunk_quad(chunk: u32, i: u32) -> u32 {
    return paired_chunk_quad(chunk, i);
}
//#endif

//#if FORMAT_Q5_K
// 176 bytes, as stored: [d, dmin][scales: 12 bytes][qh: 32 bytes][qs: 128 bytes]; value j's fifth
// bit is bit j / 32 of qh[j % 32].
const BLOCK_WORDS: u32 = 44u;
const UNITS_PER_BLOCK: u32 = 8u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let head = weights[block];
    let sm = scale_min_k4(block, unit);
    let d1 = half_of(head, false) * sm.x;
    let m1 = half_of(head, true) * sm.y;
    let low = nibbles(weights[block + 12u + (unit / 2u) * 8u + quad], 4u * (unit % 2u));
    let high = nibbles(weights[block + 4u + quad], unit) & vec4<u32>(1u);
    return d1 * vec4<f32>(low | (high << vec4<u32>(4u))) - m1;
}
const CHUNK_QUADS: u32 = 8u;
const CHUNKS_PER_BLOCK: u32 = 8u;
fn dequant_chunk(block: u32, chunk: u32) -> array<vec4<f32>, CHUNK_QUADS> {
    return paired_chunk(block, chunk, 12u, true);
}
fn chunk_quad(chunk: u32, i: u32) -> u32 {
    return paired_chunk_quad(chunk, i);
}
//#endif

//#if FORMAT_Q6_K
// 210 bytes as stored plus 2 bytes of padding: [ql: 128 bytes][qh: 64 bytes][scales: 16 signed
// bytes][d: f16, pad]. Value j = 128h + 32k + l: low 4 bits nibble k / 2 of ql[64h + 32(k % 2)
// + l], high 2 bits bits 2k.. of qh[32h + l], scale scales[j / 16].
const BLOCK_WORDS: u32 = 53u;
const UNITS_PER_BLOCK: u32 = 8u;
fn dequant_quad(block: u32, unit: u32, quad: u32) -> vec4<f32> {
    let h = unit / 4u;
    let k = unit % 4u;
    let low = nibbles(weights[block + 16u * h + 8u * (k % 2u) + quad], 4u * (k / 2u));
    let high = (nibbles(weights[block + 32u + 8u * h + quad], 2u * k)) & vec4<u32>(3u);
    let s = 2u * unit + quad / 4u;
    let ds = half_of(weights[block + 52u], false) * f32(signed_byte_of(weights[block + 48u + s / 4u], s % 4u));
    return ds * vec4<f32>(vec4<i32>(low | (high << vec4<u32>(4u))) - vec4<i32>(32));
}
// Chunk (h, g) = (chunk / 2, chunk % 2): quads 4g..4g+4 of the four units 4h..4h+4, from four
// words of each of the two ql runs (both nibbles) and four qh words (all four bit pairs).
const CHUNK_QUADS: u32 = 16u;
const CHUNKS_PER_BLOCK: u32 = 4u;
fn dequant_chunk(block: u32, chunk: u32) -> array<vec4<f32>, CHUNK_QUADS> {
    let h = chunk / 2u;
    let g = chunk % 2u;
    let d = half_of(weights[block + 52u], false);
    // Unit 4h + k's scale for these quads: byte 2(4h + k) + g.
    var scale: array<f32, 4>;
//#unroll $k 4
    let s = 8u * h + 2u * $k + g;
    scale[$k] = d * f32(signed_byte_of(weights[block + 48u + s / 4u], s % 4u));
//#endunroll
    var w: array<vec4<f32>, CHUNK_QUADS>;
//#unroll $q 4
    let quad = 4u * g + $q;
    let ql0 = weights[block + 16u * h + quad];
    let ql1 = weights[block + 16u * h + 8u + quad];
    let qh = weights[block + 32u + 8u * h + quad];
//#unroll $k 4
    let low = nibbles(select(ql0, ql1, $k % 2u == 1u), 4u * ($k / 2u));
    let high = nibbles(qh, 2u * $k) & vec4<u32>(3u);
    w[4u * $k + $q] = scale[$k] * vec4<f32>(vec4<i32>(low | (high << vec4<u32>(4u))) - vec4<i32>(32));
//#endunroll
//#endunroll
    return w;
}
fn chunk_quad(chunk: u32, i: u32) -> u32 {
    return (4u * (chunk / 2u) + i / 4u) * 8u + 4u * (chunk % 2u) + i % 4u;
}
//#endif
