// Rows picked by index, for the experts of a mixture-of-experts layer, over `len` = rows × width
// values. GATHER: `out[i] = src[rows[i]]` (the tokens routed to one expert). ADD_SCALED:
// `out[rows[i]] += weights[i] · src[i]` (an expert's outputs into its tokens' rows; the rows of
// one dispatch are distinct, so no two invocations write one value).
struct Params {
    len: u32,
    width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
//#if ADD_SCALED
@group(0) @binding(4) var<storage, read> weights: array<f32>;
//#endif

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = group_index(workgroup, num_workgroups) * 256u + lane;
    if i >= p.len {
        return;
    }
    let row = i / p.width;
    let column = i % p.width;
//#if GATHER
    out[i] = src[rows[row] * p.width + column];
//#endif
//#if ADD_SCALED
    let destination = rows[row] * p.width + column;
    out[destination] = out[destination] + weights[row] * src[i];
//#endif
}
