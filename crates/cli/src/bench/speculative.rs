//! `uma bench --speculative lookup|draft`: one greedy workload decoded by two engines of the
//! model, one plain and one speculating, in alternating order, through the whole engine (the
//! other tests drive the forward pass alone). Lookup decodes an edit whose answer copies its
//! prompt; a draft model decodes ordinary chat prompts (`uma_engine::speculative_workload`).
//! Reported: both decode rates, their ratio, the drafts proposed and accepted, and accepted
//! drafts per verification.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;
use uma_engine::speculative_workload::{
    chat_tokens, decode_greedy, edit_functions_for, edit_prompt, Decoded, CHAT_PROMPTS,
};
use uma_engine::{
    Device, EngineConfig, EngineHandle, PromptEncoder, SpeculativeConfig, SpeculativeMode, TokenId,
};
use uma_gguf::GgufFile;
use uma_planner::KvCacheType;

use super::stats;
use crate::memory_budget::{plan_model, KvRequest};
use crate::speculative_args::{check_draft, draft_memory_bytes, SpeculativeArgs};

/// The test, planned before anything is loaded.
pub(super) struct SpeculativeTest {
    /// The speculating engine's configuration: `lookup` or `draft`, never `auto` or `off`.
    config: SpeculativeConfig,
    workload: Workload,
    /// The workload's requests, decoded one after the other.
    prompts: Vec<Vec<TokenId>>,
    /// Most tokens generated per request (`-n`).
    n_gen: usize,
    /// Each engine's context: the longest prompt and its answer.
    context_length: usize,
    kv_cache_type: KvCacheType,
}

/// What the requests ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// A Python file of that many functions, to be returned with the functions renamed.
    Edit { num_functions: usize },
    /// The chat prompts.
    Chat,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Edit { .. } => "edit",
            Workload::Chat => "chat",
        }
    }

    fn describe(self) -> String {
        match self {
            Workload::Edit { num_functions } => format!(
                "edit: rename the functions of a {num_functions}-function Python file, an answer that \
                 copies its prompt"
            ),
            Workload::Chat => "chat: questions whose answers repeat little of them".into(),
        }
    }
}

impl SpeculativeTest {
    /// The test `args` asks for on the model in `file` (at `path`), `n_gen` tokens per request:
    /// its workload, its context, and the memory of its two engines and the draft model checked
    /// against `budget_bytes` (the model's other tests run before it and are gone by then).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan(
        args: &SpeculativeArgs,
        path: &Path,
        file: &GgufFile,
        trained: usize,
        n_gen: usize,
        kv_cache_type: KvCacheType,
        device: Device,
        budget_bytes: u64,
    ) -> anyhow::Result<SpeculativeTest> {
        let mut config = args.config()?;
        config.mode = match (config.mode, &config.draft_model) {
            (SpeculativeMode::Off, _) => {
                bail!("--speculative off measures nothing: lookup, or draft with --draft MODEL")
            }
            (SpeculativeMode::Auto, None) => SpeculativeMode::Lookup,
            (SpeculativeMode::Auto, Some(_)) => SpeculativeMode::Draft,
            (mode, _) => mode,
        };
        if device == Device::Gpu {
            bail!("speculative decoding runs on the CPU only for now: leave out --device gpu");
        }
        if n_gen == 0 {
            bail!("--speculative needs generated tokens (-n above 0)");
        }
        let prompts = PromptEncoder::from_gguf(file)
            .with_context(|| format!("cannot load {}", path.display()))?;
        if let Some(draft) = &config.draft_model {
            check_draft(draft, path, &prompts)?;
        }
        let (workload, requests) = match config.mode {
            SpeculativeMode::Lookup => {
                let num_functions = edit_functions_for(&prompts, n_gen)?;
                let prompt = chat_tokens(&prompts, &edit_prompt(num_functions))?;
                (Workload::Edit { num_functions }, vec![prompt])
            }
            _ => {
                let requests = CHAT_PROMPTS.iter().map(|text| chat_tokens(&prompts, text));
                (Workload::Chat, requests.collect::<Result<_, _>>()?)
            }
        };
        let longest = requests.iter().map(Vec::len).max().unwrap_or(0);
        let positions = longest + n_gen;
        if positions > trained {
            bail!(
                "the speculative test needs {positions} positions ({longest} of prompt, -n \
                 {n_gen}) but the model's trained context is {trained}"
            );
        }
        let context_length = positions.next_multiple_of(uma_model::DEFAULT_BLOCK_SIZE).min(trained);
        // Planned as `uma run` plans the model and its draft, and the plain engine beside them.
        let request = KvRequest::single(
            context_length,
            EngineConfig::DEFAULT_MAX_NUM_BATCHED_TOKENS,
            kv_cache_type,
        );
        let draft_bytes = draft_memory_bytes(&config, &request, budget_bytes)?;
        let left = budget_bytes.saturating_sub(draft_bytes);
        let speculating = plan_model(path, file, &request, left)?;
        plan_model(path, file, &request, left.saturating_sub(speculating.memory_bytes))
            .context("the speculative test loads the model twice (with and without speculation)")?;
        Ok(SpeculativeTest {
            config,
            workload,
            prompts: requests,
            n_gen,
            context_length,
            kv_cache_type,
        })
    }

    /// Starts both engines of the model at `path`, decodes the workload once untimed with each,
    /// then `repetitions` times with each, alternating which goes first.
    pub(super) fn run(&self, path: &Path, repetitions: usize) -> anyhow::Result<SpeculativeReport> {
        let engine = |speculative: SpeculativeConfig| {
            let mut config = EngineConfig::new(self.context_length, 1);
            config.kv_cache_type = self.kv_cache_type;
            config.device = Device::Cpu;
            config.speculative = speculative;
            EngineHandle::open(path, "bench", config)
                .with_context(|| format!("cannot load {}", path.display()))
        };
        let plain = engine(SpeculativeConfig::off())?;
        let speculating = engine(self.config.clone())?;
        // Untimed: pages the weights in, caches the prompts' prefixes (the rates count decode
        // only), and lets the engine measure what a draft row costs.
        let reference = self.decode(&plain)?;
        let mut identical_output = self.decode(&speculating)?.outputs == reference.outputs;
        let (mut plain_samples, mut speculative_samples) = (Vec::new(), Vec::new());
        let mut drafts = Decoded::default();
        for repetition in 0..repetitions {
            let speculating_first = repetition % 2 == 1;
            for speculative in [speculating_first, !speculating_first] {
                if speculative {
                    let decoded = self.decode(&speculating)?;
                    identical_output &= decoded.outputs == reference.outputs;
                    speculative_samples.push(decoded.tokens_per_second());
                    drafts.append(Decoded { outputs: Vec::new(), ..decoded });
                } else {
                    plain_samples.push(self.decode(&plain)?.tokens_per_second());
                }
            }
        }
        let (plain, speculative) = (Rates::new(plain_samples), Rates::new(speculative_samples));
        let ratio =
            |numerator: f64, denominator: f64| (denominator > 0.0).then(|| numerator / denominator);
        Ok(SpeculativeReport {
            mode: match self.config.mode {
                SpeculativeMode::Draft => "draft",
                _ => "lookup",
            },
            draft_model: self.config.draft_model.as_deref().map(|p| p.display().to_string()),
            max_draft_tokens: self.config.max_draft_tokens,
            device: Device::Cpu.name(),
            workload: self.workload.name(),
            workload_description: self.workload.describe(),
            prompt_tokens: self.prompts.iter().map(Vec::len).collect(),
            n_gen: self.n_gen,
            decoded_tokens: reference.num_decoded_tokens,
            context_length: self.context_length,
            repetitions,
            ratio: ratio(speculative.mean, plain.mean).unwrap_or(0.0),
            plain,
            speculative,
            drafted_tokens: drafts.num_drafted_tokens,
            accepted_tokens: drafts.num_accepted_draft_tokens,
            verifications: drafts.num_draft_verifications,
            acceptance_rate: ratio(
                drafts.num_accepted_draft_tokens as f64,
                drafts.num_drafted_tokens as f64,
            ),
            mean_acceptance_length: ratio(
                drafts.num_accepted_draft_tokens as f64,
                drafts.num_draft_verifications as f64,
            ),
            identical_output,
        })
    }

    /// The workload's requests one after the other, greedy, on `engine`.
    fn decode(&self, engine: &EngineHandle) -> anyhow::Result<Decoded> {
        let mut decoded = Decoded::default();
        for prompt in &self.prompts {
            let max_tokens = u32::try_from(self.n_gen).unwrap_or(u32::MAX);
            decoded.append(decode_greedy(engine, std::slice::from_ref(prompt), max_tokens)?);
        }
        Ok(decoded)
    }
}

/// The test's result, `speculative` in `uma bench --json`.
#[derive(Serialize, Debug)]
pub(super) struct SpeculativeReport {
    /// `"lookup"` or `"draft"` (a draft model, prompt lookup first).
    mode: &'static str,
    /// The draft model's file, with `draft`.
    draft_model: Option<String>,
    /// Most drafts per sequence and step (`--draft-tokens`); the engine drafts fewer when they
    /// do not pay.
    max_draft_tokens: usize,
    /// Where both engines compute (speculation runs on the CPU only).
    device: &'static str,
    /// `"edit"` or `"chat"`.
    workload: &'static str,
    workload_description: String,
    /// Prompt tokens of each request; the requests are decoded one at a time.
    prompt_tokens: Vec<usize>,
    /// Most tokens generated per request (`-n`).
    n_gen: usize,
    /// Tokens a run decodes: each request's after its first.
    decoded_tokens: usize,
    context_length: usize,
    repetitions: usize,
    /// Decode tokens per second without speculation.
    plain: Rates,
    /// The same with it.
    speculative: Rates,
    /// `speculative.mean ÷ plain.mean`.
    ratio: f64,
    /// Over the timed speculative runs: draft tokens proposed, and those accepted.
    drafted_tokens: usize,
    accepted_tokens: usize,
    /// Chunks that verified drafts.
    verifications: u64,
    /// `accepted_tokens ÷ drafted_tokens`; null without drafts.
    acceptance_rate: Option<f64>,
    /// `accepted_tokens ÷ verifications`: tokens a verification adds beyond the one a plain
    /// step gives; null without verifications.
    mean_acceptance_length: Option<f64>,
    /// The speculative runs generated the plain run's tokens (greedy: they must).
    identical_output: bool,
}

/// Tokens per second of each timed run, their mean and sample standard deviation.
#[derive(Serialize, Debug)]
struct Rates {
    mean: f64,
    sd: f64,
    samples: Vec<f64>,
}

impl Rates {
    fn new(samples: Vec<f64>) -> Rates {
        let (mean, sd) = stats::mean_and_sd(&samples);
        Rates { mean, sd, samples }
    }
}

/// The test's lines after the other tests'.
pub(super) fn render(report: &SpeculativeReport) -> String {
    let mut out = String::new();
    let mut line = |text: String| writeln!(out, "{text}").expect("writing to a String cannot fail");
    line(String::new());
    let drafter = match &report.draft_model {
        Some(draft) => format!("draft model {draft} (prompt lookup first)"),
        None => "prompt lookup".to_owned(),
    };
    line(format!(
        "speculative decoding: {drafter}, up to {} drafts per step, on the {}",
        report.max_draft_tokens,
        report.device.to_uppercase()
    ));
    let prompts: Vec<String> = report.prompt_tokens.iter().map(usize::to_string).collect();
    let (requests, each) = match report.prompt_tokens.len() {
        1 => ("1 request".to_owned(), ""),
        n => (format!("{n} requests one at a time"), " each"),
    };
    line(format!(
        "  workload      {}; {requests} ({} prompt tokens), up to {} tokens{each}, greedy: {} \
         decoded per run; {} timed run{} each way, alternating",
        report.workload_description,
        prompts.join(", "),
        report.n_gen,
        report.decoded_tokens,
        report.repetitions,
        if report.repetitions == 1 { "" } else { "s" }
    ));
    let rates = |rates: &Rates| format!("{:.2} ± {:.2} tok/s", rates.mean, rates.sd);
    line(format!("  plain         {}", rates(&report.plain)));
    line(format!("  speculative   {}   {:.2}× plain", rates(&report.speculative), report.ratio));
    let share =
        report.acceptance_rate.map(|rate| format!(" ({:.1}%)", 100.0 * rate)).unwrap_or_default();
    let length = report
        .mean_acceptance_length
        .map(|length| format!(": {length:.2} accepted per verification"))
        .unwrap_or_default();
    line(format!(
        "  drafts        {} of {} accepted{share} in {} verifications{length}",
        report.accepted_tokens, report.drafted_tokens, report.verifications
    ));
    line(format!(
        "  output        {}",
        if report.identical_output {
            "the same tokens as plain decoding"
        } else {
            "DIFFERS from plain decoding: a bug in speculative decoding, please report it"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(drafted: usize, accepted: usize, verifications: u64) -> SpeculativeReport {
        let ratio = |n: f64, d: f64| (d > 0.0).then(|| n / d);
        SpeculativeReport {
            mode: "lookup",
            draft_model: None,
            max_draft_tokens: 8,
            device: "cpu",
            workload: "edit",
            workload_description: Workload::Edit { num_functions: 3 }.describe(),
            prompt_tokens: vec![250],
            n_gen: 128,
            decoded_tokens: 127,
            context_length: 384,
            repetitions: 2,
            plain: Rates::new(vec![20.0, 22.0]),
            speculative: Rates::new(vec![30.0, 33.0]),
            ratio: 31.5 / 21.0,
            drafted_tokens: drafted,
            accepted_tokens: accepted,
            verifications,
            acceptance_rate: ratio(accepted as f64, drafted as f64),
            mean_acceptance_length: ratio(accepted as f64, verifications as f64),
            identical_output: true,
        }
    }

    #[test]
    fn the_report_gives_both_rates_the_ratio_and_the_drafts() {
        let text = render(&report(160, 120, 40));
        for needle in [
            "speculative decoding: prompt lookup, up to 8 drafts per step, on the CPU\n",
            "  workload      edit: rename the functions of a 3-function Python file, an answer that \
             copies its prompt; 1 request (250 prompt tokens), up to 128 tokens, greedy: 127 \
             decoded per run; 2 timed runs each way, alternating\n",
            "  plain         21.00 ± 1.41 tok/s\n",
            "  speculative   31.50 ± 2.12 tok/s   1.50× plain\n",
            "  drafts        120 of 160 accepted (75.0%) in 40 verifications: 3.00 accepted per \
             verification\n",
            "  output        the same tokens as plain decoding\n",
        ] {
            assert!(text.contains(needle), "{needle:?} in\n{text}");
        }
        let none = render(&report(0, 0, 0));
        assert!(none.contains("  drafts        0 of 0 accepted in 0 verifications\n"), "{none}");
        let json = serde_json::to_value(report(0, 0, 0)).expect("serializes");
        assert!(json["acceptance_rate"].is_null() && json["mean_acceptance_length"].is_null());
    }
}
