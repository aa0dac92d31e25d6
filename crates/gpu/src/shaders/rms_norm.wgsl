// RMS norm of rows of `width` values, one workgroup per row: `out[r] = x[r] / rms(x[r]) · w`.
// IN_PLACE normalises `x` itself; ADD adds the norm into `out` (a post-norm straight into the
// residual stream); otherwise OUTPUT_ROWS reads row `rows[r]` of `x` (the head's tokens) and
// the plain kernel row `r`.
struct Params {
    num_rows: u32,
    width: u32,
    eps: f32,
}

const WORKGROUP: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
//#if IN_PLACE
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
//#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
//#endif
//#if OUTPUT_ROWS
@group(0) @binding(4) var<storage, read> rows: array<u32>;
//#endif

var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let r = group_index(workgroup, num_workgroups);
    if r >= p.num_rows {
        return;
    }
//#if OUTPUT_ROWS
    let source = rows[r] * p.width;
//#else
    let source = r * p.width;
//#endif
    var sum = 0.0;
    for (var i = lane; i < p.width; i += WORKGROUP) {
        let v = x[source + i];
        sum += v * v;
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if lane < stride {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(partial[0] / f32(p.width) + p.eps);
    for (var i = lane; i < p.width; i += WORKGROUP) {
//#if IN_PLACE
        x[source + i] = x[source + i] * scale * w[i];
//#else
//#if ADD
        out[r * p.width + i] += x[source + i] * scale * w[i];
//#else
        out[r * p.width + i] = x[source + i] * scale * w[i];
//#endif
//#endif
    }
}
