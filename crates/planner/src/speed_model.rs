//! Engines and their parameters: how close each inference engine gets to a machine's peak
//! bandwidth and compute, and what it spends besides (a fixed time per layer and step). The
//! parameters are data (`data/speed_model.toml`), fitted to published measurements by
//! `scripts/planner/fit-speed-model.py`; the formulas that use them are in
//! [`crate::SpeedEstimate`] (and, for the fit, in `scripts/planner/published.py`: the two must
//! agree, which `scripts/planner/validate-published.py` checks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{PlannerError, Result};
use crate::machine::{ComputeFigure, Machine};
use crate::model_spec::ModelSpec;

/// The built-in speed model, compiled in.
const BUILTIN: &str = include_str!("../data/speed_model.toml");

/// The engine of a machine without a kind, and of any machine on request: the machine's own
/// efficiencies, no fixed costs.
pub const ROOFLINE_ENGINE: &str = "roofline";

/// How an engine's kernels treat a model's weights: the speed model has one efficiency per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantClass {
    /// 12 bits per weight or more (F16, BF16, F32).
    F16,
    /// 7 to 12 bits (Q8_0, MLX 8-bit).
    Q8,
    /// Below 7 bits in simple blocks (Q4_0, Q5_0, MXFP4, MLX 4- and 6-bit).
    Q4,
    /// llama.cpp's k-quants and i-quants (Q4_K_M, Q6_K, IQ4_XS, ...).
    K,
}

impl QuantClass {
    /// The class of `model`: `K` when its largest tensor type (or its described type) is a
    /// k-quant or i-quant, else by its bits per weight.
    pub fn of(model: &ModelSpec) -> QuantClass {
        let first = model.quantization.split([' ', ',']).next().unwrap_or("").to_ascii_uppercase();
        if first.starts_with("IQ") || first.contains("_K") {
            return QuantClass::K;
        }
        let bits = 8.0 * model.file_weight_bytes as f64 / model.num_parameters.max(1) as f64;
        if bits >= 12.0 {
            QuantClass::F16
        } else if bits >= 7.0 {
            QuantClass::Q8
        } else {
            QuantClass::Q4
        }
    }
}

/// One number per quantization class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerQuantClass {
    pub f16: f64,
    pub q8: f64,
    pub q4: f64,
    pub k: f64,
}

impl PerQuantClass {
    fn all(value: f64) -> PerQuantClass {
        PerQuantClass { f16: value, q8: value, q4: value, k: value }
    }

    /// The value of `class`.
    pub fn get(&self, class: QuantClass) -> f64 {
        match class {
            QuantClass::F16 => self.f16,
            QuantClass::Q8 => self.q8,
            QuantClass::Q4 => self.q4,
            QuantClass::K => self.k,
        }
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> PerQuantClass {
        PerQuantClass { f16: f(self.f16), q8: f(self.q8), q4: f(self.q4), k: f(self.k) }
    }

    fn values(&self) -> [f64; 4] {
        [self.f16, self.q8, self.q4, self.k]
    }
}

/// An engine as the data describes it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineEntry {
    description: String,
    /// Machine kinds it runs on; `"*"`: every machine.
    runs_on: Vec<String>,
    /// The machine's own `bandwidth_efficiency` and `compute_efficiency`, no fixed costs (the
    /// parameters below are absent).
    #[serde(default)]
    from_machine: bool,
    compute: Option<ComputeFigure>,
    weight_efficiency: Option<PerQuantClass>,
    kv_efficiency: Option<f64>,
    layer_seconds: Option<f64>,
    compute_efficiency: Option<PerQuantClass>,
    attention_efficiency: Option<f64>,
    prefill_layer_seconds: Option<f64>,
    matrix_half_width: Option<f64>,
    matrix_half_rows: Option<f64>,
    #[serde(default)]
    decode_range: Option<[f64; 2]>,
    #[serde(default)]
    prefill_range: Option<[f64; 2]>,
}

/// Factors on the efficiencies of every engine on one kind of machine, and on its fixed time per
/// layer of a decode step (an Ultra's two dies, a data-centre GPU's many SMs: each kernel takes
/// longer to launch and synchronise).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindFactors {
    bandwidth_factor: f64,
    compute_factor: f64,
    #[serde(default = "one")]
    layer_seconds_factor: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeedModelFile {
    /// Machine kind → the engine planned when none is asked for.
    default_engine: BTreeMap<String, String>,
    engine: BTreeMap<String, EngineEntry>,
    #[serde(default)]
    kind: BTreeMap<String, KindFactors>,
    /// Engine → older build (`2023`, `2024`) → factors on the current build's parameters, fitted
    /// with them on the published measurements of those builds. Checked, not used: the planner
    /// predicts the current build; `scripts/planner/` compares old measurements with them.
    #[serde(default)]
    build: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
}

/// The parameters an older build's factors may scale.
const BUILD_FACTORS: [&str; 5] = [
    "layer_seconds",
    "compute_efficiency",
    "attention_efficiency",
    "prefill_layer_seconds",
    "kv_efficiency",
];

/// Every engine the planner knows, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeedModel {
    default_engine: BTreeMap<String, String>,
    engines: BTreeMap<String, EngineEntry>,
    kinds: BTreeMap<String, KindFactors>,
}

impl SpeedModel {
    /// The built-in speed model.
    pub fn builtin() -> Result<SpeedModel> {
        SpeedModel::from_toml(BUILTIN, "built-in speed model")
    }

    /// A speed model in the format of `data/speed_model.toml`; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<SpeedModel> {
        let invalid =
            |reason: String| PlannerError::InvalidSpeedModel { origin: origin.to_owned(), reason };
        let file: SpeedModelFile = toml::from_str(text).map_err(|e| invalid(e.message().into()))?;
        for (name, entry) in &file.engine {
            check_entry(name, entry).map_err(invalid)?;
        }
        for (kind, factors) in &file.kind {
            for (field, value) in [
                ("bandwidth_factor", factors.bandwidth_factor),
                ("compute_factor", factors.compute_factor),
                ("layer_seconds_factor", factors.layer_seconds_factor),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(invalid(format!("kind {kind:?}: {field} {value} is not positive")));
                }
            }
        }
        for (engine, builds) in &file.build {
            if !file.engine.contains_key(engine) {
                return Err(invalid(format!("build factors of unknown engine {engine:?}")));
            }
            for (build, factors) in builds {
                for (field, value) in factors {
                    if !BUILD_FACTORS.contains(&field.as_str()) {
                        return Err(invalid(format!(
                            "{engine:?} build {build:?}: unknown {field:?}"
                        )));
                    }
                    if !(value.is_finite() && *value > 0.0) {
                        return Err(invalid(format!(
                            "{engine:?} build {build:?}: {field} {value} is not positive"
                        )));
                    }
                }
            }
        }
        for (kind, engine) in &file.default_engine {
            match file.engine.get(engine) {
                Some(entry) if runs_on(entry, kind) => {}
                _ => {
                    return Err(invalid(format!(
                        "default engine {engine:?} of {kind:?} does not run on it"
                    )))
                }
            }
        }
        if !file.engine.contains_key(ROOFLINE_ENGINE) {
            return Err(invalid(format!("no {ROOFLINE_ENGINE:?} engine")));
        }
        Ok(SpeedModel {
            default_engine: file.default_engine,
            engines: file.engine,
            kinds: file.kind,
        })
    }

    /// Every engine's name.
    pub fn engine_names(&self) -> Vec<&str> {
        self.engines.keys().map(String::as_str).collect()
    }

    /// The engines that run on `machine`: its default first, `roofline` last.
    pub fn engines_for(&self, machine: &Machine) -> Vec<&str> {
        self.engines_for_kind(machine.kind.as_deref())
    }

    /// The engines that run on machines of `kind`: its default first, `roofline` last.
    pub fn engines_for_kind(&self, kind: Option<&str>) -> Vec<&str> {
        let default = self.default_engine_for_kind(kind);
        let mut names = vec![default];
        for (name, entry) in &self.engines {
            let fits = kind.is_some_and(|kind| runs_on(entry, kind))
                || entry.runs_on.iter().any(|k| k == "*");
            if fits && name != default && name != ROOFLINE_ENGINE {
                names.push(name);
            }
        }
        if default != ROOFLINE_ENGINE {
            names.push(ROOFLINE_ENGINE);
        }
        names
    }

    /// The engine planned on `machine` when none is asked for: its kind's default, else
    /// `roofline`.
    pub fn default_engine_name(&self, machine: &Machine) -> &str {
        self.default_engine_for_kind(machine.kind.as_deref())
    }

    fn default_engine_for_kind(&self, kind: Option<&str>) -> &str {
        kind.and_then(|kind| self.default_engine.get(kind)).map_or(ROOFLINE_ENGINE, String::as_str)
    }

    /// Engine `name` (the machine's default when `None`) with its parameters on `machine`.
    pub fn engine(&self, name: Option<&str>, machine: &Machine) -> Result<Engine> {
        let name = name.map_or_else(|| self.default_engine_name(machine), str::trim);
        let (name, entry) =
            self.engines.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).ok_or_else(
                || PlannerError::UnknownEngine {
                    name: name.to_owned(),
                    known: self.engine_names().join(", "),
                },
            )?;
        if !self.engines_for(machine).contains(&name.as_str()) {
            return Err(PlannerError::EngineNotForMachine {
                engine: name.clone(),
                machine: machine.name.clone(),
                kind: machine.kind.clone().unwrap_or_else(|| "no kind".into()),
                engines: self.engines_for(machine).join(", "),
            });
        }
        Ok(self.resolve(name, entry, machine))
    }

    fn resolve(&self, name: &str, entry: &EngineEntry, machine: &Machine) -> Engine {
        let ranges = (entry.decode_range, entry.prefill_range);
        if entry.from_machine {
            let compute =
                if machine.int8_tops.is_some() { ComputeFigure::Int8 } else { ComputeFigure::F16 };
            return Engine {
                name: name.to_owned(),
                description: entry.description.clone(),
                compute,
                peak_bandwidth: machine.bandwidth_gb_per_s * 1e9,
                peak_compute: machine.peak_compute(compute),
                weight_efficiency: PerQuantClass::all(machine.bandwidth_efficiency),
                kv_efficiency: machine.bandwidth_efficiency,
                layer_seconds: 0.0,
                compute_efficiency: PerQuantClass::all(machine.compute_efficiency),
                attention_efficiency: machine.compute_efficiency,
                prefill_layer_seconds: 0.0,
                matrix_half_width: 0.0,
                matrix_half_rows: 0.0,
                decode_range: ranges.0,
                prefill_range: ranges.1,
            };
        }
        // check_entry made sure every parameter is there
        let factors = machine.kind.as_ref().and_then(|kind| self.kinds.get(kind));
        let (bandwidth, compute_factor, layer_factor) = factors.map_or((1.0, 1.0, 1.0), |f| {
            (f.bandwidth_factor, f.compute_factor, f.layer_seconds_factor)
        });
        let figure = entry.compute.unwrap_or(ComputeFigure::F16);
        let fraction = |value: f64, factor: f64| (value * factor).min(1.0);
        Engine {
            name: name.to_owned(),
            description: entry.description.clone(),
            compute: figure,
            peak_bandwidth: machine.bandwidth_gb_per_s * 1e9,
            peak_compute: machine.peak_compute(figure),
            weight_efficiency: entry
                .weight_efficiency
                .unwrap_or(PerQuantClass::all(1.0))
                .map(|v| fraction(v, bandwidth)),
            kv_efficiency: fraction(entry.kv_efficiency.unwrap_or(1.0), bandwidth),
            layer_seconds: entry.layer_seconds.unwrap_or(0.0) * layer_factor,
            compute_efficiency: entry
                .compute_efficiency
                .unwrap_or(PerQuantClass::all(1.0))
                .map(|v| fraction(v, compute_factor)),
            attention_efficiency: fraction(
                entry.attention_efficiency.unwrap_or(1.0),
                compute_factor,
            ),
            prefill_layer_seconds: entry.prefill_layer_seconds.unwrap_or(0.0),
            matrix_half_width: entry.matrix_half_width.unwrap_or(0.0),
            matrix_half_rows: entry.matrix_half_rows.unwrap_or(0.0),
            decode_range: ranges.0,
            prefill_range: ranges.1,
        }
    }
}

fn runs_on(entry: &EngineEntry, kind: &str) -> bool {
    entry.runs_on.iter().any(|k| k == "*" || k == kind)
}

/// Every parameter of a fitted engine is there and in range.
fn check_entry(name: &str, entry: &EngineEntry) -> std::result::Result<(), String> {
    let fitted = [
        entry.weight_efficiency.map(|p| p.values().to_vec()),
        entry.kv_efficiency.map(|v| vec![v]),
        entry.compute_efficiency.map(|p| p.values().to_vec()),
        entry.attention_efficiency.map(|v| vec![v]),
    ];
    let times = [
        entry.layer_seconds,
        entry.prefill_layer_seconds,
        entry.matrix_half_width,
        entry.matrix_half_rows,
    ];
    let missing = entry.compute.is_none()
        || fitted.iter().any(Option::is_none)
        || times.iter().any(Option::is_none);
    if !entry.from_machine && missing {
        return Err(format!("engine {name:?}: give every parameter, or from_machine = true"));
    }
    for value in fitted.iter().flatten().flatten() {
        if !(*value > 0.0 && *value <= 1.0) {
            return Err(format!("engine {name:?}: efficiency {value} is outside (0, 1]"));
        }
    }
    for value in times.iter().flatten() {
        if !(value.is_finite() && *value >= 0.0) {
            return Err(format!("engine {name:?}: {value} is not a time or width"));
        }
    }
    for [low, high] in [entry.decode_range, entry.prefill_range].into_iter().flatten() {
        if !(low > 0.0 && low <= 1.0 && high >= 1.0 && high.is_finite()) {
            return Err(format!("engine {name:?}: range [{low}, {high}] does not contain 1"));
        }
    }
    Ok(())
}

/// An engine's parameters on one machine: efficiencies with the machine kind's factors applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Engine {
    /// `llama.cpp-metal`, `llama.cpp-cuda`, `llama.cpp-vulkan`, `mlx`, `uma-cpu`, `roofline`.
    pub name: String,
    pub description: String,
    /// The machine's peak the compute efficiencies are shares of.
    pub compute: ComputeFigure,
    /// Peak bandwidth in bytes per second and peak compute in operations per second.
    pub peak_bandwidth: f64,
    pub peak_compute: f64,
    /// Share of the peak bandwidth reading weights, per quantization class.
    pub weight_efficiency: PerQuantClass,
    /// Share of the peak bandwidth reading the KV cache in decode's attention.
    pub kv_efficiency: f64,
    /// Fixed time per layer of a decode step (kernel launches, synchronisation), seconds, with
    /// the machine kind's factor.
    pub layer_seconds: f64,
    /// Share of the peak compute of large matrix products, per quantization class.
    pub compute_efficiency: PerQuantClass,
    /// Share of the peak compute of attention (prefill, and decode of large batches).
    pub attention_efficiency: f64,
    /// Fixed time per layer of a prefill step, seconds.
    pub prefill_layer_seconds: f64,
    /// A model of hidden size h gets h / (h + this) of the matrix efficiency.
    pub matrix_half_width: f64,
    /// A step whose matrix products have r rows (tokens per expert) gets r / (r + this) of it.
    pub matrix_half_rows: f64,
    /// Measured / predicted: the 10th and 90th percentile over published rows of machine
    /// families the parameters were not fitted on; `None` where nothing validates it.
    pub decode_range: Option<[f64; 2]>,
    pub prefill_range: Option<[f64; 2]>,
}

impl Engine {
    /// Share of the peak compute of matrix products of `model` with `rows` rows (`None`: decode,
    /// whose vector products wait on memory, which the bandwidth term counts).
    pub fn matrix_efficiency(&self, model: &ModelSpec, rows: Option<f64>) -> f64 {
        let hidden = model.hidden_size as f64;
        let share = self.compute_efficiency.get(QuantClass::of(model)) * hidden
            / (hidden + self.matrix_half_width);
        match rows {
            Some(rows) => share * rows / (rows + self.matrix_half_rows),
            None => share,
        }
    }
}

/// Rows of the matrix products of a step of `tokens` tokens: each expert of a mixture of
/// experts multiplies only the tokens routed to it.
pub fn matrix_rows(model: &ModelSpec, tokens: u64) -> f64 {
    match (model.num_experts, model.num_experts_per_token) {
        (Some(experts), Some(used)) if experts > 0 => tokens as f64 * used as f64 / experts as f64,
        _ => tokens as f64,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::machine::tests::machine;
    use crate::memory_plan::tests::spec;

    /// A speed model with one fitted engine for kind `gpu` (factors on kind `gpu-ultra`).
    pub(crate) const TEST_MODEL: &str = r#"
        [default_engine]
        gpu = "fast"
        gpu-ultra = "fast"
        cpu = "uma-cpu"

        [engine.fast]
        description = "a fitted engine"
        runs_on = ["gpu", "gpu-ultra"]
        compute = "f16"
        weight_efficiency = { f16 = 0.9, q8 = 0.8, q4 = 0.7, k = 0.6 }
        kv_efficiency = 0.5
        layer_seconds = 1e-4
        compute_efficiency = { f16 = 0.8, q8 = 0.6, q4 = 0.5, k = 0.4 }
        attention_efficiency = 0.25
        prefill_layer_seconds = 1e-3
        matrix_half_width = 100.0
        matrix_half_rows = 64.0
        decode_range = [0.9, 1.2]
        prefill_range = [0.7, 1.4]

        [engine.slow]
        description = "another engine for the same machines"
        runs_on = ["gpu"]
        from_machine = true

        [engine."uma-cpu"]
        description = "uma on the CPU"
        runs_on = ["cpu"]
        from_machine = true
        decode_range = [0.88, 1.06]

        [engine.roofline]
        description = "the machine's own efficiencies"
        runs_on = ["*"]
        from_machine = true

        [kind.gpu-ultra]
        bandwidth_factor = 0.5
        compute_factor = 2.0
        layer_seconds_factor = 1.5

        [build.fast."2024"]
        layer_seconds = 1.5
        kv_efficiency = 0.5
    "#;

    fn kind(kind: &str) -> Machine {
        Machine { kind: Some(kind.into()), ..machine() }
    }

    #[test]
    fn the_builtin_model_parses_and_covers_every_catalogue_kind() {
        let model = SpeedModel::builtin().expect("the built-in speed model parses");
        let catalogue = crate::MachineCatalogue::builtin().expect("parses");
        for machine in catalogue.machines() {
            let engine = model.engine(None, machine).expect("a default engine");
            assert_ne!(engine.name, ROOFLINE_ENGINE, "{} has a calibrated engine", machine.name);
            assert!(
                engine.decode_range.is_some() && engine.prefill_range.is_some(),
                "{}",
                machine.name
            );
        }
        for name in ["llama.cpp-metal", "llama.cpp-cuda", "llama.cpp-vulkan", "mlx", "uma-cpu"] {
            assert!(model.engine_names().contains(&name), "{name}");
        }
    }

    #[test]
    fn engines_follow_the_machine_kind() {
        let model = SpeedModel::from_toml(TEST_MODEL, "test").expect("valid");
        assert_eq!(model.engines_for(&kind("gpu")), ["fast", "slow", "roofline"]);
        assert_eq!(model.engines_for(&kind("gpu-ultra")), ["fast", "roofline"]);
        assert_eq!(model.engines_for(&kind("cpu")), ["uma-cpu", "roofline"]);
        assert_eq!(model.engines_for(&machine()), ["roofline"], "no kind: roofline only");
        assert_eq!(model.engine(None, &machine()).expect("roofline").name, "roofline");
        let error = model.engine(Some("slow"), &kind("cpu")).expect_err("not on a CPU").to_string();
        assert!(
            error.contains("does not run on test (cpu); engines for it: uma-cpu, roofline"),
            "{error}"
        );
        let error = model.engine(Some("warp"), &kind("gpu")).expect_err("unknown").to_string();
        assert!(
            error.contains("unknown engine \"warp\"; known engines: fast, roofline, slow, uma-cpu")
        );
        assert_eq!(
            model.engine(Some("FAST"), &kind("gpu")).expect("case-insensitive").name,
            "fast"
        );
    }

    #[test]
    fn kind_factors_scale_the_efficiencies_up_to_one() {
        let model = SpeedModel::from_toml(TEST_MODEL, "test").expect("valid");
        let plain = model.engine(None, &kind("gpu")).expect("fast");
        let ultra = model.engine(None, &kind("gpu-ultra")).expect("fast");
        assert_eq!(plain.weight_efficiency.f16, 0.9);
        assert_eq!(ultra.weight_efficiency.f16, 0.45);
        assert_eq!(ultra.kv_efficiency, 0.25);
        assert_eq!(ultra.compute_efficiency.f16, 1.0, "0.8 × 2 is capped at the peak");
        assert_eq!(ultra.compute_efficiency.q4, 1.0);
        assert_eq!(ultra.compute_efficiency.k, 0.8);
        assert_eq!(ultra.attention_efficiency, 0.5);
        // The fixed time per layer of decode takes the kind's factor; prefill's does not.
        assert_eq!(plain.layer_seconds, 1e-4);
        assert!((ultra.layer_seconds - 1.5e-4).abs() < 1e-15);
        assert_eq!(ultra.prefill_layer_seconds, plain.prefill_layer_seconds);
        assert_eq!((plain.peak_bandwidth, plain.peak_compute), (400e9, 20e12));
        // From the machine: its own efficiencies, no fixed costs.
        let slow = model.engine(Some("slow"), &kind("gpu")).expect("slow");
        assert_eq!(slow.weight_efficiency, PerQuantClass::all(0.5));
        assert_eq!(
            (slow.layer_seconds, slow.matrix_half_width, slow.decode_range),
            (0.0, 0.0, None)
        );
    }

    #[test]
    fn matrix_efficiency_falls_for_narrow_models_and_short_steps() {
        let model = SpeedModel::from_toml(TEST_MODEL, "test").expect("valid");
        let engine = model.engine(None, &kind("gpu")).expect("fast");
        // spec(): q8_0 at 8.0 bits per weight, hidden 100.
        assert_eq!(QuantClass::of(&spec()), QuantClass::Q8);
        assert!((engine.matrix_efficiency(&spec(), None) - 0.6 * 0.5).abs() < 1e-12);
        assert!((engine.matrix_efficiency(&spec(), Some(64.0)) - 0.6 * 0.5 * 0.5).abs() < 1e-12);
        let moe = ModelSpec { num_experts: Some(64), num_experts_per_token: Some(8), ..spec() };
        assert_eq!(matrix_rows(&moe, 512), 64.0);
        assert_eq!(matrix_rows(&spec(), 512), 512.0);
    }

    #[test]
    fn quantization_classes() {
        let with = |quantization: &str, file_weight_bytes: u64| ModelSpec {
            quantization: quantization.into(),
            file_weight_bytes,
            ..spec()
        };
        assert_eq!(QuantClass::of(&with("Q4_K 79%, Q6_K 21%", 600_000_000)), QuantClass::K);
        assert_eq!(QuantClass::of(&with("q4_k_m", 605_000_000)), QuantClass::K);
        assert_eq!(QuantClass::of(&with("IQ4_XS 90%", 560_000_000)), QuantClass::K);
        assert_eq!(QuantClass::of(&with("Q4_0 97%, Q6_K 3%", 567_000_000)), QuantClass::Q4);
        assert_eq!(QuantClass::of(&with("4.5 bpw", 562_500_000)), QuantClass::Q4);
        assert_eq!(QuantClass::of(&with("Q8_0 100%", 1_062_500_000)), QuantClass::Q8);
        assert_eq!(QuantClass::of(&with("F16 100%", 2_000_000_000)), QuantClass::F16);
    }

    #[test]
    fn bad_speed_models_are_clear_errors() {
        for (edit, needle) in [
            (("kv_efficiency = 0.5", "kv_efficiency = 1.5"), "outside (0, 1]"),
            (("matrix_half_rows = 64.0", ""), "give every parameter"),
            (("decode_range = [0.9, 1.2]", "decode_range = [1.1, 1.2]"), "does not contain 1"),
            (("gpu = \"fast\"", "gpu = \"uma-cpu\""), "does not run on it"),
            (("compute_factor = 2.0", "compute_factor = 0.0"), "not positive"),
            (("layer_seconds_factor = 1.5", "layer_seconds_factor = -1.0"), "not positive"),
            (
                ("1.5\n        kv_efficiency = 0.5", "1.5\n        kv_efficiency = 0.0"),
                "kv_efficiency 0 is not positive",
            ),
            (("[build.fast.", "[build.warp."), "unknown engine \"warp\""),
            (("layer_seconds = 1.5", "colour = 1.5"), "unknown \"colour\""),
            (("[engine.roofline]", "[engine.roof]"), "no \"roofline\" engine"),
            (("runs_on = [\"gpu\"]", "runs_on = [\"gpu\"]\ncolour = 1"), "colour"),
        ] {
            let text = TEST_MODEL.replacen(edit.0, edit.1, 1);
            let error = SpeedModel::from_toml(&text, "mine.toml").expect_err(needle).to_string();
            assert!(error.contains(needle) && error.starts_with("mine.toml"), "{needle}: {error}");
        }
    }
}
