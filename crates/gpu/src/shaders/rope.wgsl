// Per token and head: the RMS norm of the head by `head_norm` (HEAD_NORM), then rope over its
// first `dims` values with the step's rotation table (cos, sin of each token's pairs, computed
// on the host as the CPU backend does). One workgroup per (token, head). PAIR: the heads of a
// second tensor too (k after q, with its own norm), in the same dispatch.
struct Params {
    num_tokens: u32,
    num_heads: u32,
    head_dim: u32,
    dims: u32,   // rotated dimensions (even)
    neox: u32,   // pairs (i, i + dims/2) instead of (2i, 2i + 1)
    eps: f32,
    num_heads2: u32, // PAIR: heads per token of the second tensor
}

const WORKGROUP: u32 = 64u;
const MAX_HEAD_DIM: u32 = 512u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>; // [num_tokens, dims / 2, 2]
//#if HEAD_NORM
@group(0) @binding(3) var<storage, read> w: array<f32>;
//#endif
//#if PAIR
//#if HEAD_NORM
@group(0) @binding(4) var<storage, read_write> x2: array<f32>;
@group(0) @binding(5) var<storage, read> w2: array<f32>;
//#else
@group(0) @binding(3) var<storage, read_write> x2: array<f32>;
//#endif
//#endif

// Value `i` of the first (`second` false) or second tensor, and its store.
fn load(second: bool, i: u32) -> f32 {
//#if PAIR
    if second {
        return x2[i];
    }
//#endif
    return x[i];
}

fn store(second: bool, i: u32, v: f32) {
//#if PAIR
    if second {
        x2[i] = v;
        return;
    }
//#endif
    x[i] = v;
}

//#if HEAD_NORM
fn norm_weight(second: bool, i: u32) -> f32 {
//#if PAIR
    if second {
        return w2[i];
    }
//#endif
    return w[i];
}
//#endif

var<workgroup> head: array<f32, MAX_HEAD_DIM>;
var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    var g = group_index(workgroup, num_workgroups);
    let first_items = p.num_tokens * p.num_heads;
    var second = false;
    var heads = p.num_heads;
//#if PAIR
    if g >= first_items {
        second = true;
        g -= first_items;
        heads = p.num_heads2;
    }
//#endif
    if g >= p.num_tokens * heads {
        return;
    }
    let t = g / heads;
    let base = g * p.head_dim;
    var sum = 0.0;
    for (var i = lane; i < p.head_dim; i += WORKGROUP) {
        let v = load(second, base + i);
        head[i] = v;
        sum += v * v;
    }
//#if HEAD_NORM
    partial[lane] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if lane < stride {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(partial[0] / f32(p.head_dim) + p.eps);
    for (var i = lane; i < p.head_dim; i += WORKGROUP) {
        head[i] = head[i] * scale * norm_weight(second, i);
    }
//#endif
    workgroupBarrier();
    let half = p.dims / 2u;
    for (var i = lane; i < p.head_dim; i += WORKGROUP) {
        var v = head[i];
        if i < p.dims {
            var pair = i / 2u;
            var partner = i ^ 1u;
            var first = (i & 1u) == 0u;
            if p.neox != 0u {
                pair = i % half;
                first = i < half;
                partner = select(i - half, i + half, first);
            }
            let c = table[(t * half + pair) * 2u];
            let s = table[(t * half + pair) * 2u + 1u];
            let other = head[partner];
            // (x0, x1) → (x0·c − x1·s, x0·s + x1·c)
            v = select(other * s + v * c, v * c - other * s, first);
        }
        store(second, base + i, v);
    }
}
