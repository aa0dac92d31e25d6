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
