// Matrix times a few tokens (decode): `out[t, row_offset + r] = Σ_k x[t, k] · W[r, k]` for the
// rows `r` of one chunk of the weights. A workgroup takes ROWS rows; LANES threads share a row,
// striding over its quads (4 values) so that neighbouring threads read neighbouring words
// (coalesced). Each thread keeps one partial sum per token in registers (x is read from global
// memory / L1, every token's row being reused by all the workgroup's rows); the LANES partial
// sums of a row are then added in workgroup memory (portable: no assumption on subgroup size).
struct Params {
    num_rows: u32,   // rows of this chunk
    row_length: u32, // values per row (a multiple of 32)
    num_tokens: u32, // at most MAX_TOKENS
    out_width: u32,  // out's row length (all the matrix's rows)
    row_offset: u32, // this chunk's first row
}

const ROWS: u32 = 8u;
const LANES: u32 = 32u;
const WORKGROUP: u32 = 256u; // ROWS · LANES
const MAX_TOKENS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;      // [num_rows, row words]
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // [num_tokens, row_length / 4]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [num_tokens, out_width]

var<workgroup> partial: array<f32, 2048>; // [MAX_TOKENS, WORKGROUP]

@compute @workgroup_size(256)
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
        let row_words = p.row_length / (32u * UNITS_PER_BLOCK) * BLOCK_WORDS;
        let row_start = r * row_words;
        // Two quads per step, their loads independent (more bytes in flight per thread);
        // `quads` is a multiple of 8, so a step's second quad may be past the row only when
        // the row is shorter than 2 · LANES quads.
        for (var quad = lane; quad < quads; quad += 2u * LANES) {
            let unit = quad / 8u;
            let w = dequant_quad(row_start + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS,
                                 unit % UNITS_PER_BLOCK, quad % 8u);
            let second = quad + LANES;
            let has_second = second < quads;
            let unit2 = select(unit, second / 8u, has_second);
            var w2 = dequant_quad(row_start + (unit2 / UNITS_PER_BLOCK) * BLOCK_WORDS,
                                  unit2 % UNITS_PER_BLOCK, second % 8u);
            w2 = select(vec4<f32>(0.0), w2, has_second);
            let second_x = select(quad, second, has_second);
            for (var t = 0u; t < MAX_TOKENS; t++) {
                if t < p.num_tokens {
                    sums[t] += dot(w, x[t * quads + quad]) + dot(w2, x[t * quads + second_x]);
                }
            }
        }
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
    // Lane t writes token t's sum of the row.
    if r < p.num_rows && lane < p.num_tokens {
        out[lane * p.out_width + p.row_offset + r] = partial[lane * WORKGROUP + row_in_group * LANES];
    }
}
