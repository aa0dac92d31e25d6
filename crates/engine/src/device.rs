//! Where a model computes: the CPU, the GPU, or the GPU when a usable one is present.

use std::sync::Arc;

use uma_gguf::GgufFile;
use uma_gpu::GpuBackend;
use uma_model::Model;

use crate::error::Result;

/// The device a model runs on (`--device cpu|gpu|auto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// The CPU kernels.
    Cpu,
    /// The GPU; an error when there is none or the model does not fit on it.
    Gpu,
    /// The GPU when a hardware one is present and the model loads onto it, else the CPU (the
    /// reason is logged). Software GPUs (lavapipe, WARP) are slower than uma's CPU kernels and
    /// are never chosen automatically.
    #[default]
    Auto,
}

impl Device {
    /// The names `--device` takes.
    pub const NAMES: [&'static str; 3] = ["cpu", "gpu", "auto"];

    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
            Device::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            "auto" => Ok(Device::Auto),
            _ => Err(format!("unknown device {s:?} (expected cpu, gpu or auto)")),
        }
    }
}

/// What the GPU may hold for a model and where the number comes from, when known: a discrete
/// card's own memory, or on Apple Silicon Metal's working set (its default share of RAM, or
/// `iogpu.wired_limit_mb` when an administrator set one). Elsewhere (integrated GPUs sharing
/// RAM) the memory budget already bounds the model.
pub fn gpu_memory_limit(info: &uma_gpu::GpuInfo) -> Option<(u64, &'static str)> {
    if let Some(bytes) = info.card_memory_bytes {
        return Some((bytes, "the card's memory"));
    }
    if !cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        return None;
    }
    if let Some(mib) = wired_limit_mib() {
        return Some((mib << 20, "iogpu.wired_limit_mb"));
    }
    let total = uma_planner::system_memory().ok()?.total_bytes;
    let fraction = uma_planner::apple_gpu_working_set_fraction(total as f64 / uma_planner::GIB);
    Some(((total as f64 * fraction) as u64, "Metal's default working set"))
}

/// macOS's `iogpu.wired_limit_mb`, when set (0 means the default).
fn wired_limit_mib() -> Option<u64> {
    let output = std::process::Command::new("/usr/sbin/sysctl")
        .args(["-n", "iogpu.wired_limit_mb"])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8_lossy(&output.stdout).trim().parse().ok()?;
    (mib > 0).then_some(mib)
}

/// Bytes a model of `file` holds on a GPU with a KV pool of `kv_tokens` positions of
/// `kv_type`: its weights as stored (the GPU's padded blocks add at most two bytes in 34) and
/// the pool.
pub fn gpu_need_bytes(
    file: &GgufFile,
    kv_tokens: usize,
    kv_type: uma_model::KvCacheType,
) -> Result<u64> {
    let spec = uma_planner::ModelSpec::from_gguf(file, "")
        .map_err(|e| crate::EngineError::InvalidConfig { reason: e.to_string() })?;
    Ok(spec.file_weight_bytes + kv_tokens as u64 * spec.kv_bytes_per_token(kv_type))
}

/// Why a GPU named `gpu` holding `limit` cannot take `needed_bytes`; `None` when it can or its
/// memory is unknown.
fn too_small_for(
    gpu: &str,
    needed_bytes: u64,
    limit: Option<(u64, &'static str)>,
) -> Option<crate::EngineError> {
    let (limit_bytes, limit_source) = limit?;
    (needed_bytes > limit_bytes).then(|| crate::EngineError::GpuTooSmall {
        gpu: gpu.to_owned(),
        needed_bytes,
        limit_bytes,
        limit_source,
    })
}

/// A model loaded onto the device it will run on.
#[derive(Debug)]
pub enum LoadedModel {
    Cpu(Model),
    Gpu(Model<GpuBackend>),
}

impl LoadedModel {
    /// Loads `file` onto `device` (see [`Device`]); on the GPU the model will hold
    /// `gpu_need_bytes` ([`gpu_need_bytes`]), which must fit the GPU's memory when it is known
    /// ([`gpu_memory_limit`]): `gpu` refuses before loading, `auto` takes the CPU.
    pub fn load(file: Arc<GgufFile>, device: Device, gpu_need_bytes: u64) -> Result<LoadedModel> {
        let too_small = |backend: &GpuBackend| {
            let info = backend.context().info();
            too_small_for(&info.name, gpu_need_bytes, gpu_memory_limit(info))
        };
        match device {
            Device::Cpu => Ok(LoadedModel::Cpu(Model::load(file)?)),
            Device::Gpu => {
                let backend = GpuBackend::open().map_err(uma_model::ModelError::from)?;
                if let Some(error) = too_small(&backend) {
                    return Err(error);
                }
                tracing::info!(gpu = %backend.context().info(), "loading onto the GPU");
                Ok(LoadedModel::Gpu(Model::load_with(backend, file)?))
            }
            Device::Auto => {
                let backend = match GpuBackend::open() {
                    Ok(backend) => backend,
                    Err(error) => {
                        tracing::info!(%error, "using the CPU");
                        return Ok(LoadedModel::Cpu(Model::load(file)?));
                    }
                };
                let cpu_reason = if backend.context().info().is_software {
                    Some(format!("the only GPU is a software one ({})", backend.context().info()))
                } else {
                    too_small(&backend).map(|reason| reason.to_string())
                };
                if let Some(reason) = cpu_reason {
                    tracing::info!(%reason, "using the CPU");
                    // The device's buffers (tens of MB on a software one) go before the weights
                    // come: the plan counts no GPU in a CPU run's peak memory.
                    drop(backend);
                    return Ok(LoadedModel::Cpu(Model::load(file)?));
                }
                match Model::load_with(backend, file.clone()) {
                    Ok(model) => Ok(LoadedModel::Gpu(model)),
                    Err(error) => {
                        tracing::warn!(%error, "using the CPU: the model does not load onto the GPU");
                        Ok(LoadedModel::Cpu(Model::load(file)?))
                    }
                }
            }
        }
    }

    /// The device it runs on.
    pub fn device(&self) -> Device {
        match self {
            LoadedModel::Cpu(_) => Device::Cpu,
            LoadedModel::Gpu(_) => Device::Gpu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_larger_than_the_gpus_memory_is_refused_with_both_sizes() {
        let card = Some((24u64 << 30, "the card's memory"));
        assert!(too_small_for("RTX 4090", 20 << 30, card).is_none());
        assert!(too_small_for("RTX 4090", 20 << 30, None).is_none(), "unknown: try the load");
        let error = too_small_for("RTX 4090", 30 << 30, card).expect("too small").to_string();
        assert!(error.contains("30720 MiB") && error.contains("24576 MiB"), "{error}");
        assert!(error.contains("RTX 4090") && error.contains("the card's memory"), "{error}");
        assert!(error.contains("--device cpu"), "{error}");
    }
}
