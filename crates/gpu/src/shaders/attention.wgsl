// Attention of one query head of one token over its sequence's cached positions
// `first ..= position` (layout: kv_cache.rs). One workgroup per (token, query head), online
// softmax over tiles of TILE positions:
// - scores: the workgroup splits into ROWS teams of LANES threads, a team per position; its
//   lanes read consecutive words of the position's key row (coalesced) and their partial dot
//   products are summed in workgroup memory;
// - values: thread `i` owns output dimensions `i, i + 64, ...` (up to MAX_HEAD_DIM), so a
//   position's value row is read by consecutive threads at consecutive addresses.
// Scores, weights, running maximum and sum, and the accumulators are f32; the query is rounded
// to f16 first, as the CPU backend (and llama.cpp with an f16 cache) does.
// SPLIT: long contexts with few (token, head) items (decoding) are cut into `num_splits` runs of
// `positions_per_split` positions, a workgroup each, so that the whole GPU streams the cache;
// each writes its unnormalised state to `partials`, which attention_merge.wgsl combines.

struct Params {
    num_tokens: u32,
    num_heads: u32,
    num_kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    has_window: u32,
    window: u32,
    scale: f32,
    scales_offset: u32, // Q8_0: first word of the scales in each cache tensor
    num_splits: u32, // 1 unless SPLIT
    positions_per_split: u32, // SPLIT: a multiple of TILE
}

const WORKGROUP: u32 = 64u;
const LANES: u32 = 8u;
const ROWS: u32 = WORKGROUP / LANES;
const TILE: u32 = 32u;
//#if WIDE_HEADS
// Latent attention's heads (DeepSeek: 512 + 64).
const MAX_HEAD_DIM: u32 = 576u;
const DIMS_PER_THREAD: u32 = 9u; // MAX_HEAD_DIM / WORKGROUP
//#else
const MAX_HEAD_DIM: u32 = 256u;
const DIMS_PER_THREAD: u32 = 4u; // MAX_HEAD_DIM / WORKGROUP
//#endif
const GROUP: u32 = 32u; // Q8_0 elements per scale
// Loads a thread issues before using the first: a loop that loads and uses one value per
// iteration waits for memory every iteration (about 40 us per decode call on an H200).
const UNROLL: u32 = 4u;
const VALUES_AT_ONCE: u32 = 8u; // divides TILE

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> queries: array<f32>; // [num_tokens, num_heads * head_dim]
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read> values: array<u32>;
//#if SPLIT
// Per (token, head) and split: running maximum, running sum, then the head_dim accumulators.
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
//#else
@group(0) @binding(4) var<storage, read_write> out: array<f32>; // [num_tokens, num_heads * head_dim]
//#endif
@group(0) @binding(5) var<storage, read> positions: array<u32>;   // [num_tokens]
@group(0) @binding(6) var<storage, read> sequences: array<u32>;   // [num_tokens]
@group(0) @binding(7) var<storage, read> table_starts: array<u32>; // [num_sequences + 1]
@group(0) @binding(8) var<storage, read> block_tables: array<u32>; // [total blocks]
//#if SINKS
// Per query head, a logit in the softmax's sum that adds no value (gpt-oss); not with SPLIT
// (attention_merge.wgsl adds it there).
@group(0) @binding(9) var<storage, read> sinks: array<f32>; // [num_heads]
//#endif

var<workgroup> query: array<f32, MAX_HEAD_DIM>;
var<workgroup> partial: array<f32, WORKGROUP>; // each thread's part of a score
var<workgroup> scores: array<f32, TILE>;
var<workgroup> weights: array<f32, TILE>;
var<workgroup> rows: array<u32, TILE>; // each tile position's row in the cache tensors
var<workgroup> span: vec3<u32>; // first position, last position, the block table's start

//#if Q8_0
// Scale `g` of cache row `row` of `keys` (`is_value` false) or `values`.
fn scale_of(is_value: bool, row: u32, g: u32) -> f32 {
    let scale_words = (params.head_dim / GROUP + 1u) / 2u;
    let at = params.scales_offset + row * scale_words + g / 2u;
    var word: u32;
    if is_value {
        word = values[at];
    } else {
        word = keys[at];
    }
    return half_of(word, g % 2u == 1u);
}

// Key `row`'s dot product with the query over this lane's words, UNROLL words loaded at once
// (a past-the-end word reloads the last one and counts nothing).
fn partial_score(row: u32, lane: u32) -> f32 {
    let words_per_row = params.head_dim / 4u;
    var sum = 0.0;
    for (var first = lane; first < words_per_row; first += UNROLL * LANES) {
        var words: array<u32, UNROLL>;
//#unroll $u UNROLL
        words[$u] = keys[row * words_per_row + min(first + $u * LANES, words_per_row - 1u)];
//#endunroll
//#unroll $u UNROLL
        let w = first + $u * LANES;
        if w < words_per_row {
            let d = scale_of(false, row, w / (GROUP / 4u));
//#unroll $i 4
            sum += query[4u * w + $i] * (f32(signed_byte_of(words[$u], $i)) * d);
//#endunroll
        }
//#endunroll
    }
    return sum;
}

// Element `d` of value `row`.
fn value_of(row: u32, d: u32) -> f32 {
    let word = values[row * (params.head_dim / 4u) + d / 4u];
    return f32(signed_byte_of(word, d % 4u)) * scale_of(true, row, d / GROUP);
}
//#else
fn partial_score(row: u32, lane: u32) -> f32 {
    let words_per_row = params.head_dim / 2u;
    var sum = 0.0;
    for (var first = lane; first < words_per_row; first += UNROLL * LANES) {
        var words: array<u32, UNROLL>;
//#unroll $u UNROLL
        words[$u] = keys[row * words_per_row + min(first + $u * LANES, words_per_row - 1u)];
//#endunroll
//#unroll $u UNROLL
        let w = first + $u * LANES;
        if w < words_per_row {
            let pair = unpack2x16float(words[$u]);
            sum += query[2u * w] * pair.x + query[2u * w + 1u] * pair.y;
        }
//#endunroll
    }
    return sum;
}

fn value_of(row: u32, d: u32) -> f32 {
    return half_of(values[row * (params.head_dim / 2u) + d / 2u], d % 2u == 1u);
}
//#endif

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let work = group_index(workgroup, num_workgroups);
    if work >= params.num_tokens * params.num_heads * params.num_splits {
        return;
    }
    let item = work / params.num_splits;
    let split = work % params.num_splits;
    let token = item / params.num_heads;
    let head = item % params.num_heads;
    let kv_head = head / (params.num_heads / params.num_kv_heads);
    let hd = params.head_dim;
    let bs = params.block_size;
    let q_row = (token * params.num_heads + head) * hd;

    if thread == 0u {
        let position = positions[token];
        var first = 0u;
        if params.has_window != 0u && position + 1u > params.window {
            first = position + 1u - params.window;
        }
        // `last + 1` so that an empty window (`first` past the position) needs no sign.
        var end = position + 1u;
//#if SPLIT
        first = min(first + split * params.positions_per_split, end);
        end = min(first + params.positions_per_split, end);
//#endif
        span = vec3<u32>(first, end, table_starts[sequences[token]]);
    }
    for (var d = thread; d < hd; d += WORKGROUP) {
        // f16 rounding of the query.
        query[d] = round_to_f16(queries[q_row + d]);
    }
    let bounds = workgroupUniformLoad(&span); // also orders the query's stores
    let first = bounds.x;
    let end = bounds.y;
    let table_start = bounds.z;

    var running_max = 0.0; // set by the first tile
    var running_sum = 0.0;
    var acc: array<f32, DIMS_PER_THREAD>;
    let team = thread / LANES;
    let lane = thread % LANES;
    for (var start = first; start < end; start += TILE) {
        let count = min(TILE, end - start);
        if thread < count {
            let p = start + thread;
            let block = block_tables[table_start + p / bs];
            rows[thread] = (block * params.num_kv_heads + kv_head) * bs + p % bs;
        }
        workgroupBarrier();
        for (var base = 0u; base < count; base += ROWS) {
            let r = base + team;
            var part = 0.0;
            if r < count {
                part = partial_score(rows[r], lane);
            }
            partial[thread] = part;
            workgroupBarrier();
            if lane == 0u && r < count {
                var score = 0.0;
                for (var i = 0u; i < LANES; i++) {
                    score += partial[thread + i];
                }
                scores[r] = score * params.scale;
            }
            workgroupBarrier();
        }
        var tile_max = scores[0];
        for (var j = 1u; j < count; j++) {
            tile_max = max(tile_max, scores[j]);
        }
        var new_max = tile_max;
        var factor = 0.0;
        if start != first {
            new_max = max(running_max, tile_max);
            factor = exp(running_max - new_max);
        }
        // Past `count`, weight 0: the value loop reads whole runs of VALUES_AT_ONCE.
        if thread < TILE {
            weights[thread] = select(0.0, exp(scores[thread] - new_max), thread < count);
        }
        workgroupBarrier();
        var tile_sum = 0.0;
        for (var j = 0u; j < count; j++) {
            tile_sum += weights[j];
        }
        running_sum = running_sum * factor + tile_sum;
        running_max = new_max;
//#unroll $i DIMS_PER_THREAD
        let d = thread + $i * WORKGROUP;
        if d < hd {
            var sum = acc[$i] * factor;
            for (var j = 0u; j < count; j += VALUES_AT_ONCE) {
                // Positions past `count` reread the last one, at weight 0.
                var v: array<f32, VALUES_AT_ONCE>;
//#unroll $u VALUES_AT_ONCE
                v[$u] = value_of(rows[min(j + $u, count - 1u)], d);
//#endunroll
//#unroll $u VALUES_AT_ONCE
                sum += weights[j + $u] * v[$u];
//#endunroll
            }
            acc[$i] = sum;
        }
//#endunroll
        // The next tile rewrites rows, scores and weights.
        workgroupBarrier();
    }
//#if SPLIT
    let state = (item * params.num_splits + split) * (hd + 2u);
    if thread == 0u {
        partials[state] = running_max;
        partials[state + 1u] = running_sum;
    }
//#unroll $i DIMS_PER_THREAD
    let d = thread + $i * WORKGROUP;
    if d < hd {
        partials[state + 2u + d] = acc[$i];
    }
//#endunroll
//#else
    var value_scale = 1.0;
//#if SINKS
    // As the CPU: the sink after every position, the values rescaled when it is the largest.
    let sink = sinks[head];
    if running_sum == 0.0 || sink > running_max {
        value_scale = select(0.0, exp(running_max - sink), running_sum > 0.0);
        running_sum = running_sum * value_scale + 1.0;
    } else {
        running_sum += exp(sink - running_max);
    }
//#endif
//#unroll $i DIMS_PER_THREAD
    let d = thread + $i * WORKGROUP;
    if d < hd {
        out[q_row + d] = select(0.0, acc[$i] * value_scale / running_sum, running_sum > 0.0);
    }
//#endunroll
//#endif
}
