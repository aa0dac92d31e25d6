// Matrix times a few tokens (decode): `out[t, row_offset + r] = Σ_k x[t, k] · W[r, k]` for the
// rows `r` of one chunk of the weights. A workgroup takes ROWS × RPT rows: LANES threads share
// RPT rows (`r`, `r + ROWS`, ...), so each value of x they load serves RPT rows. The prelude
// (matmul.rs) sets ROWS, LANES, RPT and MAX_TOKENS (the tokens of the variant, a power of two:
// loops over tokens have a constant bound, and a one-token product does one token's work).
//
// Each thread walks the row's quads (PER_QUAD: neighbouring threads read neighbouring words,
// but each quad decodes its block's scales again), its 32-value units (a unit's eight quads
// share one block head and scale, loaded once; fastest on lavapipe), or its format's chunks
// (CHUNKED, quant_formats.wgsl: several neighbouring words per thread and iteration, each scale
// decoded once for all the values it serves; the first H200 sweep found every quantized format
// bound by the per-quad loop, not by bytes).
// Per-token partial sums stay in registers (x is read through the cache, every token's row being
// reused by all the workgroup's rows); the LANES partial sums of a row are then added by subgroup
// operations (SUBGROUP_REDUCE, when every subgroup the device may use fits in a row: one barrier)
// or in workgroup memory (portable: no assumption on subgroup size, log2(LANES) barriers).
//
// Fused variants, each one dispatch where the model asks for several (the matrices of a group
// share one buffer, `base0..2` words apart):
// - MULTI: the products of two (three with OUTS3) matrices, rows `0..rows0` of the first into
//   `out`, the next `rows1` of the second into `out1`, the rest into `out2` (q, k and v);
// - GATED: `out[t, r] = act(gate_r · x_t) · (up_r · x_t)` with SILU or GELU (gate and up: a
//   thread's two rows, RPT = 2);
// - ACCUMULATE: `out += W·x` (a projection straight into the residual stream);
// - BIAS (with MULTI or none): `+ bias[bias_k + row]`, each matrix's biases at word `bias_k`;
// - NORM (with any of them): the products of `rms_norm(x) · norm_weight` instead of `x`: each
//   row's lanes read all of x, so they add its squares beside the products and scale at the end,
//   and no normed copy of x is written (`dot(W, x·w) · scale` = `dot(W, x·scale·w)`).
struct Params {
    num_rows: u32,   // rows of this chunk (MULTI: of all the matrices; GATED: of each)
    row_length: u32, // values per row (a multiple of 32)
    num_tokens: u32, // at most MAX_TOKENS
    out_width: u32,  // out's row length (all the matrix's rows)
    row_offset: u32, // this chunk's first row
    rows0: u32,      // MULTI: rows of the first matrix, then of the second
    rows1: u32,
    base0: u32,      // MULTI, GATED: first word of each matrix in `weights`
    base1: u32,
    base2: u32,
    eps: f32,        // NORM
    bias0: u32,      // BIAS: first word of each matrix's biases in `bias`
    bias1: u32,
    bias2: u32,
}

const WORKGROUP: u32 = ROWS * LANES;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;      // [num_rows, row words]
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // [num_tokens, row_length / 4]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [num_tokens, out_width]
//#if MULTI
@group(0) @binding(4) var<storage, read_write> out1: array<f32>;   // [num_tokens, rows1]
//#if OUTS3
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;   // [num_tokens, the rest]
//#endif
//#endif
// NORM's `norm_weight: array<vec4<f32>>` ([row_length / 4]) and BIAS's `bias: array<f32>` are
// declared after the outputs by matmul.rs (their binding numbers depend on the outputs).

var<workgroup> partial: array<f32, MAX_TOKENS * WORKGROUP>; // [MAX_TOKENS, WORKGROUP]

// Per-token sums of one row, and of each of a thread's rows.
alias Sums = array<f32, MAX_TOKENS>;
alias RowSums = array<Sums, RPT>;

// The thread's share of the products of the RPT rows whose first words are `starts` (NORM:
// with x times the norm's weights, and x's squares summed in `squares`).
fn row_products(sums: ptr<function, RowSums>, squares: ptr<function, Sums>,
                starts: array<u32, RPT>, lane: u32) {
    let quads = p.row_length / 4u;
//#if PER_QUAD
    for (var quad = lane; quad < quads; quad += LANES) {
        let unit = quad / 8u;
        var w: array<vec4<f32>, RPT>;
//#unroll $j RPT
        let block = starts[$j] + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS;
        w[$j] = dequant_quad(block, unit % UNITS_PER_BLOCK, quad % 8u);
//#endunroll
        accumulate(sums, squares, w, quad, quads);
    }
//#else
//#if CHUNKED
    let chunks = quads / (8u * UNITS_PER_BLOCK) * CHUNKS_PER_BLOCK;
    for (var c = lane; c < chunks; c += LANES) {
        let block = c / CHUNKS_PER_BLOCK;
        let chunk = c % CHUNKS_PER_BLOCK;
        var w: array<array<vec4<f32>, CHUNK_QUADS>, RPT>;
//#unroll $j RPT
        w[$j] = dequant_chunk(starts[$j] + block * BLOCK_WORDS, chunk);
//#endunroll
//#unroll $i CHUNK_QUADS
        var wi: array<vec4<f32>, RPT>;
//#unroll $j RPT
        wi[$j] = w[$j][$i];
//#endunroll
        accumulate(sums, squares, wi, block * 8u * UNITS_PER_BLOCK + chunk_quad(chunk, $i), quads);
//#endunroll
    }
//#else
    for (var unit = lane; unit < quads / 8u; unit += LANES) {
//#unroll $q 8
        var w: array<vec4<f32>, RPT>;
//#unroll $j RPT
        let block = starts[$j] + (unit / UNITS_PER_BLOCK) * BLOCK_WORDS;
        w[$j] = dequant_quad(block, unit % UNITS_PER_BLOCK, $q);
//#endunroll
        accumulate(sums, squares, w, unit * 8u + $q, quads);
//#endunroll
    }
//#endif
//#endif
}

// sums[j][t] += w[j] · x[t, quad] for every row and token, each x quad loaded once.
fn accumulate(sums: ptr<function, RowSums>, squares: ptr<function, Sums>,
              w: array<vec4<f32>, RPT>, quad: u32, quads: u32) {
//#unroll $t MAX_TOKENS
    if $t < p.num_tokens {
        var v = x[$t * quads + quad];
//#if NORM
        (*squares)[$t] += dot(v, v);
        v *= norm_weight[quad];
//#endif
//#unroll $j RPT
        (*sums)[$j][$t] += dot(w[$j], v);
//#endunroll
    }
//#endunroll
}

// The first word of row `r` (MULTI: counted over all the matrices; GATED: the gate's).
fn row_start(r: u32) -> u32 {
    let row_words = p.row_length / (32u * UNITS_PER_BLOCK) * BLOCK_WORDS;
//#if MULTI
    if r < p.rows0 {
        return p.base0 + r * row_words;
    }
    if r < p.rows0 + p.rows1 {
        return p.base1 + (r - p.rows0) * row_words;
    }
    return p.base2 + (r - p.rows0 - p.rows1) * row_words;
//#else
    return p.base0 + r * row_words;
//#endif
}

// Adds the LANES partial sums of each of the workgroup's rows, per token, into the lane 0 slot
// of the row; token t's total is then read by lane t of the row. Every thread calls it
// (barriers, subgroup operations).
fn reduce_lanes(sums: Sums, thread: u32, lane: u32, sg: vec2<u32>) {
//#if SUBGROUP_REDUCE
    // sg: (subgroup size, lane in the subgroup). Each subgroup's first lane writes its sums
    // beside the row's slot, then lane t of the row adds its token's.
    let slot = thread - lane;
//#unroll $t MAX_TOKENS
    let total = subgroupAdd(sums[$t]);
    if sg.y == 0u {
        partial[$t * WORKGROUP + slot + lane / sg.x] = total;
    }
//#endunroll
    workgroupBarrier();
    if lane < MAX_TOKENS {
        var total = 0.0;
        for (var k = 0u; k < LANES / sg.x; k++) {
            total += partial[lane * WORKGROUP + slot + k];
        }
        partial[lane * WORKGROUP + slot] = total;
    }
//#else
//#unroll $t MAX_TOKENS
    partial[$t * WORKGROUP + thread] = sums[$t];
//#endunroll
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
        if lane < stride {
            for (var t = 0u; t < MAX_TOKENS; t++) {
                partial[t * WORKGROUP + thread] += partial[t * WORKGROUP + thread + stride];
            }
        }
        workgroupBarrier();
    }
//#endif
}

// Writes token t's value of row r (MULTI: of the matrix that row falls in).
fn store(t: u32, r: u32, value: f32) {
//#if MULTI
    var k = 0u;
    var local = r;
    if r >= p.rows0 {
        k = 1u;
        local = r - p.rows0;
        if local >= p.rows1 {
            k = 2u;
            local -= p.rows1;
        }
    }
    var v = value;
//#if BIAS
    v += bias[select(select(p.bias0, p.bias1, k == 1u), p.bias2, k == 2u) + local];
//#endif
    if k == 0u {
        out[t * p.rows0 + local] = v;
    } else if k == 1u {
        out1[t * p.rows1 + local] = v;
    }
//#if OUTS3
    if k == 2u {
        out2[t * (p.num_rows - p.rows0 - p.rows1) + local] = v;
    }
//#endif
//#else
    var v = value;
//#if BIAS
    v += bias[p.bias0 + p.row_offset + r];
//#endif
    let i = t * p.out_width + p.row_offset + r;
//#if ACCUMULATE
    out[i] += v;
//#else
    out[i] = v;
//#endif
//#endif
}

@compute @workgroup_size(WORKGROUP)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
//#if SUBGROUP_REDUCE
    @builtin(subgroup_size) subgroup_size: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
//#endif
) {
//#if SUBGROUP_REDUCE
    let sg = vec2<u32>(subgroup_size, subgroup_lane);
//#else
    let sg = vec2<u32>(0u);
//#endif
    let row_in_group = thread / LANES;
    let lane = thread % LANES;
    // The thread's rows: GATED, gate row r and up row r; otherwise r, r + ROWS, ...
//#if GATED
    let first = group_index(workgroup, num_workgroups) * ROWS + row_in_group;
//#else
    let first = group_index(workgroup, num_workgroups) * ROWS * RPT + row_in_group;
//#endif
    var rows: array<u32, RPT>;
    var starts: array<u32, RPT>;
//#unroll $j RPT
//#if GATED
    rows[$j] = first;
    starts[$j] = row_start(first) - p.base0 + select(p.base0, p.base1, $j == 1u);
//#else
    rows[$j] = first + $j * ROWS;
    // A row past the end reads the first one (finite data) and is never written.
    starts[$j] = row_start(select(first, rows[$j], rows[$j] < p.num_rows));
//#endif
//#endunroll
    var sums: RowSums;
    var squares: Sums; // NORM
    if first < p.num_rows {
        row_products(&sums, &squares, starts, lane);
    }
    // Lane t of a row takes token t's totals (LANES >= MAX_TOKENS), one reduction at a time.
    let slot = row_in_group * LANES;
    let t = lane;
    var values: array<f32, RPT>;
//#unroll $j RPT
    if $j > 0u {
        workgroupBarrier();
    }
    reduce_lanes(sums[$j], thread, lane, sg);
    if t < MAX_TOKENS {
        values[$j] = partial[t * WORKGROUP + slot];
    }
//#endunroll
//#if NORM
    workgroupBarrier();
    reduce_lanes(squares, thread, lane, sg);
    if t < MAX_TOKENS {
        let scale = 1.0 / sqrt(partial[t * WORKGROUP + slot] / f32(p.row_length) + p.eps);
//#unroll $j RPT
        values[$j] *= scale;
//#endunroll
    }
//#endif
    if t < p.num_tokens {
//#if GATED
        if first < p.num_rows {
//#if SILU
            store(t, first, silu(values[0]) * values[1]);
//#else
            store(t, first, gelu(values[0]) * values[1]);
//#endif
        }
//#else
//#unroll $j RPT
        if rows[$j] < p.num_rows {
            store(t, rows[$j], values[$j]);
        }
//#endunroll
//#endif
    }
}
