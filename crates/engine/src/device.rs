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

/// A model loaded onto the device it will run on.
#[derive(Debug)]
pub enum LoadedModel {
    Cpu(Model),
    Gpu(Model<GpuBackend>),
}

impl LoadedModel {
    /// Loads `file` onto `device` (see [`Device`]).
    pub fn load(file: Arc<GgufFile>, device: Device) -> Result<LoadedModel> {
        match device {
            Device::Cpu => Ok(LoadedModel::Cpu(Model::load(file)?)),
            Device::Gpu => {
                let backend = GpuBackend::open().map_err(uma_model::ModelError::from)?;
                tracing::info!(gpu = %backend.context().info(), "loading onto the GPU");
                Ok(LoadedModel::Gpu(Model::load_with(backend, file)?))
            }
            Device::Auto => match GpuBackend::open() {
                Ok(backend) if backend.context().info().is_software => {
                    tracing::info!(
                        gpu = %backend.context().info(),
                        "using the CPU: the only GPU is a software one"
                    );
                    Ok(LoadedModel::Cpu(Model::load(file)?))
                }
                Ok(backend) => match Model::load_with(backend, file.clone()) {
                    Ok(model) => Ok(LoadedModel::Gpu(model)),
                    Err(error) => {
                        tracing::warn!(%error, "using the CPU: the model does not load onto the GPU");
                        Ok(LoadedModel::Cpu(Model::load(file)?))
                    }
                },
                Err(error) => {
                    tracing::info!(%error, "using the CPU");
                    Ok(LoadedModel::Cpu(Model::load(file)?))
                }
            },
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
