//! Element-wise operations: residual adds, biases, the gated activations, soft-capping.

use uma_model::HiddenActivation;

use crate::backend::{GpuActivations, GpuPass, GpuVector};
use crate::error::{GpuError, Result};
use crate::recorder::grid;
use crate::shader::COMMON;

/// SiLU and ggml's GELU, for the element-wise and the fused products' kernels.
pub(crate) const ACTIVATIONS: &str = include_str!("../shaders/activations.wgsl");
const BINARY: &str = include_str!("../shaders/binary.wgsl");
const SOFTCAP: &str = include_str!("../shaders/softcap.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::NoUninit)]
struct BinaryParams {
    len: u32,
    width: u32,
    len1: u32, // BIASES3: the second and third pairs
    width1: u32,
    len2: u32,
    width2: u32,
}

/// `x = op(x, y)` over `x`'s values, `op` one of binary.wgsl's defines.
fn binary(
    pass: &mut GpuPass<'_>,
    op: &str,
    x: &mut GpuActivations,
    y: wgpu::BufferBinding<'_>,
    width: usize,
) -> Result<()> {
    let len = x.len();
    if len == 0 {
        return Ok(());
    }
    let kernel = pass.kernel(&format!("binary_{op}"), &[COMMON, ACTIVATIONS, BINARY], &[op])?;
    let params = BinaryParams { len: len as u32, width: width as u32, ..BinaryParams::default() };
    let groups = grid(len.div_ceil(256) as u32);
    pass.dispatch(&kernel, &params, &[x.binding(), y], groups)
}

/// `x += y`.
pub(crate) fn add(
    pass: &mut GpuPass<'_>,
    x: &mut GpuActivations,
    y: &GpuActivations,
) -> Result<()> {
    binary(pass, "ADD", x, y.binding(), x.width)
}

/// `x[t] += bias`.
pub(crate) fn add_bias(
    pass: &mut GpuPass<'_>,
    x: &mut GpuActivations,
    bias: &GpuVector,
) -> Result<()> {
    binary(pass, "BIAS", x, bias.binding(), bias.len)
}

/// `x[t] += bias` for each pair: one dispatch for three (q, k, v), else one each.
pub(crate) fn add_biases(
    pass: &mut GpuPass<'_>,
    pairs: &mut [(&mut GpuActivations, &GpuVector)],
) -> Result<()> {
    let [(x0, b0), (x1, b1), (x2, b2)] = pairs else {
        for (x, bias) in pairs.iter_mut() {
            add_bias(pass, x, bias)?;
        }
        return Ok(());
    };
    let (b0, b1, b2): (&GpuVector, &GpuVector, &GpuVector) = (b0, b1, b2);
    for (x, bias) in [(&**x0, b0), (&**x1, b1), (&**x2, b2)] {
        if x.width != bias.len {
            return Err(GpuError::Validation {
                reason: format!("a bias of {} values for rows of {}", bias.len, x.width),
            });
        }
    }
    let lens = [x0.len(), x1.len(), x2.len()];
    let total: usize = lens.iter().sum();
    if total == 0 {
        return Ok(());
    }
    let kernel = pass.kernel("binary_BIASES3", &[COMMON, ACTIVATIONS, BINARY], &["BIASES3"])?;
    let params = BinaryParams {
        len: total as u32,
        width: b0.len as u32,
        len1: lens[1] as u32,
        width1: b1.len as u32,
        len2: lens[2] as u32,
        width2: b2.len as u32,
    };
    let buffers =
        [x0.binding(), b0.binding(), x1.binding(), b1.binding(), x2.binding(), b2.binding()];
    pass.dispatch(&kernel, &params, &buffers, grid(total.div_ceil(256) as u32))
}

/// `gate = activation(gate) · up`.
pub(crate) fn gated_activation(
    pass: &mut GpuPass<'_>,
    gate: &mut GpuActivations,
    up: &GpuActivations,
    activation: HiddenActivation,
) -> Result<()> {
    let op = match activation {
        HiddenActivation::Silu => "SWIGLU",
        HiddenActivation::GeluTanh => "GEGLU",
        HiddenActivation::SwigluOai => "SWIGLU_OAI",
    };
    binary(pass, op, gate, up.binding(), gate.width)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct SoftcapParams {
    len: u32,
    cap: f32,
}

/// `x = cap · tanh(x / cap)`.
pub(crate) fn softcap(pass: &mut GpuPass<'_>, x: &mut GpuActivations, cap: f32) -> Result<()> {
    let len = x.len();
    if len == 0 {
        return Ok(());
    }
    let kernel = pass.kernel("softcap", &[COMMON, SOFTCAP], &[])?;
    let groups = grid(len.div_ceil(256) as u32);
    pass.dispatch(&kernel, &SoftcapParams { len: len as u32, cap }, &[x.binding()], groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backend, read, relative_error, values, with_pass};
    use uma_model::layers::{gelu_ggml, softcap as softcap_reference};

    fn run_binary(
        op: impl Fn(&mut GpuPass<'_>, &mut GpuActivations, &GpuActivations),
    ) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        run_binary_scaled(1.0, op)
    }

    /// [`run_binary`] on inputs multiplied by `scale`.
    fn run_binary_scaled(
        scale: f32,
        op: impl Fn(&mut GpuPass<'_>, &mut GpuActivations, &GpuActivations),
    ) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let backend = backend()?;
        let (rows, width) = (3, 300);
        let scaled = |seed| values(seed, rows * width).into_iter().map(|v| v * scale).collect();
        let (x, y): (Vec<f32>, Vec<f32>) = (scaled(1), scaled(2));
        Some(with_pass(backend, rows, 0, |pass| {
            let mut gx = pass.upload_activations(&x, rows, width);
            let gy = pass.upload_activations(&y, rows, width);
            op(pass, &mut gx, &gy);
            (read(pass, &gx), x.clone(), y.clone())
        }))
    }

    #[test]
    fn add_matches_the_cpu() {
        let Some((got, x, y)) = run_binary(|p, x, y| add(p, x, y).unwrap()) else { return };
        let expected: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn swiglu_matches_the_cpu_within_float_rounding() {
        let Some((got, mut x, y)) =
            run_binary(|p, x, y| gated_activation(p, x, y, HiddenActivation::Silu).unwrap())
        else {
            return;
        };
        for row in 0..3 {
            uma_kernels::vector::swiglu(
                &mut x[row * 300..(row + 1) * 300],
                &y[row * 300..(row + 1) * 300],
            );
        }
        let error = relative_error(&got, &x);
        assert!(error < 1e-5, "relative error {error}");
    }

    #[test]
    fn geglu_matches_ggml_f16_gelu() {
        let Some((got, x, y)) =
            run_binary(|p, x, y| gated_activation(p, x, y, HiddenActivation::GeluTanh).unwrap())
        else {
            return;
        };
        let expected: Vec<f32> = x.iter().zip(&y).map(|(&g, &u)| gelu_ggml(g) * u).collect();
        // One f16 rounding step of the GELU value at most.
        let error = relative_error(&got, &expected);
        assert!(error < 1e-3, "relative error {error}");
    }

    #[test]
    fn swiglu_oai_matches_the_cpu_within_float_rounding() {
        // Spread past the clamps (±7) on both inputs.
        let scaled = |p: &mut GpuPass<'_>, x: &mut GpuActivations, y: &GpuActivations| {
            gated_activation(p, x, y, HiddenActivation::SwigluOai).unwrap()
        };
        let Some((got, x, y)) = run_binary_scaled(12.0, scaled) else { return };
        let expected: Vec<f32> =
            x.iter().zip(&y).map(|(&g, &u)| uma_model::layers::swiglu_oai(g, u)).collect();
        let error = relative_error(&got, &expected);
        assert!(error < 1e-5, "relative error {error}");
    }

    #[test]
    fn three_biases_in_one_kernel_add_like_one_at_a_time() {
        let Some(backend) = backend() else { return };
        let rows = 3;
        let widths = [64, 16, 16];
        let xs: Vec<Vec<f32>> = widths.iter().map(|&w| values(w as u64, rows * w)).collect();
        let biases: Vec<Vec<f32>> = widths.iter().map(|&w| values(90 + w as u64, w)).collect();
        let got = with_pass(backend, rows, 0, |pass| {
            let vectors: Vec<GpuVector> = biases
                .iter()
                .map(|b| {
                    let buffer = pass.backend().upload("bias", bytemuck::cast_slice(b)).unwrap();
                    GpuVector::new(buffer, b.len())
                })
                .collect();
            let mut gx: Vec<GpuActivations> =
                xs.iter().zip(widths).map(|(x, w)| pass.upload_activations(x, rows, w)).collect();
            let [a, b, c] = &mut gx[..] else { unreachable!() };
            let mut pairs = [(a, &vectors[0]), (b, &vectors[1]), (c, &vectors[2])];
            add_biases(pass, &mut pairs).unwrap();
            gx.iter().map(|x| read(pass, x)).collect::<Vec<_>>()
        });
        for ((got, x), bias) in got.iter().zip(&xs).zip(&biases) {
            let expected: Vec<f32> =
                x.iter().enumerate().map(|(i, v)| v + bias[i % bias.len()]).collect();
            assert_eq!(got, &expected);
        }
    }

    #[test]
    fn bias_and_softcap_match_the_cpu() {
        let Some(backend) = backend() else { return };
        let (rows, width) = (4, 70);
        let x = values(3, rows * width);
        let bias = values(4, width);
        let got = with_pass(backend, rows, 0, |pass| {
            let mut gx = pass.upload_activations(&x, rows, width);
            let buffer = pass.backend().upload("bias", bytemuck::cast_slice(&bias)).unwrap();
            let gbias = GpuVector::new(buffer, width);
            add_bias(pass, &mut gx, &gbias).unwrap();
            softcap(pass, &mut gx, 0.5).unwrap();
            read(pass, &gx)
        });
        let expected: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| softcap_reference(v + bias[i % width], 0.5))
            .collect();
        let error = relative_error(&got, &expected);
        assert!(error < 1e-5, "relative error {error}");
    }
}
