//! The machine uma runs on: memory and cores detected, read bandwidth measured (or given), and
//! the memory budget a server may use.

use serde::Serialize;
use uma_kernels::Isa;

use crate::error::{PlannerError, Result};
use crate::machine::{apple_gpu_working_set_fraction, Machine, GIB};

/// Name of the detected machine (`--hw this`).
pub const THIS_MACHINE: &str = "this";

/// Kind of the detected machine: uma computes on its CPU (the `uma-cpu` engine).
pub const THIS_MACHINE_KIND: &str = "cpu";

/// Share of the probe's bandwidth uma's decode reaches on the three test models: from 78% (Gemma
/// 3 270M) to 110% (Qwen 0.5B, whose access pattern beats the probe's) in the first planner
/// validation run, geometric mean 0.91 (`docs/benchmarks.md`, 2026-11-21); the later runs there
/// check it out of sample.
const THIS_MACHINE_BANDWIDTH_EFFICIENCY: f64 = 0.9;

/// Share of the int8 instruction peak uma's GEMM reaches in prefill: Qwen 1.5B's pp512 at 142.8
/// tok/s × 3.1 GFLOP per token is 74% of the 2-core Zen 4 peak (`docs/benchmarks.md`, Run B);
/// small batches reach ~40%.
const THIS_MACHINE_COMPUTE_EFFICIENCY: f64 = 0.7;

/// Memory detected now, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SystemMemory {
    pub total_bytes: u64,
    /// What can be allocated without swapping (Linux `MemAvailable`: free plus reclaimable).
    pub available_bytes: u64,
}

/// Reads this machine's memory.
pub fn system_memory() -> Result<SystemMemory> {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let total_bytes = system.total_memory();
    if total_bytes == 0 {
        return Err(PlannerError::MemoryDetection {
            reason: "the operating system reported 0 bytes".into(),
        });
    }
    Ok(SystemMemory { total_bytes, available_bytes: system.available_memory().min(total_bytes) })
}

/// Memory left to the operating system out of `total_bytes`: on macOS 15% between 4 and 8 GiB
/// (the window server and system daemons are large), elsewhere 10% between 1 and 4 GiB.
pub fn os_reserve_bytes(total_bytes: u64) -> u64 {
    let (share, low_gib, high_gib) =
        if cfg!(target_os = "macos") { (0.15, 4.0, 8.0) } else { (0.10, 1.0, 4.0) };
    let reserve = (total_bytes as f64 * share).clamp(low_gib * GIB, high_gib * GIB) as u64;
    // A machine smaller than the floor keeps at least half its memory for the model.
    reserve.min(total_bytes / 2)
}

/// The memory budget of a model server on this machine: total memory minus the OS reserve, or
/// what is available now if other programs already use more than the reserve. The 25% headroom
/// rule ([`crate::DEFAULT_HEADROOM`]) applies inside this budget.
pub fn detect_budget() -> Result<u64> {
    let memory = system_memory()?;
    let planned = memory.total_bytes - os_reserve_bytes(memory.total_bytes);
    Ok(planned.min(memory.available_bytes))
}

/// This machine as a profile, with its read bandwidth measured by [`crate::probe_bandwidth`]
/// or given (`gb_per_s`). Compute is an estimate: physical cores × an int8 rate per core for
/// the instruction set uma's kernels use here.
pub fn this_machine(bandwidth_gb_per_s: f64) -> Result<Machine> {
    if !(bandwidth_gb_per_s.is_finite() && bandwidth_gb_per_s > 0.0) {
        return Err(PlannerError::invalid(
            "bandwidth",
            format!("{bandwidth_gb_per_s} GB/s is not a positive number"),
        ));
    }
    let memory = system_memory()?;
    let memory_gib = memory.total_bytes as f64 / GIB;
    let cores = uma_kernels::physical_cores();
    let isa = Isa::detected();
    let apple_silicon = cfg!(all(target_os = "macos", target_arch = "aarch64"));
    let machine = Machine {
        name: THIS_MACHINE.to_owned(),
        kind: Some(THIS_MACHINE_KIND.to_owned()),
        family: None,
        description: format!(
            "this machine ({}, {cores} cores, {} kernels)",
            std::env::consts::OS,
            isa.name()
        ),
        memory_gib,
        bandwidth_gb_per_s,
        bandwidth_efficiency: THIS_MACHINE_BANDWIDTH_EFFICIENCY,
        int8_tops: Some(cores as f64 * int8_gops_per_core(isa) / 1e3),
        f16_tflops: None,
        compute_efficiency: THIS_MACHINE_COMPUTE_EFFICIENCY,
        cpu_cores: u32::try_from(cores).ok(),
        unified_memory: apple_silicon,
        gpu_working_set_fraction: apple_silicon.then(|| apple_gpu_working_set_fraction(memory_gib)),
        os_reserve_gib: os_reserve_bytes(memory.total_bytes) as f64 / GIB,
        price_usd: None,
        watts: None,
        source: "detected".to_owned(),
    };
    machine.validate()?;
    Ok(machine)
}

/// Peak int8 operations (2 per multiply-add) per core and second, in G, of uma's kernels per
/// instruction set. AVX-512 VNNI: measured 4.7–4.9 G `vpdpbusd` (256-bit, 32 multiply-adds)
/// per second on a Zen 4 core (`scripts/bench/vnni-peak.c`); the others are rough: AVX2 half
/// of it (two instructions per product), NEON `sdot` on an Apple performance core four 128-bit
/// instructions per cycle at ~4 GHz, discounted for efficiency cores.
fn int8_gops_per_core(isa: Isa) -> f64 {
    match isa {
        Isa::Avx512Vnni => 300.0,
        Isa::Avx2 => 150.0,
        Isa::NeonDotprod => 250.0,
        Isa::Scalar => 10.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_reserve_is_a_clamped_share() {
        let gib = 1u64 << 30;
        let (low, high) = if cfg!(target_os = "macos") { (4, 8) } else { (1, 4) };
        assert_eq!(os_reserve_bytes(2 * gib), gib.min(low * gib));
        assert_eq!(os_reserve_bytes(512 * gib), high * gib);
        if !cfg!(target_os = "macos") {
            assert_eq!(os_reserve_bytes(24 * gib), (24.0 * 0.1 * GIB) as u64);
        }
    }

    #[test]
    fn this_machine_is_detected_and_valid() {
        let memory = system_memory().expect("memory is readable here");
        assert!(memory.total_bytes >= memory.available_bytes && memory.available_bytes > 0);
        let machine = this_machine(35.0).expect("detected");
        assert_eq!(machine.name, THIS_MACHINE);
        assert!(machine.memory_bytes().abs_diff(memory.total_bytes) < 2);
        assert!(machine.int8_tops.is_some_and(|tops| tops > 0.0));
        let budget = detect_budget().expect("budget");
        assert!(budget <= memory.total_bytes - os_reserve_bytes(memory.total_bytes));
        assert!(this_machine(0.0).is_err());
        assert!(this_machine(f64::INFINITY).is_err());
    }
}
