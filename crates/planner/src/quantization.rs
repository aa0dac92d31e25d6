//! Quantization of a described model (one without a file): average bits per weight of a whole
//! model as llama.cpp's quantizer writes it, mixes included.

use serde::Serialize;

use crate::error::{PlannerError, Result};

/// Growth of Q4_K weights when the kernels repack them (6-bit scales and mins widened to bytes:
/// 148 bytes per 256 weights instead of 144; see `docs/kernels.md`). Every other packed format
/// keeps its size.
pub(crate) const Q4_K_REPACK_FACTOR: f64 = 148.0 / 144.0;

/// `(name, bits per weight, share of the weight bytes in Q4_K)`. Bits per weight are the file
/// sizes `llama-quantize --help` lists for a 6.74 B-parameter Llama, divided by its parameter
/// count: a mix's average (Q4_K_M keeps some tensors in Q6_K), good to a few percent for other
/// dense models. The Q4_K share of the bytes (68% in Qwen2.5-Coder-1.5B's Q4_K_M file) sets how
/// much the kernels' repacking adds.
const KNOWN: &[(&str, f64, f64)] = &[
    ("f32", 32.0, 0.0),
    ("f16", 16.0, 0.0),
    ("bf16", 16.0, 0.0),
    ("q8_0", 8.54, 0.0),
    ("q6_k", 6.56, 0.0),
    ("q5_1", 5.99, 0.0),
    ("q5_k_m", 5.67, 0.0),
    ("q5_k_s", 5.52, 0.0),
    ("q5_0", 5.52, 0.0),
    ("q4_1", 4.97, 0.0),
    ("q4_k_m", 4.84, 0.7),
    ("q4_k_s", 4.54, 0.95),
    ("q4_0", 4.54, 0.0),
    ("q3_k_l", 4.27, 0.1),
    ("q3_k_m", 3.91, 0.05),
    ("q3_k_s", 3.50, 0.0),
    ("q2_k", 3.35, 0.0),
];

/// How a described model's weights are stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantization {
    /// `"q4_k_m"`, or `"4.5 bpw"` for a number given directly.
    pub name: String,
    /// Average bits per weight over the whole model.
    pub bits_per_weight: f64,
    /// Resident bytes after the kernels repack the weights, per byte in the file.
    pub repack_factor: f64,
}

impl Quantization {
    /// A llama.cpp quantization type by name (`q4_k_m`, `Q8_0`, `f16`, ...).
    pub fn from_name(name: &str) -> Result<Quantization> {
        let lower = name.trim().to_ascii_lowercase();
        let (known, bits_per_weight, q4_k_share) = KNOWN
            .iter()
            .find(|(known, _, _)| *known == lower)
            .ok_or_else(|| PlannerError::UnknownQuantization {
                name: name.to_owned(),
                known: Quantization::known_names().join(", "),
            })?;
        Ok(Quantization {
            name: (*known).to_owned(),
            bits_per_weight: *bits_per_weight,
            repack_factor: 1.0 + q4_k_share * (Q4_K_REPACK_FACTOR - 1.0),
        })
    }

    /// A model stored at `bits_per_weight` on average, with no repacking growth.
    pub fn from_bits_per_weight(bits_per_weight: f64) -> Result<Quantization> {
        if !(bits_per_weight.is_finite() && bits_per_weight > 0.0 && bits_per_weight <= 32.0) {
            return Err(PlannerError::invalid(
                "bits per weight",
                format!("{bits_per_weight} is outside (0, 32]"),
            ));
        }
        Ok(Quantization {
            name: format!("{bits_per_weight} bpw"),
            bits_per_weight,
            repack_factor: 1.0,
        })
    }

    /// Every name [`Quantization::from_name`] accepts.
    pub fn known_names() -> Vec<&'static str> {
        KNOWN.iter().map(|(name, _, _)| *name).collect()
    }

    /// Bytes of `num_parameters` weights in the file.
    pub fn bytes_for(&self, num_parameters: u64) -> u64 {
        (num_parameters as f64 * self.bits_per_weight / 8.0).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_unknown_ones_list_the_known() {
        let q = Quantization::from_name("Q4_K_M").expect("known");
        assert_eq!((q.name.as_str(), q.bits_per_weight), ("q4_k_m", 4.84));
        // 70% of the bytes grow by 4/144.
        assert!((q.repack_factor - (1.0 + 0.7 * 4.0 / 144.0)).abs() < 1e-12);
        assert_eq!(Quantization::from_name("q8_0").expect("known").repack_factor, 1.0);
        let error = Quantization::from_name("q4_z").expect_err("unknown").to_string();
        assert!(error.contains("\"q4_z\"") && error.contains("q4_k_m, q4_k_s"), "{error}");
    }

    #[test]
    fn bytes_follow_bits_per_weight() {
        let q8 = Quantization::from_name("q8_0").expect("known");
        assert_eq!(q8.bytes_for(1_000_000), 1_067_500);
        let given = Quantization::from_bits_per_weight(4.5).expect("valid");
        assert_eq!(given.bytes_for(8), 5); // 36 bits: 4.5 bytes, rounded half up
        assert!(Quantization::from_bits_per_weight(0.0).is_err());
        assert!(Quantization::from_bits_per_weight(f64::NAN).is_err());
        assert!(Quantization::from_bits_per_weight(33.0).is_err());
    }
}
