//! RMS norm of activation rows.

use uma_model::backend::Rows;

use crate::backend::{GpuActivations, GpuPass, GpuVector};
use crate::error::Result;
use crate::recorder::grid;
use crate::shader::COMMON;
use crate::step::StepArray;

const RMS_NORM: &str = include_str!("../shaders/rms_norm.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct Params {
    num_rows: u32,
    width: u32,
    eps: f32,
}

/// `out[r]` = RMS norm of row `r` of `x`'s `rows`, times `weight`.
pub(crate) fn rms_norm(
    pass: &mut GpuPass<'_>,
    x: &GpuActivations,
    rows: Rows,
    weight: &GpuVector,
    eps: f32,
    out: &mut GpuActivations,
) -> Result<()> {
    let num_rows = out.num_rows;
    if num_rows == 0 {
        return Ok(());
    }
    let params = Params { num_rows: num_rows as u32, width: weight.len as u32, eps };
    let groups = grid(num_rows as u32);
    match rows {
        Rows::All => {
            let kernel = pass.kernel("rms_norm", &[COMMON, RMS_NORM], &[])?;
            let buffers = [x.binding(), weight.binding(), out.binding()];
            pass.dispatch(&kernel, &params, &buffers, groups)
        }
        Rows::Output => {
            let kernel =
                pass.kernel("rms_norm_output_rows", &[COMMON, RMS_NORM], &["OUTPUT_ROWS"])?;
            let step = pass.step();
            let output_rows = step.binding(StepArray::OutputTokens);
            let buffers = [x.binding(), weight.binding(), out.binding(), output_rows];
            pass.dispatch(&kernel, &params, &buffers, groups)
        }
    }
}

/// `x[t]` = RMS norm of `x[t]` times `weight`.
/// `acc += rms_norm(y) · weight` (a post-norm added into the residual stream), in one kernel.
pub(crate) fn add_normed(
    pass: &mut GpuPass<'_>,
    acc: &mut GpuActivations,
    y: &GpuActivations,
    weight: &GpuVector,
    eps: f32,
) -> Result<()> {
    if acc.num_rows != y.num_rows || acc.width != y.width || y.width != weight.len {
        return Err(crate::error::GpuError::Validation {
            reason: format!(
                "the norm of [{}, {}] by {} values into [{}, {}]",
                y.num_rows, y.width, weight.len, acc.num_rows, acc.width
            ),
        });
    }
    if y.num_rows == 0 {
        return Ok(());
    }
    let kernel = pass.kernel("rms_norm_add", &[COMMON, RMS_NORM], &["ADD"])?;
    let params = Params { num_rows: y.num_rows as u32, width: weight.len as u32, eps };
    let buffers = [y.binding(), weight.binding(), acc.binding()];
    pass.dispatch(&kernel, &params, &buffers, grid(y.num_rows as u32))
}

pub(crate) fn rms_norm_in_place(
    pass: &mut GpuPass<'_>,
    x: &mut GpuActivations,
    weight: &GpuVector,
    eps: f32,
) -> Result<()> {
    if x.num_rows == 0 {
        return Ok(());
    }
    let kernel = pass.kernel("rms_norm_in_place", &[COMMON, RMS_NORM], &["IN_PLACE"])?;
    let params = Params { num_rows: x.num_rows as u32, width: weight.len as u32, eps };
    pass.dispatch(&kernel, &params, &[x.binding(), weight.binding()], grid(x.num_rows as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backend, read, relative_error, values, with_pass};
    use uma_model::backend::Backend;

    #[test]
    fn a_norm_added_into_the_residual_stream_matches_norm_then_add() {
        let Some(backend) = backend() else { return };
        let (rows, width, eps) = (3, 640, 1e-6);
        let (acc, y, w) = (values(20, rows * width), values(21, rows * width), values(22, width));
        let mut expected = acc.clone();
        for (row, out) in y.chunks(width).zip(expected.chunks_mut(width)) {
            let mut normed = row.to_vec();
            uma_model::layers::rms_norm_in_place(&mut normed, &w, eps);
            out.iter_mut().zip(normed).for_each(|(o, n)| *o += n);
        }
        let got = with_pass(backend, rows, 0, |pass| {
            let mut gacc = pass.upload_activations(&acc, rows, width);
            let gy = pass.upload_activations(&y, rows, width);
            let buffer = pass.backend().upload("w", bytemuck::cast_slice(&w)).unwrap();
            add_normed(pass, &mut gacc, &gy, &GpuVector::new(buffer, width), eps).unwrap();
            read(pass, &gacc)
        });
        let error = relative_error(&got, &expected);
        assert!(error < 1e-6, "relative error {error}");
    }

    #[test]
    fn rms_norm_of_all_rows_of_output_rows_and_in_place_match_the_cpu() {
        let Some(backend) = backend() else { return };
        let (rows, width, eps) = (5, 896, 1e-6);
        let x = values(5, rows * width);
        let w = values(6, width);
        let expected: Vec<f32> = x
            .chunks(width)
            .flat_map(|row| {
                let mut out = vec![0.0; width];
                uma_model::layers::rms_norm(row, &w, eps, &mut out);
                out
            })
            .collect();
        let (all, in_place, last) = with_pass(backend, rows, 0, |pass| {
            let gx = pass.upload_activations(&x, rows, width);
            let buffer = pass.backend().upload("w", bytemuck::cast_slice(&w)).unwrap();
            let gw = GpuVector::new(buffer, width);
            let mut out = GpuBackend::activations(pass, rows, width);
            rms_norm(pass, &gx, Rows::All, &gw, eps, &mut out).unwrap();
            let mut copy = pass.upload_activations(&x, rows, width);
            rms_norm_in_place(pass, &mut copy, &gw, eps).unwrap();
            // Every token is an output row here (with_pass asks for all logits).
            let mut output = GpuBackend::activations(pass, rows, width);
            rms_norm(pass, &gx, Rows::Output, &gw, eps, &mut output).unwrap();
            (read(pass, &out), read(pass, &copy), read(pass, &output))
        });
        for got in [&all, &in_place, &last] {
            let error = relative_error(got, &expected);
            assert!(error < 1e-5, "relative error {error}");
        }
    }

    use crate::backend::GpuBackend;
}
