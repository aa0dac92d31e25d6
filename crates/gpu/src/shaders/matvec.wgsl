// Matrix times a few tokens (decode): `out[t, row_offset + r] = Σ_k x[t, k] · W[r, k]` for the
// rows `r` of one chunk of the weights. A workgroup takes ROWS rows; LANES threads share a row.
// The prelude (matmul.rs) sets ROWS, LANES and MAX_TOKENS (the tokens of the variant, a power of
// two: loops over tokens have a constant bound, and a one-token product does one token's work).
//
// Each thread walks the row's quads (PER_QUAD: neighbouring threads read neighbouring words,
// but each quad decodes its block's scales again; fastest on hardware GPUs) or its 32-value
// units (a unit's eight quads share one block head and scale, loaded once; fastest on lavapipe). Per-token partial
// sums stay in registers (x is read through the cache, every token's row being reused by all
// the workgroup's rows); the LANES partial sums of a row are then added in workgroup memory
// (portable: no assumption on subgroup size).
struct Params {
    num_rows: u32,   // rows of this chunk
    row_length: u32, // values per row (a multiple of 32)
    num_tokens: u32, // at most MAX_TOKENS
    out_width: u32,  // out's row length (all the matrix's rows)
    row_offset: u32, // this chunk's first row
}

const WORKGROUP: u32 = ROWS * LANES;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;      // [num_rows, row words]
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // [num_tokens, row_length / 4]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [num_tokens, out_width]

var<workgroup> partial: array<f32, MAX_TOKENS * WORKGROUP>; // [MAX_TOKENS, WORKGROUP]

// sums[t] += w · x[t, quad] for every token.
fn accumulate(sums: ptr<function, array<f32, MAX_TOKENS>>, w: vec4<f32>, quad: u32, quads: u32) {
    for (var t = 0u; t < MAX_TOKENS; t++) {
        if t < p.num_tokens {
            (*sums)[t] += dot(w, x[t * quads + quad]);
        }
    }
}

@compute @workgroup_size(WORKGROUP)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let row_in_group = thread / LANES;
    let lane = thread % LANES;
    let r = group_index(workgroup, num_workgroups) * ROWS + row_in_group;
    var sums: array<f32, MAX_TOKENS>;
    if r < p.num_rows {
        let quads = p.row_length / 4u;
        let units = p.row_length / 32u;
        let row_start = r * (units / UNITS_PER_BLOCK) * BLOCK_WORDS;
//#if PER_QUAD
        for (var quad = lane; quad < quads; quad += LANES) {
            let unit = quad / 8u;
            let block = row_start + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS;
            accumulate(&sums, dequant_quad(block, unit % UNITS_PER_BLOCK, quad % 8u), quad, quads);
        }
//#else
        for (var unit = lane; unit < units; unit += LANES) {
            let block = row_start + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS;
            for (var q = 0u; q < 8u; q++) {
                accumulate(&sums, dequant_quad(block, unit % UNITS_PER_BLOCK, q), unit * 8u + q, quads);
            }
        }
//#endif
    }
    for (var t = 0u; t < MAX_TOKENS; t++) {
        partial[t * WORKGROUP + thread] = sums[t];
    }
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
        if lane < stride {
            for (var t = 0u; t < MAX_TOKENS; t++) {
                partial[t * WORKGROUP + thread] += partial[t * WORKGROUP + thread + stride];
            }
        }
        workgroupBarrier();
    }
    // Lanes 0.. write one token's sum of the row each.
    for (var t = lane; t < p.num_tokens; t += LANES) {
        if r < p.num_rows {
            out[t * p.out_width + p.row_offset + r] = partial[t * WORKGROUP + row_in_group * LANES];
        }
    }
}
