//! A machine profile: memory, bandwidth and compute, and what share of each an engine gets.
//! Profiles are data (`data/machines.toml`, a user's own TOML) or detected ([`crate::this_machine`]).

use serde::{Deserialize, Serialize};

use crate::error::{PlannerError, Result};

/// Bytes in a GiB: memory sizes are binary (a "36 GB" Mac has 36 GiB).
pub const GIB: f64 = (1u64 << 30) as f64;

/// Apple Silicon's default GPU working set (Metal's `recommendedMaxWorkingSetSize`) as a share
/// of RAM: about two thirds up to 36 GiB, three quarters above. Approximate: Apple does not
/// document the rule; it is what tools report on those machines, and newer macOS releases
/// report more (about 84% measured on a 128 GiB machine). `sudo sysctl iogpu.wired_limit_mb`
/// raises it.
pub fn apple_gpu_working_set_fraction(memory_gib: f64) -> f64 {
    if memory_gib <= 36.0 {
        2.0 / 3.0
    } else {
        0.75
    }
}

/// One machine. Units: memory in GiB, bandwidth in GB/s (10⁹ bytes, as vendors quote it),
/// compute in dense (no sparsity) tera-operations per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// What `--hw` takes: lower case, no spaces (`mac-studio-m3-ultra-512gb`).
    pub name: String,
    pub description: String,
    /// What the speed model's parameters are chosen by (`data/speed_model.toml`): `apple`,
    /// `apple-ultra`, `nvidia`, `nvidia-datacenter`, `nvidia-gb10`, `amd`, `intel`, `cpu` (this
    /// machine). A machine without one is planned with the `roofline` engine.
    #[serde(default)]
    pub kind: Option<String>,
    /// The generation it belongs to (`apple-m3`, `nvidia-ada`): the validation holds a family's
    /// machines out together (`scripts/planner/fit-speed-model.py`).
    #[serde(default)]
    pub family: Option<String>,
    /// Memory the model runs from: unified RAM, or the GPU's own memory for discrete GPUs.
    pub memory_gib: f64,
    /// Peak memory bandwidth.
    pub bandwidth_gb_per_s: f64,
    /// Share of the peak bandwidth decode achieves in practice (`docs/planner.md`).
    pub bandwidth_efficiency: f64,
    /// Dense int8 throughput (tensor cores, or the CPU's dot-product instructions).
    #[serde(default)]
    pub int8_tops: Option<f64>,
    /// Dense f16 throughput with f32 accumulation.
    #[serde(default)]
    pub f16_tflops: Option<f64>,
    /// Share of the peak compute prefill achieves in practice.
    pub compute_efficiency: f64,
    #[serde(default)]
    pub cpu_cores: Option<u32>,
    /// CPU and GPU share one memory (Apple Silicon, DGX Spark).
    pub unified_memory: bool,
    /// Share of the memory a GPU may use on a unified-memory machine (Apple: see
    /// [`apple_gpu_working_set_fraction`]).
    #[serde(default)]
    pub gpu_working_set_fraction: Option<f64>,
    /// Memory left to the operating system (or, on a discrete GPU, the driver).
    pub os_reserve_gib: f64,
    /// Approximate price in US dollars, for the cost of ownership.
    #[serde(default)]
    pub price_usd: Option<f64>,
    /// Power drawn while generating, in watts.
    #[serde(default)]
    pub watts: Option<f64>,
    /// Where the profile came from: `"catalogue"`, a file path, or `"detected"`.
    #[serde(default, skip_deserializing)]
    pub source: String,
}

impl Machine {
    /// Checks that every number is in range; `origin` names the profile in errors.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, reason: String| {
            Err(PlannerError::invalid(format!("machine {:?}: {field}", self.name), reason))
        };
        let positive = [
            ("memory_gib", Some(self.memory_gib)),
            ("bandwidth_gb_per_s", Some(self.bandwidth_gb_per_s)),
            ("int8_tops", self.int8_tops),
            ("f16_tflops", self.f16_tflops),
            ("price_usd", self.price_usd),
            ("watts", self.watts),
        ];
        for (field, value) in positive {
            if let Some(v) = value {
                if !(v.is_finite() && v > 0.0) {
                    return invalid(field, format!("{v} is not a positive number"));
                }
            }
        }
        let fractions = [
            ("bandwidth_efficiency", Some(self.bandwidth_efficiency)),
            ("compute_efficiency", Some(self.compute_efficiency)),
            ("gpu_working_set_fraction", self.gpu_working_set_fraction),
        ];
        for (field, value) in fractions {
            if let Some(v) = value {
                if !(v > 0.0 && v <= 1.0) {
                    return invalid(field, format!("{v} is outside (0, 1]"));
                }
            }
        }
        if !(self.os_reserve_gib >= 0.0 && self.os_reserve_gib < self.memory_gib) {
            return invalid(
                "os_reserve_gib",
                format!(
                    "{} is not between 0 and memory_gib {}",
                    self.os_reserve_gib, self.memory_gib
                ),
            );
        }
        if self.int8_tops.is_none() && self.f16_tflops.is_none() {
            return invalid("int8_tops", "give int8_tops or f16_tflops (or both)".into());
        }
        for (field, value) in [("kind", &self.kind), ("family", &self.family)] {
            if value.as_ref().is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace)) {
                return invalid(field, format!("{value:?} must be one word"));
            }
        }
        if self.name.is_empty()
            || self.name.contains(char::is_whitespace)
            || self.name.contains(',')
        {
            return invalid("name", format!("{:?} must be one word without commas", self.name));
        }
        Ok(())
    }

    /// Memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        (self.memory_gib * GIB) as u64
    }

    /// The OS reserve in bytes.
    pub fn os_reserve_bytes(&self) -> u64 {
        (self.os_reserve_gib * GIB) as u64
    }

    /// What a model may use: memory minus the OS reserve (the headroom rule applies to this).
    pub fn budget_bytes(&self) -> u64 {
        self.memory_bytes().saturating_sub(self.os_reserve_bytes())
    }

    /// The most a GPU may hold on a unified-memory machine that limits it, in bytes.
    pub fn gpu_working_set_bytes(&self) -> Option<u64> {
        match (self.unified_memory, self.gpu_working_set_fraction) {
            (true, Some(fraction)) => Some((self.memory_gib * fraction * GIB) as u64),
            _ => None,
        }
    }

    /// Bytes per second decode reads in practice: peak × `bandwidth_efficiency`.
    pub fn effective_bandwidth(&self) -> f64 {
        self.bandwidth_gb_per_s * 1e9 * self.bandwidth_efficiency
    }

    /// Operations per second prefill achieves in practice: int8 peak when the machine has one
    /// (quantized weights times quantized activations), else f16, × `compute_efficiency`.
    pub fn effective_compute(&self) -> f64 {
        self.peak_compute(ComputeFigure::Int8) * self.compute_efficiency
    }

    /// Peak operations per second of `figure`, or of the other figure when the machine has
    /// only that one (validation requires one of them).
    pub fn peak_compute(&self, figure: ComputeFigure) -> f64 {
        let tops = match figure {
            ComputeFigure::Int8 => self.int8_tops.or(self.f16_tflops),
            ComputeFigure::F16 => self.f16_tflops.or(self.int8_tops),
        };
        tops.unwrap_or(0.0) * 1e12
    }
}

/// Which of a machine's peak compute figures an engine's matrix products are measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeFigure {
    /// Dense int8 (tensor cores): llama.cpp's CUDA kernels multiply quantized weights by
    /// quantized activations.
    Int8,
    /// Dense f16 with f32 accumulation (Apple GPUs, Vulkan's cooperative matrices).
    F16,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn machine() -> Machine {
        Machine {
            name: "test".into(),
            description: "a test machine".into(),
            kind: None,
            family: None,
            memory_gib: 64.0,
            bandwidth_gb_per_s: 400.0,
            bandwidth_efficiency: 0.5,
            int8_tops: None,
            f16_tflops: Some(20.0),
            compute_efficiency: 0.5,
            cpu_cores: Some(12),
            unified_memory: true,
            gpu_working_set_fraction: Some(0.75),
            os_reserve_gib: 8.0,
            price_usd: None,
            watts: None,
            source: String::new(),
        }
    }

    #[test]
    fn budget_and_effective_rates() {
        let m = machine();
        assert_eq!(m.memory_bytes(), 64 << 30);
        assert_eq!(m.budget_bytes(), 56 << 30);
        assert_eq!(m.gpu_working_set_bytes(), Some(48 << 30));
        assert_eq!(m.effective_bandwidth(), 200e9);
        assert_eq!(m.effective_compute(), 10e12);
        let discrete = Machine { unified_memory: false, ..machine() };
        assert_eq!(discrete.gpu_working_set_bytes(), None);
        let int8 = Machine { int8_tops: Some(100.0), ..machine() };
        assert_eq!(int8.effective_compute(), 50e12);
        assert_eq!(int8.peak_compute(ComputeFigure::F16), 20e12);
        assert_eq!(machine().peak_compute(ComputeFigure::Int8), 20e12, "the f16 figure stands in");
    }

    #[test]
    fn validation_names_the_field() {
        assert!(machine().validate().is_ok());
        for (broken, field) in [
            (Machine { memory_gib: 0.0, ..machine() }, "memory_gib"),
            (Machine { bandwidth_gb_per_s: f64::NAN, ..machine() }, "bandwidth_gb_per_s"),
            (Machine { bandwidth_efficiency: 1.5, ..machine() }, "bandwidth_efficiency"),
            (Machine { os_reserve_gib: 64.0, ..machine() }, "os_reserve_gib"),
            (Machine { f16_tflops: None, ..machine() }, "int8_tops"),
            (Machine { name: "two words".into(), ..machine() }, "name"),
            (Machine { kind: Some(String::new()), ..machine() }, "kind"),
        ] {
            let error = broken.validate().expect_err(field).to_string();
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn apple_working_set_is_two_thirds_then_three_quarters() {
        assert_eq!(apple_gpu_working_set_fraction(16.0), 2.0 / 3.0);
        assert_eq!(apple_gpu_working_set_fraction(36.0), 2.0 / 3.0);
        assert_eq!(apple_gpu_working_set_fraction(48.0), 0.75);
        assert_eq!(apple_gpu_working_set_fraction(512.0), 0.75);
    }
}
