//! Predicted speed: decode from bandwidth (every step reads the weights once), prefill from
//! compute, and the aggregate of several sequences decoded together, for one engine on one
//! machine ([`crate::Engine`]), each with the bound that limits it and the range the published
//! measurements put around it.
//!
//! A step takes `max(bytes read ÷ effective bandwidth, FLOPs ÷ effective compute)` plus a fixed
//! time per layer (kernel launches, synchronisation): whichever resource runs out first sets the
//! time, and the fixed time adds to it. `docs/planner.md` ("Speed") has the formulas.

use serde::Serialize;

use crate::kv_cache_type::KvCacheType;
use crate::machine::Machine;
use crate::model_spec::ModelSpec;
use crate::plan_request::PlanRequest;
use crate::speed_model::{matrix_rows, Engine, QuantClass};

/// Which resource limits a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Memory bandwidth: the step waits for bytes (decode).
    Bandwidth,
    /// Compute: the step waits for arithmetic (prefill, large batches).
    Compute,
    /// The engine's fixed time per layer exceeds both (small models on fast machines).
    Overhead,
}

/// One predicted rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateEstimate {
    /// Tokens per second, all sequences together.
    pub tokens_per_second: f64,
    /// Tokens per second at the 10th and 90th percentile of the engine's held-out errors on
    /// published measurements (`None` where nothing validates the engine).
    pub range: Option<[f64; 2]>,
    pub bound: Bound,
    /// Bytes read per step and FLOPs per step behind the rate.
    pub bytes_per_step: u64,
    pub flops_per_step: u64,
    /// Tokens one step processes.
    pub tokens_per_step: u64,
    /// The engine's fixed time per step (all layers), seconds.
    pub fixed_seconds_per_step: f64,
}

impl RateEstimate {
    /// `tokens` tokens in `steps` steps: `memory_seconds` reading, `compute_seconds` computing
    /// (overlapped: the longer counts) and `fixed_seconds` besides.
    #[allow(clippy::too_many_arguments)]
    fn new(
        tokens: u64,
        steps: u64,
        bytes: u64,
        flops: u64,
        memory_seconds: f64,
        compute_seconds: f64,
        fixed_seconds: f64,
        range: Option<[f64; 2]>,
    ) -> RateEstimate {
        let bound = if fixed_seconds > memory_seconds.max(compute_seconds) {
            Bound::Overhead
        } else if memory_seconds >= compute_seconds {
            Bound::Bandwidth
        } else {
            Bound::Compute
        };
        let seconds = memory_seconds.max(compute_seconds) + fixed_seconds;
        let tokens_per_second = tokens as f64 / seconds.max(f64::MIN_POSITIVE);
        let steps = steps.max(1);
        RateEstimate {
            tokens_per_second,
            range: range.map(|[low, high]| [tokens_per_second * low, tokens_per_second * high]),
            bound,
            bytes_per_step: bytes / steps,
            flops_per_step: flops / steps,
            tokens_per_step: tokens.div_ceil(steps),
            fixed_seconds_per_step: fixed_seconds / steps as f64,
        }
    }
}

/// Predicted speeds of one model on one machine with one engine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpeedEstimate {
    /// The engine and its parameters on this machine.
    pub engine: Engine,
    /// Peak bandwidth × the engine's share reading this model's weights, GB/s.
    pub effective_bandwidth_gb_per_s: f64,
    /// Peak compute × the engine's share for this model's matrix products (large steps), TOPS.
    pub effective_compute_tops: f64,
    /// One sequence, first generated token (no context to attend to).
    pub decode_empty_context: RateEstimate,
    /// One sequence whose context is full (`context_length` positions).
    pub decode_full_context: RateEstimate,
    /// `num_sequences` sequences decoded together, each at a full context: the weights are read
    /// once per step for all of them, each sequence's KV cache separately.
    pub aggregate_decode: RateEstimate,
    /// A prompt of `context_length` tokens, processed in steps of `max_num_batched_tokens`.
    pub prefill: RateEstimate,
}

impl SpeedEstimate {
    /// Predicts `model` on `machine` with `engine` (resolved for that machine) for `request`.
    pub fn new(
        model: &ModelSpec,
        machine: &Machine,
        engine: &Engine,
        request: &PlanRequest,
    ) -> SpeedEstimate {
        debug_assert_eq!(engine.peak_bandwidth, machine.bandwidth_gb_per_s * 1e9);
        let context = request.context_length;
        SpeedEstimate {
            effective_bandwidth_gb_per_s: engine.peak_bandwidth
                * engine.weight_efficiency.get(QuantClass::of(model))
                / 1e9,
            effective_compute_tops: engine.peak_compute * engine.matrix_efficiency(model, None)
                / 1e12,
            decode_empty_context: decode(model, engine, 1, 0, request.kv_cache_type),
            decode_full_context: decode(model, engine, 1, context, request.kv_cache_type),
            aggregate_decode: decode(
                model,
                engine,
                request.num_sequences,
                context,
                request.kv_cache_type,
            ),
            prefill: prefill(model, engine, context, request.max_num_batched_tokens),
            engine: engine.clone(),
        }
    }
}

/// One decode step of `num_sequences` sequences, each at `position`: the weights read once, each
/// sequence's KV cache, and the fixed time per layer.
pub fn decode(
    model: &ModelSpec,
    engine: &Engine,
    num_sequences: u64,
    position: u64,
    kv_cache_type: KvCacheType,
) -> RateEstimate {
    let kv_bytes = model.kv_read_bytes_per_token(position, kv_cache_type);
    let weight_bytes = model.weight_bytes_per_token;
    let memory_seconds = weight_bytes as f64
        / (engine.peak_bandwidth * engine.weight_efficiency.get(QuantClass::of(model)))
        + (num_sequences * kv_bytes) as f64 / (engine.peak_bandwidth * engine.kv_efficiency);
    let matrix_flops = 2 * model.num_active_parameters;
    let attention_flops = model.attention_flops_per_token(position);
    let compute_seconds = num_sequences as f64
        * (matrix_flops as f64 / (engine.peak_compute * engine.matrix_efficiency(model, None))
            + attention_flops as f64 / (engine.peak_compute * engine.attention_efficiency));
    RateEstimate::new(
        num_sequences,
        1,
        weight_bytes + num_sequences * kv_bytes,
        num_sequences * (matrix_flops + attention_flops),
        memory_seconds,
        compute_seconds,
        model.num_hidden_layers as f64 * engine.layer_seconds,
        engine.decode_range,
    )
}

/// A prompt of `tokens` tokens from an empty context, in steps of `step_tokens`: every step
/// reads the weights once, the matrix products of a short step (or of one expert's share of it)
/// run at a lower efficiency, and each step pays the fixed time per layer.
pub fn prefill(model: &ModelSpec, engine: &Engine, tokens: u64, step_tokens: u64) -> RateEstimate {
    let steps = tokens.div_ceil(step_tokens.max(1));
    let weight_bytes = steps * model.weight_bytes_per_token;
    let memory_seconds = weight_bytes as f64
        / (engine.peak_bandwidth * engine.weight_efficiency.get(QuantClass::of(model)));
    let rows = matrix_rows(model, tokens.min(step_tokens));
    let matrix_flops = (tokens * 2 * model.num_active_parameters) as f64;
    let attention_flops = model.attention_flops_for_prompt(tokens);
    let compute_seconds = matrix_flops
        / (engine.peak_compute * engine.matrix_efficiency(model, Some(rows)))
        + attention_flops / (engine.peak_compute * engine.attention_efficiency);
    RateEstimate::new(
        tokens,
        steps,
        weight_bytes,
        (matrix_flops + attention_flops) as u64,
        memory_seconds,
        compute_seconds,
        (steps * model.num_hidden_layers) as f64 * engine.prefill_layer_seconds,
        engine.prefill_range,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::tests::machine;
    use crate::memory_plan::tests::spec;
    use crate::speed_model::tests::TEST_MODEL;
    use crate::speed_model::SpeedModel;

    /// `spec()` on `machine()` with the engine `name` (`None`: a machine without a kind gets the
    /// roofline engine: its own efficiencies, no fixed costs).
    fn estimate(request: &PlanRequest, kind: Option<&str>, name: Option<&str>) -> SpeedEstimate {
        let machine = Machine { kind: kind.map(str::to_owned), ..machine() };
        let engine = SpeedModel::from_toml(TEST_MODEL, "test")
            .expect("valid")
            .engine(name, &machine)
            .expect("runs there");
        SpeedEstimate::new(&spec(), &machine, &engine, request)
    }

    #[test]
    fn decode_is_bandwidth_over_bytes_per_token() {
        // 400 GB/s × 0.5 = 200 GB/s; 1 GB of weights per token; 20 TFLOPS × 0.5 = 10 TFLOPS.
        let request = PlanRequest { context_length: 1000, ..PlanRequest::default() };
        let speed = estimate(&request, None, None);
        assert_eq!(speed.engine.name, "roofline");
        assert_eq!(speed.effective_bandwidth_gb_per_s, 200.0);
        assert_eq!(speed.decode_empty_context.bound, Bound::Bandwidth);
        assert_eq!(speed.decode_empty_context.tokens_per_second, 200.0);
        assert_eq!(speed.decode_empty_context.range, None, "the roofline is not validated");
        // At 1,000 positions each token also reads 1,000 × 2,000 bytes of KV.
        assert_eq!(speed.decode_full_context.bytes_per_step, 1_000_000_000 + 2_000_000);
        assert!((speed.decode_full_context.tokens_per_second - 200e9 / 1.002e9).abs() < 1e-9);
    }

    #[test]
    fn batching_multiplies_throughput_until_compute_bounds_it() {
        let at = |num_sequences| {
            let request =
                PlanRequest { context_length: 16, num_sequences, ..PlanRequest::default() };
            estimate(&request, None, None).aggregate_decode
        };
        // Four sequences: still one read of the weights per step, four tokens.
        assert_eq!(at(4).bound, Bound::Bandwidth);
        assert!((at(4).tokens_per_second / at(1).tokens_per_second - 4.0).abs() < 0.01);
        // 2 GFLOP per token: 10 TFLOPS run out at 5,000 tokens/s, the bandwidth allows 200 per
        // sequence, so 25 sequences are the turning point.
        assert_eq!(at(32).bound, Bound::Compute);
        assert!((at(32).tokens_per_second - 5000.0).abs() < 5.0, "{:?}", at(32));
    }

    #[test]
    fn prefill_is_compute_bound() {
        let request = PlanRequest { context_length: 512, ..PlanRequest::default() };
        let prefill = estimate(&request, None, None).prefill;
        assert_eq!(prefill.bound, Bound::Compute);
        // 512 tokens × (2 GFLOP + attention to 256 positions: 2 × 2 heads × 100 × 10 × 256).
        assert_eq!(prefill.flops_per_step, 512 * (2_000_000_000 + 1_024_000));
        assert!((prefill.tokens_per_second - 10e12 / 2.001_024e9).abs() < 1e-6);
    }

    #[test]
    fn a_fitted_engine_adds_its_fixed_time_per_layer_and_says_how_sure_it_is() {
        let request = PlanRequest { context_length: 2048, ..PlanRequest::default() };
        let speed = estimate(&request, Some("gpu"), None);
        assert_eq!(speed.engine.name, "fast");
        // q8_0 reads at 400 GB/s × 0.8: 1 GB in 3.125 ms, and 10 layers × 0.1 ms on top.
        let decode = speed.decode_empty_context;
        assert!((decode.tokens_per_second - 1.0 / (1e9 / 320e9 + 10.0 * 1e-4)).abs() < 1e-9);
        assert!((decode.fixed_seconds_per_step - 1e-3).abs() < 1e-15);
        let [low, high] = decode.range.expect("a fitted engine has a range");
        assert!((low / decode.tokens_per_second - 0.9).abs() < 1e-12);
        assert!((high / decode.tokens_per_second - 1.2).abs() < 1e-12);
        // The KV cache is read at 400 GB/s × 0.5: 2,048 × 2,000 bytes.
        let full = speed.decode_full_context;
        let seconds = 1e9 / 320e9 + 2048.0 * 2000.0 / 200e9 + 1e-3;
        assert!((full.tokens_per_second - 1.0 / seconds).abs() < 1e-9);
        // Prefill: 4 steps of 512 tokens; matrix products at 20 TFLOPS × 0.6 × 100 / (100 + 100)
        // × 512 / (512 + 64); attention at 20 TFLOPS × 0.25; 4 steps × 10 layers × 1 ms.
        let prefill = speed.prefill;
        let matrix = 2048.0 * 2e9 / (20e12 * 0.6 * 0.5 * 512.0 / 576.0);
        let attention = 400.0 * 10.0 * 2048.0 * 2048.0 / 2.0 / (20e12 * 0.25);
        let seconds = matrix + attention + 4.0 * 10.0 * 1e-3;
        assert!((prefill.tokens_per_second / (2048.0 / seconds) - 1.0).abs() < 1e-12);
        assert_eq!((prefill.tokens_per_step, prefill.bytes_per_step), (512, 1_000_000_000));
        let [low, high] = prefill.range.expect("a range");
        assert!((low / prefill.tokens_per_second - 0.7).abs() < 1e-12 && high > low);
    }

    #[test]
    fn fixed_time_bounds_small_models_on_fast_machines() {
        let request = PlanRequest { context_length: 16, ..PlanRequest::default() };
        let machine =
            Machine { kind: Some("gpu".into()), bandwidth_gb_per_s: 40_000.0, ..machine() };
        let engine = SpeedModel::from_toml(TEST_MODEL, "test")
            .expect("valid")
            .engine(None, &machine)
            .expect("fast");
        let speed = SpeedEstimate::new(&spec(), &machine, &engine, &request);
        // 1 GB at 32 TB/s takes 31 µs; 10 layers × 100 µs take 1 ms.
        assert_eq!(speed.decode_empty_context.bound, Bound::Overhead);
        assert!(speed.decode_empty_context.tokens_per_second < 1000.0);
    }
}
