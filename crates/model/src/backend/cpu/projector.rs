//! Matrix products of activations by weights: the input is quantized (or packed) once per
//! activation type and shared by the products that read it.

use uma_gguf::GgmlType;
use uma_kernels::{
    matmul, ActivationFormat, PackedActivations, PackedMatrix, Product, ProductOf,
    QuantizedActivations,
};

use super::matrix::CpuMatrix;
use crate::error::Result;

/// Quantizes an input once per activation type and multiplies it by several matrices (q/k/v,
/// gate/up share their input).
#[derive(Default)]
pub(crate) struct Projector {
    activations: QuantizedActivations,
    quantized_for: Option<GgmlType>, // the activation type `activations` holds for the input
    packed_activations: PackedActivations,
    packed_for: Option<ActivationFormat>, // the format `packed_activations` holds for the input
    /// One input per product of [`Projector::matmul_each`], kept for their buffers.
    inputs: Vec<PackedActivations>,
}

impl Projector {
    /// The next products take a new input.
    pub(crate) fn reset(&mut self) {
        self.quantized_for = None;
        self.packed_for = None;
    }

    /// Several products of the same input: one parallel region when every matrix is packed with
    /// the same activation format (q/k/v, gate/up), else one product after another.
    pub(crate) fn matmul_many(
        &mut self,
        products: &mut [(&CpuMatrix, &mut Vec<f32>)],
        x: &[f32],
    ) -> Result<()> {
        let packed: Option<Vec<&PackedMatrix>> =
            products.iter().map(|(weight, _)| weight.packed()).collect();
        let format =
            packed.as_ref().and_then(|p| p.first()).map(|m| m.format().activation_format());
        let shared_format = packed.as_ref().is_some_and(|matrices| {
            matrices.iter().all(|m| Some(m.format().activation_format()) == format)
        });
        match (packed, format) {
            (Some(matrices), Some(format)) if shared_format => {
                if self.packed_for != Some(format) {
                    self.packed_activations.quantize(format, x, matrices[0].row_length())?;
                    self.packed_for = Some(format);
                }
                let mut jobs: Vec<Product<'_>> = matrices
                    .into_iter()
                    .zip(products.iter_mut())
                    .map(|(matrix, (_, out))| Product { matrix, out })
                    .collect();
                uma_kernels::matmul_many(&mut jobs, &self.packed_activations)?;
            }
            _ => {
                for (weight, out) in products.iter_mut() {
                    self.matmul(weight, x, out)?;
                }
            }
        }
        Ok(())
    }

    /// Several products, each of its own input: one parallel region when every matrix is packed
    /// (each input quantized once per activation format: an expert's gate and up share theirs),
    /// else one product after another.
    pub(crate) fn matmul_each(
        &mut self,
        products: &mut [(&CpuMatrix, &Vec<f32>, &mut Vec<f32>)],
    ) -> Result<()> {
        let packed: Option<Vec<&PackedMatrix>> =
            products.iter().map(|(weight, _, _)| weight.packed()).collect();
        let Some(matrices) = packed else {
            for (weight, x, out) in products.iter_mut() {
                self.reset();
                self.matmul(weight, x, out)?;
            }
            return Ok(());
        };
        // The input of each product, as an index into `self.inputs`: one per distinct input,
        // format and row length.
        let mut quantized: Vec<(*const Vec<f32>, ActivationFormat, usize)> = Vec::new();
        let mut input_of = Vec::with_capacity(matrices.len());
        for (matrix, (_, x, _)) in matrices.iter().zip(products.iter()) {
            let key =
                (std::ptr::from_ref(*x), matrix.format().activation_format(), matrix.row_length());
            let index = match quantized.iter().position(|seen| *seen == key) {
                Some(index) => index,
                None => {
                    if self.inputs.len() == quantized.len() {
                        self.inputs.push(PackedActivations::new());
                    }
                    self.inputs[quantized.len()].quantize(key.1, x, key.2)?;
                    quantized.push(key);
                    quantized.len() - 1
                }
            };
            input_of.push(index);
        }
        let mut jobs: Vec<ProductOf<'_>> = matrices
            .into_iter()
            .zip(input_of)
            .zip(products.iter_mut())
            .map(|((matrix, input), (_, _, out))| ProductOf { matrix, x: &self.inputs[input], out })
            .collect();
        Ok(uma_kernels::matmul_each(&mut jobs)?)
    }

    pub(crate) fn matmul(&mut self, weight: &CpuMatrix, x: &[f32], out: &mut [f32]) -> Result<()> {
        if let Some(packed) = weight.packed() {
            let format = packed.format().activation_format();
            if self.packed_for != Some(format) {
                self.packed_activations.quantize(format, x, packed.row_length())?;
                self.packed_for = Some(format);
            }
            packed.matmul(&self.packed_activations, out)?;
            return Ok(());
        }
        let matrix = weight.matrix();
        let activation_type = uma_kernels::vec_dot_type(weight.ggml_type());
        if self.quantized_for.is_none() || self.quantized_for != activation_type {
            self.activations.quantize_for(weight.ggml_type(), x, matrix.row_length())?;
            self.quantized_for = activation_type;
        }
        debug_assert_eq!(out.len() / weight.num_rows(), x.len() / matrix.row_length());
        matmul(&matrix, &self.activations, out)?;
        Ok(())
    }
}
