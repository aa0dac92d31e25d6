// Reads `data` once (grid-stride, 16-byte loads) and writes one sum per workgroup, so that the
// reads cannot be skipped: the bandwidth probe.
struct Params {
    len: u32, // vec4 elements
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> sums: array<u32>;

var<workgroup> partial: array<u32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let stride = num_workgroups.x * 256u;
    var sum = vec4<u32>(0u);
    for (var i = workgroup.x * 256u + lane; i < p.len; i += stride) {
        sum ^= data[i];
    }
    partial[lane] = sum.x ^ sum.y ^ sum.z ^ sum.w;
    workgroupBarrier();
    if lane == 0u {
        var total = 0u;
        for (var j = 0u; j < 256u; j++) {
            total ^= partial[j];
        }
        sums[workgroup.x] = total;
    }
}
