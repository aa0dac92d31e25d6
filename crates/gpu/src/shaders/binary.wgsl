// `x = op(x, y)` element-wise over `len` values: ADD (`x + y`), BIAS (`x + y[i % width]`),
// SWIGLU (`silu(x) · y`), GEGLU (`gelu_tanh(x) · y`, ggml's f16-rounded GELU), SWIGLU_OAI
// (gpt-oss's clamped SwiGLU). BIASES3: BIAS
// for three pairs at once (q, k and v's biases), `len` counting all their values, the second
// and third pairs `len1`, `len2` of them.
struct Params {
    len: u32,
    width: u32,
    len1: u32,
    width1: u32,
    len2: u32,
    width2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
//#if BIASES3
@group(0) @binding(3) var<storage, read_write> x1: array<f32>;
@group(0) @binding(4) var<storage, read> y1: array<f32>;
@group(0) @binding(5) var<storage, read_write> x2: array<f32>;
@group(0) @binding(6) var<storage, read> y2: array<f32>;
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
//#if ADD
    x[i] = x[i] + y[i];
//#endif
//#if BIAS
    x[i] = x[i] + y[i % p.width];
//#endif
//#if SWIGLU
    x[i] = silu(x[i]) * y[i];
//#endif
//#if GEGLU
    x[i] = gelu(x[i]) * y[i];
//#endif
//#if SWIGLU_OAI
    x[i] = swiglu_oai(x[i], y[i]);
//#endif
//#if BIASES3
    let len0 = p.len - p.len1 - p.len2;
    if i < len0 {
        x[i] += y[i % p.width];
    } else if i < len0 + p.len1 {
        x1[i - len0] += y1[(i - len0) % p.width1];
    } else {
        x2[i - len0 - p.len1] += y2[(i - len0 - p.len1) % p.width2];
    }
//#endif
}
