//! A model split over several identical machines (`uma plan --nodes N --link NAME`): by layers
//! (pipeline) or by the rows and columns of every matrix (tensor parallel). Each node's share is
//! planned against that node's memory, and the speeds add what the link and the engine spend
//! moving hidden states between the nodes. The links' figures and the engines' synchronisation
//! times are data (`data/cluster.toml`); the formulas are in `docs/planner.md` ("Clusters").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{PlannerError, Result};
use crate::kv_cache_type::KvCacheType;
use crate::machine::Machine;
use crate::memory_plan::{plan_memory, MemoryPlan, Verdict};
use crate::model_spec::ModelSpec;
use crate::plan_request::PlanRequest;
use crate::speed_estimate::{decode, prefill};
use crate::speed_model::Engine;

/// The built-in links and synchronisation times, compiled in.
const BUILTIN: &str = include_str!("../data/cluster.toml");

/// Bytes of one hidden-state element on the wire: engines send f16 or bf16 activations.
const ACTIVATION_BYTES: u64 = 2;

/// All-reduces per layer of a tensor-parallel model: after attention's output projection and
/// after the feed-forward block, each node holds a partial sum of the hidden state.
const ALL_REDUCES_PER_LAYER: u64 = 2;

/// Steps of one prompt a pipeline keeps in flight: llama.cpp cuts a batch of 2,048 tokens
/// (`n_batch`) into steps of 512 (`n_ubatch`) that follow each other through the nodes, and waits
/// for the batch before starting the next.
pub const PIPELINED_STEPS: u64 = 4;

/// How a model is split over the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Consecutive layers per node; a token passes through the nodes one after another.
    Pipeline,
    /// Every node holds 1/N of every matrix and computes every layer on its part.
    TensorParallel,
}

impl Split {
    /// `"pipeline"`, `"tensor parallel"`.
    pub fn describe(self) -> &'static str {
        match self {
            Split::Pipeline => "pipeline",
            Split::TensorParallel => "tensor parallel",
        }
    }
}

/// A link between the nodes, as published measurements describe it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// What `--link` takes (`tb5-rdma`).
    #[serde(default, skip_deserializing)]
    pub name: String,
    pub description: String,
    /// Bytes per second one transfer reaches, in GB/s (10⁹).
    pub bandwidth_gb_per_s: f64,
    pub bandwidth_source: String,
    /// Time from sending a small message to its arrival.
    pub latency_seconds: f64,
    pub latency_source: String,
}

impl Link {
    /// Seconds one transfer of `bytes` takes on the link.
    pub fn transfer_seconds(&self, bytes: u64) -> f64 {
        self.latency_seconds + bytes as f64 / (self.bandwidth_gb_per_s * 1e9)
    }
}

/// What an engine spends per transfer besides the link: it finishes the GPU's queued work, hands
/// the buffer over, waits for the answer and resumes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngineSync {
    pub seconds: f64,
    /// The rows it was calibrated on, or why it was not.
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncEntry {
    seconds: f64,
    calibrated_on: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncTable {
    default_seconds: f64,
    default_source: String,
    #[serde(default)]
    engine: BTreeMap<String, SyncEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    link: BTreeMap<String, Link>,
    sync: SyncTable,
}

/// The links and synchronisation times the planner knows.
#[derive(Debug)]
pub struct ClusterData {
    links: BTreeMap<String, Link>,
    sync: SyncTable,
}

impl ClusterData {
    /// The built-in data.
    pub fn builtin() -> Result<ClusterData> {
        ClusterData::from_toml(BUILTIN, "built-in cluster data")
    }

    /// Data in the format of `data/cluster.toml`; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<ClusterData> {
        let invalid = |reason: String| PlannerError::invalid(origin, reason);
        let file: ClusterFile = toml::from_str(text).map_err(|e| invalid(e.message().into()))?;
        let mut links = file.link;
        for (name, link) in &mut links {
            link.name.clone_from(name);
            for (field, value) in [
                ("bandwidth_gb_per_s", link.bandwidth_gb_per_s),
                ("latency_seconds", link.latency_seconds),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(invalid(format!("link {name:?}: {field} {value} is not positive")));
                }
            }
        }
        let times = std::iter::once(("default", file.sync.default_seconds))
            .chain(file.sync.engine.iter().map(|(name, entry)| (name.as_str(), entry.seconds)));
        for (name, seconds) in times {
            if !(seconds.is_finite() && seconds >= 0.0) {
                return Err(invalid(format!("sync of {name:?}: {seconds} is not a time")));
            }
        }
        Ok(ClusterData { links, sync: file.sync })
    }

    /// Every link's name.
    pub fn link_names(&self) -> Vec<&str> {
        self.links.keys().map(String::as_str).collect()
    }

    /// The link called `name` (case-insensitive).
    pub fn link(&self, name: &str) -> Result<Link> {
        let name = name.trim();
        self.links.values().find(|link| link.name.eq_ignore_ascii_case(name)).cloned().ok_or_else(
            || PlannerError::UnknownLink {
                name: name.to_owned(),
                known: self.link_names().join(", "),
            },
        )
    }

    /// What `engine` spends per transfer: its calibrated time, else the default.
    pub fn sync(&self, engine: &str) -> EngineSync {
        match self.sync.engine.get(engine) {
            Some(entry) => EngineSync {
                seconds: entry.seconds,
                source: format!("calibrated on {}", entry.calibrated_on),
            },
            None => EngineSync {
                seconds: self.sync.default_seconds,
                source: self.sync.default_source.clone(),
            },
        }
    }
}

/// The cluster asked for: how many identical machines, the link between them, and what the
/// engine spends per transfer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterSetup {
    pub nodes: u64,
    pub link: Link,
    pub sync: EngineSync,
}

impl ClusterSetup {
    /// Seconds on the link and in the engine of one transfer of `bytes`.
    fn transfer(&self, bytes: u64) -> (f64, f64) {
        (self.link.transfer_seconds(bytes), self.sync.seconds)
    }
}

/// One predicted rate of a cluster and where its time goes: `tokens` tokens in
/// `compute_seconds + link_seconds + sync_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClusterRate {
    /// Tokens per second, all sequences together.
    pub tokens_per_second: f64,
    /// The engine's single-machine range around it (`None` where nothing validates the engine);
    /// the cluster terms add their own error (docs/planner.md, "Clusters").
    pub range: Option<[f64; 2]>,
    pub tokens: u64,
    /// The nodes computing: the stages of a pipeline one after another, or one tensor-parallel
    /// node.
    pub compute_seconds: f64,
    /// Latency and transfer time on the link.
    pub link_seconds: f64,
    /// The engine's synchronisation time per transfer, all transfers together.
    pub sync_seconds: f64,
    /// Transfers: pipeline hops or all-reduces.
    pub transfers: u64,
}

impl ClusterRate {
    fn new(
        tokens: u64,
        compute_seconds: f64,
        transfers: u64,
        (link, sync): (f64, f64),
        range: Option<[f64; 2]>,
    ) -> ClusterRate {
        let (link_seconds, sync_seconds) = (transfers as f64 * link, transfers as f64 * sync);
        let seconds = compute_seconds + link_seconds + sync_seconds;
        let tokens_per_second = tokens as f64 / seconds.max(f64::MIN_POSITIVE);
        ClusterRate {
            tokens_per_second,
            range: range.map(|[low, high]| [tokens_per_second * low, tokens_per_second * high]),
            tokens,
            compute_seconds,
            link_seconds,
            sync_seconds,
            transfers,
        }
    }
}

/// Nodes that hold the same share of the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeGroup {
    /// How many nodes hold this share.
    pub count: u64,
    /// Layers each of them computes.
    pub layers: u64,
    /// Share of the weights each holds and reads.
    pub weight_share: f64,
    /// The share's memory against one node's budget.
    pub memory: MemoryPlan,
}

/// One way of splitting the model: each node's memory and the speeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StrategyPlan {
    pub split: Split,
    /// Nodes with the same share, the largest share first.
    pub nodes: Vec<NodeGroup>,
    /// The worst node's verdict.
    pub verdict: Verdict,
    /// One sequence, first generated token.
    pub decode_empty_context: ClusterRate,
    /// One sequence at the full context.
    pub decode_full_context: ClusterRate,
    /// `sequences_in_flight` sequences at the full context.
    pub aggregate_decode: ClusterRate,
    /// The request's sequences, at least one per node: what keeps every stage of a pipeline busy.
    pub sequences_in_flight: u64,
    /// A prompt of the full context.
    pub prefill: ClusterRate,
}

/// Everything `uma plan --nodes` says about one model on a cluster of one machine type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterPlan {
    pub setup: ClusterSetup,
    pub pipeline: StrategyPlan,
    pub tensor_parallel: StrategyPlan,
    /// The split asked for, else the faster for one sequence's decode at the full context.
    pub chosen: Split,
}

impl ClusterPlan {
    /// The plan of the chosen split.
    pub fn chosen_plan(&self) -> &StrategyPlan {
        match self.chosen {
            Split::Pipeline => &self.pipeline,
            Split::TensorParallel => &self.tensor_parallel,
        }
    }
}

/// Plans `model` split over `setup.nodes` machines like `machine`, run by `engine` (resolved for
/// `machine`), both ways; `split` chooses one, else the faster for one sequence's decode.
pub fn plan_cluster(
    model: &ModelSpec,
    machine: &Machine,
    engine: &Engine,
    request: &PlanRequest,
    setup: &ClusterSetup,
    split: Option<Split>,
) -> Result<ClusterPlan> {
    if setup.nodes == 0 || setup.nodes > model.num_hidden_layers {
        return Err(PlannerError::invalid(
            "number of nodes",
            format!(
                "{} is not between 1 and the model's {} layers (a pipeline gives each node one at least)",
                setup.nodes, model.num_hidden_layers
            ),
        ));
    }
    let budget = machine.budget_bytes();
    // Identical machines: layers in proportion to their budgets are layers in proportion to
    // their usable memory (the same headroom comes off each).
    let layers = split_layers(model.num_hidden_layers, &vec![budget; setup.nodes as usize]);
    let stages: Vec<ModelSpec> = layers.iter().map(|&l| layer_share(model, l)).collect();
    let shard = matrix_share(model, setup.nodes);
    let shards = vec![shard.clone(); setup.nodes as usize];
    let speeds = Speeds { model, engine, request, setup };
    let in_flight = request.num_sequences.max(setup.nodes);
    let pipeline = strategy(
        Split::Pipeline,
        node_groups(model, &stages, request, budget)?,
        request,
        in_flight,
        |sequences, position| speeds.pipeline_decode(&stages, sequences, position),
        speeds.pipeline_prefill(&stages),
    );
    let tensor_parallel = strategy(
        Split::TensorParallel,
        node_groups(model, &shards, request, budget)?,
        request,
        in_flight,
        |sequences, position| speeds.tensor_decode(&shard, sequences, position),
        speeds.tensor_prefill(&shard),
    );
    let chosen = split.unwrap_or(
        if tensor_parallel.decode_full_context.tokens_per_second
            > pipeline.decode_full_context.tokens_per_second
        {
            Split::TensorParallel
        } else {
            Split::Pipeline
        },
    );
    Ok(ClusterPlan { setup: setup.clone(), pipeline, tensor_parallel, chosen })
}

/// A split's plan: its nodes' memory, and `decode(sequences, position)` for one sequence with an
/// empty and a full context and for `in_flight` sequences.
fn strategy(
    split: Split,
    nodes: Vec<NodeGroup>,
    request: &PlanRequest,
    in_flight: u64,
    decode: impl Fn(u64, u64) -> ClusterRate,
    prefill: ClusterRate,
) -> StrategyPlan {
    StrategyPlan {
        split,
        verdict: worst_verdict(&nodes),
        nodes,
        decode_empty_context: decode(1, 0),
        decode_full_context: decode(1, request.context_length),
        aggregate_decode: decode(in_flight, request.context_length),
        sequences_in_flight: in_flight,
        prefill,
    }
}

/// Layers per node in proportion to each node's usable memory, the remainders to the largest
/// fractions (the first node on a tie): a node with twice the memory holds twice the layers.
fn split_layers(num_layers: u64, usable_bytes: &[u64]) -> Vec<u64> {
    let total: u128 = usable_bytes.iter().map(|&b| u128::from(b.max(1))).sum();
    let exact: Vec<(u64, u128)> = usable_bytes
        .iter()
        .map(|&b| {
            let scaled = u128::from(num_layers) * u128::from(b.max(1));
            ((scaled / total) as u64, scaled % total)
        })
        .collect();
    let mut layers: Vec<u64> = exact.iter().map(|&(whole, _)| whole).collect();
    let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
    by_remainder.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
    let missing = num_layers - layers.iter().sum::<u64>();
    for &node in by_remainder.iter().take(missing as usize) {
        layers[node] += 1;
    }
    layers
}

/// `value × numerator / denominator`, rounded up.
fn part(value: u64, numerator: u64, denominator: u64) -> u64 {
    (u128::from(value) * u128::from(numerator)).div_ceil(u128::from(denominator.max(1))) as u64
}

/// The `layers` consecutive layers a pipeline node holds: weights, parameters and sliding-window
/// layers in proportion (the embedding table and the output head are spread with them).
fn layer_share(model: &ModelSpec, layers: u64) -> ModelSpec {
    let of = |value: u64| part(value, layers, model.num_hidden_layers);
    ModelSpec {
        num_parameters: of(model.num_parameters),
        num_active_parameters: of(model.num_active_parameters),
        num_hidden_layers: layers,
        num_sliding_window_layers: of(model.num_sliding_window_layers).min(layers),
        file_weight_bytes: of(model.file_weight_bytes),
        resident_weight_bytes: of(model.resident_weight_bytes),
        weight_bytes_per_token: of(model.weight_bytes_per_token),
        ..model.clone()
    }
}

/// What one of `ways` tensor-parallel nodes holds: 1/`ways` of every matrix, of the attention
/// heads and of the KV heads (a KV head is repeated on every node when there are fewer of them
/// than nodes), every layer.
fn matrix_share(model: &ModelSpec, ways: u64) -> ModelSpec {
    let of = |value: u64| value.div_ceil(ways);
    ModelSpec {
        num_parameters: of(model.num_parameters),
        num_active_parameters: of(model.num_active_parameters),
        num_attention_heads: of(model.num_attention_heads),
        num_key_value_heads: of(model.num_key_value_heads),
        intermediate_size: of(model.intermediate_size),
        file_weight_bytes: of(model.file_weight_bytes),
        resident_weight_bytes: of(model.resident_weight_bytes),
        weight_bytes_per_token: of(model.weight_bytes_per_token),
        ..model.clone()
    }
}

/// Each distinct share's memory plan against one node's budget, the largest share first.
fn node_groups(
    model: &ModelSpec,
    shares: &[ModelSpec],
    request: &PlanRequest,
    budget_bytes: u64,
) -> Result<Vec<NodeGroup>> {
    let mut distinct: Vec<(&ModelSpec, NodeGroup)> = Vec::new();
    for share in shares {
        match distinct.iter_mut().find(|(held, _)| *held == share) {
            Some((_, group)) => group.count += 1,
            None => distinct.push((
                share,
                NodeGroup {
                    count: 1,
                    layers: share.num_hidden_layers,
                    weight_share: share.resident_weight_bytes as f64
                        / model.resident_weight_bytes.max(1) as f64,
                    memory: plan_memory(share, request, budget_bytes)?,
                },
            )),
        }
    }
    let mut groups: Vec<NodeGroup> = distinct.into_iter().map(|(_, group)| group).collect();
    groups.sort_by_key(|group| std::cmp::Reverse(group.memory.needed_bytes));
    Ok(groups)
}

fn worst_verdict(groups: &[NodeGroup]) -> Verdict {
    let rank = |verdict: Verdict| match verdict {
        Verdict::Fits => 0,
        Verdict::FitsWithoutHeadroom => 1,
        Verdict::DoesNotFit => 2,
    };
    groups.iter().map(|g| g.memory.verdict).max_by_key(|&v| rank(v)).unwrap_or(Verdict::Fits)
}

/// The speeds of one model on one cluster.
struct Speeds<'a> {
    model: &'a ModelSpec,
    engine: &'a Engine,
    request: &'a PlanRequest,
    setup: &'a ClusterSetup,
}

impl Speeds<'_> {
    fn kv(&self) -> KvCacheType {
        self.request.kv_cache_type
    }

    /// Bytes of `rows` hidden states on the wire.
    fn hidden_bytes(&self, rows: u64) -> u64 {
        rows * self.model.hidden_size * ACTIVATION_BYTES
    }

    /// Seconds `share` computes `sequences` tokens at `position`.
    fn decode_seconds(&self, share: &ModelSpec, sequences: u64, position: u64) -> f64 {
        let rate = decode(share, self.engine, sequences, position, self.kv());
        sequences as f64 / rate.tokens_per_second
    }

    /// Seconds `share` takes for the whole prompt.
    fn prefill_seconds(&self, share: &ModelSpec) -> f64 {
        let tokens = self.request.context_length;
        let rate = prefill(share, self.engine, tokens, self.request.max_num_batched_tokens);
        tokens as f64 / rate.tokens_per_second
    }

    /// `sequences` sequences at `position` through the stages: in groups, one group per stage at
    /// most, each group's token passing every stage and the N − 1 links between them. A cycle
    /// lasts the sum of the stages and hops, or the busiest stage's work for every group.
    fn pipeline_decode(&self, stages: &[ModelSpec], sequences: u64, position: u64) -> ClusterRate {
        let groups = sequences.min(stages.len() as u64);
        let per_group = sequences.div_ceil(groups);
        let stage_seconds: Vec<f64> =
            stages.iter().map(|s| self.decode_seconds(s, per_group, position)).collect();
        let hops = stages.len() as u64 - 1;
        let transfer = self.setup.transfer(self.hidden_bytes(per_group));
        let busiest = groups as f64 * stage_seconds.iter().copied().fold(0.0, f64::max);
        let through = stage_seconds.iter().sum::<f64>();
        let hop_seconds = hops as f64 * (transfer.0 + transfer.1);
        let compute = through.max(busiest - hop_seconds);
        ClusterRate::new(sequences, compute, hops, transfer, self.engine.decode_range)
    }

    /// A prompt through the stages in steps; up to [`PIPELINED_STEPS`] steps follow each other
    /// through the nodes, so a group of m steps takes the stages' sum plus m − 1 times the
    /// slowest stage. Every step crosses the N − 1 links.
    fn pipeline_prefill(&self, stages: &[ModelSpec]) -> ClusterRate {
        let (tokens, step) = (self.request.context_length, self.request.max_num_batched_tokens);
        let steps = tokens.div_ceil(step);
        let per_step: Vec<f64> =
            stages.iter().map(|s| self.prefill_seconds(s) / steps as f64).collect();
        let slowest = per_step.iter().copied().fold(0.0, f64::max);
        let through = per_step.iter().sum::<f64>();
        let (full_groups, last) = (steps / PIPELINED_STEPS, steps % PIPELINED_STEPS);
        let group = |m: u64| through + (m - 1) as f64 * slowest;
        let mut compute = full_groups as f64 * group(PIPELINED_STEPS);
        if last > 0 {
            compute += group(last);
        }
        let hops = steps * (stages.len() as u64 - 1);
        let transfer = self.setup.transfer(self.hidden_bytes(tokens.min(step)));
        ClusterRate::new(tokens, compute, hops, transfer, self.engine.prefill_range)
    }

    /// `sequences` sequences at `position` on every node at once, each reading its part of the
    /// weights, then two all-reduces of their hidden states per layer.
    fn tensor_decode(&self, shard: &ModelSpec, sequences: u64, position: u64) -> ClusterRate {
        let compute = self.decode_seconds(shard, sequences, position);
        let transfer = self.setup.transfer(self.hidden_bytes(sequences));
        ClusterRate::new(
            sequences,
            compute,
            self.all_reduces(1),
            transfer,
            self.engine.decode_range,
        )
    }

    /// A prompt on every node at once, two all-reduces of a step's hidden states per layer and
    /// step.
    fn tensor_prefill(&self, shard: &ModelSpec) -> ClusterRate {
        let (tokens, step) = (self.request.context_length, self.request.max_num_batched_tokens);
        let compute = self.prefill_seconds(shard);
        let transfer = self.setup.transfer(self.hidden_bytes(tokens.min(step)));
        let all_reduces = self.all_reduces(tokens.div_ceil(step));
        ClusterRate::new(tokens, compute, all_reduces, transfer, self.engine.prefill_range)
    }

    /// All-reduces of `steps` steps: none on one node.
    fn all_reduces(&self, steps: u64) -> u64 {
        if self.setup.nodes > 1 {
            steps * ALL_REDUCES_PER_LAYER * self.model.num_hidden_layers
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::tests::machine;
    use crate::memory_plan::tests::spec;
    use crate::speed_estimate::SpeedEstimate;
    use crate::speed_model::tests::TEST_MODEL;
    use crate::speed_model::SpeedModel;

    /// `spec()` (1 GB of weights, 10 layers, hidden 100) on `machine()` (400 GB/s) with the
    /// engine of `kind` (`None`: the roofline, no fixed costs; `gpu`: 0.1 ms per layer).
    fn engine(kind: Option<&str>) -> (Machine, Engine) {
        let machine = Machine { kind: kind.map(str::to_owned), ..machine() };
        let engine = SpeedModel::from_toml(TEST_MODEL, "test")
            .expect("valid")
            .engine(None, &machine)
            .expect("runs there");
        (machine, engine)
    }

    fn link(latency_seconds: f64, bandwidth_gb_per_s: f64) -> Link {
        Link {
            name: "test".into(),
            description: "a test link".into(),
            bandwidth_gb_per_s,
            bandwidth_source: String::new(),
            latency_seconds,
            latency_source: String::new(),
        }
    }

    fn setup(nodes: u64, link: Link, sync_seconds: f64) -> ClusterSetup {
        ClusterSetup {
            nodes,
            link,
            sync: EngineSync { seconds: sync_seconds, source: String::new() },
        }
    }

    fn plan(kind: Option<&str>, setup: &ClusterSetup, request: &PlanRequest) -> ClusterPlan {
        let (machine, engine) = engine(kind);
        plan_cluster(&spec(), &machine, &engine, request, setup, None).expect("plans")
    }

    fn close(a: f64, b: f64) -> bool {
        (a / b - 1.0).abs() < 1e-9
    }

    #[test]
    fn layers_split_in_proportion_to_usable_memory() {
        assert_eq!(split_layers(8, &[300, 100]), [6, 2]);
        assert_eq!(split_layers(94, &[5; 4]), [24, 24, 23, 23], "remainders to the first nodes");
        assert_eq!(split_layers(10, &[1, 2, 2]), [2, 4, 4]);
        assert_eq!(split_layers(7, &[1]), [7]);
        // The shares carry their part of the weights.
        let share = layer_share(&spec(), 4);
        assert_eq!(share.num_hidden_layers, 4);
        assert_eq!(share.weight_bytes_per_token, 400_000_000);
        assert_eq!(share.resident_weight_bytes, 400_000_000);
    }

    #[test]
    fn one_node_is_the_plain_plan() {
        let request =
            PlanRequest { context_length: 2048, num_sequences: 2, ..PlanRequest::default() };
        for kind in [None, Some("gpu")] {
            let (machine, engine) = engine(kind);
            let plain = SpeedEstimate::new(&spec(), &machine, &engine, &request);
            let memory = plan_memory(&spec(), &request, machine.budget_bytes()).expect("plans");
            let cluster = plan(kind, &setup(1, link(1e-3, 1.0), 1e-3), &request);
            for strategy in [&cluster.pipeline, &cluster.tensor_parallel] {
                assert!(close(
                    strategy.decode_empty_context.tokens_per_second,
                    plain.decode_empty_context.tokens_per_second
                ));
                assert!(close(
                    strategy.decode_full_context.tokens_per_second,
                    plain.decode_full_context.tokens_per_second
                ));
                assert!(close(strategy.prefill.tokens_per_second, plain.prefill.tokens_per_second));
                assert_eq!(strategy.aggregate_decode.transfers, 0, "{kind:?}");
                assert_eq!(strategy.sequences_in_flight, 2);
                assert!(close(
                    strategy.aggregate_decode.tokens_per_second,
                    plain.aggregate_decode.tokens_per_second
                ));
                assert_eq!(strategy.nodes.len(), 1);
                assert_eq!(strategy.nodes[0].memory, memory);
                assert_eq!(strategy.verdict, memory.verdict);
            }
        }
    }

    #[test]
    fn tensor_parallel_reads_one_nth_of_the_weights() {
        let shard = matrix_share(&spec(), 4);
        assert_eq!(shard.weight_bytes_per_token, 250_000_000);
        assert_eq!(shard.resident_weight_bytes, 250_000_000);
        assert_eq!(
            (shard.num_attention_heads, shard.num_key_value_heads),
            (1, 1),
            "1 KV head: repeated"
        );
        assert_eq!(shard.num_hidden_layers, 10, "every node computes every layer");
        // The roofline reads 1 GB at 200 GB/s in 5 ms; a quarter in 1.25 ms, then 20 all-reduces
        // of 200 bytes at 10 µs + 200 B ÷ 1 GB/s, and 5 µs of synchronisation each.
        let request = PlanRequest { context_length: 16, ..PlanRequest::default() };
        let cluster = plan(None, &setup(4, link(10e-6, 1.0), 5e-6), &request);
        let decode = cluster.tensor_parallel.decode_empty_context;
        assert_eq!(decode.transfers, 20);
        assert!(close(decode.compute_seconds, 1.25e-3), "{decode:?}");
        assert!(close(decode.link_seconds, 20.0 * (10e-6 + 200e-9)));
        assert!(close(decode.sync_seconds, 20.0 * 5e-6));
        assert!(close(decode.tokens_per_second, 1.0 / (1.25e-3 + 20.0 * 15.2e-6)));
        let weight_share = cluster.tensor_parallel.nodes[0].weight_share;
        assert!((weight_share - 0.25).abs() < 1e-9 && cluster.tensor_parallel.nodes[0].count == 4);
    }

    #[test]
    fn a_pipeline_adds_hops_to_one_machine_and_fills_with_a_sequence_per_node() {
        let request = PlanRequest { context_length: 16, ..PlanRequest::default() };
        let single = plan(None, &setup(1, link(1e-4, 1.0), 0.0), &request);
        let four = plan(None, &setup(4, link(1e-4, 1.0), 2e-4), &request);
        let one = single.pipeline.decode_empty_context.tokens_per_second;
        let hops = 3.0 * (1e-4 + 200e-9 + 2e-4);
        let decode = four.pipeline.decode_empty_context;
        assert_eq!((decode.transfers, four.pipeline.nodes.len()), (3, 2), "3 + 3 + 2 + 2 layers");
        assert!(close(decode.tokens_per_second, 1.0 / (1.0 / one + hops)), "{decode:?}");
        // Four sequences in flight, one per stage: the 3-layer stages are the busiest, each
        // computes a token of every sequence per cycle.
        let aggregate = four.pipeline.aggregate_decode;
        assert_eq!(four.pipeline.sequences_in_flight, 4);
        let stage = 0.3 / single.pipeline.decode_full_context.tokens_per_second;
        assert!(close(aggregate.tokens_per_second, 4.0 / (4.0 * stage)), "{aggregate:?}");
        // Two even stages with two sequences: twice one sequence's rate.
        let two = plan(None, &setup(2, link(1e-4, 1.0), 2e-4), &request).pipeline;
        let doubled = 2.0 * two.decode_full_context.tokens_per_second;
        assert!(close(two.aggregate_decode.tokens_per_second, doubled), "{two:?}");
        // A prompt of one step is not sped up; four steps overlap in the stages.
        let one_step = plan(
            None,
            &setup(4, link(0.0, 1e9), 0.0),
            &PlanRequest { context_length: 512, ..request },
        );
        let four_steps = plan(
            None,
            &setup(4, link(0.0, 1e9), 0.0),
            &PlanRequest { context_length: 2048, ..request },
        );
        let alone = |context_length| {
            plan(None, &setup(1, link(0.0, 1e9), 0.0), &PlanRequest { context_length, ..request })
                .pipeline
                .prefill
                .tokens_per_second
        };
        assert!(close(one_step.pipeline.prefill.tokens_per_second, alone(512)));
        let speedup = four_steps.pipeline.prefill.tokens_per_second / alone(2048);
        assert!((speedup - 4.0 / (1.0 + 3.0 * 0.3)).abs() < 0.1, "{speedup}");
    }

    #[test]
    fn link_costs_only_slow_the_cluster_down() {
        let request = PlanRequest { context_length: 4096, ..PlanRequest::default() };
        let rate = |latency: f64, bandwidth: f64, sync: f64| {
            let cluster = plan(Some("gpu"), &setup(4, link(latency, bandwidth), sync), &request);
            [
                cluster.pipeline.decode_full_context.tokens_per_second,
                cluster.tensor_parallel.decode_full_context.tokens_per_second,
                cluster.pipeline.prefill.tokens_per_second,
                cluster.tensor_parallel.prefill.tokens_per_second,
            ]
        };
        let slower = |a: [f64; 4], b: [f64; 4]| a.iter().zip(&b).all(|(a, b)| a > b);
        assert!(slower(rate(1e-6, 10.0, 0.0), rate(1e-4, 10.0, 0.0)), "latency");
        assert!(slower(rate(1e-6, 10.0, 0.0), rate(1e-6, 1.0, 0.0)), "bandwidth");
        assert!(slower(rate(1e-6, 10.0, 0.0), rate(1e-6, 10.0, 1e-4)), "synchronisation");
        let bytes = [0, 1, 1 << 10, 1 << 20, 1 << 30];
        let times: Vec<f64> = bytes.iter().map(|&b| link(4e-6, 9.4).transfer_seconds(b)).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn the_faster_split_is_chosen_unless_one_is_asked_for() {
        let request = PlanRequest { context_length: 16, ..PlanRequest::default() };
        // Over a fast link tensor parallel reads a quarter per node; over a slow one its 20
        // all-reduces cost more than the pipeline's 3 hops.
        assert_eq!(
            plan(None, &setup(4, link(1e-6, 10.0), 0.0), &request).chosen,
            Split::TensorParallel
        );
        assert_eq!(plan(None, &setup(4, link(1e-3, 1.0), 0.0), &request).chosen, Split::Pipeline);
        let (machine, engine) = engine(None);
        let asked = plan_cluster(
            &spec(),
            &machine,
            &engine,
            &request,
            &setup(4, link(1e-3, 1.0), 0.0),
            Some(Split::TensorParallel),
        )
        .expect("plans");
        assert_eq!(asked.chosen_plan().split, Split::TensorParallel);
        let error = plan_cluster(
            &spec(),
            &machine,
            &engine,
            &request,
            &setup(11, link(1e-3, 1.0), 0.0),
            None,
        )
        .expect_err("10 layers")
        .to_string();
        assert!(error.contains("11 is not between 1 and the model's 10 layers"), "{error}");
    }

    #[test]
    fn each_node_holds_its_share_against_its_own_memory() {
        // 30 M positions of 2,000 bytes: 60 GB of KV cache do not fit one 64 GiB machine, a
        // quarter of the layers' does.
        let request = PlanRequest { context_length: 30_000_000, ..PlanRequest::default() };
        let cluster = plan(None, &setup(4, link(1e-6, 10.0), 0.0), &request);
        let single = plan(None, &setup(1, link(1e-6, 10.0), 0.0), &request);
        assert_eq!(single.pipeline.verdict, Verdict::DoesNotFit);
        let first = &cluster.pipeline.nodes[0];
        assert_eq!((first.layers, first.count), (3, 2));
        assert!(
            first.memory.breakdown.kv_cache_bytes
                < single.pipeline.nodes[0].memory.breakdown.kv_cache_bytes / 3
        );
        assert_eq!(cluster.pipeline.verdict, first.memory.verdict);
        assert_eq!(
            cluster.tensor_parallel.nodes[0].memory.breakdown.kv_cache_bytes,
            single.pipeline.nodes[0].memory.breakdown.kv_cache_bytes,
            "one KV head, repeated on every node"
        );
    }

    #[test]
    fn the_builtin_links_have_sources() {
        let data = ClusterData::builtin().expect("the built-in cluster data parses");
        for name in ["tb5-rdma", "tb5-tcp", "10gbe", "pcie"] {
            let link = data.link(name).expect(name);
            assert!(
                link.bandwidth_source.contains("http") || link.bandwidth_source.contains("IEEE"),
                "{name}"
            );
            assert!(link.latency_source.len() > 20, "{name}");
        }
        assert!(data.link("TB5-RDMA").expect("case-insensitive").latency_seconds < 1e-5);
        let error = data.link("wifi").expect_err("unknown").to_string();
        assert!(
            error.contains("unknown link \"wifi\"; known links: 10gbe, pcie, tb5-rdma, tb5-tcp"),
            "{error}"
        );
        assert!(data.sync("mlx").source.starts_with("calibrated on"));
        assert!(data.sync("llama.cpp-metal").seconds > 0.0);
        let bad = BUILTIN.replacen("latency_seconds = 4.15e-6", "latency_seconds = -1.0", 1);
        let error = ClusterData::from_toml(&bad, "mine.toml").expect_err("negative").to_string();
        assert!(error.contains("mine.toml") && error.contains("not positive"), "{error}");
    }
}
