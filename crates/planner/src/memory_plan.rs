//! The run-time question: does this model, at this context and number of sequences, fit in this
//! budget, and how many KV positions does the budget hold?

use serde::Serialize;
use uma_model::DEFAULT_BLOCK_SIZE;

use crate::error::Result;
use crate::memory_breakdown::MemoryBreakdown;
use crate::model_spec::ModelSpec;
use crate::plan_request::{PlanRequest, SlidingWindowKv};

/// Longest context searched when the model does not say how long it was trained for.
const MAX_SEARCHED_CONTEXT: u64 = 1 << 24;

/// Whether a plan fits its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The need is at most the usable share of the budget (budget minus headroom).
    Fits,
    /// It fits in the budget only by eating into the headroom: it may run, with no margin.
    FitsWithoutHeadroom,
    /// The need exceeds the budget.
    DoesNotFit,
}

impl Verdict {
    /// `"fits"`, `"fits only without headroom"`, `"does not fit"`.
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::FitsWithoutHeadroom => "fits only without headroom",
            Verdict::DoesNotFit => "does not fit",
        }
    }
}

/// A model's memory against a budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub request: PlanRequest,
    pub breakdown: MemoryBreakdown,
    /// What the plan needs: the breakdown's peak (serving, or loading when that is more).
    pub needed_bytes: u64,
    /// What the model may use: memory minus the OS reserve.
    pub budget_bytes: u64,
    /// `headroom × budget`, kept free.
    pub headroom_bytes: u64,
    /// `budget − headroom`: what the plan must fit in.
    pub usable_bytes: u64,
    pub verdict: Verdict,
    /// The longest context per sequence (for `request.num_sequences` sequences) whose plan fits
    /// in the usable bytes, at most the model's trained context; 0 when not even one token fits.
    pub max_context_length: u64,
    /// The same without the trained-context cap (searched up to 16 Mi tokens).
    pub max_context_length_by_memory: u64,
    /// KV token positions, all sequences together, that fit in the usable bytes beside the
    /// weights, scratch and overhead of this plan: what a KV pool can be sized to. Whole blocks
    /// of [`DEFAULT_BLOCK_SIZE`] positions.
    pub max_kv_tokens: u64,
    /// The speculative-decoding draft model planned beside the model
    /// ([`plan_memory_with_draft`]): counted in `needed_bytes`, the longest context and
    /// `max_kv_tokens` (its pool holds as many positions as the model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<DraftMemory>,
}

/// A draft model's memory beside the model it drafts for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DraftMemory {
    /// The draft model's name.
    pub model: String,
    /// Its request: the model's, with the draft's KV cache ([`PlanRequest::for_draft`]).
    pub request: PlanRequest,
    pub breakdown: MemoryBreakdown,
    /// The breakdown's peak (serving, or loading when that is more), added to the model's.
    pub needed_bytes: u64,
}

/// Plans `model` for `request` in `budget_bytes` (memory minus the OS reserve, e.g.
/// [`crate::detect_budget`]): the breakdown, the verdict under the request's headroom, the
/// longest context that fits and the KV positions a pool can hold.
pub fn plan_memory(
    model: &ModelSpec,
    request: &PlanRequest,
    budget_bytes: u64,
) -> Result<MemoryPlan> {
    plan_memory_with_draft(model, None, request, budget_bytes)
}

/// [`plan_memory`] with a speculative-decoding `draft` model loaded beside `model`: its weights,
/// its KV cache for the same positions ([`PlanRequest::for_draft`]), scratch and overhead come
/// out of the same budget. The need is the sum of both models' peaks: what `uma run` and `uma
/// serve` keep to when they plan the draft first and the model in what it leaves.
pub fn plan_memory_with_draft(
    model: &ModelSpec,
    draft: Option<&ModelSpec>,
    request: &PlanRequest,
    budget_bytes: u64,
) -> Result<MemoryPlan> {
    request.validate()?;
    let models = Models { model, draft };
    let breakdown = MemoryBreakdown::new(model, request);
    let draft_memory = draft.map(|draft| {
        let request = request.for_draft();
        let breakdown = MemoryBreakdown::new(draft, &request);
        let needed_bytes = breakdown.peak_bytes();
        DraftMemory { model: draft.name.clone(), request, breakdown, needed_bytes }
    });
    let needed_bytes = models.needed_bytes(request);
    let headroom_bytes = (budget_bytes as f64 * request.headroom).ceil() as u64;
    let usable_bytes = budget_bytes.saturating_sub(headroom_bytes);
    let verdict = if needed_bytes <= usable_bytes {
        Verdict::Fits
    } else if needed_bytes <= budget_bytes {
        Verdict::FitsWithoutHeadroom
    } else {
        Verdict::DoesNotFit
    };
    let max_context_length_by_memory = max_context_length(&models, request, usable_bytes);
    let max_context_length = match model.max_position_embeddings {
        Some(trained) => max_context_length_by_memory.min(trained),
        None => max_context_length_by_memory,
    };
    let max_kv_tokens = match request.sliding_window_kv {
        SlidingWindowKv::Full => {
            let positions = models.max_pool_positions(request, usable_bytes);
            positions - positions % DEFAULT_BLOCK_SIZE as u64
        }
        SlidingWindowKv::Windowed => {
            max_context_length_by_memory.saturating_mul(request.num_sequences)
        }
    };
    Ok(MemoryPlan {
        request: *request,
        breakdown,
        needed_bytes,
        budget_bytes,
        headroom_bytes,
        usable_bytes,
        verdict,
        max_context_length,
        max_context_length_by_memory,
        max_kv_tokens,
        draft: draft_memory,
    })
}

/// The model planned, and the draft model beside it if any.
struct Models<'a> {
    model: &'a ModelSpec,
    draft: Option<&'a ModelSpec>,
}

impl Models<'_> {
    /// The peak of the model for `request`, plus the draft's for its share of it.
    fn needed_bytes(&self, request: &PlanRequest) -> u64 {
        let draft = self
            .draft
            .map_or(0, |draft| MemoryBreakdown::new(draft, &request.for_draft()).peak_bytes());
        MemoryBreakdown::new(self.model, request).peak_bytes().saturating_add(draft)
    }

    /// The need with KV pools of `positions` positions (the draft's as large as the model's)
    /// instead of the request's contexts.
    fn pool_needed_bytes(&self, request: &PlanRequest, positions: u64) -> u64 {
        let pool = |model: &ModelSpec, request: &PlanRequest| {
            let per_position = model.kv_bytes_per_token(request.kv_cache_type);
            MemoryBreakdown::new(model, request).with_kv_pool(positions, per_position).peak_bytes()
        };
        let draft = self.draft.map_or(0, |draft| pool(draft, &request.for_draft()));
        pool(self.model, request).saturating_add(draft)
    }

    /// The most KV positions whose pools fit in `usable_bytes` beside the rest of the plan, by
    /// bisection (the need grows with the pool); 0 when not even an empty pool fits.
    fn max_pool_positions(&self, request: &PlanRequest, usable_bytes: u64) -> u64 {
        let per_position = self.model.kv_bytes_per_token(request.kv_cache_type)
            + self
                .draft
                .map_or(0, |draft| draft.kv_bytes_per_token(request.for_draft().kv_cache_type));
        if self.pool_needed_bytes(request, 0) > usable_bytes {
            return 0;
        }
        // Every position costs at least `per_position` bytes: one more than the usable bytes
        // hold of them cannot fit.
        let (mut fitting, mut failing) = (0, usable_bytes / per_position.max(1) + 1);
        while failing - fitting > 1 {
            let middle = fitting + (failing - fitting) / 2;
            if self.pool_needed_bytes(request, middle) <= usable_bytes {
                fitting = middle;
            } else {
                failing = middle;
            }
        }
        fitting
    }
}

/// The largest context whose whole plan needs at most `usable_bytes` (the need grows with the
/// context), by bisection; 0 when a context of 1 does not fit.
fn max_context_length(models: &Models<'_>, request: &PlanRequest, usable_bytes: u64) -> u64 {
    let fits = |context_length: u64| {
        let request = PlanRequest { context_length, ..*request };
        models.needed_bytes(&request) <= usable_bytes
    };
    let (mut fitting, mut failing) = (0, MAX_SEARCHED_CONTEXT + 1);
    if fits(MAX_SEARCHED_CONTEXT) {
        return MAX_SEARCHED_CONTEXT;
    }
    while failing - fitting > 1 {
        let middle = fitting + (failing - fitting) / 2;
        if fits(middle) {
            fitting = middle;
        } else {
            failing = middle;
        }
    }
    fitting
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kv_cache_type::KvCacheType;
    use crate::memory_breakdown::{
        RUNTIME_OVERHEAD_BASE_BYTES, RUNTIME_OVERHEAD_BYTES_PER_VOCAB_ENTRY,
    };

    /// A round-numbered model: 10 layers of one 50-wide KV head (2,000 KV bytes per token in
    /// f16), 1 GB of resident weights, a 1,000-token vocabulary, an untied 64 KB embedding table.
    pub(crate) fn spec() -> ModelSpec {
        ModelSpec {
            name: "round".into(),
            architecture: None,
            quantization: "q8_0".into(),
            num_parameters: 1_000_000_000,
            num_active_parameters: 1_000_000_000,
            num_hidden_layers: 10,
            hidden_size: 100,
            intermediate_size: 400,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            head_dim: 50,
            value_head_dim: 50,
            vocab_size: 1000,
            max_position_embeddings: Some(1 << 20),
            num_experts: None,
            num_experts_per_token: None,
            sliding_window: None,
            num_sliding_window_layers: 0,
            tie_word_embeddings: false,
            file_weight_bytes: 1_000_064_000,
            resident_weight_bytes: 1_000_000_000,
            embedding_table_bytes: 64_000,
            embedding_row_bytes: 64,
            output_head_file_bytes: 64_000,
            output_head_resident_bytes: 64_000,
            largest_tensor_file_bytes: 1_000_000,
            weight_bytes_per_token: 1_000_000_000,
        }
    }

    /// Everything but the KV cache for `spec()` at one sequence and a context of at least 512.
    fn fixed_bytes() -> u64 {
        let activations =
            4 * (3 * 100 + 2 * 100 + 2 * 50 + 2 * 400) + (400 * 292_u64).div_ceil(256);
        1_000_000_000
            + 64_000
            + 512 * activations
            + 1000 * 4
            + RUNTIME_OVERHEAD_BASE_BYTES
            + 1000 * RUNTIME_OVERHEAD_BYTES_PER_VOCAB_ENTRY
    }

    #[test]
    fn breakdown_adds_hand_computed_terms() {
        let request = PlanRequest { context_length: 1000, ..PlanRequest::default() };
        let breakdown = MemoryBreakdown::new(&spec(), &request);
        // 1,000 positions round up to 63 blocks of 16: 1,008 × 2,000 bytes.
        assert_eq!(breakdown.kv_cache_bytes, 2_016_000);
        // 1,000 tokens × 64 KiB exceed the 64 KB table: all of it.
        assert_eq!(breakdown.embedding_rows_bytes, 64_000);
        // 4 × (300 + 200 + 100 + 800) f32 bytes and 400 × 292 / 256 ≈ 457 of Q8_K per token.
        assert_eq!(breakdown.compute_scratch_bytes, 512 * 6057 + 4000);
        assert_eq!(breakdown.total_bytes(), fixed_bytes() + 2_016_000);
        let q8 = PlanRequest { kv_cache_type: KvCacheType::Q8_0, ..request };
        // Rows of 50 elements are two Q8_0 blocks: 68 bytes, K and V on 10 layers.
        assert_eq!(MemoryBreakdown::new(&spec(), &q8).kv_cache_bytes, 1008 * 1360);
    }

    #[test]
    fn headroom_rule_keeps_a_quarter_of_the_budget_free() {
        let request = PlanRequest::default();
        let needed = MemoryBreakdown::new(&spec(), &request).peak_bytes();
        // Needed is exactly 75% of the budget: fits.
        let budget = needed * 4 / 3 + 1;
        let plan = plan_memory(&spec(), &request, budget).expect("valid");
        assert_eq!(plan.headroom_bytes, (budget as f64 * 0.25).ceil() as u64);
        assert_eq!(plan.usable_bytes, budget - plan.headroom_bytes);
        assert!(plan.needed_bytes <= plan.usable_bytes);
        assert_eq!(plan.verdict, Verdict::Fits);
        // Inside the budget but in the headroom.
        let plan = plan_memory(&spec(), &request, needed + 1).expect("valid");
        assert_eq!(plan.verdict, Verdict::FitsWithoutHeadroom);
        let plan = plan_memory(&spec(), &request, needed - 1).expect("valid");
        assert_eq!(plan.verdict, Verdict::DoesNotFit);
        // No headroom asked: the whole budget is usable.
        let none = PlanRequest { headroom: 0.0, ..request };
        let plan = plan_memory(&spec(), &none, needed).expect("valid");
        assert_eq!((plan.verdict, plan.usable_bytes), (Verdict::Fits, needed));
    }

    #[test]
    fn max_context_is_the_largest_that_fits() {
        // Room for exactly 100,000 positions (6,250 blocks) of 2,000 bytes after the rest.
        let usable = fixed_bytes() + 100_000 * 2000;
        let request = PlanRequest { headroom: 0.0, ..PlanRequest::default() };
        let plan = plan_memory(&spec(), &request, usable).expect("valid");
        assert_eq!(plan.max_context_length, 100_000);
        assert_eq!(plan.max_kv_tokens, 100_000);
        // One position more needs another block, which does not fit.
        let fits = |context_length| {
            let request = PlanRequest { context_length, ..request };
            MemoryBreakdown::new(&spec(), &request).peak_bytes() <= usable
        };
        assert!(fits(100_000) && !fits(100_001));
        // Four sequences share the same room: a quarter of the context each.
        let four = PlanRequest { num_sequences: 4, ..request };
        let plan = plan_memory(&spec(), &four, usable).expect("valid");
        let fits_four = |context_length| {
            let request = PlanRequest { context_length, ..four };
            MemoryBreakdown::new(&spec(), &request).peak_bytes() <= usable
        };
        assert!(fits_four(plan.max_context_length) && !fits_four(plan.max_context_length + 1));
        assert!((24_900..=25_000).contains(&plan.max_context_length), "{plan:?}");
        // The trained context caps what is reported, not what memory allows.
        let trained = ModelSpec { max_position_embeddings: Some(32_768), ..spec() };
        let plan = plan_memory(&trained, &request, usable).expect("valid");
        assert_eq!((plan.max_context_length, plan.max_context_length_by_memory), (32_768, 100_000));
        // Not one token: 0.
        let plan = plan_memory(&spec(), &request, 1_000_000).expect("valid");
        assert_eq!((plan.max_context_length, plan.max_kv_tokens), (0, 0));
        assert_eq!(plan.verdict, Verdict::DoesNotFit);
    }

    #[test]
    fn a_draft_model_is_planned_beside_the_model() {
        // The same shape with a tenth of the weights.
        let draft =
            ModelSpec { name: "draft".into(), resident_weight_bytes: 100_000_000, ..spec() };
        let request = PlanRequest { kv_cache_type: KvCacheType::Q8_0, ..PlanRequest::default() };
        let alone = plan_memory(&spec(), &request, 1 << 36).expect("valid");
        let both = plan_memory_with_draft(&spec(), Some(&draft), &request, 1 << 36).expect("valid");
        let planned = both.draft.as_ref().expect("the draft is planned");
        assert_eq!(alone.draft, None);
        assert_eq!(both.breakdown, alone.breakdown);
        // Its cache holds the model's 4,096 positions, in f16 whatever the model's type.
        assert_eq!(planned.request.kv_cache_type, KvCacheType::F16);
        assert_eq!(planned.breakdown.kv_cache_bytes, 4096 * 2000);
        assert_eq!(planned.breakdown, MemoryBreakdown::new(&draft, &request.for_draft()));
        assert_eq!(planned.needed_bytes, planned.breakdown.peak_bytes());
        assert_eq!(both.needed_bytes, alone.needed_bytes + planned.needed_bytes);

        // Room for exactly 100,000 positions of both caches (2,000 bytes each) after the rest.
        let draft_fixed = fixed_bytes() - 900_000_000;
        let usable = fixed_bytes() + draft_fixed + 100_000 * (2000 + 2000);
        let request = PlanRequest { headroom: 0.0, ..PlanRequest::default() };
        let plan = plan_memory_with_draft(&spec(), Some(&draft), &request, usable).expect("valid");
        assert_eq!((plan.max_context_length, plan.max_kv_tokens), (100_000, 100_000));
        let need = |context_length| {
            let request = PlanRequest { context_length, ..request };
            plan_memory_with_draft(&spec(), Some(&draft), &request, usable).expect("valid")
        };
        assert_eq!(need(100_000).verdict, Verdict::Fits);
        assert_eq!(need(100_001).verdict, Verdict::DoesNotFit);
        // Alone, the model would get nearly twice the context.
        let plan = plan_memory(&spec(), &request, usable).expect("valid");
        assert!(plan.max_context_length > 195_000, "{plan:?}");
    }

    #[test]
    fn sliding_window_layers_hold_their_window_when_asked() {
        // 8 of 10 layers see the last 512 positions.
        let windowed =
            ModelSpec { sliding_window: Some(512), num_sliding_window_layers: 8, ..spec() };
        let per_layer = 200;
        let full = windowed.kv_cache_bytes(4096, 2, KvCacheType::F16, SlidingWindowKv::Full);
        assert_eq!(full, 2 * 10 * 4096 * per_layer);
        let capped = windowed.kv_cache_bytes(4096, 2, KvCacheType::F16, SlidingWindowKv::Windowed);
        assert_eq!(capped, 2 * (2 * 4096 + 8 * 512) * per_layer);
        // Reads are windowed whatever the cache holds.
        assert_eq!(
            windowed.kv_read_bytes_per_token(4096, KvCacheType::F16),
            (2 * 4096 + 8 * 512) * per_layer
        );
        assert_eq!(windowed.kv_read_bytes_per_token(100, KvCacheType::F16), 10 * 100 * per_layer);
    }

    #[test]
    fn requests_are_validated() {
        for request in [
            PlanRequest { context_length: 0, ..PlanRequest::default() },
            PlanRequest { num_sequences: 0, ..PlanRequest::default() },
            PlanRequest { max_num_batched_tokens: 0, ..PlanRequest::default() },
            PlanRequest { headroom: 1.0, ..PlanRequest::default() },
            PlanRequest { headroom: -0.1, ..PlanRequest::default() },
        ] {
            assert!(plan_memory(&spec(), &request, 1 << 40).is_err(), "{request:?}");
        }
    }
}
