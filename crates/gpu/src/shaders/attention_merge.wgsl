// Combines the split states of attention.wgsl (SPLIT) into each (token, head)'s output: with M
// the largest running maximum of the splits that saw a position,
// out = Σ e^(m_s − M) · acc_s / Σ e^(m_s − M) · sum_s (with SINKS, the head's sink as one more
// state of sum 1 and no values). One workgroup per (token, head); thread
// `i` owns dimensions `i, i + 64, ...`.

struct Params {
    num_items: u32, // num_tokens · num_heads
    head_dim: u32,
    num_splits: u32,
    num_heads: u32,
}

const WORKGROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>; // [num_items, num_splits, head_dim + 2]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [num_items, head_dim]
//#if SINKS
// Per head, a logit in the softmax's sum that adds no value (gpt-oss): one more state, of sum 1
// and no accumulator, at maximum `sink`.
@group(0) @binding(3) var<storage, read> sinks: array<f32>; // [num_heads]
//#endif

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let item = group_index(workgroup, num_workgroups);
    if item >= params.num_items {
        return;
    }
    let hd = params.head_dim;
    let stride = hd + 2u;
    let first = item * params.num_splits * stride;
    var largest = 0.0;
    var seen = false;
    for (var s = 0u; s < params.num_splits; s++) {
        let state = first + s * stride;
        if partials[state + 1u] > 0.0 {
            largest = select(partials[state], max(largest, partials[state]), seen);
            seen = true;
        }
    }
//#if SINKS
    let sink = sinks[item % params.num_heads];
    largest = select(sink, max(largest, sink), seen);
//#endif
    var sum = 0.0;
//#if SINKS
    sum = exp(sink - largest);
//#endif
    for (var s = 0u; s < params.num_splits; s++) {
        let state = first + s * stride;
        if partials[state + 1u] > 0.0 {
            sum += exp(partials[state] - largest) * partials[state + 1u];
        }
    }
    for (var d = thread; d < hd; d += WORKGROUP) {
        var acc = 0.0;
        for (var s = 0u; s < params.num_splits; s++) {
            let state = first + s * stride;
            if partials[state + 1u] > 0.0 {
                acc += exp(partials[state] - largest) * partials[state + 2u + d];
            }
        }
        out[item * hd + d] = select(0.0, acc / sum, sum > 0.0);
    }
}
