// `x = op(x, y)` element-wise over `len` values: ADD (`x + y`), BIAS (`x + y[i % width]`),
// SWIGLU (`silu(x) · y`), GEGLU (`gelu_tanh(x) · y`, ggml's f16-rounded GELU).
struct Params {
    len: u32,
    width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

fn gelu(v: f32) -> f32 {
    if v <= -10.0 {
        return 0.0;
    }
    if v >= 10.0 {
        return v;
    }
    // ggml evaluates GELU on f16 inputs and stores f16 results.
    let h = round_to_f16(v);
    // tanh(a) = 1 - 2 / (exp(2a) + 1): finite for every a (|a| < 10 here).
    let a = 0.7978845608 * h * (1.0 + 0.044715 * h * h);
    let t = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    return round_to_f16(0.5 * h * (1.0 + t));
}

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
    let g = x[i];
    x[i] = g / (1.0 + exp(-g)) * y[i];
//#endif
//#if GEGLU
    x[i] = gelu(x[i]) * y[i];
//#endif
}
