//! One GPU device: the adapter uma chose, the optional features it granted (f16 arithmetic,
//! subgroups), its limits, and a flag set when the device is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{GpuError, Result};

/// Environment variable that turns "no GPU" into a hard failure of the tests that need one (CI
/// sets it, so a missing driver cannot hide behind tests that skip).
pub const REQUIRE_GPU_VARIABLE: &str = "UMA_REQUIRE_GPU";

/// What kind of memory the GPU computes from, which decides how the planner counts its weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuMemory {
    /// The system's memory, shared with the CPU (Apple Silicon, integrated GPUs, software
    /// devices): weights uploaded to the GPU leave the file's pages to be released.
    Unified,
    /// A card's own memory.
    Discrete,
}

/// What the device offers beyond portable WebGPU, each used with a portable fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuFeatures {
    /// f16 arithmetic in shaders (`SHADER_F16`).
    pub shader_f16: bool,
    /// Subgroup operations (`subgroupAdd`, ...).
    pub subgroups: bool,
    /// The smallest subgroup size the device may use.
    pub min_subgroup_size: u32,
    /// The largest subgroup size the device may use.
    pub max_subgroup_size: u32,
}

/// The chosen adapter, as the user sees it (`uma bench`, logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    /// The adapter's name (`Apple M2 Max`, `NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// `Metal`, `Vulkan`, `Dx12`, ...
    pub api: String,
    /// The driver and its version, when the platform says.
    pub driver: String,
    pub memory: GpuMemory,
    /// A software rasterizer (lavapipe, WARP): correct, never fast.
    pub is_software: bool,
    pub features: GpuFeatures,
    /// The largest buffer a kernel may bind (larger weights are split by rows).
    pub max_binding_bytes: u64,
    /// The largest buffer the device creates.
    pub max_buffer_bytes: u64,
    /// A discrete card's own memory, when the platform's tools say (`card_memory.rs`).
    pub card_memory_bytes: Option<u64>,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}", self.name, self.api)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        if self.is_software {
            write!(f, ", software")?;
        }
        write!(f, ")")
    }
}

/// An open device and its queue.
#[derive(Debug)]
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: GpuInfo,
    /// Offsets of uniform bindings are multiples of this.
    pub(crate) uniform_alignment: u64,
    /// Offsets of storage bindings are multiples of this.
    pub(crate) storage_alignment: u64,
    lost: Arc<AtomicBool>,
    /// Nanoseconds per timestamp tick when profiling (`UMA_GPU_PROFILE`), else `None`.
    pub(crate) timestamp_period: Option<f32>,
}

impl GpuContext {
    /// The process's GPU: opened by the first caller ([`GpuContext::open_new`]) and shared by
    /// every model loaded while it lives (one device, one queue); opened afresh after it was
    /// lost or dropped.
    pub fn open() -> Result<Arc<GpuContext>> {
        static SHARED: Mutex<Weak<GpuContext>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(context) = shared.upgrade().filter(|c| c.check_alive().is_ok()) {
            return Ok(context);
        }
        let context = GpuContext::open_new()?;
        *shared = Arc::downgrade(&context);
        Ok(context)
    }

    /// Opens the best GPU: a discrete or integrated one before a software device.
    pub fn open_new() -> Result<Arc<GpuContext>> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            // GL has neither f16 nor subgroups, and finds the same software device as Vulkan.
            descriptor.backends = wgpu::Backends::PRIMARY;
        }
        // Debug layers slow every call and some old ones reject valid SPIR-V.
        descriptor.flags = wgpu::InstanceFlags::empty();
        // Past 95% of the driver's memory budget, creating a buffer fails (a clear error at
        // load) instead of the device being lost mid-step (Vulkan and DX12 report budgets).
        descriptor.memory_budget_thresholds.for_resource_creation = Some(95);
        let instance = wgpu::Instance::new(descriptor);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            // Bucketing hides the real limits (a fingerprinting guard for browsers).
            apply_limit_buckets: false,
        };
        let adapter = pollster::block_on(instance.request_adapter(&options))
            .map_err(|e| GpuError::NoAdapter { detail: format!(": {e}") })?;
        let adapter_info = adapter.get_info();
        let offered = adapter.features();
        let mut wanted = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
        // UMA_GPU_PROFILE=1: timestamps around every dispatch (device time per kernel).
        let timestamps =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let profile = std::env::var_os("UMA_GPU_PROFILE").is_some_and(|v| v != "0");
        if profile {
            wanted |= timestamps;
        }
        let required_features = offered & wanted;
        let profiling = profile && required_features.contains(timestamps);
        if profile && !profiling {
            tracing::warn!("UMA_GPU_PROFILE: this GPU has no timestamps inside compute passes");
        }
        let mut required_limits = adapter.limits();
        // Ask for everything the adapter has; wgpu's defaults are WebGPU's (128 MiB bindings).
        required_limits.max_storage_buffers_per_shader_stage =
            required_limits.max_storage_buffers_per_shader_stage.min(16);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("uma"),
            required_features,
            required_limits: required_limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::DeviceRefused {
            adapter: adapter_info.name.clone(),
            reason: e.to_string(),
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::error!(?reason, message, "GPU device lost");
            flag.store(true, Ordering::SeqCst);
        });
        let is_software = adapter_info.device_type == wgpu::DeviceType::Cpu;
        let memory = match adapter_info.device_type {
            wgpu::DeviceType::DiscreteGpu => GpuMemory::Discrete,
            _ => GpuMemory::Unified,
        };
        let features = GpuFeatures {
            shader_f16: required_features.contains(wgpu::Features::SHADER_F16),
            subgroups: required_features.contains(wgpu::Features::SUBGROUP),
            min_subgroup_size: adapter_info.subgroup_min_size,
            max_subgroup_size: adapter_info.subgroup_max_size,
        };
        let driver = [adapter_info.driver.as_str(), adapter_info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let info = GpuInfo {
            name: adapter_info.name.clone(),
            api: format!("{:?}", adapter_info.backend),
            driver,
            memory,
            is_software,
            features,
            max_binding_bytes: required_limits.max_storage_buffer_binding_size,
            max_buffer_bytes: required_limits.max_buffer_size,
            card_memory_bytes: match memory {
                GpuMemory::Discrete => {
                    crate::card_memory::detect(adapter_info.vendor, adapter_info.device)
                }
                GpuMemory::Unified => None,
            },
        };
        tracing::info!(gpu = %info, ?features, "opened GPU");
        let uniform_alignment = u64::from(required_limits.min_uniform_buffer_offset_alignment);
        let storage_alignment = u64::from(required_limits.min_storage_buffer_offset_alignment);
        let timestamp_period = profiling.then(|| queue.get_timestamp_period());
        Ok(Arc::new(GpuContext {
            device,
            queue,
            info,
            uniform_alignment,
            storage_alignment,
            lost,
            timestamp_period,
        }))
    }

    /// The adapter and what it offers.
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }

    /// An error if the device was lost.
    pub(crate) fn check_alive(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(GpuError::DeviceFailed { reason: "the device was lost".into() });
        }
        Ok(())
    }

    /// Waits for all submitted work, failing if the device is lost.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map_err(|e| GpuError::DeviceFailed { reason: e.to_string() })?;
        self.check_alive()
    }
}
