// The feed-forward activations, shared by the element-wise kernel and the fused gate/up product.

// Rounds-trip of GELU through f16 as ggml does (its table of f16 inputs and f16 results).
fn gelu(v: f32) -> f32 {
    if v <= -10.0 {
        return 0.0;
    }
    if v >= 10.0 {
        return v;
    }
    let h = round_to_f16(v);
    // tanh(a) = 1 - 2 / (exp(2a) + 1): finite for every a (|a| < 10 here).
    let a = 0.7978845608 * h * (1.0 + 0.044715 * h * h);
    let t = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    return round_to_f16(0.5 * h * (1.0 + t));
}

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// gpt-oss's clamped SwiGLU (ggml's `swiglu_oai`, α 1.702, limit 7): `x·σ(α·x)·(y + 1)` with the
// gate `x` at most 7 and the up value `y` within ±7.
fn swiglu_oai(gate: f32, up: f32) -> f32 {
    let x = min(gate, 7.0);
    let y = clamp(up, -7.0, 7.0);
    return x / (1.0 + exp(1.702 * -x)) * (y + 1.0);
}
