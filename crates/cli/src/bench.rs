//! `uma bench MODEL`: prompt processing and generation speed, as llama.cpp's `llama-bench`
//! measures them, aggregate decode speed with several sequences per step, and how close decode
//! runs to the machine's memory read bandwidth (the physical limit of decode).
//!
//! The tests drive [`Model::forward`] alone: pseudo-random token ids from a fixed seed, no
//! tokenizer, no sampling, one warm-up run per test and then `-r` timed repetitions. With
//! `--speculative`, one more test decodes a fixed workload through the whole engine with and
//! without speculative decoding ([`speculative`]).

mod speculative;
mod stats;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use uma_engine::{Device, LoadedModel};
use uma_gguf::GgufFile;
use uma_model::backend::{Backend, PagedKvCache};
use uma_model::{Batch, BlockId, LogitsRequest, Model, ModelConfig, DEFAULT_BLOCK_SIZE};

use uma_planner::BandwidthProbe;

use crate::format;
use crate::memory_budget::{plan_model, KvRequest, MemoryArgs};
use crate::speculative_args::SpeculativeArgs;
use speculative::SpeculativeTest;

/// Tokens each sequence is prefilled with (untimed) before a generation test without `--depth`,
/// so that decode attends to some context, as it does after any real prompt.
const WARM_PROMPT_TOKENS: usize = 8;

/// Most tokens of one untimed forward pass that fills the context before a test.
const FILL_CHUNK: usize = 512;

/// Seed of the pseudo-random token ids: every run measures the same inputs.
const SEED: u64 = 0x756d_6120_6265_6e63;

#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// A .gguf file, or the name of a model in the store (`uma list`).
    pub(crate) model: PathBuf,
    /// Prompt tokens processed in one forward pass (0: skip the prompt test).
    #[arg(short = 'p', long = "n-prompt", value_name = "N", default_value_t = 512)]
    n_prompt: usize,
    /// Tokens generated one step at a time (0: skip the generation tests).
    #[arg(short = 'n', long = "n-gen", value_name = "N", default_value_t = 128)]
    n_gen: usize,
    /// Timed repetitions of each test (after one untimed warm-up run).
    #[arg(short = 'r', long = "repetitions", value_name = "R", default_value_t = 5)]
    repetitions: usize,
    /// Sequences decoded together, as a list (e.g. 1,4,16): one generation test per size, each
    /// step holding one token of every sequence. Default: 1.
    #[arg(long, value_name = "B,...", value_delimiter = ',')]
    batch: Vec<usize>,
    /// Worker threads (default: one per physical core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Tokens already in each sequence's context when a test starts, prefilled untimed
    /// (llama-bench's -d): decode and prefill speed at a long context. Default: none for the
    /// prompt test, 8 tokens for the generation tests.
    #[arg(short = 'd', long = "n-depth", value_name = "N", default_value_t = 0)]
    depth: usize,
    /// KV cache positions per sequence (default: what the largest test needs).
    #[arg(long, value_name = "N")]
    ctx: Option<usize>,
    /// Memory read bandwidth of this machine in GB/s, instead of measuring it.
    #[arg(long, value_name = "GB/s")]
    bandwidth: Option<f64>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    memory: MemoryArgs,
    /// Any of --speculative lookup|draft, --draft and --draft-tokens adds the speculative test:
    /// `-n` tokens of a fixed workload decoded with and without speculation (an edit that copies
    /// its prompt for lookup, chat prompts for a draft model).
    #[command(
        flatten,
        next_help_heading = "Speculative test (any of these adds it: -n tokens of a workload \
                             decoded with and without speculation; none: no such test)"
    )]
    speculative: Option<SpeculativeArgs>,
}

/// One measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    /// `n` prompt tokens of one sequence in one forward pass, after `depth` tokens of context.
    Prompt { n: usize, depth: usize },
    /// `n` steps, each one token of each of `batch` sequences, after `depth` tokens of context
    /// each.
    Generation { n: usize, batch: usize, depth: usize },
}

impl Test {
    /// llama-bench's names: `pp512`, `tg128`, `tg128 @ d4096`; `tg128 x4` for four sequences.
    fn name(self) -> String {
        let base = match self {
            Test::Prompt { n, .. } => format!("pp{n}"),
            Test::Generation { n, batch: 1, .. } => format!("tg{n}"),
            Test::Generation { n, batch, .. } => format!("tg{n} x{batch}"),
        };
        match self.depth() {
            0 => base,
            depth => format!("{base} @ d{depth}"),
        }
    }

    fn depth(self) -> usize {
        match self {
            Test::Prompt { depth, .. } | Test::Generation { depth, .. } => depth,
        }
    }

    /// Tokens each sequence holds before the timed part: the depth, and at least a short warm
    /// prompt before generation.
    fn context_before(self) -> usize {
        match self {
            Test::Prompt { depth, .. } => depth,
            Test::Generation { depth, .. } => depth.max(WARM_PROMPT_TOKENS),
        }
    }

    /// KV cache positions each sequence needs.
    fn positions(self) -> usize {
        match self {
            Test::Prompt { n, .. } | Test::Generation { n, .. } => self.context_before() + n,
        }
    }

    fn batch(self) -> usize {
        match self {
            Test::Prompt { .. } => 1,
            Test::Generation { batch, .. } => batch,
        }
    }

    /// The most tokens one forward pass of the test computes: the prompt, or a chunk of the
    /// context filled before it.
    fn tokens_per_step(self) -> usize {
        let fill = self.context_before().min(FILL_CHUNK);
        match self {
            Test::Prompt { n, .. } => n.max(fill),
            Test::Generation { batch, .. } => batch.max(fill),
        }
    }
}

/// The tests `args` asks for, after checking every number that does not need the model.
fn plan(args: &BenchArgs) -> anyhow::Result<Vec<Test>> {
    if args.repetitions == 0 {
        bail!("-r must be at least 1 (timed repetitions of each test)");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if let Some(gb_per_s) = args.bandwidth {
        if !(gb_per_s.is_finite() && gb_per_s > 0.0) {
            bail!("--bandwidth must be a positive number of GB/s, not {gb_per_s}");
        }
    }
    if args.batch.contains(&0) {
        bail!("--batch sizes must be at least 1");
    }
    if args.n_prompt == 0 && args.n_gen == 0 {
        bail!("nothing to measure: -p and -n are both 0");
    }
    if !args.batch.is_empty() && args.n_gen == 0 {
        bail!("--batch needs generation steps (-n above 0)");
    }
    let mut tests = Vec::new();
    if args.n_prompt > 0 {
        tests.push(Test::Prompt { n: args.n_prompt, depth: args.depth });
    }
    if args.n_gen > 0 {
        let mut batches = if args.batch.is_empty() { vec![1] } else { args.batch.clone() };
        let mut seen = Vec::new();
        batches.retain(|b| {
            !seen.contains(b) && {
                seen.push(*b);
                true
            }
        });
        let (n, depth) = (args.n_gen, args.depth);
        tests.extend(batches.into_iter().map(|batch| Test::Generation { n, batch, depth }));
    }
    Ok(tests)
}

/// KV cache positions per sequence: `--ctx` or what the largest test needs, checked against the
/// tests and the model's trained context.
fn context_length(tests: &[Test], ctx: Option<usize>, trained: usize) -> anyhow::Result<usize> {
    let largest = tests.iter().copied().max_by_key(|t| t.positions()).expect("plan has tests");
    let Some(ctx) = ctx else {
        if largest.positions() > trained {
            bail!(
                "{} needs {} positions but the model's trained context is {trained}",
                largest.name(),
                largest.positions()
            );
        }
        return Ok(largest.positions());
    };
    if ctx > trained {
        bail!("--ctx {ctx} exceeds the model's trained context of {trained}");
    }
    if largest.positions() > ctx {
        bail!(
            "--ctx {ctx} is too small for {}: it needs {} positions per sequence",
            largest.name(),
            largest.positions()
        );
    }
    Ok(ctx)
}

/// KV cache blocks that hold `positions` positions.
fn blocks(positions: usize) -> usize {
    positions.div_ceil(DEFAULT_BLOCK_SIZE)
}

/// Blocks in the KV cache: `--ctx` positions for each sequence of the largest batch, or without
/// it just what the hungriest test needs (a long prompt test does not make every sequence of a
/// batched generation test long). `None` on overflow.
fn kv_cache_blocks(tests: &[Test], ctx: Option<usize>) -> Option<usize> {
    let need = |t: &Test| t.batch().checked_mul(blocks(ctx.unwrap_or(t.positions())));
    tests.iter().map(need).try_fold(0, |most, n| Some(most.max(n?)))
}

/// The whole report, in the shape `--json` prints.
#[derive(Serialize, Debug)]
struct BenchReport {
    model: ModelSummary,
    /// `"cpu"` or `"gpu"`.
    device: &'static str,
    /// The GPU's name, API and driver, when the model runs on one.
    gpu: Option<String>,
    /// What that GPU may hold (a card's memory, Apple's working set), when known.
    gpu_memory_bytes: Option<u64>,
    /// Where `gpu_memory_bytes` comes from.
    gpu_memory_source: Option<&'static str>,
    threads: usize,
    /// KV cache positions per sequence.
    context_length: usize,
    /// Blocks of `kv_cache_block_size` positions in the cache.
    kv_cache_blocks: usize,
    kv_cache_block_size: usize,
    kv_cache_bytes: usize,
    /// `"f16"` or `"q8_0"`.
    kv_cache_type: &'static str,
    /// Tokens each sequence holds before a generation test's first timed step.
    warm_prompt_tokens: usize,
    repetitions: usize,
    bandwidth: BandwidthReport,
    results: Vec<TestResult>,
    /// The speculative test (`--speculative`).
    #[serde(skip_serializing_if = "Option::is_none")]
    speculative: Option<speculative::SpeculativeReport>,
}

#[derive(Serialize, Debug)]
struct ModelSummary {
    path: String,
    file_name: String,
    architecture: String,
    /// Bytes of all tensors.
    size_bytes: u64,
    parameters: u64,
    /// Weight bytes one decode step reads (see `uma_planner::weight_bytes_per_token`).
    weight_bytes_per_token: u64,
    /// A mixture of experts: `(used per token, count)` (a batch's sequences may use more).
    experts: Option<(usize, usize)>,
}

#[derive(Serialize, Debug)]
struct BandwidthReport {
    /// Memory read bandwidth decode speed is compared with, GB/s.
    gb_per_s: f64,
    /// `"probe"` (the CPU's, measured now), `"gpu probe"` (the GPU's) or `"given"`
    /// (`--bandwidth`).
    source: &'static str,
    probe: Option<BandwidthProbe>,
    gpu_probe: Option<uma_gpu::BandwidthProbe>,
}

#[derive(Serialize, Debug)]
struct TestResult {
    test: String,
    n_prompt: usize,
    n_gen: usize,
    /// Tokens in the context before the test (`-d`).
    n_depth: usize,
    batch: usize,
    /// Tokens per second (all sequences together), mean of the samples.
    mean: f64,
    /// Sample standard deviation of the samples.
    sd: f64,
    samples: Vec<f64>,
    /// Weight bytes read per second of decode: weight bytes per step × steps per second.
    weight_gb_per_s: Option<f64>,
    /// `weight_gb_per_s` as a share of the memory read bandwidth.
    bandwidth_percent: Option<f64>,
    /// On the GPU: where a timed forward pass spent its time.
    gpu_pass: Option<GpuPassReport>,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let tests = plan(args)?;
    // Before loading: loading may already run work on the pool (repacking weights).
    let threads = crate::threads::set_threads(args.threads)?;
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let trained = ModelConfig::from_file(&file)?.max_position_embeddings;
    let context_length = context_length(&tests, args.ctx, trained)?;
    let num_blocks = kv_cache_blocks(&tests, args.ctx)
        .context("the KV cache for --batch and --ctx is too large")?;
    // Refused before loading when the tests' KV cache cannot fit the memory budget.
    let (budget_bytes, _) = args.memory.budget()?;
    let kv_cache_tokens = num_blocks * DEFAULT_BLOCK_SIZE;
    let largest_step = tests.iter().map(|t| t.tokens_per_step()).max().unwrap_or(1);
    let request = KvRequest {
        context_length,
        num_sequences: tests.iter().map(|t| t.batch()).max().unwrap_or(1),
        kv_cache_tokens,
        min_kv_cache_tokens: kv_cache_tokens,
        max_num_batched_tokens: largest_step,
        kv_cache_type: args.memory.kv_cache_type(),
    };
    plan_model(&args.model, &file, &request, budget_bytes)?;
    let speculative = match &args.speculative {
        Some(speculative) => Some(SpeculativeTest::plan(
            speculative,
            &args.model,
            &file,
            trained,
            args.n_gen,
            request.kv_cache_type,
            args.memory.device(),
            budget_bytes,
        )?),
        None => None,
    };
    let gpu_need = uma_engine::gpu_need_bytes(&file, kv_cache_tokens, request.kv_cache_type)?;
    let setup = Setup { args, tests, threads, context_length, num_blocks, request };
    let loaded = LoadedModel::load(Arc::new(file), args.memory.device(), gpu_need)
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let mut report = match loaded {
        LoadedModel::Cpu(model) => {
            let bandwidth = match args.bandwidth {
                Some(gb_per_s) => {
                    BandwidthReport { gb_per_s, source: "given", probe: None, gpu_probe: None }
                }
                None => {
                    let probe = uma_planner::probe_bandwidth(threads)?;
                    BandwidthReport {
                        gb_per_s: probe.gb_per_s,
                        source: "probe",
                        probe: Some(probe),
                        gpu_probe: None,
                    }
                }
            };
            run_on(&setup, model, bandwidth, None)?
        }
        LoadedModel::Gpu(model) => {
            let gpu = model.backend().context().clone();
            let bandwidth = match args.bandwidth {
                Some(gb_per_s) => {
                    BandwidthReport { gb_per_s, source: "given", probe: None, gpu_probe: None }
                }
                None => {
                    let probe = uma_gpu::probe_bandwidth(&gpu)?;
                    BandwidthReport {
                        gb_per_s: probe.gb_per_s,
                        source: "gpu probe",
                        probe: None,
                        gpu_probe: Some(probe),
                    }
                }
            };
            let on_gpu = OnGpu {
                name: gpu.info().to_string(),
                stats: model.backend().stats(),
                memory: uma_engine::gpu_memory_limit(gpu.info()),
            };
            run_on(&setup, model, bandwidth, Some(on_gpu))?
        }
    };
    // The forward tests' model is gone: the engines of the speculative test load their own.
    if let Some(test) = &speculative {
        let result =
            test.run(&args.model, args.repetitions).context("the speculative test failed")?;
        report.speculative = Some(result);
    }
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_bandwidth(&report)
            + &render_gpu_passes(&report)
            + &report.speculative.as_ref().map(speculative::render).unwrap_or_default()
    };
    crate::output::print(&text)
}

/// The GPU a model runs on: its description and its backend's time counters.
struct OnGpu {
    name: String,
    stats: Arc<uma_gpu::GpuStats>,
    /// What the GPU may hold, and where the number comes from, when known.
    memory: Option<(u64, &'static str)>,
}

/// Where one forward pass of a test spent its time on the GPU, averaged over the timed passes.
#[derive(Serialize, Debug)]
struct GpuPassReport {
    dispatches: f64,
    submissions: f64,
    /// CPU milliseconds recording dispatches.
    recording_ms: f64,
    /// CPU milliseconds finishing and submitting command buffers.
    submitting_ms: f64,
    /// Milliseconds waiting for the device's results.
    waiting_ms: f64,
    /// Device time by kernel, the longest first (with `UMA_GPU_PROFILE=1` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kernels: Vec<KernelReport>,
}

/// One kernel's share of a forward pass on the device.
#[derive(Serialize, Debug)]
struct KernelReport {
    kernel: String,
    dispatches: f64,
    device_ms: f64,
}

impl GpuPassReport {
    fn new(stats: &uma_gpu::GpuStatsSnapshot) -> GpuPassReport {
        let passes = stats.passes.max(1) as f64;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / passes;
        GpuPassReport {
            dispatches: stats.dispatches as f64 / passes,
            submissions: stats.submissions as f64 / passes,
            recording_ms: ms(stats.recording),
            submitting_ms: ms(stats.submitting),
            waiting_ms: ms(stats.waiting),
            kernels: {
                let mut kernels: Vec<KernelReport> = stats
                    .kernels
                    .iter()
                    .map(|(kernel, time)| KernelReport {
                        kernel: kernel.clone(),
                        dispatches: time.dispatches as f64 / passes,
                        device_ms: ms(time.device),
                    })
                    .collect();
                kernels.sort_by(|a, b| b.device_ms.total_cmp(&a.device_ms));
                kernels
            },
        }
    }
}

/// What `uma bench` decided before loading the model.
struct Setup<'a> {
    args: &'a BenchArgs,
    tests: Vec<Test>,
    threads: usize,
    context_length: usize,
    num_blocks: usize,
    request: KvRequest,
}

/// Runs the tests on `model`, wherever it computes, printing the table's rows as they finish
/// (unless `--json`).
fn run_on<B: Backend>(
    setup: &Setup<'_>,
    model: Model<B>,
    bandwidth: BandwidthReport,
    gpu: Option<OnGpu>,
) -> anyhow::Result<BenchReport> {
    let Setup { args, ref tests, threads, context_length, num_blocks, ref request } = *setup;
    let kv_cache = model
        .new_kv_cache_of_type(num_blocks, request.kv_cache_type)
        .context("cannot allocate the KV cache")?;
    let mut report = BenchReport {
        model: model_summary(&model, args),
        device: if gpu.is_some() { Device::Gpu.name() } else { Device::Cpu.name() },
        gpu: gpu.as_ref().map(|g| g.name.clone()),
        gpu_memory_bytes: gpu.as_ref().and_then(|g| g.memory).map(|(bytes, _)| bytes),
        gpu_memory_source: gpu.as_ref().and_then(|g| g.memory).map(|(_, source)| source),
        threads,
        context_length,
        kv_cache_blocks: kv_cache.num_blocks(),
        kv_cache_block_size: kv_cache.block_size(),
        kv_cache_bytes: kv_cache.size_in_bytes(),
        kv_cache_type: kv_cache.kv_type().name(),
        warm_prompt_tokens: args.depth.max(WARM_PROMPT_TOKENS),
        repetitions: args.repetitions,
        bandwidth,
        results: Vec::new(),
        speculative: None,
    };
    let table = Table::new(&report.model.file_name, tests);
    if !args.json {
        crate::output::print(&(render_header(&report) + &table.header()))?;
    }
    let mut runner = Runner { model: &model, kv_cache, gpu_stats: gpu.map(|g| g.stats) };
    for &test in tests {
        let (samples, gpu_pass) = runner
            .measure(test, args.repetitions)
            .with_context(|| format!("{} failed", test.name()))?;
        let mut result = test_result(test, samples, &report);
        result.gpu_pass = gpu_pass;
        if !args.json {
            crate::output::print(&table.row(&report, &result))?;
        }
        report.results.push(result);
    }
    Ok(report)
}

fn model_summary<B: Backend>(model: &Model<B>, args: &BenchArgs) -> ModelSummary {
    let infos = model.file().tensor_infos();
    ModelSummary {
        path: args.model.display().to_string(),
        file_name: args.model.file_name().map_or_else(
            || args.model.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
        architecture: model.config().architecture.name().to_owned(),
        size_bytes: infos.iter().map(|t| t.size_in_bytes).sum(),
        parameters: infos.iter().map(|t| t.num_elements).sum(),
        weight_bytes_per_token: uma_planner::weight_bytes_per_token(model.file()),
        experts: model.config().experts.map(|e| (e.used, e.count)),
    }
}

fn test_result(test: Test, samples: Vec<f64>, report: &BenchReport) -> TestResult {
    let (mean, sd) = stats::mean_and_sd(&samples);
    let (n_prompt, n_gen) = match test {
        Test::Prompt { n, .. } => (n, 0),
        Test::Generation { n, .. } => (0, n),
    };
    // Every step reads the weights once, whatever the number of sequences in it.
    let weight_gb_per_s = match test {
        Test::Prompt { .. } => None,
        Test::Generation { batch, .. } => {
            Some(report.model.weight_bytes_per_token as f64 * mean / batch as f64 / 1e9)
        }
    };
    TestResult {
        test: test.name(),
        n_prompt,
        n_gen,
        n_depth: test.depth(),
        batch: test.batch(),
        mean,
        sd,
        samples,
        weight_gb_per_s,
        bandwidth_percent: weight_gb_per_s.map(|g| 100.0 * g / report.bandwidth.gb_per_s),
        gpu_pass: None,
    }
}

/// Runs tests on one model and one KV cache. Sequence `s` of a test owns the `s`-th run of
/// blocks, each run just long enough for the test (see [`kv_cache_blocks`]).
struct Runner<'a, B: Backend> {
    model: &'a Model<B>,
    kv_cache: B::KvCache,
    /// The GPU's time counters, when the model runs on one.
    gpu_stats: Option<Arc<uma_gpu::GpuStats>>,
}

impl<B: Backend> Runner<'_, B> {
    /// Tokens per second of each timed repetition and, on the GPU, where their passes spent
    /// their time.
    fn measure(
        &mut self,
        test: Test,
        repetitions: usize,
    ) -> anyhow::Result<(Vec<f64>, Option<GpuPassReport>)> {
        let mut timed = TimedPasses::new(self.gpu_stats.clone());
        let samples = match test {
            Test::Prompt { n, .. } => self.prompt(test, n, repetitions, &mut timed),
            Test::Generation { n, batch, .. } => {
                self.generation(test, n, batch, repetitions, &mut timed)
            }
        }?;
        Ok((samples, timed.report()))
    }

    /// Blocks of sequence `sequence` of `test`.
    fn block_table(test: Test, sequence: usize) -> Vec<BlockId> {
        let length = blocks(test.positions());
        let first = sequence * length;
        (first..first + length).map(|b| BlockId(b as u32)).collect()
    }

    /// Writes `tokens` at positions `0..` of `table`, untimed, in forward passes of at most
    /// [`FILL_CHUNK`] tokens.
    fn fill_context(&mut self, tokens: &[u32], table: &[BlockId]) -> anyhow::Result<()> {
        for (c, chunk) in tokens.chunks(FILL_CHUNK).enumerate() {
            let batch = Batch::single(chunk, c * FILL_CHUNK, table, LogitsRequest::Last);
            std::hint::black_box(self.model.forward(&batch, &mut self.kv_cache)?);
        }
        Ok(())
    }

    /// `n` tokens in one forward pass after the test's context; each repetition overwrites the
    /// last.
    fn prompt(
        &mut self,
        test: Test,
        n: usize,
        repetitions: usize,
        timed: &mut TimedPasses,
    ) -> anyhow::Result<Vec<f64>> {
        let vocab_size = self.model.config().vocab_size;
        let depth = test.context_before();
        let context = random_tokens(SEED ^ 0x64, depth, vocab_size);
        let tokens = random_tokens(SEED, n, vocab_size);
        let table = Self::block_table(test, 0);
        self.fill_context(&context, &table)?;
        let mut samples = Vec::with_capacity(repetitions);
        for repetition in 0..=repetitions {
            timed.start_if(repetition == 1);
            let batch = Batch::single(&tokens, depth, &table, LogitsRequest::Last);
            let started = Instant::now();
            let logits = self.model.forward(&batch, &mut self.kv_cache)?;
            let seconds = started.elapsed().as_secs_f64();
            std::hint::black_box(logits);
            if repetition > 0 {
                samples.push(n as f64 / seconds.max(1e-9));
            }
        }
        Ok(samples)
    }

    /// `batch` sequences, each prefilled with its own context, then `n` steps of one token per
    /// sequence; each repetition decodes the same positions again.
    fn generation(
        &mut self,
        test: Test,
        n: usize,
        batch: usize,
        repetitions: usize,
        timed: &mut TimedPasses,
    ) -> anyhow::Result<Vec<f64>> {
        let vocab_size = self.model.config().vocab_size;
        let depth = test.context_before();
        let tables: Vec<Vec<BlockId>> = (0..batch).map(|s| Self::block_table(test, s)).collect();
        let seed = |s: usize, stream: u64| SEED ^ (stream << 32) ^ s as u64;
        let steps: Vec<Vec<u32>> =
            (0..batch).map(|s| random_tokens(seed(s, 2), n, vocab_size)).collect(); // [batch][n]
        for (s, table) in tables.iter().enumerate() {
            self.fill_context(&random_tokens(seed(s, 1), depth, vocab_size), table)?;
        }

        let mut samples = Vec::with_capacity(repetitions);
        for repetition in 0..=repetitions {
            timed.start_if(repetition == 1);
            let started = Instant::now();
            for k in 0..n {
                let mut step = Batch::new();
                for (tokens, table) in steps.iter().zip(&tables) {
                    step.push(&tokens[k..=k], depth + k, table, LogitsRequest::Last);
                }
                std::hint::black_box(self.model.forward(&step, &mut self.kv_cache)?);
            }
            let seconds = started.elapsed().as_secs_f64();
            if repetition > 0 {
                samples.push((batch * n) as f64 / seconds.max(1e-9));
            }
        }
        Ok(samples)
    }
}

/// The GPU's counters from the first timed repetition on (the untimed first one warms up).
struct TimedPasses {
    stats: Option<Arc<uma_gpu::GpuStats>>,
    start: Option<uma_gpu::GpuStatsSnapshot>,
}

impl TimedPasses {
    fn new(stats: Option<Arc<uma_gpu::GpuStats>>) -> TimedPasses {
        TimedPasses { stats, start: None }
    }

    fn start_if(&mut self, first_timed: bool) {
        if first_timed {
            self.start = self.stats.as_ref().map(|s| s.snapshot());
        }
    }

    fn report(&self) -> Option<GpuPassReport> {
        let now = self.stats.as_ref()?.snapshot();
        Some(GpuPassReport::new(&now.since(self.start.as_ref()?)))
    }
}

/// `n` token ids below `vocab_size` from SplitMix64 seeded with `seed`.
fn random_tokens(seed: u64, n: usize, vocab_size: usize) -> Vec<u32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z % vocab_size as u64) as u32
        })
        .collect()
}

fn render_header(report: &BenchReport) -> String {
    let mut out = String::new();
    let m = &report.model;
    let mut line = |text: String| writeln!(out, "{text}").expect("writing to a String cannot fail");
    line(format!(
        "model: {} ({}, {} parameters, {} of weights)",
        m.path,
        m.architecture,
        format::count(m.parameters),
        format::bytes(m.size_bytes)
    ));
    match &report.gpu {
        Some(gpu) => match (report.gpu_memory_bytes, report.gpu_memory_source) {
            (Some(bytes), Some(source)) => {
                line(format!("device: GPU {gpu}, {} ({source})", format::bytes(bytes)))
            }
            _ => line(format!("device: GPU {gpu}")),
        },
        None => line(format!("device: CPU, threads: {}", report.threads)),
    }
    line(format!("memory read bandwidth: {}", describe_bandwidth(&report.bandwidth)));
    line(format!(
        "KV cache: {} blocks of {} positions, {} ({}), up to {} positions per sequence; \
         generation tests start after a prompt of {} tokens",
        report.kv_cache_blocks,
        report.kv_cache_block_size,
        format::bytes(report.kv_cache_bytes as u64),
        report.kv_cache_type,
        report.context_length,
        report.warm_prompt_tokens
    ));
    line(String::new());
    out
}

fn describe_bandwidth(bandwidth: &BandwidthReport) -> String {
    if let Some(p) = &bandwidth.gpu_probe {
        return format!(
            "{:.1} GB/s (GPU probe: {} read by a kernel, best of {} passes)",
            bandwidth.gb_per_s,
            format::bytes(p.bytes),
            p.passes
        );
    }
    match &bandwidth.probe {
        Some(p) => format!(
            "{:.1} GB/s (probe: {} read by {} threads, best of {} passes)",
            bandwidth.gb_per_s,
            format::bytes(p.bytes as u64),
            p.threads,
            p.passes
        ),
        None => format!("{:.1} GB/s (given with --bandwidth)", bandwidth.gb_per_s),
    }
}

/// The results table in llama-bench's layout, printed row by row as tests finish.
struct Table {
    model_width: usize,
    test_width: usize,
}

const SIZE_WIDTH: usize = 10;
const PARAMS_WIDTH: usize = 10;
const THREADS_WIDTH: usize = 7;
const RATE_WIDTH: usize = 20;

impl Table {
    fn new(model_name: &str, tests: &[Test]) -> Table {
        let longest_test = tests.iter().map(|t| t.name().chars().count()).max().unwrap_or(0);
        Table { model_width: model_name.chars().count().max(5), test_width: longest_test.max(4) }
    }

    fn header(&self) -> String {
        let (mw, tw) = (self.model_width, self.test_width);
        format!(
            "| {:<mw$} | {:>SIZE_WIDTH$} | {:>PARAMS_WIDTH$} | {:>THREADS_WIDTH$} | {:>tw$} | {:>RATE_WIDTH$} |\n\
             | {} | {}: | {}: | {}: | {}: | {}: |\n",
            "model",
            "size",
            "params",
            "threads",
            "test",
            "t/s",
            "-".repeat(mw),
            "-".repeat(SIZE_WIDTH - 1),
            "-".repeat(PARAMS_WIDTH - 1),
            "-".repeat(THREADS_WIDTH - 1),
            "-".repeat(tw - 1),
            "-".repeat(RATE_WIDTH - 1),
        )
    }

    fn row(&self, report: &BenchReport, result: &TestResult) -> String {
        let (mw, tw) = (self.model_width, self.test_width);
        format!(
            "| {:<mw$} | {:>SIZE_WIDTH$} | {:>PARAMS_WIDTH$} | {:>THREADS_WIDTH$} | {:>tw$} | {:>RATE_WIDTH$} |\n",
            report.model.file_name,
            format::bytes(report.model.size_bytes),
            format::count(report.model.parameters),
            report.threads,
            result.test,
            format!("{:.2} ± {:.2}", result.mean, result.sd),
        )
    }
}

/// The lines after the table: what decode achieved against the bandwidth limit.
fn render_bandwidth(report: &BenchReport) -> String {
    let mut out = String::new();
    let generation: Vec<&TestResult> =
        report.results.iter().filter(|r| r.weight_gb_per_s.is_some()).collect();
    if generation.is_empty() {
        return out;
    }
    let mut line = |text: String| writeln!(out, "{text}").expect("writing to a String cannot fail");
    line(String::new());
    let which = if report.model.experts.is_some() {
        "the shared matrices and the experts a token uses, the output head included"
    } else {
        "every matrix once, the output head included"
    };
    line(format!(
        "weights read per decode step: {} ({which})",
        format::bytes(report.model.weight_bytes_per_token)
    ));
    let limit = report.bandwidth.gb_per_s;
    line(format!(
        "bandwidth limit: {limit:.1} GB/s ÷ {} = at most {:.1} steps/s",
        format::bytes(report.model.weight_bytes_per_token),
        limit * 1e9 / report.model.weight_bytes_per_token.max(1) as f64
    ));
    for r in generation {
        let achieved = r.weight_gb_per_s.unwrap_or_default();
        let percent = r.bandwidth_percent.unwrap_or_default();
        line(format!(
            "{}: {achieved:.2} GB/s of weights read, {percent:.1}% of {limit:.1} GB/s",
            r.test
        ));
    }
    out
}

/// On the GPU, where one forward pass of each test spent its time: CPU overhead per dispatch
/// (recording, submitting) against the device's work (waiting).
fn render_gpu_passes(report: &BenchReport) -> String {
    let mut out = String::new();
    for r in &report.results {
        let Some(p) = &r.gpu_pass else { continue };
        if out.is_empty() {
            out.push_str("\nGPU time per forward pass (CPU recording + submitting, then waiting for the device):\n");
        }
        writeln!(
            out,
            "{}: {:.0} dispatches in {:.1} submissions; {:.3} + {:.3} ms on the CPU, {:.3} ms waiting",
            r.test, p.dispatches, p.submissions, p.recording_ms, p.submitting_ms, p.waiting_ms
        )
        .expect("writing to a String cannot fail");
        if !p.kernels.is_empty() {
            let total: f64 = p.kernels.iter().map(|k| k.device_ms).sum();
            writeln!(out, "  device time by kernel (UMA_GPU_PROFILE), {total:.3} ms in all:")
                .expect("writing to a String cannot fail");
            for k in p.kernels.iter().take(PROFILE_LINES) {
                writeln!(
                    out,
                    "  {:>8.3} ms {:>5.1}% {:>6.1}× {}",
                    k.device_ms,
                    100.0 * k.device_ms / total.max(1e-12),
                    k.dispatches,
                    k.kernel
                )
                .expect("writing to a String cannot fail");
            }
        }
    }
    out
}

/// Kernels a profile lists per test (the JSON report has them all).
const PROFILE_LINES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn args(line: &[&str]) -> BenchArgs {
        Cli::try_parse_from([&["bench", "m.gguf"], line].concat()).expect("parses").args
    }

    #[test]
    fn plans_the_tests_llama_bench_would() {
        assert_eq!(
            plan(&args(&[])).expect("plan"),
            [Test::Prompt { n: 512, depth: 0 }, Test::Generation { n: 128, batch: 1, depth: 0 }]
        );
        let tests = plan(&args(&["-p", "0", "-n", "16", "--batch", "4,1,4,16"])).expect("plan");
        let names: Vec<String> = tests.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["tg16 x4", "tg16", "tg16 x16"]);
    }

    #[test]
    fn any_speculative_flag_adds_the_speculative_test() {
        assert!(args(&[]).speculative.is_none(), "its default mode alone adds nothing");
        for line in
            [&["--speculative", "lookup"][..], &["--draft", "d.gguf"], &["--draft-tokens", "4"]]
        {
            assert!(args(line).speculative.is_some(), "{line:?}");
        }
    }

    #[test]
    fn refuses_numbers_that_measure_nothing() {
        for (line, needle) in [
            (&["-r", "0"][..], "-r must be"),
            (&["--threads", "0"], "--threads"),
            (&["--batch", "2,0"], "--batch sizes"),
            (&["-p", "0", "-n", "0"], "nothing to measure"),
            (&["-n", "0", "--batch", "2"], "--batch needs"),
            (&["--bandwidth=-3"], "--bandwidth"),
            (&["--bandwidth", "NaN"], "--bandwidth"),
        ] {
            let error = plan(&args(line)).expect_err("refused").to_string();
            assert!(error.contains(needle), "{line:?}: {error}");
        }
    }

    #[test]
    fn context_fits_the_largest_test_and_the_model() {
        let tests =
            [Test::Prompt { n: 64, depth: 0 }, Test::Generation { n: 100, batch: 4, depth: 0 }];
        assert_eq!(context_length(&tests, None, 4096).expect("ctx"), 108);
        assert_eq!(context_length(&tests, Some(200), 4096).expect("ctx"), 200);
        let too_small = context_length(&tests, Some(100), 4096).expect_err("small").to_string();
        assert!(too_small.contains("too small for tg100 x4: it needs 108"), "{too_small}");
        assert!(context_length(&tests, Some(5000), 4096).is_err());
        assert!(context_length(&tests, None, 64).is_err());
    }

    #[test]
    fn kv_cache_holds_every_test() {
        let tests =
            [Test::Prompt { n: 512, depth: 0 }, Test::Generation { n: 128, batch: 16, depth: 0 }];
        assert_eq!(kv_cache_blocks(&tests, None), Some(16 * 136usize.div_ceil(16)));
        assert_eq!(kv_cache_blocks(&tests[..1], None), Some(32));
        assert_eq!(kv_cache_blocks(&tests, Some(1000)), Some(16 * 63));
        let huge = [Test::Generation { n: 100, batch: usize::MAX / 2, depth: 0 }];
        assert_eq!(kv_cache_blocks(&huge, None), None);
    }

    #[test]
    fn random_tokens_are_deterministic_and_inside_the_vocabulary() {
        let tokens = random_tokens(SEED, 1000, 320);
        assert_eq!(tokens, random_tokens(SEED, 1000, 320));
        assert!(tokens.iter().all(|&t| t < 320));
        assert!(tokens.iter().collect::<std::collections::HashSet<_>>().len() > 250);
    }
}
