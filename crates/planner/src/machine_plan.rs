//! A model planned on one machine: memory against the machine's budget, the GPU working set where
//! one limits it, and predicted speeds.

use serde::Serialize;

use crate::error::Result;
use crate::machine::Machine;
use crate::memory_plan::{plan_memory_with_draft, MemoryPlan};
use crate::model_spec::ModelSpec;
use crate::plan_request::PlanRequest;
use crate::speed_estimate::SpeedEstimate;
use crate::speed_model::Engine;

/// The GPU's share of a unified memory (Apple's Metal working set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GpuWorkingSet {
    pub limit_bytes: u64,
    /// The plan's need is within it (a GPU engine could hold everything).
    pub fits: bool,
}

/// Everything `uma plan` says about one model on one machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachinePlan {
    pub machine: Machine,
    pub memory: MemoryPlan,
    /// `None` unless the machine has unified memory with a GPU working-set limit.
    pub gpu_working_set: Option<GpuWorkingSet>,
    pub speed: SpeedEstimate,
}

/// Plans `model` on `machine` run by `engine` (resolved for that machine with
/// [`crate::SpeedModel::engine`]): the budget is the machine's memory minus its OS reserve.
pub fn plan_for_machine(
    model: &ModelSpec,
    machine: &Machine,
    engine: &Engine,
    request: &PlanRequest,
) -> Result<MachinePlan> {
    plan_for_machine_with_draft(model, None, machine, engine, request)
}

/// [`plan_for_machine`] with a speculative-decoding `draft` model beside `model`: its memory is
/// planned with the model's ([`crate::plan_memory_with_draft`]). The speeds are the model's plain
/// decoding: what speculation gains depends on how often drafts hold, which only a measurement
/// tells (`uma bench --speculative`).
pub fn plan_for_machine_with_draft(
    model: &ModelSpec,
    draft: Option<&ModelSpec>,
    machine: &Machine,
    engine: &Engine,
    request: &PlanRequest,
) -> Result<MachinePlan> {
    let memory = plan_memory_with_draft(model, draft, request, machine.budget_bytes())?;
    let gpu_working_set = machine
        .gpu_working_set_bytes()
        .map(|limit_bytes| GpuWorkingSet { limit_bytes, fits: memory.needed_bytes <= limit_bytes });
    Ok(MachinePlan {
        machine: machine.clone(),
        gpu_working_set,
        speed: SpeedEstimate::new(model, machine, engine, request),
        memory,
    })
}
