//! Will it fit, and how fast will it run? The planner turns a model (a GGUF file or a
//! description) and a machine (from a catalogue, or this one, detected and measured) into a
//! memory breakdown, a verdict under the 25% headroom rule, the longest context that fits,
//! predicted decode, prefill and aggregate speeds for an engine (llama.cpp's Metal, CUDA or
//! Vulkan backend, MLX, uma on the CPU) with the range published measurements put around them,
//! and a cost of ownership; and the same for a model split over several identical machines
//! (pipeline or tensor parallel, over a link described in `data/cluster.toml`).
//!
//! It owns: model footprints (weight bytes per token, KV bytes per token; `uma show` and
//! `uma bench` use them too), the machine catalogue (data in `data/machines.toml`, extended by
//! the user's TOML), the speed model (engines and their fitted parameters, in
//! `data/speed_model.toml`), this machine's detection and read-bandwidth probe, and the arithmetic
//! (formulas in `docs/planner.md`). It does not load models, allocate the KV pool (the server
//! sizes it with [`plan_memory`] and [`detect_budget`]), or print anything.
//!
//! Run-time use (a server sizing itself):
//!
//! ```no_run
//! # fn main() -> uma_planner::Result<()> {
//! let file = uma_gguf::GgufFile::open("model.gguf")?;
//! let model = uma_planner::ModelSpec::from_gguf(&file, "model.gguf")?;
//! let request = uma_planner::PlanRequest { num_sequences: 4, ..Default::default() };
//! let plan = uma_planner::plan_memory(&model, &request, uma_planner::detect_budget()?)?;
//! println!("{:?}: KV pool of {} positions", plan.verdict, plan.max_kv_tokens);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod bandwidth_probe;
mod cluster;
mod cost_estimate;
mod error;
mod footprint;
mod kv_cache_type;
mod machine;
mod machine_catalogue;
mod machine_plan;
mod memory_breakdown;
mod memory_plan;
mod model_description;
mod model_spec;
mod plan_request;
mod quantization;
mod speed_estimate;
mod speed_model;
mod this_machine;

pub use bandwidth_probe::{measure_bandwidth, probe_bandwidth, BandwidthProbe, DEFAULT_PASSES};
pub use cluster::{
    plan_cluster, ClusterData, ClusterPlan, ClusterRate, ClusterSetup, EngineSync, Link, NodeGroup,
    Split, StrategyPlan, PIPELINED_STEPS,
};
pub use cost_estimate::{CostEstimate, CostInputs};
pub use error::{PlannerError, Result};
pub use footprint::{
    active_parameters_per_token, kv_cache_bytes_per_token, weight_bytes_per_token,
};
pub use kv_cache_type::KvCacheType;
pub use machine::{apple_gpu_working_set_fraction, ComputeFigure, Machine, GIB};
pub use machine_catalogue::{uma_home, MachineCatalogue, UMA_HOME_VARIABLE, USER_CATALOGUE_FILE};
pub use machine_plan::{plan_for_machine, plan_for_machine_with_draft, GpuWorkingSet, MachinePlan};
pub use memory_breakdown::{
    MemoryBreakdown, LOAD_OVERHEAD_BYTES_PER_VOCAB_ENTRY, RUNTIME_OVERHEAD_BASE_BYTES,
    RUNTIME_OVERHEAD_BYTES_PER_VOCAB_ENTRY,
};
pub use memory_plan::{plan_memory, plan_memory_with_draft, DraftMemory, MemoryPlan, Verdict};
pub use model_description::{count as parameter_count, ModelDescription};
pub use model_spec::{ModelSpec, FAULT_AROUND_BYTES};
pub use plan_request::{
    planned_context_length, PlanRequest, SlidingWindowKv, DEFAULT_CONTEXT_LENGTH, DEFAULT_HEADROOM,
    DEFAULT_MAX_NUM_BATCHED_TOKENS, DRAFT_KV_CACHE_TYPE,
};
pub use quantization::Quantization;
pub use speed_estimate::{decode, prefill, Bound, RateEstimate, SpeedEstimate};
pub use speed_model::{
    matrix_rows, Engine, PerQuantClass, QuantClass, SpeedModel, ROOFLINE_ENGINE,
};
pub use this_machine::{
    detect_budget, os_reserve_bytes, system_memory, this_machine, SystemMemory, THIS_MACHINE,
    THIS_MACHINE_KIND,
};
