// Embedding lookup from one chunk of the table: `out[t] = row token_ids[t] · scale` for the
// tokens whose row is in this chunk (rows row_offset .. row_offset + num_rows); one thread per
// quad (4 values) of an output row.
struct Params {
    num_tokens: u32,
    row_length: u32, // a multiple of 32
    num_rows: u32,   // rows of this chunk
    row_offset: u32, // this chunk's first row
    scale: f32,      // 1 when there is none (exact)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;      // [num_rows, row words]
@group(0) @binding(2) var<storage, read> token_ids: array<u32>;    // [num_tokens]
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>; // [num_tokens, row_length / 4]

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let quads = p.row_length / 4u;
    let index = group_index(workgroup, num_workgroups) * 64u + thread;
    if index >= p.num_tokens * quads {
        return;
    }
    let t = index / quads;
    let quad = index % quads;
    let id = token_ids[t];
    if id < p.row_offset || id - p.row_offset >= p.num_rows {
        return;
    }
    let row_words = p.row_length / (32u * UNITS_PER_BLOCK) * BLOCK_WORDS;
    let unit = quad / 8u;
    let block = (id - p.row_offset) * row_words + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS;
    out[index] = dequant_quad(block, unit % UNITS_PER_BLOCK, quad % 8u) * p.scale;
}
