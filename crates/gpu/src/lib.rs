//! uma's GPU backend: [`GpuBackend`] implements uma-model's [`uma_model::Backend`] on `wgpu`
//! (Metal on macOS, Vulkan on Linux and Windows, DX12), with kernels in WGSL: quantized matrix
//! products reading GGUF's blocks, norms, rope, the gated activations, and attention over a
//! paged KV cache on the device ([`GpuKvCache`]).
//!
//! A forward pass records its kernels into command buffers submitted every few dozen dispatches
//! (the device starts while the CPU records the rest) and reads the logits back at its end;
//! sampling stays on the CPU. Kernels use f16 arithmetic and subgroup
//! reductions where the device offers them, portable code where it does not.
//!
//! This crate owns device selection, buffers and kernels. The model's arithmetic order (which
//! operations, in which order) is uma-model's; scheduling is the engine's.
#![forbid(unsafe_code)]

mod backend;
mod bandwidth;
mod card_memory;
mod context;
mod error;
mod kv_cache;
mod matrix;
mod ops;
mod pool;
mod recorder;
mod shader;
mod stats;
mod step;
#[cfg(test)]
mod test_support;

pub use backend::{GpuActivations, GpuBackend, GpuPass, GpuVector};
pub use bandwidth::{probe_bandwidth, BandwidthProbe};
pub use context::{GpuContext, GpuFeatures, GpuInfo, GpuMemory, REQUIRE_GPU_VARIABLE};
pub use error::{GpuError, Result};
pub use kv_cache::GpuKvCache;
pub use matrix::GpuMatrix;
pub use pool::PooledBuffer;
pub use stats::{GpuStats, GpuStatsSnapshot, KernelTime};
