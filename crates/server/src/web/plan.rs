//! `POST /v1/plan`: "will it fit, how fast?" for the web page, the same numbers as
//! `uma plan --json` (whose `plans` entries this answers with: the model, the machine, the memory
//! plan, the GPU working set, the predicted speeds). The model is one in the store (by name) or a
//! description (Hugging Face names: `num_parameters`, `num_hidden_layers`, ...); the machines are
//! this one (`this`, its read bandwidth given or measured once per process) and catalogued ones.
//! `GET /v1/plan` lists what may be asked for: the catalogue, the quantizations, the stored
//! models.
//!
//! The planner does the arithmetic. What turns a request into its inputs mirrors
//! `crates/cli/src/plan.rs` (the default context, a described model's name and defaults), which
//! keeps its own copy until that code moves where both can call it (docs/web.md).
//!
//! Every input is bounded before the planner sees it (counts, dimensions, names, list lengths,
//! and the KV cache they add up to), so its arithmetic cannot overflow; planning runs off the
//! async workers (reading a GGUF header, probing the bandwidth).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uma_planner::{
    BandwidthProbe, KvCacheType, Machine, MachineCatalogue, MachinePlan, ModelDescription,
    ModelSpec, PlanRequest, Quantization, SlidingWindowKv, SpeedModel, DEFAULT_CONTEXT_LENGTH,
    DEFAULT_HEADROOM, DEFAULT_MAX_NUM_BATCHED_TOKENS, THIS_MACHINE,
};

use crate::error::ApiError;
use crate::state::AppState;

/// Quantization of a described model when none is given (as `uma plan`).
const DEFAULT_QUANTIZATION: &str = "q4_k_m";
/// Machines one request may plan for.
const MAX_MACHINES: usize = 64;
/// Longest model or machine name accepted.
const MAX_NAME_BYTES: usize = 256;
/// Bounds of the numbers a request may give: past them no model or machine exists, and the
/// planner's integer arithmetic would overflow.
const MAX_CONTEXT_LENGTH: u64 = 1 << 24;
const MAX_SEQUENCES: u64 = 1 << 10;
const MAX_BATCHED_TOKENS: u64 = 1 << 16;
const MAX_PARAMETERS: u64 = 1_000_000_000_000_000;
const MAX_LAYERS: u64 = 1 << 10;
const MAX_HIDDEN_SIZE: u64 = 1 << 20;
const MAX_HEADS: u64 = 1 << 12;
const MAX_HEAD_DIM: u64 = 1 << 16;
const MAX_VOCAB: u64 = 1 << 24;
const MAX_INTERMEDIATE_SIZE: u64 = 1 << 20;
const MAX_EXPERTS: u64 = 1 << 10;
const MAX_BANDWIDTH_GB_PER_S: f64 = 1e6;
/// Most KV-cache bytes a plan may add up to (64 PiB): far past any machine, far below u64's range.
const MAX_KV_CACHE_BYTES: u128 = 1 << 56;

/// The plan routes, for the router that adds authentication and limits.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/plan", get(options).post(plan))
}

/// A plan request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanQuery {
    /// A model in the store (`uma list`), by name.
    #[serde(default)]
    pub(crate) model: Option<String>,
    /// A model described by its hyper-parameters.
    #[serde(default)]
    pub(crate) description: Option<Description>,
    /// Tokens per sequence (default: 4096, or the trained context if smaller).
    #[serde(default)]
    pub(crate) context_length: Option<u64>,
    #[serde(default)]
    pub(crate) num_sequences: Option<u64>,
    /// `f16` (default) or `q8_0`.
    #[serde(default)]
    pub(crate) kv_cache_type: Option<String>,
    #[serde(default)]
    pub(crate) max_num_batched_tokens: Option<u64>,
    /// Catalogue names, and `this` for this machine (default: `["this"]`).
    #[serde(default)]
    pub(crate) machines: Option<Vec<String>>,
    /// This machine's read bandwidth; measured once when absent and `this` is planned.
    #[serde(default)]
    pub(crate) bandwidth_gb_per_s: Option<f64>,
    /// The engine whose speed is predicted (`uma plan --engine`); default: each machine's own.
    #[serde(default)]
    pub(crate) engine: Option<String>,
    /// Count sliding-window layers at their window only (`uma plan --windowed-kv`).
    #[serde(default)]
    pub(crate) windowed_kv: bool,
}

/// A model without its file (the options of `uma plan --params ...`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Description {
    pub(crate) num_parameters: u64,
    pub(crate) num_hidden_layers: u64,
    pub(crate) hidden_size: u64,
    pub(crate) num_attention_heads: u64,
    /// Default: `num_attention_heads`.
    #[serde(default)]
    pub(crate) num_key_value_heads: Option<u64>,
    #[serde(default)]
    pub(crate) head_dim: Option<u64>,
    pub(crate) vocab_size: u64,
    #[serde(default)]
    pub(crate) intermediate_size: Option<u64>,
    /// A llama.cpp type (`q4_k_m`, the default), or `bits_per_weight` instead.
    #[serde(default)]
    pub(crate) quantization: Option<String>,
    #[serde(default)]
    pub(crate) bits_per_weight: Option<f64>,
    #[serde(default)]
    pub(crate) num_experts: Option<u64>,
    #[serde(default)]
    pub(crate) num_experts_per_token: Option<u64>,
    #[serde(default)]
    pub(crate) tie_word_embeddings: bool,
    #[serde(default)]
    pub(crate) max_position_embeddings: Option<u64>,
    /// Window of the sliding-window layers, and how many layers have it.
    #[serde(default)]
    pub(crate) sliding_window: Option<u64>,
    #[serde(default)]
    pub(crate) num_sliding_window_layers: Option<u64>,
}

/// `GET /v1/plan`: what a plan may be asked for.
async fn options() -> Result<Json<Value>, ApiError> {
    let answer = tokio::task::spawn_blocking(|| -> Result<Value, ApiError> {
        let catalogue = MachineCatalogue::load(None).map_err(planner_error)?;
        let machines: Vec<&Machine> = catalogue.machines().collect();
        let this = uma_planner::system_memory()
            .ok()
            .map(|memory| json!({"name": THIS_MACHINE, "memory_bytes": memory.total_bytes}));
        Ok(json!({
            "this_machine": this,
            "machines": machines,
            "quantizations": Quantization::known_names(),
            "kv_cache_types": [KvCacheType::F16.name(), KvCacheType::Q8_0.name()],
            "stored_models": stored_models(),
            "defaults": {
                "context_length": DEFAULT_CONTEXT_LENGTH,
                "num_sequences": 1,
                "quantization": DEFAULT_QUANTIZATION,
                "headroom": DEFAULT_HEADROOM,
            },
        }))
    })
    .await
    .map_err(|error| ApiError::internal(format!("planning failed: {error}")))??;
    Ok(Json(answer))
}

/// The models of the store, by name (none when there is no store).
fn stored_models() -> Vec<Value> {
    let Some(home) = uma_planner::uma_home() else { return Vec::new() };
    let models = uma_store::ModelStore::new(home).list().unwrap_or_default();
    models
        .iter()
        .map(|model| {
            json!({
                "name": model.name.to_string(),
                "file": model.manifest.file,
                "size": model.manifest.size,
            })
        })
        .collect()
}

/// `POST /v1/plan`.
async fn plan(payload: Result<Json<Value>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(body) = payload?;
    let query: PlanQuery = serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let param = (path != ".").then_some(path.as_str());
        let message = match param {
            Some(path) => format!("{path}: {}", error.inner()),
            None => error.inner().to_string(),
        };
        ApiError::invalid_request(message, param)
    })?;
    // Everything the request says is checked (and a stored model read) before this machine's
    // bandwidth is measured: a bad request is refused at once.
    let prepared = tokio::task::spawn_blocking(move || prepare(query))
        .await
        .map_err(|error| ApiError::internal(format!("planning failed: {error}")))??;
    let needs_probe = prepared.query.bandwidth_gb_per_s.is_none()
        && prepared.machines.iter().any(Option::is_none);
    let probe = if needs_probe { Some(measured_bandwidth().await?) } else { None };
    let answer = tokio::task::spawn_blocking(move || plan_report(&prepared, probe.as_ref()))
        .await
        .map_err(|error| ApiError::internal(format!("planning failed: {error}")))??;
    Ok(Json(answer))
}

/// This machine's read bandwidth, measured once per process (it reads a buffer of at least
/// 1 GiB on every core for about a second) off the async workers.
async fn measured_bandwidth() -> Result<BandwidthProbe, ApiError> {
    static PROBE: tokio::sync::OnceCell<BandwidthProbe> = tokio::sync::OnceCell::const_new();
    PROBE
        .get_or_try_init(|| async {
            tokio::task::spawn_blocking(|| {
                uma_planner::probe_bandwidth(uma_kernels::physical_cores())
            })
            .await
            .map_err(|error| ApiError::internal(format!("bandwidth probe failed: {error}")))?
            .map_err(planner_error)
        })
        .await
        .cloned()
}

/// The machines asked for (default: this one), checked for count and length.
fn machine_names(query: &PlanQuery) -> Result<Vec<String>, ApiError> {
    let names = match &query.machines {
        None => vec![THIS_MACHINE.to_owned()],
        Some(names) => names.iter().map(|name| name.trim().to_owned()).collect(),
    };
    if names.is_empty() || names.len() > MAX_MACHINES {
        let message = format!("machines: give 1 to {MAX_MACHINES} machine names");
        return Err(ApiError::invalid_request(message, Some("machines")));
    }
    for (index, name) in names.iter().enumerate() {
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            let param = format!("machines[{index}]");
            let message = format!("{param}: a name of 1 to {MAX_NAME_BYTES} bytes");
            return Err(ApiError::invalid_request(message, Some(&param)));
        }
    }
    Ok(names)
}

/// A checked plan request: the model's spec, the planner's request, and each machine (`None`
/// for this one, detected once its bandwidth is known).
#[derive(Debug)]
pub(crate) struct Prepared {
    query: PlanQuery,
    spec: ModelSpec,
    request: PlanRequest,
    machines: Vec<Option<Machine>>,
    speed_model: SpeedModel,
}

/// Checks `query` and turns it into the planner's inputs.
pub(crate) fn prepare(query: PlanQuery) -> Result<Prepared, ApiError> {
    let names = machine_names(&query)?;
    let spec = model_spec(&query)?;
    let request = plan_request(&query, &spec)?;
    if query.engine.as_ref().is_some_and(|name| name.len() > MAX_NAME_BYTES) {
        return Err(ApiError::invalid_request("engine: too long", Some("engine")));
    }
    let catalogue = MachineCatalogue::load(None).map_err(planner_error)?;
    let speed_model = SpeedModel::builtin().map_err(planner_error)?;
    let mut machines = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case(THIS_MACHINE) {
            machines.push(None);
            continue;
        }
        let param = format!("machines[{index}]");
        let machine = catalogue
            .get(name)
            .map_err(|error| ApiError::invalid_request(error.to_string(), Some(&param)))?;
        // The engine must run there (checked again, harmlessly, when planning).
        speed_model
            .engine(query.engine.as_deref(), machine)
            .map_err(|error| ApiError::invalid_request(error.to_string(), Some("engine")))?;
        machines.push(Some(machine.clone()));
    }
    Ok(Prepared { query, spec, request, machines, speed_model })
}

/// The report: `{"bandwidth_probe", "plans": [{"model", "machine", "memory", ...}]}`, each plan
/// as `uma plan --json` prints it. `probe`: this machine's measured bandwidth, when the request
/// gives none.
pub(crate) fn plan_report(
    prepared: &Prepared,
    probe: Option<&BandwidthProbe>,
) -> Result<Value, ApiError> {
    let Prepared { query, spec, request, machines, speed_model } = prepared;
    let mut plans = Vec::with_capacity(machines.len());
    for machine in machines {
        let machine = match machine {
            Some(machine) => machine.clone(),
            None => {
                let gb_per_s = query.bandwidth_gb_per_s.or(probe.map(|p| p.gb_per_s));
                let gb_per_s =
                    gb_per_s.ok_or_else(|| ApiError::internal("no bandwidth measured"))?;
                uma_planner::this_machine(gb_per_s).map_err(planner_error)?
            }
        };
        let plan = plan_machine(speed_model, query.engine.as_deref(), spec, &machine, request)?;
        let mut entry = serde_json::to_value(&plan)
            .map_err(|error| ApiError::internal(format!("cannot encode the plan: {error}")))?;
        if let Value::Object(fields) = &mut entry {
            fields.insert("model".into(), json!(spec));
            fields.insert("cost".into(), Value::Null);
        }
        plans.push(entry);
    }
    Ok(json!({"bandwidth_probe": probe, "plans": plans}))
}

/// `model` on `machine`, run by `engine` (default: the machine's own, as `uma plan` without
/// `--engine`).
fn plan_machine(
    speed_model: &SpeedModel,
    engine: Option<&str>,
    spec: &ModelSpec,
    machine: &Machine,
    request: &PlanRequest,
) -> Result<MachinePlan, ApiError> {
    let engine = speed_model
        .engine(engine, machine)
        .map_err(|error| ApiError::invalid_request(error.to_string(), Some("engine")))?;
    uma_planner::plan_for_machine(spec, machine, &engine, request).map_err(planner_error)
}

/// The stored model, or the described one.
fn model_spec(query: &PlanQuery) -> Result<ModelSpec, ApiError> {
    match (&query.model, &query.description) {
        (Some(_), Some(_)) => Err(ApiError::invalid_request(
            "Give a stored model (`model`) or a `description`, not both.",
            Some("model"),
        )),
        (Some(name), None) => stored_spec(name),
        (None, Some(description)) => described_spec(description),
        (None, None) => Err(ApiError::invalid_request(
            "No model: give `model` (a name in the store) or a `description`.",
            Some("model"),
        )),
    }
}

fn stored_spec(name: &str) -> Result<ModelSpec, ApiError> {
    let invalid = |message: String| ApiError::invalid_request(message, Some("model"));
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid(format!("model: a name of 1 to {MAX_NAME_BYTES} bytes")));
    }
    let parsed =
        uma_store::ModelName::parse(name).map_err(|error| invalid(format!("model: {error}")))?;
    let home = uma_planner::uma_home()
        .ok_or_else(|| invalid("model: there is no model store here (set UMA_HOME)".into()))?;
    let path = match uma_store::ModelStore::new(home).resolve(&parsed) {
        Ok(path) => path,
        Err(uma_store::StoreError::NotFound { .. }) => {
            return Err(invalid(format!("model: no model named {parsed} in the store")));
        }
        Err(other) => return Err(ApiError::internal(other.to_string())),
    };
    let file = uma_gguf::GgufFile::open(&path)
        .map_err(|error| invalid(format!("model: cannot load {parsed}: {error}")))?;
    // Named after its file, as `uma plan NAME` names it.
    let file_name =
        path.file_name().map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into());
    ModelSpec::from_gguf(&file, &file_name)
        .map_err(|error| invalid(format!("model: cannot plan {parsed}: {error}")))
}

/// `value`, checked to lie in `1..=max`, or the 400 naming `field`.
fn bounded(field: &str, value: u64, max: u64) -> Result<u64, ApiError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        let message = format!("{field}: {value} is outside 1 to {max}");
        Err(ApiError::invalid_request(message, Some(field)))
    }
}

fn bounded_option(field: &str, value: Option<u64>, max: u64) -> Result<Option<u64>, ApiError> {
    value.map(|value| bounded(field, value, max)).transpose()
}

fn described_spec(description: &Description) -> Result<ModelSpec, ApiError> {
    let d = description;
    let heads = bounded("description.num_attention_heads", d.num_attention_heads, MAX_HEADS)?;
    let experts = bounded_option("description.num_experts", d.num_experts, MAX_EXPERTS)?;
    let quantization = match (&d.quantization, d.bits_per_weight) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "description: give quantization or bits_per_weight, not both",
                Some("description.bits_per_weight"),
            ))
        }
        (_, Some(bits)) => Quantization::from_bits_per_weight(bits).map_err(|error| {
            ApiError::invalid_request(error.to_string(), Some("description.bits_per_weight"))
        })?,
        (name, None) => {
            let name = name.as_deref().unwrap_or(DEFAULT_QUANTIZATION);
            if name.len() > MAX_NAME_BYTES {
                let message = "description.quantization: too long".to_owned();
                return Err(ApiError::invalid_request(message, Some("description.quantization")));
            }
            Quantization::from_name(name).map_err(|error| {
                ApiError::invalid_request(error.to_string(), Some("description.quantization"))
            })?
        }
    };
    let num_parameters = bounded("description.num_parameters", d.num_parameters, MAX_PARAMETERS)?;
    let description = ModelDescription {
        name: ModelDescription::default_name(num_parameters),
        num_parameters,
        num_hidden_layers: bounded(
            "description.num_hidden_layers",
            d.num_hidden_layers,
            MAX_LAYERS,
        )?,
        hidden_size: bounded("description.hidden_size", d.hidden_size, MAX_HIDDEN_SIZE)?,
        num_attention_heads: heads,
        num_key_value_heads: bounded_option(
            "description.num_key_value_heads",
            d.num_key_value_heads,
            heads,
        )?
        .unwrap_or(heads),
        head_dim: bounded_option("description.head_dim", d.head_dim, MAX_HEAD_DIM)?,
        vocab_size: bounded("description.vocab_size", d.vocab_size, MAX_VOCAB)?,
        intermediate_size: bounded_option(
            "description.intermediate_size",
            d.intermediate_size,
            MAX_INTERMEDIATE_SIZE,
        )?,
        quantization,
        num_experts: experts,
        num_experts_per_token: bounded_option(
            "description.num_experts_per_token",
            d.num_experts_per_token,
            experts.unwrap_or(MAX_EXPERTS),
        )?,
        tie_word_embeddings: d.tie_word_embeddings,
        max_position_embeddings: bounded_option(
            "description.max_position_embeddings",
            d.max_position_embeddings,
            MAX_CONTEXT_LENGTH,
        )?,
        sliding_window: bounded_option(
            "description.sliding_window",
            d.sliding_window,
            MAX_CONTEXT_LENGTH,
        )?,
        num_sliding_window_layers: d.num_sliding_window_layers.unwrap_or(0),
    };
    description.spec().map_err(|error| {
        let param = match &error {
            uma_planner::PlannerError::InvalidValue { name, .. } => format!("description.{name}"),
            _ => "description".to_owned(),
        };
        ApiError::invalid_request(error.to_string(), Some(&param))
    })
}

/// The plan's inputs for `spec` (as `uma plan`): the context defaults to 4096 or the trained
/// context if smaller.
fn plan_request(query: &PlanQuery, spec: &ModelSpec) -> Result<PlanRequest, ApiError> {
    let given = bounded_option("context_length", query.context_length, MAX_CONTEXT_LENGTH)?;
    let context_length = uma_planner::planned_context_length(given, spec.max_position_embeddings)
        .map_err(|trained| {
        let message = format!(
            "context_length: {} exceeds the model's trained context of {trained}",
            given.unwrap_or(0)
        );
        ApiError::invalid_request(message, Some("context_length"))
    })?;
    let kv_cache_type = match query.kv_cache_type.as_deref() {
        None => KvCacheType::F16,
        Some(name) => KvCacheType::from_name(name).ok_or_else(|| {
            let message = format!("kv_cache_type: {name:?} is not f16 or q8_0");
            ApiError::invalid_request(message, Some("kv_cache_type"))
        })?,
    };
    if let Some(gb_per_s) = query.bandwidth_gb_per_s {
        if !(gb_per_s.is_finite() && gb_per_s > 0.0 && gb_per_s <= MAX_BANDWIDTH_GB_PER_S) {
            let message = format!(
                "bandwidth_gb_per_s: {gb_per_s} is not a positive number up to {MAX_BANDWIDTH_GB_PER_S}"
            );
            return Err(ApiError::invalid_request(message, Some("bandwidth_gb_per_s")));
        }
    }
    let request = PlanRequest {
        context_length,
        num_sequences: bounded("num_sequences", query.num_sequences.unwrap_or(1), MAX_SEQUENCES)?,
        kv_cache_type,
        sliding_window_kv: if query.windowed_kv {
            SlidingWindowKv::Windowed
        } else {
            SlidingWindowKv::Full
        },
        max_num_batched_tokens: bounded(
            "max_num_batched_tokens",
            query.max_num_batched_tokens.unwrap_or(DEFAULT_MAX_NUM_BATCHED_TOKENS),
            MAX_BATCHED_TOKENS,
        )?,
        headroom: DEFAULT_HEADROOM,
        gpu_driver_bytes: 0,
    };
    let kv_bytes = u128::from(spec.kv_bytes_per_token(kv_cache_type))
        * u128::from(request.context_length)
        * u128::from(request.num_sequences);
    if kv_bytes > MAX_KV_CACHE_BYTES {
        return Err(ApiError::invalid_request(
            format!(
                "context_length: {} positions × {} sequences need {kv_bytes} bytes of KV cache, \
                 past any machine",
                request.context_length, request.num_sequences
            ),
            Some("context_length"),
        ));
    }
    Ok(request)
}

/// A planner error that is not the request's fault.
fn planner_error(error: uma_planner::PlannerError) -> ApiError {
    ApiError::internal(error.to_string())
}
