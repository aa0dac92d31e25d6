//! Rows picked by index, for mixture-of-experts layers: the tokens routed to one expert gathered
//! into activations of their own, and the expert's outputs added back into their rows weighted
//! by the router, both on the device (the router's choices are uploaded as index lists).

use crate::backend::{whole, GpuActivations, GpuPass};
use crate::error::{GpuError, Result};
use crate::recorder::grid;
use crate::shader::COMMON;

const ROWS: &str = include_str!("../shaders/rows.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct RowsParams {
    len: u32,
    width: u32,
}

/// Row indices as the kernel reads them, each checked against `num_rows`.
fn indices(rows: &[usize], num_rows: usize) -> Result<Vec<u32>> {
    rows.iter()
        .map(|&row| {
            (row < num_rows).then_some(row as u32).ok_or_else(|| GpuError::Validation {
                reason: format!("row {row} of activations with {num_rows} rows"),
            })
        })
        .collect()
}

fn check_width(x: &GpuActivations, width: usize) -> Result<()> {
    if x.width != width {
        return Err(GpuError::Validation {
            reason: format!("rows of {width} values asked of activations of width {}", x.width),
        });
    }
    Ok(())
}

/// Rows `rows` of `x`, in that order, as new activations `[rows.len(), width]`.
pub(crate) fn gather_rows(
    pass: &mut GpuPass<'_>,
    x: &GpuActivations,
    width: usize,
    rows: &[usize],
) -> Result<GpuActivations> {
    check_width(x, width)?;
    let indices = indices(rows, x.num_rows)?;
    let len = rows.len() * width;
    let out = GpuActivations {
        buffer: pass.scratch((len.max(1) * 4) as u64),
        num_rows: rows.len(),
        width,
    };
    if len == 0 {
        return Ok(out);
    }
    let index_buffer = pass.upload_values(&indices);
    let kernel = pass.kernel("rows_GATHER", &[COMMON, ROWS], &["GATHER"])?;
    let params = RowsParams { len: len as u32, width: width as u32 };
    let bindings = [out.binding(), x.binding(), whole(index_buffer.buffer(), rows.len())];
    pass.dispatch(&kernel, &params, &bindings, grid(len.div_ceil(256) as u32))?;
    Ok(out)
}

/// `out[rows[i]] += weights[i] · y[i]` for each row `i` of `y`; `rows` must be distinct.
pub(crate) fn add_rows_scaled(
    pass: &mut GpuPass<'_>,
    out: &mut GpuActivations,
    width: usize,
    rows: &[usize],
    weights: &[f32],
    y: &GpuActivations,
) -> Result<()> {
    check_width(out, width)?;
    check_width(y, width)?;
    if rows.len() != y.num_rows || weights.len() != y.num_rows {
        return Err(GpuError::Validation {
            reason: format!(
                "{} rows and {} weights for {} rows of outputs",
                rows.len(),
                weights.len(),
                y.num_rows
            ),
        });
    }
    let indices = indices(rows, out.num_rows)?;
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(GpuError::Validation { reason: "a row added to twice in one call".into() });
    }
    let len = rows.len() * width;
    if len == 0 {
        return Ok(());
    }
    let index_buffer = pass.upload_values(&indices);
    let weight_buffer = pass.upload_values(weights);
    let kernel = pass.kernel("rows_ADD_SCALED", &[COMMON, ROWS], &["ADD_SCALED"])?;
    let params = RowsParams { len: len as u32, width: width as u32 };
    let bindings = [
        out.binding(),
        y.binding(),
        whole(index_buffer.buffer(), rows.len()),
        whole(weight_buffer.buffer(), rows.len()),
    ];
    pass.dispatch(&kernel, &params, &bindings, grid(len.div_ceil(256) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backend, read, relative_error, values, with_pass};

    #[test]
    fn gather_and_scaled_add_match_the_host_reference() {
        let Some(backend) = backend() else { return };
        let (num_rows, width) = (7, 300);
        let x = values(11, num_rows * width);
        let y = values(12, 3 * width);
        let rows = [5, 0, 3];
        let weights = [0.25, -1.5, 2.0];
        let (gathered, added) = with_pass(backend, num_rows, 0, |pass| {
            let gx = pass.upload_activations(&x, num_rows, width);
            let gathered = gather_rows(pass, &gx, width, &rows).unwrap();
            let gathered = read(pass, &gathered);
            let mut out = pass.upload_activations(&x, num_rows, width);
            let gy = pass.upload_activations(&y, rows.len(), width);
            add_rows_scaled(pass, &mut out, width, &rows, &weights, &gy).unwrap();
            (gathered, read(pass, &out))
        });
        let expected = uma_model::backend::gather_host_rows(&x, width, &rows).unwrap();
        assert_eq!(gathered, expected);
        let mut expected = x.clone();
        uma_model::backend::add_host_rows_scaled(&mut expected, width, &rows, &weights, &y)
            .unwrap();
        // One multiply-add per value; a device may fuse it (one rounding instead of two).
        let error = relative_error(&added, &expected);
        assert!(error < 1e-6, "relative error {error}");
    }

    #[test]
    fn bad_rows_are_errors_not_out_of_bounds_reads() {
        let Some(backend) = backend() else { return };
        let errors = with_pass(backend, 2, 0, |pass| {
            let x = pass.upload_activations(&[1.0; 8], 2, 4);
            let mut out = pass.upload_activations(&[0.0; 8], 2, 4);
            let y = pass.upload_activations(&[1.0; 8], 2, 4);
            [
                gather_rows(pass, &x, 4, &[2]).is_err(),
                gather_rows(pass, &x, 3, &[0]).is_err(),
                add_rows_scaled(pass, &mut out, 4, &[0, 0], &[1.0, 1.0], &y).is_err(),
                add_rows_scaled(pass, &mut out, 4, &[0], &[1.0], &y).is_err(),
            ]
        });
        assert_eq!(errors, [true; 4]);
    }
}
