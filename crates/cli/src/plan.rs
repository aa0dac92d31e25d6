//! `uma plan MODEL`: will it fit, how long a context, how fast, at what cost — before anything is
//! loaded. The planner crate does the arithmetic; this turns arguments into its inputs and its
//! plans into a report (a table, or `--json`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use uma_gguf::GgufFile;
use uma_planner::{
    BandwidthProbe, Bound, ClusterData, ClusterPlan, ClusterRate, ClusterSetup, CostEstimate,
    CostInputs, Engine, KvCacheType, Machine, MachineCatalogue, MachinePlan, ModelDescription,
    ModelSpec, PlanRequest, Quantization, RateEstimate, SlidingWindowKv, SpeedModel, Split,
    StrategyPlan, DEFAULT_HEADROOM, DEFAULT_MAX_NUM_BATCHED_TOKENS, GIB, THIS_MACHINE,
};

use crate::format;

/// Quantization of a described model when none is given.
const DEFAULT_QUANTIZATION: &str = "q4_k_m";

/// The cloud machine costs are compared with, and its hourly price unless given.
const DEFAULT_CLOUD_MACHINE: &str = "h100-sxm-80gb";
const DEFAULT_CLOUD_USD_PER_HOUR: f64 = 2.5;

/// The link of `--nodes` without `--link`: the one every machine has.
const DEFAULT_LINK: &str = "10gbe";

#[derive(clap::Args, Debug)]
pub(crate) struct PlanArgs {
    /// A .gguf file or a model name in the store; without it, describe the model with --params
    /// and the options of "model description".
    pub(crate) model: Option<PathBuf>,
    /// Context length per sequence, in tokens (default: 4096, or the trained context if smaller).
    #[arg(long, value_name = "N")]
    ctx: Option<u64>,
    /// Sequences served at once, each with its own context.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seqs: u64,
    /// KV cache type: f16 (uma's) or q8_0.
    #[arg(long, value_name = "TYPE", default_value = "f16", value_parser = crate::memory_budget::parse_kv_cache_type)]
    kv: KvCacheType,
    /// Tokens per engine step, which the compute scratch is sized for.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_NUM_BATCHED_TOKENS)]
    batch_tokens: u64,
    /// Count sliding-window layers at their window only, as llama.cpp's cache does (uma's cache
    /// keeps every position on every layer).
    #[arg(long)]
    windowed_kv: bool,
    /// Machines to plan for, from the catalogue; `this` is this machine, detected (the default).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    hw: Vec<String>,
    /// A TOML file of more machines, or of fields overriding catalogued ones (format:
    /// crates/planner/data/machines.toml). $UMA_HOME/machines.toml is read too when it exists.
    #[arg(long, value_name = "PATH")]
    hw_file: Option<PathBuf>,
    /// Engines to predict speeds for: llama.cpp-metal, llama.cpp-cuda, llama.cpp-vulkan, mlx,
    /// uma-cpu, roofline (default: each machine's own: llama.cpp's Metal backend on a Mac, CUDA
    /// on an NVIDIA GPU, uma on this machine's CPU).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    engine: Vec<String>,
    /// One table side by side: the --hw machines (every catalogued one and this machine without
    /// --hw), or a described model's --quant types.
    #[arg(long)]
    compare: bool,
    /// This machine's memory read bandwidth in GB/s, instead of measuring it.
    #[arg(long, value_name = "GB/s")]
    bandwidth: Option<f64>,
    /// A speculative-decoding draft model (`uma run/serve --draft`), as a file or a store name:
    /// its weights and its KV cache (f16, as many positions as the model's) are planned beside
    /// the model's. It must have the model's vocabulary.
    #[arg(long, value_name = "MODEL")]
    draft: Option<PathBuf>,
    /// The --device `uma run` and `uma serve` will get: auto opens the GPU to choose, and its
    /// driver stays in the process (this machine's plan counts it: measured); cpu never opens it.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    device: uma_engine::Device,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    description: DescriptionArgs,
    #[command(flatten)]
    cost: CostArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// A cluster of identical machines.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Cluster (a model split over several machines)")]
struct ClusterArgs {
    /// Split the model over N machines like each --hw machine (GPUs of one machine with
    /// --link pcie); the plan adds a cluster section with both splits.
    #[arg(long, value_name = "N")]
    nodes: Option<u64>,
    /// The link between them: tb5-rdma, tb5-tcp, 10gbe, pcie (figures and sources:
    /// crates/planner/data/cluster.toml) [default: 10gbe].
    #[arg(long, value_name = "NAME")]
    link: Option<String>,
    /// The split to report as the plan's: pipeline (layers per node) or tensor (1/N of every
    /// matrix per node) [default: the faster for one sequence's decode].
    #[arg(long, value_name = "SPLIT", value_parser = parse_split)]
    split: Option<Split>,
}

impl ClusterArgs {
    /// The cluster asked for, run by `engine`; `None` without --nodes.
    fn setup(&self, data: &ClusterData, engine: &Engine) -> anyhow::Result<Option<ClusterSetup>> {
        let Some(nodes) = self.nodes else {
            if self.link.is_some() || self.split.is_some() {
                bail!("--link and --split plan a cluster: give --nodes too");
            }
            return Ok(None);
        };
        if nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        let link = data.link(self.link.as_deref().unwrap_or(DEFAULT_LINK))?;
        Ok(Some(ClusterSetup { nodes, link, sync: data.sync(&engine.name) }))
    }
}

/// `"pipeline"` or `"tensor"`.
fn parse_split(text: &str) -> Result<Split, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "pipeline" => Ok(Split::Pipeline),
        "tensor" | "tensor-parallel" => Ok(Split::TensorParallel),
        _ => Err(format!("{text:?} is not a split: pipeline or tensor")),
    }
}

/// A model described instead of read from a file.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Model description (without a file)")]
struct DescriptionArgs {
    /// Parameter count, all experts included: 7B, 1.5B, 500M, or a plain number.
    #[arg(long, value_name = "COUNT", value_parser = parse_count)]
    params: Option<u64>,
    /// Transformer layers (num_hidden_layers).
    #[arg(long, value_name = "N")]
    layers: Option<u64>,
    /// Hidden size (hidden_size).
    #[arg(long, value_name = "N")]
    hidden: Option<u64>,
    /// Attention heads (num_attention_heads).
    #[arg(long, value_name = "N")]
    heads: Option<u64>,
    /// Key/value heads (num_key_value_heads; default: --heads).
    #[arg(long, value_name = "N")]
    kv_heads: Option<u64>,
    /// Dimension of a head (default: hidden ÷ heads).
    #[arg(long, value_name = "N")]
    head_dim: Option<u64>,
    /// Vocabulary size.
    #[arg(long, value_name = "N")]
    vocab: Option<u64>,
    /// Feed-forward size per expert (default: what --params leaves after embeddings and
    /// attention).
    #[arg(long, value_name = "N")]
    ffn: Option<u64>,
    /// Quantization type(s), e.g. q4_k_m or q4_k_m,q8_0,f16 with --compare (default: q4_k_m).
    #[arg(long, value_name = "TYPE,...", value_delimiter = ',')]
    quant: Vec<String>,
    /// Average bits per weight, instead of --quant.
    #[arg(long, value_name = "BITS")]
    bpw: Option<f64>,
    /// Experts per layer of a mixture-of-experts model.
    #[arg(long, value_name = "N")]
    experts: Option<u64>,
    /// Experts each token uses.
    #[arg(long, value_name = "N")]
    active_experts: Option<u64>,
    /// The output head reuses the token embedding table.
    #[arg(long)]
    tied_embeddings: bool,
    /// The context the model was trained for (caps the longest context reported).
    #[arg(long, value_name = "N")]
    trained_ctx: Option<u64>,
    /// Window of the sliding-window layers, in tokens (with --sliding-layers).
    #[arg(long, value_name = "N")]
    sliding_window: Option<u64>,
    /// Layers that attend to the last --sliding-window tokens only.
    #[arg(long, value_name = "N")]
    sliding_layers: Option<u64>,
}

impl DescriptionArgs {
    fn is_given(&self) -> bool {
        let counts = [self.params, self.layers, self.hidden, self.heads, self.kv_heads];
        let more = [self.head_dim, self.vocab, self.ffn, self.experts, self.active_experts];
        let window = [self.sliding_window, self.sliding_layers];
        counts.iter().chain(&more).chain(&window).any(Option::is_some)
            || !self.quant.is_empty()
            || self.bpw.is_some()
            || self.tied_embeddings
            || self.trained_ctx.is_some()
    }

    /// One spec per quantization asked for.
    fn specs(&self) -> anyhow::Result<Vec<ModelSpec>> {
        let required = |value: Option<u64>, flag: &str| {
            value.with_context(|| format!("a described model needs {flag} (or give a .gguf file)"))
        };
        let num_parameters = required(self.params, "--params")?;
        let num_attention_heads = required(self.heads, "--heads")?;
        let quantizations = match (&self.bpw, self.quant.as_slice()) {
            (Some(_), [_, ..]) => bail!("give --quant or --bpw, not both"),
            (Some(bits), []) => vec![Quantization::from_bits_per_weight(*bits)?],
            (None, []) => vec![Quantization::from_name(DEFAULT_QUANTIZATION)?],
            (None, names) => {
                names.iter().map(|name| Quantization::from_name(name)).collect::<Result<_, _>>()?
            }
        };
        let mut specs = Vec::with_capacity(quantizations.len());
        for quantization in quantizations {
            let description = ModelDescription {
                name: ModelDescription::default_name(num_parameters),
                num_parameters,
                num_hidden_layers: required(self.layers, "--layers")?,
                hidden_size: required(self.hidden, "--hidden")?,
                num_attention_heads,
                num_key_value_heads: self.kv_heads.unwrap_or(num_attention_heads),
                head_dim: self.head_dim,
                vocab_size: required(self.vocab, "--vocab")?,
                intermediate_size: self.ffn,
                quantization,
                num_experts: self.experts,
                num_experts_per_token: self.active_experts,
                tie_word_embeddings: self.tied_embeddings,
                max_position_embeddings: self.trained_ctx,
                sliding_window: self.sliding_window,
                num_sliding_window_layers: self.sliding_layers.unwrap_or(0),
            };
            specs.push(description.spec()?);
        }
        Ok(specs)
    }
}

/// Inputs of the cost of ownership.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Cost of ownership")]
struct CostArgs {
    /// Add the cost table (implied by any option below).
    #[arg(long)]
    cost: bool,
    /// Price of the machine in US dollars (default: the catalogue's).
    #[arg(long, value_name = "USD")]
    price: Option<f64>,
    /// Power drawn while generating, in watts (default: the catalogue's).
    #[arg(long, value_name = "W")]
    watts: Option<f64>,
    /// Electricity price in US dollars per kWh [default: 0.25].
    #[arg(long, value_name = "USD")]
    kwh_price: Option<f64>,
    /// Years the machine is used [default: 3].
    #[arg(long, value_name = "N")]
    years: Option<f64>,
    /// Hours per day it generates [default: 8].
    #[arg(long, value_name = "H")]
    hours_per_day: Option<f64>,
    /// Hourly price of the cloud GPU compared with [default: 2.50].
    #[arg(long, value_name = "USD")]
    cloud_price: Option<f64>,
    /// The cloud GPU, from the catalogue [default: h100-sxm-80gb].
    #[arg(long, value_name = "NAME")]
    cloud_hw: Option<String>,
}

impl CostArgs {
    fn is_wanted(&self) -> bool {
        self.cost
            || [self.price, self.watts, self.kwh_price, self.years, self.hours_per_day]
                .iter()
                .chain(&[self.cloud_price])
                .any(Option::is_some)
            || self.cloud_hw.is_some()
    }

    fn inputs(&self) -> anyhow::Result<CostInputs> {
        let defaults = CostInputs::default();
        let inputs = CostInputs {
            electricity_usd_per_kwh: self.kwh_price.unwrap_or(defaults.electricity_usd_per_kwh),
            years: self.years.unwrap_or(defaults.years),
            hours_per_day: self.hours_per_day.unwrap_or(defaults.hours_per_day),
        };
        inputs.validate()?;
        for (flag, value) in [("--price", self.price), ("--watts", self.watts)]
            .into_iter()
            .chain([("--cloud-price", self.cloud_price)])
        {
            if let Some(v) = value {
                positive(flag, v)?;
            }
        }
        Ok(inputs)
    }
}

/// The whole report, in the shape `--json` prints.
#[derive(Serialize, Debug)]
struct PlanReport {
    /// This machine's bandwidth probe, when it ran.
    bandwidth_probe: Option<BandwidthProbe>,
    /// The assumptions of the cost columns, when asked for.
    cost_inputs: Option<CostInputs>,
    /// The cloud machine and its hourly price, when costs are asked for.
    cloud: Option<CloudReport>,
    /// This machine's GPU, when this machine is planned (`None` inside: it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    this_gpu: Option<Option<GpuReport>>,
    plans: Vec<PlanEntry>,
}

/// The GPU `--device` would use on this machine.
#[derive(Serialize, Debug)]
struct GpuReport {
    /// Name, API and driver.
    name: String,
    /// A software device (lavapipe): `--device auto` never takes it.
    software: bool,
    /// What the GPU may hold (a card's memory, Apple's working set), when known.
    memory_bytes: Option<u64>,
    memory_source: Option<&'static str>,
    /// Resident memory the driver left in this process once the GPU was opened and closed again
    /// (what `--device auto` costs a model that then runs on the CPU); 0 where not measurable.
    driver_bytes: u64,
}

impl GpuReport {
    /// This machine's GPU, or `None` when there is none (or no driver).
    fn detect() -> Option<GpuReport> {
        let before = resident_bytes();
        let context = uma_gpu::GpuContext::open().ok()?;
        let info = context.info().clone();
        drop(context);
        let driver_bytes = match (before, resident_bytes()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => 0,
        };
        let memory = uma_engine::gpu_memory_limit(&info);
        Some(GpuReport {
            name: info.to_string(),
            software: info.is_software,
            memory_bytes: memory.map(|(bytes, _)| bytes),
            memory_source: memory.map(|(_, source)| source),
            driver_bytes,
        })
    }

    /// One line: the GPU, its memory, and whether the plan's weights and KV cache fit in it.
    fn describe(gpu: Option<&GpuReport>, model: &ModelSpec, plan: &MachinePlan) -> String {
        let Some(gpu) = gpu else {
            return "none found: the model runs on the CPU".into();
        };
        if gpu.software {
            return format!("{} · --device auto uses the CPU", gpu.name);
        }
        let need = model.file_weight_bytes + plan.memory.breakdown.kv_cache_bytes;
        match (gpu.memory_bytes, gpu.memory_source) {
            (Some(limit), Some(source)) => format!(
                "{} · {} ({source}) · {} {} of weights and KV cache",
                gpu.name,
                format::bytes(limit),
                if need <= limit { "holds the" } else { "too small for the" },
                format::bytes(need)
            ),
            _ => format!("{} · its memory is not known here: --device auto tries it", gpu.name),
        }
    }
}

/// This process's resident memory (Linux: `VmRSS` of `/proc/self/status`), `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[derive(Serialize, Debug)]
struct CloudReport {
    machine: String,
    usd_per_hour: f64,
}

/// One model on one machine.
#[derive(Serialize, Debug)]
struct PlanEntry {
    model: ModelSpec,
    /// The draft model planned beside it (`--draft`); its memory is `memory.draft`.
    #[serde(skip_serializing_if = "Option::is_none")]
    draft_model: Option<ModelSpec>,
    #[serde(flatten)]
    plan: MachinePlan,
    cost: Option<CostReport>,
    /// The model split over `--nodes` machines like this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterPlan>,
}

#[derive(Serialize, Debug)]
struct CostReport {
    /// `None` when the machine's price or power is unknown (give --price and --watts).
    owned: Option<CostEstimate>,
    /// The cloud machine serving the same model and sequences.
    cloud: CostEstimate,
}

pub(crate) fn run(args: &PlanArgs) -> anyhow::Result<()> {
    check_numbers(args)?;
    let specs = model_specs(args)?;
    let draft = draft_spec(args)?;
    let catalogue = MachineCatalogue::load(args.hw_file.as_deref())?;
    let speed_model = SpeedModel::builtin()?;
    let cluster_data = ClusterData::builtin()?;
    let mut bandwidth_probe = None;
    let machines = machines(args, &catalogue, &speed_model, &mut bandwidth_probe)?;
    let cost = args.cost.is_wanted().then(|| args.cost.inputs()).transpose()?;
    let cloud = match &cost {
        Some(_) => {
            let name = args.cost.cloud_hw.as_deref().unwrap_or(DEFAULT_CLOUD_MACHINE);
            let usd_per_hour = args.cost.cloud_price.unwrap_or(DEFAULT_CLOUD_USD_PER_HOUR);
            let machine = catalogue.get(name)?.clone();
            let engine = speed_model.engine(None, &machine)?;
            Some((machine, engine, usd_per_hour))
        }
        None => None,
    };

    let plans_this_machine = machines.iter().any(|(m, _)| m.name == THIS_MACHINE);
    let opens_gpu = args.device != uma_engine::Device::Cpu;
    let this_gpu = (plans_this_machine && opens_gpu).then(GpuReport::detect);
    let gpu_driver_bytes =
        this_gpu.as_ref().and_then(|gpu| gpu.as_ref()).map_or(0, |g| g.driver_bytes);
    let mut plans = Vec::with_capacity(specs.len() * machines.len());
    for spec in &specs {
        let request = request(args, spec)?;
        for (machine, engine) in &machines {
            let request = match machine.name == THIS_MACHINE {
                true => PlanRequest { gpu_driver_bytes, ..request },
                false => request,
            };
            let plan = uma_planner::plan_for_machine_with_draft(
                spec,
                draft.as_ref(),
                machine,
                engine,
                &request,
            )?;
            let cost_report = match (&cost, &cloud) {
                (Some(inputs), Some((cloud_machine, cloud_engine, usd_per_hour))) => {
                    let cloud = (cloud_machine, cloud_engine, *usd_per_hour);
                    Some(cost_report(args, spec, &request, &plan, inputs, cloud)?)
                }
                _ => None,
            };
            let cluster = match args.cluster.setup(&cluster_data, engine)? {
                Some(setup) => Some(uma_planner::plan_cluster(
                    spec,
                    machine,
                    engine,
                    &request,
                    &setup,
                    args.cluster.split,
                )?),
                None => None,
            };
            plans.push(PlanEntry {
                model: spec.clone(),
                draft_model: draft.clone(),
                plan,
                cost: cost_report,
                cluster,
            });
        }
    }
    let report = PlanReport {
        bandwidth_probe,
        this_gpu,
        cost_inputs: cost,
        cloud: cloud
            .map(|(machine, _, usd_per_hour)| CloudReport { machine: machine.name, usd_per_hour }),
        plans,
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else if args.compare {
        render_comparison(&report)
    } else {
        report.plans.iter().map(|entry| render_plan(entry, &report)).collect::<Vec<_>>().join("\n")
            + &render_costs(&report)
    };
    crate::output::print(&text)
}

fn check_numbers(args: &PlanArgs) -> anyhow::Result<()> {
    for (flag, value) in [("--seqs", args.seqs), ("--batch-tokens", args.batch_tokens)] {
        if value == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if args.ctx == Some(0) {
        bail!("--ctx must be at least 1");
    }
    if let Some(gb_per_s) = args.bandwidth {
        positive("--bandwidth", gb_per_s)?;
    }
    if args.cluster.nodes.is_some() && args.compare {
        bail!("--nodes plans a cluster in the detailed report: leave out --compare");
    }
    if args.draft.is_some() && args.cluster.nodes.is_some() {
        bail!("--draft plans one machine: leave out --nodes");
    }
    Ok(())
}

fn positive(flag: &str, value: f64) -> anyhow::Result<()> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{flag} must be a positive number, not {value}");
    }
    Ok(())
}

/// The model read from the file, or one spec per described quantization.
fn model_specs(args: &PlanArgs) -> anyhow::Result<Vec<ModelSpec>> {
    match (&args.model, args.description.is_given()) {
        (Some(_), true) => {
            bail!("give a .gguf file or a description (--params, --layers, ...), not both")
        }
        (Some(path), false) => Ok(vec![spec_from_file(path)?]),
        (None, true) => args.description.specs(),
        (None, false) => {
            bail!("no model: give a .gguf file, or describe one with --params, --layers, --hidden, --heads and --vocab")
        }
    }
}

/// The `--draft` model, after the check `uma run` and `uma serve` make when they load it: the
/// model's vocabulary, token for token.
fn draft_spec(args: &PlanArgs) -> anyhow::Result<Option<ModelSpec>> {
    let Some(draft) = &args.draft else { return Ok(None) };
    let Some(model) = &args.model else {
        bail!("--draft is checked against the model's vocabulary: give the model's .gguf file");
    };
    let draft = crate::model_path::resolve(draft)?;
    let prompts = crate::speculative_args::prompt_encoder(model)?;
    crate::speculative_args::check_draft(&draft, model, &prompts)?;
    spec_from_file(&draft).map(Some)
}

fn spec_from_file(path: &Path) -> anyhow::Result<ModelSpec> {
    let text = path.to_string_lossy();
    let file = GgufFile::open(path).with_context(|| format!("cannot load {}", path.display()))?;
    let name = path.file_name().map_or_else(|| text.to_string(), |n| n.to_string_lossy().into());
    ModelSpec::from_gguf(&file, &name).with_context(|| format!("cannot plan {}", path.display()))
}

/// The machines asked for, each with every engine asked for (its own when none is); `this` is
/// detected once, its bandwidth probed unless given. Without --hw, --compare lists every machine
/// one of the engines runs on.
fn machines(
    args: &PlanArgs,
    catalogue: &MachineCatalogue,
    speed_model: &SpeedModel,
    probe: &mut Option<BandwidthProbe>,
) -> anyhow::Result<Vec<(Machine, Engine)>> {
    let engines: Vec<Option<&str>> = if args.engine.is_empty() {
        vec![None]
    } else {
        args.engine.iter().map(|name| Some(name.trim())).collect()
    };
    for name in engines.iter().flatten() {
        if !speed_model.engine_names().iter().any(|known| known.eq_ignore_ascii_case(name)) {
            bail!(
                "unknown engine {name:?}; known engines: {}",
                speed_model.engine_names().join(", ")
            );
        }
    }
    let every_machine = args.hw.is_empty() && args.compare;
    let names: Vec<String> = match (args.hw.is_empty(), args.compare) {
        (true, true) => std::iter::once(THIS_MACHINE.to_owned())
            .chain(catalogue.names().into_iter().map(str::to_owned))
            .collect(),
        (true, false) => vec![THIS_MACHINE.to_owned()],
        (false, _) => args.hw.iter().map(|name| name.trim().to_owned()).collect(),
    };
    let mut machines = Vec::with_capacity(names.len() * engines.len());
    for name in names {
        let machine = if name.eq_ignore_ascii_case(THIS_MACHINE) {
            let here = speed_model.engines_for_kind(Some(uma_planner::THIS_MACHINE_KIND));
            let engine_needs_it = engines.iter().any(|engine| {
                engine.is_none_or(|e| here.iter().any(|name| name.eq_ignore_ascii_case(e)))
            });
            if every_machine && !engine_needs_it {
                continue;
            }
            let gb_per_s = match args.bandwidth {
                Some(gb_per_s) => gb_per_s,
                None => {
                    let measured = uma_planner::probe_bandwidth(uma_kernels::physical_cores())?;
                    let gb_per_s = measured.gb_per_s;
                    *probe = Some(measured);
                    gb_per_s
                }
            };
            uma_planner::this_machine(gb_per_s)?
        } else {
            catalogue
                .get(&name)
                .map_err(|error| anyhow::anyhow!("{error} (and {THIS_MACHINE}, this machine)"))?
                .clone()
        };
        let mut first_error = None;
        let before = machines.len();
        for engine in &engines {
            match speed_model.engine(*engine, &machine) {
                Ok(engine) => machines.push((machine.clone(), engine)),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        // A machine none of the engines runs on: an error when it was asked for by name (with
        // several engines, the ones that do not run on a machine are left out there).
        if let (Some(error), false, true) = (first_error, every_machine, machines.len() == before) {
            return Err(error.into());
        }
    }
    for name in engines.iter().flatten() {
        if !machines.iter().any(|(_, engine)| engine.name.eq_ignore_ascii_case(name)) {
            bail!("engine {name} runs on none of the machines planned for");
        }
    }
    Ok(machines)
}

/// The plan's inputs for `spec`: the context defaults to 4096 or the trained context if smaller.
fn request(args: &PlanArgs, spec: &ModelSpec) -> anyhow::Result<PlanRequest> {
    let context_length =
        uma_planner::planned_context_length(args.ctx, spec.max_position_embeddings).map_err(
            |trained| {
                anyhow::anyhow!(
                    "--ctx {} exceeds the model's trained context of {trained}",
                    args.ctx.unwrap_or(0)
                )
            },
        )?;
    Ok(PlanRequest {
        context_length,
        num_sequences: args.seqs,
        kv_cache_type: args.kv,
        sliding_window_kv: if args.windowed_kv {
            SlidingWindowKv::Windowed
        } else {
            SlidingWindowKv::Full
        },
        max_num_batched_tokens: args.batch_tokens,
        headroom: DEFAULT_HEADROOM,
        gpu_driver_bytes: 0,
    })
}

/// The cost of `plan`, and of the cloud machine (`cloud`: it, its engine, its price per hour)
/// serving the same model.
fn cost_report(
    args: &PlanArgs,
    spec: &ModelSpec,
    request: &PlanRequest,
    plan: &MachinePlan,
    inputs: &CostInputs,
    cloud: (&Machine, &Engine, f64),
) -> anyhow::Result<CostReport> {
    let (cloud_machine, cloud_engine, cloud_usd_per_hour) = cloud;
    let price = args.cost.price.or(plan.machine.price_usd);
    let watts = args.cost.watts.or(plan.machine.watts);
    let tokens_per_second = plan.speed.aggregate_decode.tokens_per_second;
    let owned = match (price, watts) {
        (Some(price), Some(watts)) => {
            Some(CostEstimate::owned(price, watts, tokens_per_second, inputs))
        }
        _ => None,
    };
    let cloud_plan = uma_planner::plan_for_machine(spec, cloud_machine, cloud_engine, request)?;
    let cloud = CostEstimate::rented(
        cloud_usd_per_hour,
        cloud_plan.speed.aggregate_decode.tokens_per_second,
    );
    Ok(CostReport { owned, cloud })
}

/// `"7B"` → 7·10⁹, `"1.5b"`, `"500M"`, `"270m"`, `"7000000000"`.
fn parse_count(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, multiplier) = match trimmed.char_indices().last() {
        Some((i, 'B' | 'b')) => (&trimmed[..i], 1e9),
        Some((i, 'M' | 'm')) => (&trimmed[..i], 1e6),
        Some((i, 'K' | 'k')) => (&trimmed[..i], 1e3),
        Some((i, 'T' | 't')) => (&trimmed[..i], 1e12),
        _ => (trimmed, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value * multiplier >= 1.0 => {
            Ok((value * multiplier).round() as u64)
        }
        _ => Err(format!("{text:?} is not a count such as 7B, 1.5B or 500M")),
    }
}

/// `"28.4 tok/s"` with precision for small and large rates.
fn rate(tokens_per_second: f64) -> String {
    if tokens_per_second >= 100.0 {
        format!("{} tok/s", format::grouped(tokens_per_second.round() as u64))
    } else {
        format!("{tokens_per_second:.1} tok/s")
    }
}

/// `"bandwidth bound: 29.9 GB/s ÷ 980.10 MB per step"` or the compute equivalent.
fn bound(estimate: &RateEstimate, speed_bandwidth: f64, speed_compute: f64) -> String {
    let fixed = estimate.fixed_seconds_per_step;
    let plus_fixed =
        if fixed > 0.0 { format!(", + {} fixed per step", seconds(fixed)) } else { String::new() };
    match estimate.bound {
        Bound::Bandwidth => format!(
            "bandwidth bound: {speed_bandwidth:.1} GB/s ÷ {} per step{plus_fixed}",
            format::bytes(estimate.bytes_per_step)
        ),
        Bound::Compute => format!(
            "compute bound: {speed_compute:.2} TOPS ÷ {:.2} GFLOP per token{plus_fixed}",
            estimate.flops_per_step as f64 / estimate.tokens_per_step.max(1) as f64 / 1e9
        ),
        Bound::Overhead => format!(
            "fixed-time bound: {} per step of kernel launches and synchronisation",
            seconds(fixed)
        ),
    }
}

/// `"4.9 ms"`, `"310 µs"`.
fn seconds(value: f64) -> String {
    if value >= 1e-3 {
        format!("{:.1} ms", value * 1e3)
    } else {
        format!("{:.0} µs", value * 1e6)
    }
}

/// `"45.2 tok/s (37.1–53.4)"`: the rate and the engine's range around it, when it has one.
fn rate_and_range(estimate: &RateEstimate) -> String {
    rate_with_range(estimate.tokens_per_second, estimate.range)
}

fn rate_with_range(tokens_per_second: f64, range: Option<[f64; 2]>) -> String {
    match range {
        Some([low, high]) => {
            format!("{} ({}–{})", rate(tokens_per_second), number(low), number(high))
        }
        None => rate(tokens_per_second),
    }
}

/// A rate without its unit, as [`rate`] writes it.
fn number(tokens_per_second: f64) -> String {
    rate(tokens_per_second).trim_end_matches(" tok/s").to_owned()
}

fn describe_machine(machine: &Machine, probe: Option<&BandwidthProbe>) -> String {
    let bandwidth = match (machine.name == THIS_MACHINE, probe) {
        (true, Some(p)) => format!(
            "{:.1} GB/s read (probe: {} by {} threads, best of {})",
            machine.bandwidth_gb_per_s,
            format::bytes(p.bytes as u64),
            p.threads,
            p.passes
        ),
        (true, None) => format!("{:.1} GB/s read (given)", machine.bandwidth_gb_per_s),
        (false, _) => format!("{:.0} GB/s", machine.bandwidth_gb_per_s),
    };
    let compute = match (machine.int8_tops, machine.f16_tflops) {
        (Some(int8), _) => format!("{int8:.1} int8 TOPS"),
        (None, Some(f16)) => format!("{f16:.1} f16 TFLOPS"),
        (None, None) => "no compute figure".into(),
    };
    format!(
        "{} · {:.1} GiB{} · {bandwidth} · {compute}",
        machine.description,
        machine.memory_gib,
        if machine.unified_memory { " unified" } else { "" }
    )
}

/// The detailed report of one plan.
fn render_plan(entry: &PlanEntry, report: &PlanReport) -> String {
    let (model, plan) = (&entry.model, &entry.plan);
    let (memory, speed) = (&plan.memory, &plan.speed);
    let request = &memory.request;
    let parts = &memory.breakdown;
    let mut out = String::new();
    let mut line = |text: String| writeln!(out, "{text}").expect("writing to a String cannot fail");
    let machine_name =
        if plan.machine.name == THIS_MACHINE { "this machine" } else { &plan.machine.name };
    line(format!("uma plan: {} on {machine_name}", model.name));
    line(String::new());
    let active = if model.num_active_parameters < model.num_parameters {
        format!(" ({} active per token)", format::count(model.num_active_parameters))
    } else {
        String::new()
    };
    line(format!(
        "  model     {} · {} parameters{active} · {}",
        model.architecture.as_deref().unwrap_or("described"),
        format::count(model.num_parameters),
        model.quantization
    ));
    let experts = match (model.num_experts, model.num_experts_per_token) {
        (Some(total), Some(used)) => format!(", {used} of {total} experts per token"),
        _ => String::new(),
    };
    let trained = model
        .max_position_embeddings
        .map(|t| format!(", trained context {}", format::grouped(t)))
        .unwrap_or_default();
    line(format!(
        "            {} layers, hidden {}, {} heads ({} KV, head dim {}), vocabulary {}{experts}{trained}",
        model.num_hidden_layers,
        model.hidden_size,
        model.num_attention_heads,
        model.num_key_value_heads,
        model.head_dim,
        format::grouped(model.vocab_size),
    ));
    if let Some(draft) = &entry.draft_model {
        line(format!(
            "  draft     {} · {} · {} parameters · {} · the model's vocabulary, for speculative \
             decoding (on the CPU)",
            draft.name,
            draft.architecture.as_deref().unwrap_or("described"),
            format::count(draft.num_parameters),
            draft.quantization
        ));
    }
    line(format!(
        "  machine   {}",
        describe_machine(&plan.machine, report.bandwidth_probe.as_ref())
    ));
    if let (true, Some(gpu)) = (plan.machine.name == THIS_MACHINE, &report.this_gpu) {
        line(format!("  gpu       {}", GpuReport::describe(gpu.as_ref(), model, plan)));
    }
    line(format!(
        "  request   context {} × {} sequence{} · KV cache {} · {}-token steps",
        format::grouped(request.context_length),
        request.num_sequences,
        if request.num_sequences == 1 { "" } else { "s" },
        request.kv_cache_type.name(),
        request.max_num_batched_tokens
    ));
    line(String::new());
    line("  memory".into());
    let mut row = |label: &str, bytes: u64, note: String| {
        line(format!("    {label:<20}{:>12}   {note}", format::bytes(bytes)).trim_end().to_owned());
    };
    row(
        "weights",
        parts.weights_bytes,
        format!(
            "as the kernels hold them, with {} of embedding rows paged in",
            format::bytes(parts.embedding_rows_bytes)
        ),
    );
    let windowed = if request.sliding_window_kv == SlidingWindowKv::Windowed
        && model.num_sliding_window_layers > 0
    {
        format!(
            ", {} layers at their {}-token window",
            model.num_sliding_window_layers,
            model.sliding_window.unwrap_or(0)
        )
    } else {
        String::new()
    };
    row(
        "KV cache",
        parts.kv_cache_bytes,
        format!(
            "{} positions × {} × {} B per position{windowed}",
            format::grouped(request.context_length),
            request.num_sequences,
            format::grouped(model.kv_bytes_per_token(request.kv_cache_type))
        ),
    );
    row(
        "compute scratch",
        parts.compute_scratch_bytes,
        format!(
            "activations of a {}-token step and its logits",
            request.max_num_batched_tokens.min(request.context_length * request.num_sequences)
        ),
    );
    row(
        "runtime overhead",
        parts.runtime_overhead_bytes,
        match request.gpu_driver_bytes {
            0 => format!("tokenizer ({} entries) and process", format::grouped(model.vocab_size)),
            driver => format!(
                "tokenizer ({} entries), process and the GPU driver ({}, measured: --device \
                 auto loads it)",
                format::grouped(model.vocab_size),
                format::bytes(driver)
            ),
        },
    );
    match (&memory.draft, &entry.draft_model) {
        (Some(draft), Some(draft_model)) => {
            let d = &draft.breakdown;
            row("draft weights", d.weights_bytes, "as the kernels hold them".into());
            row(
                "draft KV cache",
                d.kv_cache_bytes,
                format!(
                    "{} positions × {} × {} B per position, {} whatever the model's (its pool \
                     has a block for each of the model's)",
                    format::grouped(request.context_length),
                    request.num_sequences,
                    format::grouped(draft_model.kv_bytes_per_token(draft.request.kv_cache_type)),
                    draft.request.kv_cache_type.name()
                ),
            );
            row("draft scratch", d.compute_scratch_bytes, "the same steps and their logits".into());
            row(
                "draft runtime",
                d.runtime_overhead_bytes,
                format!(
                    "tokenizer ({} entries) and process",
                    format::grouped(draft_model.vocab_size)
                ),
            );
            row(
                "total",
                parts.total_bytes() + d.total_bytes(),
                format!(
                    "model {} + draft {}; peaks while loading: {} and {}",
                    format::bytes(parts.total_bytes()),
                    format::bytes(d.total_bytes()),
                    format::bytes(parts.load_peak_bytes),
                    format::bytes(d.load_peak_bytes)
                ),
            );
        }
        _ => row(
            "total",
            parts.total_bytes(),
            format!("peak while loading: {}", format::bytes(parts.load_peak_bytes)),
        ),
    }
    row(
        "machine memory",
        plan.machine.memory_bytes(),
        format!("{:.1} GiB", plan.machine.memory_bytes() as f64 / GIB),
    );
    row("OS reserve", plan.machine.os_reserve_bytes(), String::new());
    row("budget", memory.budget_bytes, "memory − OS reserve".into());
    row(
        "headroom",
        memory.headroom_bytes,
        format!("{:.0}% of the budget, kept free", request.headroom * 100.0),
    );
    row("usable", memory.usable_bytes, "what the plan must fit in".into());
    line(format!(
        "    {:<20}{} — needs {} of {} usable ({:.1}% of the budget)",
        "verdict",
        memory.verdict.describe(),
        format::bytes(memory.needed_bytes),
        format::bytes(memory.usable_bytes),
        100.0 * memory.needed_bytes as f64 / memory.budget_bytes.max(1) as f64
    ));
    let longest = if memory.max_context_length == 0 {
        "none: not even one token fits".to_owned()
    } else if memory.max_context_length < memory.max_context_length_by_memory {
        format!(
            "{} tokens per sequence (the trained context; memory allows {})",
            format::grouped(memory.max_context_length),
            format::grouped(memory.max_context_length_by_memory)
        )
    } else {
        format!("{} tokens per sequence", format::grouped(memory.max_context_length))
    };
    line(format!("    {:<20}{longest}", "longest context"));
    if let Some(gpu) = &plan.gpu_working_set {
        line(format!(
            "    {:<20}{} ({}): a GPU engine {} (uma computes on the CPU)",
            "GPU working set",
            format::bytes(gpu.limit_bytes),
            if gpu.fits { "fits" } else { "does not fit" },
            if gpu.fits { "can hold it all" } else { "must leave part on the CPU" }
        ));
    }
    line(String::new());
    line(format!("  speed (predicted for {}: {})", speed.engine.name, speed.engine.description));
    let (bandwidth, compute) = (speed.effective_bandwidth_gb_per_s, speed.effective_compute_tops);
    line(format!(
        "    {:<20}{} with an empty context, {} at {} tokens; {}",
        "decode, 1 sequence",
        rate_and_range(&speed.decode_empty_context),
        rate_and_range(&speed.decode_full_context),
        format::grouped(request.context_length),
        bound(&speed.decode_full_context, bandwidth, compute)
    ));
    if request.num_sequences > 1 {
        line(format!(
            "    {:<20}{} in all at full contexts; {}",
            format!("decode, {} sequences", request.num_sequences),
            rate_and_range(&speed.aggregate_decode),
            bound(&speed.aggregate_decode, bandwidth, compute)
        ));
    }
    line(format!(
        "    {:<20}{} for a {}-token prompt; {}",
        "prefill",
        rate_and_range(&speed.prefill),
        format::grouped(request.context_length),
        bound(&speed.prefill, bandwidth, compute)
    ));
    let validated = match (speed.engine.decode_range, speed.engine.prefill_range) {
        (Some(_), Some(_)) => {
            "in brackets: the range 80% of published measurements fell in, \
             on machine families the engine's parameters were not fitted on (docs/planner.md)"
        }
        (Some(_), None) => {
            "in brackets: the range of measurements on this machine \
             (scripts/bench/validate-planner.sh); prefill is not validated"
        }
        _ => "not validated: no range (docs/planner.md)",
    };
    line(format!("    {:<20}{validated}", ""));
    if entry.draft_model.is_some() {
        line(format!(
            "    {:<20}not predicted: the gain depends on how often the draft's guesses hold; \
             measure it with uma bench MODEL --speculative draft --draft DRAFT",
            "speculation"
        ));
    }
    if let Some(cluster) = &entry.cluster {
        out += &render_cluster(cluster, &plan.machine);
    }
    out
}

/// The cluster section: the link, both splits side by side with each node's memory, and where a
/// token's time goes.
fn render_cluster(cluster: &ClusterPlan, machine: &Machine) -> String {
    let (setup, link) = (&cluster.setup, &cluster.setup.link);
    let mut out = String::new();
    let mut line = |text: String| writeln!(out, "{text}").expect("writing to a String cannot fail");
    line(String::new());
    line(format!(
        "  cluster   {} × {} over {}: {}",
        setup.nodes, machine.name, link.name, link.description
    ));
    line(format!(
        "            {:.2} GB/s and {} per transfer on the link, {} more in the engine ({})",
        link.bandwidth_gb_per_s,
        seconds(link.latency_seconds),
        seconds(setup.sync.seconds),
        setup.sync.source
    ));
    let plans = [&cluster.pipeline, &cluster.tensor_parallel];
    let in_flight = format!("aggregate, {} in flight", cluster.pipeline.sequences_in_flight);
    let header = ["", "decode, 1 sequence", &in_flight, "prefill", "each node holds", "memory"];
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|plan| {
            let chosen = if plan.split == cluster.chosen { " (chosen)" } else { "" };
            vec![
                format!("{}{chosen}", plan.split.describe()),
                cluster_rate(&plan.decode_full_context),
                rate(plan.aggregate_decode.tokens_per_second),
                rate(plan.prefill.tokens_per_second),
                node_share(plan, setup.nodes),
                node_memory(plan),
            ]
        })
        .collect();
    out += &table(&header, &rows);
    for plan in plans {
        let decode = &plan.decode_full_context;
        let transfers = match (plan.split, decode.transfers) {
            (Split::Pipeline, 1) => "hop",
            (Split::Pipeline, _) => "hops",
            (Split::TensorParallel, 1) => "all-reduce",
            (Split::TensorParallel, _) => "all-reduces",
        };
        out += &format!(
            "    {:<20}{} computing + {} on the link + {} synchronising ({} {transfers}) per token\n",
            plan.split.describe(),
            seconds(decode.compute_seconds),
            seconds(decode.link_seconds),
            seconds(decode.sync_seconds),
            decode.transfers
        );
    }
    out
}

/// `"24 of 94 layers"` (the largest share) or `"1/4 of every matrix"`.
fn node_share(plan: &StrategyPlan, nodes: u64) -> String {
    match (plan.split, plan.nodes.first()) {
        (Split::Pipeline, Some(group)) => {
            let total: u64 = plan.nodes.iter().map(|g| g.layers * g.count).sum();
            format!("{} of {total} layers", group.layers)
        }
        _ => format!("1/{nodes} of every matrix"),
    }
}

/// `"fits: 380.12 GB of 406.00 GB usable"` for the node that needs the most.
fn node_memory(plan: &StrategyPlan) -> String {
    match plan.nodes.first() {
        Some(group) => format!(
            "{}: {} of {} usable",
            plan.verdict.describe(),
            format::bytes(group.memory.needed_bytes),
            format::bytes(group.memory.usable_bytes)
        ),
        None => plan.verdict.describe().to_owned(),
    }
}

/// A cluster's rate and the engine's range around it.
fn cluster_rate(estimate: &ClusterRate) -> String {
    rate_with_range(estimate.tokens_per_second, estimate.range)
}

/// One row per plan, side by side.
fn render_comparison(report: &PlanReport) -> String {
    let several_models = report.plans.first().is_some_and(|first| {
        report.plans.iter().any(|entry| entry.model.quantization != first.model.quantization)
    });
    let several_machines = report.plans.first().is_some_and(|first| {
        report.plans.iter().any(|entry| entry.plan.machine.name != first.plan.machine.name)
    });
    let label = |entry: &PlanEntry| match (several_models, several_machines) {
        (true, true) => format!("{} @ {}", entry.model.quantization, entry.plan.machine.name),
        (true, false) => entry.model.quantization.clone(),
        _ => entry.plan.machine.name.clone(),
    };
    let header = [
        "",
        "engine",
        "memory",
        "budget",
        "needed",
        "verdict",
        "longest ctx",
        "decode tok/s",
        "range",
        "aggregate tok/s",
        "bound",
        "prefill tok/s",
        "range",
    ];
    let range = |estimate: &RateEstimate| match estimate.range {
        Some([low, high]) => format!("{}–{}", number(low), number(high)),
        None => "-".to_owned(),
    };
    let rows: Vec<Vec<String>> = report
        .plans
        .iter()
        .map(|entry| {
            let (memory, speed) = (&entry.plan.memory, &entry.plan.speed);
            let bound = match speed.aggregate_decode.bound {
                Bound::Bandwidth => "bandwidth",
                Bound::Compute => "compute",
                Bound::Overhead => "fixed time",
            };
            vec![
                label(entry),
                speed.engine.name.clone(),
                format!("{:.0} GiB", entry.plan.machine.memory_gib),
                format::bytes(memory.budget_bytes),
                format::bytes(memory.needed_bytes),
                memory.verdict.describe().to_owned(),
                format::grouped(memory.max_context_length),
                format!("{:.1}", speed.decode_full_context.tokens_per_second),
                range(&speed.decode_full_context),
                format!("{:.1}", speed.aggregate_decode.tokens_per_second),
                bound.to_owned(),
                format!("{:.0}", speed.prefill.tokens_per_second),
                range(&speed.prefill),
            ]
        })
        .collect();
    let mut out = String::new();
    if let Some(first) = report.plans.first() {
        let request = &first.plan.memory.request;
        let draft = first
            .draft_model
            .as_ref()
            .map(|draft| format!(" · draft {} in the memory", draft.name))
            .unwrap_or_default();
        writeln!(
            out,
            "uma plan: {} · context {} × {} sequence(s) · KV cache {}{draft} · decode at a full \
             context\n",
            if several_models { "described model" } else { first.model.name.as_str() },
            format::grouped(request.context_length),
            request.num_sequences,
            request.kv_cache_type.name()
        )
        .expect("writing to a String cannot fail");
    }
    out += &table(&header, &rows);
    out + &render_costs(report)
}

/// The cost-of-ownership table, when costs were asked for: each machine, then the cloud
/// machine once per model.
fn render_costs(report: &PlanReport) -> String {
    let (Some(inputs), Some(cloud)) = (&report.cost_inputs, &report.cloud) else {
        return String::new();
    };
    let several_models = report.plans.windows(2).any(|w| {
        w[0].model.name != w[1].model.name || w[0].model.quantization != w[1].model.quantization
    });
    let cells = |name: String, cost: &CostEstimate| {
        vec![
            name,
            format!("{:.2}", cost.usd_per_hour),
            format!("{:.1}", cost.tokens_per_second),
            format!("{:.3}", cost.usd_per_million_tokens),
        ]
    };
    let mut rows = Vec::new();
    for (index, entry) in report.plans.iter().enumerate() {
        let Some(cost) = &entry.cost else { continue };
        let model = if several_models {
            format!(" · {}", entry.model.quantization)
        } else {
            String::new()
        };
        let name = format!("{}{model}", entry.plan.machine.name);
        rows.push(match &cost.owned {
            Some(owned) => cells(name, owned),
            None => vec![name, "-".into(), "-".into(), "needs --price and --watts".into()],
        });
        let last_of_model = report.plans.get(index + 1).is_none_or(|next| {
            next.model.name != entry.model.name
                || next.model.quantization != entry.model.quantization
        });
        if last_of_model {
            rows.push(cells(format!("cloud {}{model}", cloud.machine), &cost.cloud));
        }
    }
    format!(
        "\ncost of ownership: the price over {} years of {} h/day plus electricity at ${}/kWh; \
         cloud {} at ${:.2}/h; tokens at the aggregate decode rate\n{}",
        inputs.years,
        inputs.hours_per_day,
        inputs.electricity_usd_per_kwh,
        cloud.machine,
        cloud.usd_per_hour,
        table(&["", "$ per hour", "tok/s", "$ per 1M tokens"], &rows)
    )
}

/// A text table: the first column left-aligned, the others right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut write_row = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            let padding = width - cell.chars().count();
            if i == 0 {
                line += &format!("  {cell}{}", " ".repeat(padding));
            } else {
                line += &format!("  {}{cell}", " ".repeat(padding));
            }
        }
        out += line.trim_end();
        out.push('\n');
    };
    write_row(&mut header.iter().copied());
    for row in rows {
        write_row(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_line_says_whether_weights_and_kv_fit_its_memory() {
        let model = ModelDescription {
            name: "7B".into(),
            num_parameters: 7_000_000_000,
            num_hidden_layers: 32,
            hidden_size: 4096,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            head_dim: None,
            vocab_size: 32_000,
            intermediate_size: None,
            quantization: Quantization::from_name("Q4_K_M").unwrap(),
            num_experts: None,
            num_experts_per_token: None,
            tie_word_embeddings: false,
            max_position_embeddings: None,
            sliding_window: None,
            num_sliding_window_layers: 0,
        }
        .spec()
        .unwrap();
        let machine = MachineCatalogue::load(None).unwrap().get("h100-sxm-80gb").unwrap().clone();
        let request = PlanRequest::default();
        let engine = SpeedModel::builtin().unwrap().engine(None, &machine).unwrap();
        let plan = uma_planner::plan_for_machine(&model, &machine, &engine, &request).unwrap();
        let card = |gib: u64| GpuReport {
            name: "RTX 4090 (Vulkan)".into(),
            software: false,
            memory_bytes: Some(gib << 30),
            memory_source: Some("the card's memory"),
            driver_bytes: 0,
        };
        let line = GpuReport::describe(Some(&card(24)), &model, &plan);
        assert!(line.contains("25.77 GB (the card's memory) · holds the 4.77 GB"), "{line}");
        let line = GpuReport::describe(Some(&card(2)), &model, &plan);
        assert!(line.contains("too small for the"), "{line}");
        let unknown = GpuReport { memory_bytes: None, memory_source: None, ..card(0) };
        let line = GpuReport::describe(Some(&unknown), &model, &plan);
        assert!(line.contains("not known here"), "{line}");
        assert!(GpuReport::describe(None, &model, &plan).contains("none found"));
    }

    #[test]
    fn counts_take_suffixes() {
        assert_eq!(parse_count("7B"), Ok(7_000_000_000));
        assert_eq!(parse_count("1.5b"), Ok(1_500_000_000));
        assert_eq!(parse_count("270M"), Ok(270_000_000));
        assert_eq!(parse_count("4096"), Ok(4096));
        assert_eq!(parse_count(" 2k "), Ok(2000));
        for bad in ["", "B", "seven", "-1B", "0", "NaNB"] {
            assert!(parse_count(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![vec!["a".to_owned(), "1".to_owned()], vec!["long".into(), "22".into()]];
        assert_eq!(table(&["", "n"], &rows), "         n\n  a      1\n  long  22\n");
    }
}
