//! `GET /metrics`: what the server and its models are doing, in the OpenMetrics text format that
//! Prometheus scrapes. Request and token counts and latency histograms are recorded as requests
//! run; the load, KV-pool and memory gauges are read from the registry and the engines at
//! scrape time (so they are never stale and cost nothing between scrapes).

use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use uma_engine::{ModelRegistry, Residency, StreamEvent};

/// The content type of the OpenMetrics text format.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KvBlockLabels {
    model: String,
    state: String,
}

/// Every metric of the server.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    time_to_first_token: Family<ModelLabels, Histogram>,
    inter_token_latency: Family<ModelLabels, Histogram>,
    prompt_tokens: Family<ModelLabels, Counter>,
    cached_prompt_tokens: Family<ModelLabels, Counter>,
    generated_tokens: Family<ModelLabels, Counter>,
    drafted_tokens: Family<ModelLabels, Counter>,
    accepted_draft_tokens: Family<ModelLabels, Counter>,
    // Read at scrape time.
    running: Family<ModelLabels, Gauge>,
    waiting: Family<ModelLabels, Gauge>,
    kv_blocks: Family<KvBlockLabels, Gauge>,
    prefix_cache_hit_ratio: Family<ModelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    model_memory: Family<ModelLabels, Gauge>,
    model_resident: Family<ModelLabels, Gauge>,
    model_failed: Family<ModelLabels, Gauge>,
    resident_models: Gauge,
    memory_budget: Gauge,
    memory_held: Gauge,
}

/// Buckets from 5 ms doubling to ~41 s: first tokens range from a cached prefix (ms) to a long
/// prompt queued behind others (s).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Buckets from 1 ms doubling to ~4 s for the gaps between tokens.
fn token_gap_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("uma");
        let metrics = Metrics {
            requests: Family::default(),
            time_to_first_token: Family::new_with_constructor(latency_histogram),
            inter_token_latency: Family::new_with_constructor(token_gap_histogram),
            prompt_tokens: Family::default(),
            cached_prompt_tokens: Family::default(),
            generated_tokens: Family::default(),
            drafted_tokens: Family::default(),
            accepted_draft_tokens: Family::default(),
            running: Family::default(),
            waiting: Family::default(),
            kv_blocks: Family::default(),
            prefix_cache_hit_ratio: Family::default(),
            model_memory: Family::default(),
            model_resident: Family::default(),
            model_failed: Family::default(),
            resident_models: Gauge::default(),
            memory_budget: Gauge::default(),
            memory_held: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("http_requests", "HTTP requests by route and status", metrics.requests.clone());
        r.register(
            "time_to_first_token_seconds",
            "From a request's submission to its first generated token",
            metrics.time_to_first_token.clone(),
        );
        r.register(
            "inter_token_latency_seconds",
            "Between consecutive generated tokens of one sequence",
            metrics.inter_token_latency.clone(),
        );
        r.register(
            "prompt_tokens",
            "Prompt tokens of finished sequences",
            metrics.prompt_tokens.clone(),
        );
        r.register(
            "prompt_cached_tokens",
            "Prompt tokens of finished sequences whose KV came from the prefix cache",
            metrics.cached_prompt_tokens.clone(),
        );
        r.register("generated_tokens", "Tokens generated", metrics.generated_tokens.clone());
        r.register(
            "speculative_drafted_tokens",
            "Draft tokens proposed by speculative decoding for finished sequences",
            metrics.drafted_tokens.clone(),
        );
        r.register(
            "speculative_accepted_tokens",
            "Of those, tokens the model confirmed (generated without a step of their own)",
            metrics.accepted_draft_tokens.clone(),
        );
        r.register("running_sequences", "Sequences being generated", metrics.running.clone());
        r.register(
            "queued_requests",
            "Requests waiting for a sequence slot",
            metrics.waiting.clone(),
        );
        r.register(
            "kv_blocks",
            "KV-cache blocks by state (used, free, cached)",
            metrics.kv_blocks.clone(),
        );
        r.register(
            "prefix_cache_hit_ratio",
            "Share of looked-up prompt tokens found in the prefix cache since the model loaded",
            metrics.prefix_cache_hit_ratio.clone(),
        );
        r.register_with_unit(
            "model_memory",
            "Planned memory of each model (weights, KV pool, scratch, runtime)",
            prometheus_client::registry::Unit::Bytes,
            metrics.model_memory.clone(),
        );
        r.register("model_resident", "1 when the model is loaded", metrics.model_resident.clone());
        r.register(
            "model_failed",
            "1 when the model's engine failed and has not been loaded again",
            metrics.model_failed.clone(),
        );
        r.register("resident_models", "Models loaded", metrics.resident_models.clone());
        r.register_with_unit(
            "memory_budget",
            "Memory all models may hold together",
            prometheus_client::registry::Unit::Bytes,
            metrics.memory_budget.clone(),
        );
        r.register_with_unit(
            "memory_held",
            "Memory held by resident and loading models",
            prometheus_client::registry::Unit::Bytes,
            metrics.memory_held.clone(),
        );
        Metrics { registry, ..metrics }
    }

    /// Counts one HTTP response.
    pub(crate) fn count_request(&self, route: &str, status: u16) {
        let labels = RouteLabels { route: route.to_owned(), status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
    }

    /// A recorder of one sequence's token times, from now.
    pub(crate) fn token_timer(&self, model: &str) -> TokenTimer {
        let labels = ModelLabels { model: model.to_owned() };
        TokenTimer {
            submitted: Instant::now(),
            last_token: None,
            time_to_first_token: self.time_to_first_token.get_or_create(&labels).clone(),
            inter_token_latency: self.inter_token_latency.get_or_create(&labels).clone(),
        }
    }

    /// Counts a finished sequence's tokens.
    pub(crate) fn count_tokens(&self, model: &str, usage: &uma_engine::Usage) {
        let labels = ModelLabels { model: model.to_owned() };
        self.prompt_tokens.get_or_create(&labels).inc_by(usage.num_prompt_tokens as u64);
        self.cached_prompt_tokens.get_or_create(&labels).inc_by(usage.num_cached_tokens as u64);
        self.generated_tokens.get_or_create(&labels).inc_by(usage.num_generated_tokens as u64);
        self.drafted_tokens.get_or_create(&labels).inc_by(usage.num_drafted_tokens as u64);
        self.accepted_draft_tokens
            .get_or_create(&labels)
            .inc_by(usage.num_accepted_draft_tokens as u64);
    }

    /// The metrics as OpenMetrics text, gauges read from `models` now.
    pub(crate) fn render(&self, models: &ModelRegistry) -> Result<String, std::fmt::Error> {
        let mut num_resident = 0;
        for status in models.models() {
            let model = ModelLabels { model: status.entry.name.clone() };
            let resident = status.residency == Residency::Resident;
            num_resident += i64::from(resident);
            self.model_resident.get_or_create(&model).set(i64::from(resident));
            let failed = status.residency == Residency::Failed;
            self.model_failed.get_or_create(&model).set(i64::from(failed));
            self.model_memory.get_or_create(&model).set(saturate(status.entry.memory_bytes));
            let stats = status.engine.as_ref().map(|engine| engine.stats()).unwrap_or_default();
            self.running.get_or_create(&model).set(saturate(stats.num_running as u64));
            self.waiting.get_or_create(&model).set(saturate(stats.num_waiting as u64));
            let cached = stats.kv_num_cached_free_blocks;
            for (state, blocks) in [
                ("used", stats.kv_num_used_blocks),
                ("free", stats.kv_num_free_blocks - cached.min(stats.kv_num_free_blocks)),
                ("cached", cached),
            ] {
                let labels = KvBlockLabels { model: model.model.clone(), state: state.to_owned() };
                self.kv_blocks.get_or_create(&labels).set(saturate(blocks as u64));
            }
            let ratio = if stats.prefix_cache_queried_tokens == 0 {
                0.0
            } else {
                stats.prefix_cache_hit_tokens as f64 / stats.prefix_cache_queried_tokens as f64
            };
            self.prefix_cache_hit_ratio.get_or_create(&model).set(ratio);
        }
        self.resident_models.set(num_resident);
        self.memory_budget.set(saturate(models.budget_bytes()));
        self.memory_held.set(saturate(models.held_bytes()));
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn saturate(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Times one sequence's tokens: the first against the submission, each later one against the
/// one before.
pub(crate) struct TokenTimer {
    submitted: Instant,
    last_token: Option<Instant>,
    time_to_first_token: Histogram,
    inter_token_latency: Histogram,
}

impl TokenTimer {
    /// Records `event` if it is a token.
    pub(crate) fn observe(&mut self, event: &StreamEvent) {
        if let StreamEvent::Token(_) = event {
            let now = Instant::now();
            match self.last_token {
                None => self.time_to_first_token.observe(seconds(now - self.submitted)),
                Some(last) => self.inter_token_latency.observe(seconds(now - last)),
            }
            self.last_token = Some(now);
        }
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// The route a request is counted under: the route's pattern, never the raw path (a path per
/// model name or a scanner's guesses would each become a time series).
pub(crate) fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/models" => "/v1/models",
        "/v1/embeddings" => "/v1/embeddings",
        "/v1/messages" => "/v1/messages",
        "/v1/messages/count_tokens" => "/v1/messages/count_tokens",
        "/v1/responses" => "/v1/responses",
        "/api/embed" => "/api/embed",
        "/api/embeddings" => "/api/embeddings",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/api/generate" => "/api/generate",
        "/api/chat" => "/api/chat",
        "/api/tags" => "/api/tags",
        "/api/show" => "/api/show",
        "/api/ps" => "/api/ps",
        "/api/version" => "/api/version",
        "/v1/plan" => "/v1/plan",
        // The web page and its assets.
        "/" => "/",
        _ if path.starts_with("/assets/") => "/assets/{file}",
        _ if path.starts_with("/v1/models/") => "/v1/models/{model}",
        _ if path.starts_with("/v1/responses/") => "/v1/responses/{id}",
        _ => "other",
    }
}
