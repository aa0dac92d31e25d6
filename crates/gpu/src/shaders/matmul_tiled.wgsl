// Matrix times many tokens (prefill): a workgroup computes a tile of TILE rows × TILE tokens of
// `out[t, row_offset + r] = Σ_k x[t, k] · W[r, k]` (ACCUMULATE: `+=` instead). It walks K 32
// values at a time: the weight tile is dequantized once into workgroup memory (each value then
// serves TILE tokens), the activation tile loaded beside it, and each thread accumulates a 4 × 4
// register block (rows `ty + 16i`, tokens `tx + 16j`) in f32.
struct Params {
    num_rows: u32,   // rows of this chunk
    row_length: u32, // a multiple of 32
    num_tokens: u32,
    out_width: u32,
    row_offset: u32,
}

const TILE: u32 = 64u;
// Tile rows are padded to 9 quads: with 8, the 16 threads reading neighbouring tokens' x would
// all hit the same workgroup-memory bank (a row of 8 vec4 is 32 words).
const STRIDE: u32 = 9u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;      // [num_rows, row words]
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // [num_tokens, row_length / 4]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [num_tokens, out_width]

var<workgroup> weight_tile: array<vec4<f32>, 576>; // [TILE rows, STRIDE quads]
var<workgroup> x_tile: array<vec4<f32>, 576>;      // [TILE tokens, STRIDE quads]

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let row_tiles = (p.num_rows + TILE - 1u) / TILE;
    let token_tiles = (p.num_tokens + TILE - 1u) / TILE;
    let group = group_index(workgroup, num_workgroups);
    if group >= row_tiles * token_tiles {
        return; // the whole workgroup: barriers stay uniform
    }
    let first_row = (group % row_tiles) * TILE;
    let first_token = (group / row_tiles) * TILE;
    let quads = p.row_length / 4u;
    let row_words = p.row_length / (32u * UNITS_PER_BLOCK) * BLOCK_WORDS;
    let ty = thread / 16u;
    let tx = thread % 16u;
    // Row ty + 16i's sums for tokens tx + 16j, j = 0..4, in acc_i: named registers, not an
    // array (an array indexed in a loop may live in slow local memory on a hardware GPU).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var unit = 0u; unit < p.row_length / 32u; unit++) {
        for (var e = 0u; e < 2u; e++) {
            let slot = thread + 256u * e;
            let i = slot / 8u;
            let quad = slot % 8u;
            let r = first_row + i;
            var w = vec4<f32>(0.0);
            if r < p.num_rows {
                let block = r * row_words + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS;
                w = dequant_quad(block, unit % UNITS_PER_BLOCK, quad);
            }
            weight_tile[i * STRIDE + quad] = w;
            let t = first_token + i;
            var v = vec4<f32>(0.0);
            if t < p.num_tokens {
                v = x[t * quads + unit * 8u + quad];
            }
            x_tile[i * STRIDE + quad] = v;
        }
        workgroupBarrier();
        for (var quad = 0u; quad < 8u; quad++) {
            let v0 = x_tile[tx * STRIDE + quad];
            let v1 = x_tile[(tx + 16u) * STRIDE + quad];
            let v2 = x_tile[(tx + 32u) * STRIDE + quad];
            let v3 = x_tile[(tx + 48u) * STRIDE + quad];
            let w0 = weight_tile[ty * STRIDE + quad];
            acc0 += vec4<f32>(dot(w0, v0), dot(w0, v1), dot(w0, v2), dot(w0, v3));
            let w1 = weight_tile[(ty + 16u) * STRIDE + quad];
            acc1 += vec4<f32>(dot(w1, v0), dot(w1, v1), dot(w1, v2), dot(w1, v3));
            let w2 = weight_tile[(ty + 32u) * STRIDE + quad];
            acc2 += vec4<f32>(dot(w2, v0), dot(w2, v1), dot(w2, v2), dot(w2, v3));
            let w3 = weight_tile[(ty + 48u) * STRIDE + quad];
            acc3 += vec4<f32>(dot(w3, v0), dot(w3, v1), dot(w3, v2), dot(w3, v3));
        }
        workgroupBarrier();
    }
    store_row(first_row + ty, first_token + tx, acc0);
    store_row(first_row + ty + 16u, first_token + tx, acc1);
    store_row(first_row + ty + 32u, first_token + tx, acc2);
    store_row(first_row + ty + 48u, first_token + tx, acc3);
}

// Row r's values for tokens `first_token + 16j` (j = 0..4), those inside the product.
fn store_row(r: u32, first_token: u32, values: vec4<f32>) {
    if r >= p.num_rows {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let t = first_token + 16u * j;
        if t < p.num_tokens {
//#if ACCUMULATE
            out[t * p.out_width + p.row_offset + r] += values[j];
//#else
            out[t * p.out_width + p.row_offset + r] = values[j];
//#endif
        }
    }
}
