//! `--memory`: the budget `uma serve` and `uma run` keep to, and the planner's verdict on a model
//! before it is loaded. A model that cannot fit is refused with the breakdown, never attempted;
//! a KV pool larger than the budget allows is shrunk to what fits (at least one full context).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use uma_engine::{EngineConfig, EngineError};
use uma_gguf::GgufFile;
use uma_planner::{plan_memory, KvCacheType, MemoryPlan, ModelSpec, PlanRequest, SlidingWindowKv};

use crate::format;

/// The `--memory` and `--kv-cache-type` options.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MemoryArgs {
    /// Memory budget for the models (weights, KV cache, scratch), e.g. 16GiB, 12G, 800MB
    /// (default: this machine's memory minus an OS reserve).
    #[arg(long, value_parser = parse_byte_size)]
    memory: Option<u64>,
    /// How the KV cache stores keys and values: f16, or q8_0 for about half the memory and
    /// twice the context in the same budget (llama.cpp's --cache-type-k/v q8_0).
    #[arg(long, value_name = "TYPE", default_value = "f16", value_parser = parse_kv_cache_type)]
    kv_cache_type: KvCacheType,
    /// Where the model computes: cpu, gpu, or auto (the GPU when a hardware one is present
    /// and the model loads onto it, else the CPU).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    device: uma_engine::Device,
}

/// `f16` or `q8_0`.
pub(crate) fn parse_kv_cache_type(text: &str) -> std::result::Result<KvCacheType, String> {
    KvCacheType::from_name(text).ok_or_else(|| format!("{text:?} is neither f16 nor q8_0"))
}

impl MemoryArgs {
    /// The budget in bytes and where it came from. With `--device gpu` every model goes to the
    /// GPU, so what the GPU may hold (a card's memory, Apple's working set) bounds the detected
    /// budget too.
    pub(crate) fn budget(&self) -> Result<(u64, &'static str)> {
        if let Some(bytes) = self.memory {
            return Ok((bytes, "--memory"));
        }
        let detected =
            uma_planner::detect_budget().context("cannot detect this machine's memory")?;
        let gpu = match self.device {
            uma_engine::Device::Gpu => uma_gpu::GpuContext::open()
                .ok()
                .and_then(|context| uma_engine::gpu_memory_limit(context.info())),
            _ => None,
        };
        Ok(detected_budget(detected, gpu))
    }

    /// The KV cache's element type.
    pub(crate) fn kv_cache_type(&self) -> KvCacheType {
        self.kv_cache_type
    }

    /// The device asked for.
    pub(crate) fn device(&self) -> uma_engine::Device {
        self.device
    }
}

/// The detected budget: memory minus the OS reserve, or less where the GPU every model goes to
/// holds less.
fn detected_budget(memory_bytes: u64, gpu: Option<(u64, &'static str)>) -> (u64, &'static str) {
    match gpu {
        Some((gpu_bytes, _)) if gpu_bytes < memory_bytes => {
            (gpu_bytes, "detected: what the GPU may hold (--device gpu)")
        }
        _ => (memory_bytes, "detected: memory minus the OS reserve"),
    }
}

/// `"16GiB"`, `"12G"`, `"800MB"`, `"1.5g"`, `"4096"` (bytes) → bytes. Decimal units (k, M, G, T
/// with an optional B) are powers of 1000, binary ones (KiB, MiB, GiB, TiB) of 1024.
pub(crate) fn parse_byte_size(text: &str) -> std::result::Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a size such as 16GiB or 800MB"))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!("unknown size unit {other:?} in {text:?} (use MB, GB, GiB, ...)"))
        }
    };
    let bytes = value * multiplier;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("{text:?} is not a positive size"));
    }
    Ok(bytes as u64)
}

/// The context the model in `file` (at `path`) was trained on: the most `--ctx` can ask for.
pub(crate) fn trained_context_length(path: &Path, file: &GgufFile) -> Result<usize> {
    let config = uma_model::ModelConfig::from_file(file)
        .with_context(|| format!("cannot load {}", path.display()))?;
    Ok(config.max_position_embeddings)
}

/// The context each sequence of the model at `path` gets: `--ctx` (`requested`), or the
/// engine's default capped at the `trained` context; the bounds are the engine's one rule.
pub(crate) fn context_length(
    path: &Path,
    trained: usize,
    requested: Option<usize>,
) -> Result<usize> {
    EngineConfig::context_length_for(requested, trained).map_err(|error| match error {
        // The reason alone: "invalid engine configuration" says nothing to someone who gave --ctx.
        EngineError::InvalidConfig { reason } => anyhow!("--ctx for {}: {reason}", path.display()),
        error => error.into(),
    })
}

/// What a model will hold once loaded, checked against a budget.
#[derive(Debug, Clone)]
pub(crate) struct PlannedModel {
    /// KV pool size in token positions (all sequences together), whole blocks.
    pub(crate) kv_cache_tokens: usize,
    /// Weights, KV pool, scratch and runtime overhead, in bytes.
    pub(crate) memory_bytes: u64,
    /// Set when the pool was shrunk to fit the budget: what was asked for.
    pub(crate) shrunk_from: Option<usize>,
    /// What the planner read from the file (for callers that describe the model too).
    pub(crate) spec: ModelSpec,
}

/// What a command asks of the KV cache and the step size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KvRequest {
    /// Positions of one sequence.
    pub(crate) context_length: usize,
    /// Sequences at once (scratch and logits are sized for them).
    pub(crate) num_sequences: usize,
    /// The KV pool wanted, in positions of all sequences together.
    pub(crate) kv_cache_tokens: usize,
    /// The pool below which the command cannot run (the pool is shrunk down to this at most).
    pub(crate) min_kv_cache_tokens: usize,
    /// Tokens one forward pass computes at most.
    pub(crate) max_num_batched_tokens: usize,
    /// How the KV cache stores keys and values.
    pub(crate) kv_cache_type: KvCacheType,
}

impl KvRequest {
    /// One sequence of `context_length` positions, computed in steps of `max_num_batched_tokens`.
    pub(crate) fn single(
        context_length: usize,
        max_num_batched_tokens: usize,
        kv_cache_type: KvCacheType,
    ) -> KvRequest {
        KvRequest {
            context_length,
            num_sequences: 1,
            kv_cache_tokens: context_length,
            min_kv_cache_tokens: context_length,
            max_num_batched_tokens,
            kv_cache_type,
        }
    }
}

/// Plans `file` for `request` within `budget_bytes`: the KV pool is shrunk to what the budget
/// allows, but never below `request.min_kv_cache_tokens`. Errors, with the breakdown, when even
/// that does not fit.
pub(crate) fn plan_model(
    path: &Path,
    file: &GgufFile,
    request: &KvRequest,
    budget_bytes: u64,
) -> Result<PlannedModel> {
    let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let spec = ModelSpec::from_gguf(file, &name)
        .with_context(|| format!("cannot plan {}", path.display()))?;
    // At run time the budget is a hard cap: the 25% headroom is advice `uma plan` gives.
    let plan_request = PlanRequest {
        context_length: request.context_length as u64,
        num_sequences: request.num_sequences as u64,
        kv_cache_type: request.kv_cache_type,
        sliding_window_kv: SlidingWindowKv::Full,
        max_num_batched_tokens: request.max_num_batched_tokens as u64,
        headroom: 0.0,
        // Per model, and the driver is per process (and already loaded when models load).
        gpu_driver_bytes: 0,
    };
    let plan = plan_memory(&spec, &plan_request, budget_bytes)?;
    let fitting_tokens = usize::try_from(plan.max_kv_tokens).unwrap_or(usize::MAX);
    let minimum = request.min_kv_cache_tokens;
    if fitting_tokens < minimum {
        bail!(
            "{} does not fit in the memory budget with a KV cache of {minimum} positions \
             (context {} × {} sequence(s)): {}",
            path.display(),
            request.context_length,
            request.num_sequences,
            describe(&plan, &spec, minimum as u64, request.kv_cache_type)
        );
    }
    let kv_cache_tokens = request.kv_cache_tokens.max(minimum);
    let (kv_cache_tokens, shrunk_from) = if kv_cache_tokens > fitting_tokens {
        (fitting_tokens, Some(kv_cache_tokens))
    } else {
        (kv_cache_tokens, None)
    };
    let memory_bytes =
        memory_with_kv_tokens(&plan, &spec, kv_cache_tokens as u64, request.kv_cache_type);
    Ok(PlannedModel { kv_cache_tokens, memory_bytes, shrunk_from, spec })
}

/// The plan's memory with a KV pool of `kv_tokens` positions instead of the request's contexts:
/// serving memory, or the loading peak when that is higher.
fn memory_with_kv_tokens(
    plan: &MemoryPlan,
    spec: &ModelSpec,
    kv_tokens: u64,
    kv_type: KvCacheType,
) -> u64 {
    plan.breakdown.with_kv_pool(kv_tokens, spec.kv_bytes_per_token(kv_type)).peak_bytes()
}

/// One line: each part of the need for `kv_tokens` KV positions, the total and the budget.
fn describe(plan: &MemoryPlan, spec: &ModelSpec, kv_tokens: u64, kv_type: KvCacheType) -> String {
    let parts = &plan.breakdown;
    let kv_bytes = kv_tokens * spec.kv_bytes_per_token(kv_type);
    let serving = parts.total_bytes() - parts.kv_cache_bytes + kv_bytes;
    let loading = if parts.load_peak_bytes > serving {
        format!(" (loading peaks at {})", format::bytes(parts.load_peak_bytes))
    } else {
        String::new()
    };
    format!(
        "weights {} + KV cache {} ({} {} positions) + compute scratch {} + runtime {} = {} needed{}, \
         budget {} (raise --memory, lower --ctx, use --kv-cache-type q8_0, or pick a smaller quantization)",
        format::bytes(parts.weights_bytes),
        format::bytes(kv_bytes),
        format::grouped(kv_tokens),
        kv_type.name(),
        format::bytes(parts.compute_scratch_bytes),
        format::bytes(parts.runtime_overhead_bytes),
        format::bytes(serving),
        loading,
        format::bytes(plan.budget_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_smaller_than_the_memory_bounds_the_budget_of_gpu_models() {
        let memory = 60 << 30;
        let card = Some((24u64 << 30, "the card's memory"));
        assert_eq!(detected_budget(memory, card).0, 24 << 30);
        assert!(detected_budget(memory, card).1.contains("GPU"));
        assert_eq!(detected_budget(memory, Some((96 << 30, "x"))).0, memory);
        assert_eq!(
            detected_budget(memory, None),
            (memory, "detected: memory minus the OS reserve")
        );
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(parse_byte_size("800MB"), Ok(800_000_000));
        assert_eq!(parse_byte_size("12G"), Ok(12_000_000_000));
        assert_eq!(parse_byte_size("1.5g"), Ok(1_500_000_000));
        assert_eq!(parse_byte_size("16GiB"), Ok(16 << 30));
        assert_eq!(parse_byte_size(" 2 mib "), Ok(2 << 20));
    }

    #[test]
    fn nonsense_sizes_are_refused() {
        for bad in ["", "GB", "12 parsecs", "-1G", "0", "1e9"] {
            assert!(parse_byte_size(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
