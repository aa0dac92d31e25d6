// Writes the step's keys and values into one layer of the paged cache (layout: kv_cache.rs).
// One workgroup per (token, KV head); its threads write the head's row, one u32 word each
// (two f16, or four Q8_0 quants; a Q8_0 group's scale goes with its group's first word).

struct Params {
    num_tokens: u32,
    num_kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    scales_offset: u32, // Q8_0: first word of the scales in each cache tensor
}

const WORKGROUP: u32 = 64u;
const GROUP: u32 = 32u; // Q8_0 elements per scale

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> new_keys: array<f32>;   // [num_tokens, kv_dim]
@group(0) @binding(2) var<storage, read> new_values: array<f32>; // [num_tokens, kv_dim]
@group(0) @binding(3) var<storage, read_write> keys: array<u32>;
@group(0) @binding(4) var<storage, read_write> values: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;   // [num_tokens]
@group(0) @binding(6) var<storage, read> sequences: array<u32>;   // [num_tokens]
@group(0) @binding(7) var<storage, read> table_starts: array<u32>; // [num_sequences + 1]
@group(0) @binding(8) var<storage, read> block_tables: array<u32>; // [total blocks]

// Element `i` of the new keys (`which` 0) or values (1).
fn element(which: u32, i: u32) -> f32 {
    if which == 0u {
        return new_keys[i];
    }
    return new_values[i];
}

fn store(which: u32, word: u32, value: u32) {
    if which == 0u {
        keys[word] = value;
    } else {
        values[word] = value;
    }
}

//#if Q8_0
// ggml's rounding of `x · (1/d)` to a quant: half away from zero (Rust's f32::round), not
// WGSL's round() (half to even).
fn round_half_away(x: f32) -> f32 {
    let truncated = trunc(x);
    if abs(x - truncated) >= 0.5 {
        return truncated + select(-1.0, 1.0, x >= 0.0);
    }
    return truncated;
}

// `a / b` correctly rounded (to nearest, ties to even) for positive normal `a` and `b` with a
// normal quotient, by long division of the significands: Vulkan lets a driver's division be
// 2.5 ulp off (NVIDIA's is), and the quants must be the CPU's bit for bit. Anything else (zero,
// subnormals, overflow) takes the device's division.
fn divide(a: f32, b: f32) -> f32 {
    let bits_a = bitcast<u32>(a);
    let bits_b = bitcast<u32>(b);
    let exponent_a = i32(bits_a >> 23u);
    let exponent_b = i32(bits_b >> 23u);
    if exponent_a == 0 || exponent_b == 0 || exponent_a == 255 || exponent_b == 255 {
        return a / b;
    }
    let divisor = (bits_b & 0x7fffffu) | 0x800000u;
    var remainder = (bits_a & 0x7fffffu) | 0x800000u;
    var exponent = exponent_a - exponent_b + 127;
    if remainder < divisor {
        remainder <<= 1u;
        exponent -= 1;
    }
    // 24 bits of significand and a rounding bit; the remainder says whether more follow.
    var quotient = 0u;
    for (var i = 0u; i < 25u; i++) {
        quotient <<= 1u;
        if remainder >= divisor {
            remainder -= divisor;
            quotient |= 1u;
        }
        remainder <<= 1u;
    }
    var significand = quotient >> 1u;
    if (quotient & 1u) == 1u && (remainder != 0u || (significand & 1u) == 1u) {
        significand += 1u;
        if significand == 0x1000000u {
            significand >>= 1u;
            exponent += 1;
        }
    }
    if exponent <= 0 || exponent >= 255 {
        return a / b;
    }
    return bitcast<f32>((u32(exponent) << 23u) | (significand & 0x7fffffu));
}

// The f32 scale of the 32 elements from `start` (ggml's quantize_row_q8_0: amax / 127).
fn group_scale(which: u32, start: u32) -> f32 {
    var amax = 0.0;
    for (var i = 0u; i < GROUP; i++) {
        amax = max(amax, abs(element(which, start + i)));
    }
    return divide(amax, 127.0);
}
//#endif

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let item = group_index(workgroup, num_workgroups);
    if item >= params.num_tokens * params.num_kv_heads {
        return;
    }
    let token = item / params.num_kv_heads;
    let kv_head = item % params.num_kv_heads;
    let hd = params.head_dim;
    let position = positions[token];
    let block = block_tables[table_starts[sequences[token]] + position / params.block_size];
    // The position's row of this head in the cache, and its first element in the new K/V.
    let row = (block * params.num_kv_heads + kv_head) * params.block_size
        + position % params.block_size;
    let source = (token * params.num_kv_heads + kv_head) * hd;
    for (var which = 0u; which < 2u; which++) {
//#if Q8_0
        let words_per_row = hd / 4u;
        let groups = hd / GROUP;
        let scale_words = (groups + 1u) / 2u;
        for (var w = thread; w < words_per_row; w += WORKGROUP) {
            let g = w / (GROUP / 4u);
            let d = group_scale(which, source + g * GROUP);
            var inverse = 0.0;
            if d != 0.0 {
                inverse = divide(1.0, d);
            }
            var word = 0u;
            for (var i = 0u; i < 4u; i++) {
                let q = i32(round_half_away(element(which, source + 4u * w + i) * inverse));
                word |= (bitcast<u32>(q) & 0xffu) << (8u * i);
            }
            store(which, row * words_per_row + w, word);
            // The first word of an even group also writes the scales of it and the next one.
            if w % (GROUP / 4u) == 0u && g % 2u == 0u {
                var next = 0.0;
                if g + 1u < groups {
                    next = group_scale(which, source + (g + 1u) * GROUP);
                }
                let scales = pack_f16_pair(d, next);
                store(which, params.scales_offset + row * scale_words + g / 2u, scales);
            }
        }
//#else
        let words_per_row = hd / 2u;
        for (var w = thread; w < words_per_row; w += WORKGROUP) {
            let pair = vec2<f32>(element(which, source + 2u * w), element(which, source + 2u * w + 1u));
            store(which, row * words_per_row + w, pack_f16_pair(pair.x, pair.y));
        }
//#endif
    }
}
