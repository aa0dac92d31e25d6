// Shared by every kernel. Grids wider than 65,535 workgroups are dispatched as 2-D grids
// (`dispatch::grid`); a kernel numbers its workgroups with `group_index`.
fn group_index(workgroup: vec3<u32>, num_workgroups: vec3<u32>) -> u32 {
    return workgroup.x + workgroup.y * num_workgroups.x;
}

// The low (`high` false) or high half of a packed pair of f16, as f32.
fn half_of(word: u32, high: bool) -> f32 {
    let pair = unpack2x16float(word);
    return select(pair.x, pair.y, high);
}

// The low or high half of a packed pair of bf16, as f32.
fn bf16_of(word: u32, high: bool) -> f32 {
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, high));
}

// Byte `i` (0-3) of `word`, unsigned.
fn byte_of(word: u32, i: u32) -> u32 {
    return (word >> (8u * i)) & 0xffu;
}

// Byte `i` (0-3) of `word`, sign-extended.
fn signed_byte_of(word: u32, i: u32) -> i32 {
    return (bitcast<i32>(word << (24u - 8u * i))) >> 24u;
}

// The f16 nearest to `v` (ties to even), as bits: the CPU's rounding (the `half` crate, ggml).
// WGSL lets pack2x16float round either way; with it, NVIDIA's Vulkan driver put f16 queries,
// keys and GELU inputs about one f16 step from the CPU's (attention tests off by 1.5e-4).
fn f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let exponent = i32((x >> 23u) & 0xffu);
    let mantissa = x & 0x7fffffu;
    if exponent == 255 { // infinity, or NaN (kept quiet)
        return sign | 0x7c00u | select(0u, 0x200u | (mantissa >> 13u), mantissa != 0u);
    }
    let e = exponent - 112; // the f16 exponent field
    if e >= 31 {
        return sign | 0x7c00u;
    }
    if e <= 0 { // a subnormal f16 (or zero): the 24-bit significand shifted into 10 bits
        if e < -10 {
            return sign;
        }
        let significand = mantissa | 0x800000u;
        let shift = u32(14 - e);
        let kept = significand >> shift;
        let rest = significand & ((1u << shift) - 1u);
        let half = 1u << (shift - 1u);
        let up = rest > half || (rest == half && (kept & 1u) == 1u);
        return sign | (kept + select(0u, 1u, up));
    }
    let kept = (u32(e) << 10u) | (mantissa >> 13u);
    let rest = mantissa & 0x1fffu;
    let up = rest > 0x1000u || (rest == 0x1000u && (kept & 1u) == 1u);
    return sign | (kept + select(0u, 1u, up)); // a carry into the exponent rounds up correctly
}

// `v` rounded to the nearest f16, as f32.
fn round_to_f16(v: f32) -> f32 {
    return unpack2x16float(f16_bits(v)).x;
}

// Two values as one word of f16 (the first in the low half), each rounded to nearest.
fn pack_f16_pair(a: f32, b: f32) -> u32 {
    return f16_bits(a) | (f16_bits(b) << 16u);
}
