// `x = cap · tanh(x / cap)` element-wise.
struct Params {
    len: u32,
    cap: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

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
    // tanh through exp, clamped where tanh is ±1 in f32 (exp would overflow).
    let a = clamp(x[i] / p.cap, -15.0, 15.0);
    x[i] = p.cap * (1.0 - 2.0 / (exp(2.0 * a) + 1.0));
}
