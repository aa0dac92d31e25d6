//! Predicted speed: decode from bandwidth (every step reads the weights once), prefill from
//! compute, and the aggregate of several sequences decoded together, each with the bound that
//! limits it.
//!
//! A step that processes `n` tokens takes `max(bytes read ÷ effective bandwidth, FLOPs ÷
//! effective compute)`: whichever resource runs out first sets the time.

use serde::Serialize;

use crate::machine::Machine;
use crate::model_spec::ModelSpec;
use crate::plan_request::PlanRequest;

/// Which resource limits a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Memory bandwidth: the step waits for bytes (decode).
    Bandwidth,
    /// Compute: the step waits for arithmetic (prefill, large batches).
    Compute,
}

/// One predicted rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateEstimate {
    /// Tokens per second, all sequences together.
    pub tokens_per_second: f64,
    pub bound: Bound,
    /// Bytes read per step and FLOPs per step behind the rate.
    pub bytes_per_step: u64,
    pub flops_per_step: u64,
    /// Tokens one step processes.
    pub tokens_per_step: u64,
}

impl RateEstimate {
    /// The rate of steps of `tokens_per_step` tokens that read `bytes_per_step` bytes and do
    /// `flops_per_step` FLOPs on `machine`.
    fn of_step(
        machine: &Machine,
        tokens_per_step: u64,
        bytes_per_step: u64,
        flops_per_step: u64,
    ) -> RateEstimate {
        let bandwidth_seconds = bytes_per_step as f64 / machine.effective_bandwidth();
        let compute_seconds = flops_per_step as f64 / machine.effective_compute();
        let (seconds, bound) = if bandwidth_seconds >= compute_seconds {
            (bandwidth_seconds, Bound::Bandwidth)
        } else {
            (compute_seconds, Bound::Compute)
        };
        RateEstimate {
            tokens_per_second: tokens_per_step as f64 / seconds.max(f64::MIN_POSITIVE),
            bound,
            bytes_per_step,
            flops_per_step,
            tokens_per_step,
        }
    }
}

/// Predicted speeds of one model on one machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpeedEstimate {
    /// Peak bandwidth × the machine's achievable share, GB/s.
    pub effective_bandwidth_gb_per_s: f64,
    /// Peak compute × the machine's achievable share, TOPS.
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
    /// Predicts `model` on `machine` for `request`.
    pub fn new(model: &ModelSpec, machine: &Machine, request: &PlanRequest) -> SpeedEstimate {
        let kv = request.kv_cache_type;
        let decode = |num_sequences: u64, position: u64| {
            let bytes = model.weight_bytes_per_token
                + num_sequences * model.kv_read_bytes_per_token(position, kv);
            let flops = num_sequences
                * (2 * model.num_active_parameters + model.attention_flops_per_token(position));
            RateEstimate::of_step(machine, num_sequences, bytes, flops)
        };
        let context = request.context_length;
        // The prompt's tokens attend on average to half of it.
        let prompt_flops = context
            * (2 * model.num_active_parameters + model.attention_flops_per_token(context / 2));
        let num_steps = context.div_ceil(request.max_num_batched_tokens);
        let prompt_bytes = num_steps * model.weight_bytes_per_token;
        SpeedEstimate {
            effective_bandwidth_gb_per_s: machine.effective_bandwidth() / 1e9,
            effective_compute_tops: machine.effective_compute() / 1e12,
            decode_empty_context: decode(1, 0),
            decode_full_context: decode(1, context),
            aggregate_decode: decode(request.num_sequences, context),
            prefill: RateEstimate::of_step(machine, context, prompt_bytes, prompt_flops),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::tests::machine;
    use crate::memory_plan::tests::spec;

    #[test]
    fn decode_is_bandwidth_over_bytes_per_token() {
        // 400 GB/s × 0.5 = 200 GB/s; 1 GB of weights per token; 20 TFLOPS × 0.5 = 10 TFLOPS.
        let request = PlanRequest { context_length: 1000, ..PlanRequest::default() };
        let speed = SpeedEstimate::new(&spec(), &machine(), &request);
        assert_eq!(speed.effective_bandwidth_gb_per_s, 200.0);
        assert_eq!(speed.decode_empty_context.bound, Bound::Bandwidth);
        assert_eq!(speed.decode_empty_context.tokens_per_second, 200.0);
        // At 1,000 positions each token also reads 1,000 × 2,000 bytes of KV.
        assert_eq!(speed.decode_full_context.bytes_per_step, 1_000_000_000 + 2_000_000);
        assert!((speed.decode_full_context.tokens_per_second - 200e9 / 1.002e9).abs() < 1e-9);
    }

    #[test]
    fn batching_multiplies_throughput_until_compute_bounds_it() {
        let at = |num_sequences| {
            let request =
                PlanRequest { context_length: 16, num_sequences, ..PlanRequest::default() };
            SpeedEstimate::new(&spec(), &machine(), &request).aggregate_decode
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
        let prefill = SpeedEstimate::new(&spec(), &machine(), &request).prefill;
        assert_eq!(prefill.bound, Bound::Compute);
        // 512 tokens × (2 GFLOP + attention to 256 positions: 2 × 2 heads × 100 × 10 × 256).
        assert_eq!(prefill.flops_per_step, 512 * (2_000_000_000 + 1_024_000));
        assert!((prefill.tokens_per_second - 10e12 / 2.001_024e9).abs() < 1e-6);
    }
}
