//! `uma serve MODEL...`: the OpenAI-compatible HTTP server over one or more models that share
//! one memory budget. Models load at start while they fit, the others on the first request that
//! names them; idle ones unload after their keep-alive or when another model needs the memory.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use uma_engine::{
    EngineConfig, EngineError, EngineHandle, KeepAlive, ModelEntry, ModelInfo, ModelRegistry,
    Pooling, RegistryConfig,
};
use uma_gguf::GgufFile;
use uma_server::ServerConfig;

use crate::format;
use crate::memory_budget::{
    context_length, plan_model, trained_context_length, KvRequest, MemoryArgs,
};
use crate::speculative_args::draft_memory_bytes;
use crate::threads::set_threads;

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Models to serve: .gguf files or names in the store (`uma list`), each optionally named for
    /// the API as NAME=MODEL (default name: the store name, or the file name without .gguf).
    #[arg(required = true, value_name = "MODEL")]
    models: Vec<String>,
    /// Address to listen on. The default accepts local clients only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Context length per sequence, in tokens (default: 4096, capped at each model's trained
    /// context).
    #[arg(long)]
    ctx: Option<usize>,
    /// Sequences generated at once (continuous batching).
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    /// KV cache size in tokens per model, shared by its sequences (default: --ctx × --parallel,
    /// shrunk to what the memory budget allows). Smaller pools queue or preempt requests when
    /// full; they never fail for lack of KV memory.
    #[arg(long)]
    kv_cache_tokens: Option<usize>,
    /// Tokens computed per step: decode tokens plus prompt chunks.
    #[arg(long, default_value_t = 512)]
    batch_tokens: usize,
    /// Requests that may wait for a free sequence; beyond that, 429 Too Many Requests.
    #[arg(long)]
    max_queue: Option<usize>,
    /// Do not reuse the KV cache of repeated prompt prefixes.
    #[arg(long)]
    no_prefix_cache: bool,
    /// Require `Authorization: Bearer KEY` on every route but /health and /metrics (from
    /// UMA_API_KEY when not given, so that the key is not visible in `ps`).
    #[arg(long, env = "UMA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Name of the model in the API when one model is served (same as NAME=PATH).
    #[arg(long)]
    model_name: Option<String>,
    #[command(flatten)]
    memory: MemoryArgs,
    /// With several models, `--draft` drafts for each (they must share its vocabulary).
    #[command(flatten)]
    speculative: crate::speculative_args::SpeculativeArgs,
    /// How long an idle model stays loaded: 5m, 1h30m, 0 (unload when its requests end), -1
    /// (until another model needs the memory). Requests may set their own `keep_alive`.
    #[arg(long, default_value = "5m", allow_hyphen_values = true,
          value_parser = uma_server::parse_keep_alive)]
    keep_alive: KeepAlive,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Seconds that running requests may take to finish after SIGINT/SIGTERM before they are
    /// cancelled (and open connections dropped).
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Open connections at most; past it new ones wait until one closes.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// A web origin (`https://app.example`, or `*`) whose pages may call uma; local pages
    /// (localhost, 127.0.0.1) always may. Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// A host name, besides loopback ones, that requests may address uma by when it listens on
    /// loopback only (a name in /etc/hosts, say). Repeatable.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Seconds a client may take to send a request's headers, and a kept-alive connection may
    /// sit idle.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a client may take to send a request's body (408 after that).
    #[arg(long, default_value_t = 30)]
    body_timeout: u64,
    /// Serve embeddings (/v1/embeddings, /api/embed) from models whose file declares no pooling,
    /// pooling their final hidden states this way. Files that declare mean or last-token
    /// pooling (embedding models) always serve embeddings.
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// Worker threads for the model (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Do not serve the web page (chat, server status, "will it fit?") at `/`; the API stays.
    #[arg(long)]
    no_web: bool,
}

/// `--pooling`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PoolingArg {
    Mean,
    Last,
}

impl From<PoolingArg> for Pooling {
    fn from(pooling: PoolingArg) -> Pooling {
        match pooling {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Last => Pooling::Last,
        }
    }
}

pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    // An empty key would lock every client out (no Bearer token is empty).
    if args.api_key.as_deref().is_some_and(|key| key.trim().is_empty()) {
        anyhow::bail!("--api-key (or UMA_API_KEY) is empty: give a key, or leave it out");
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UMA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let threads = set_threads(args.threads)?;
    let (budget_bytes, budget_source) = args.memory.budget()?;
    tracing::info!(
        budget_mib = budget_bytes >> 20,
        source = budget_source,
        threads,
        "memory budget"
    );
    let models = plan_models(args, budget_bytes)?;
    let entries = models.iter().map(|model| model.entry.clone()).collect();
    let config = RegistryConfig {
        budget_bytes,
        default_keep_alive: args.keep_alive,
        check_interval: Duration::from_millis(250),
    };
    let loader = {
        let models = models.clone();
        Box::new(move |entry: &ModelEntry| {
            let model = models.iter().find(|model| model.entry.name == entry.name);
            let model =
                model.ok_or_else(|| EngineError::UnknownModel { name: entry.name.clone() })?;
            model.start()
        })
    };
    let registry = ModelRegistry::new(entries, config, loader)?;
    // Load at start what fits side by side, in the order given; the rest waits for a request.
    for model in &models {
        let name = &model.entry.name;
        if registry.held_bytes() + model.entry.memory_bytes <= budget_bytes {
            registry.preload(name)?;
        } else {
            tracing::info!(model = %name, "loads on its first request (the budget is taken)");
        }
    }
    let server_config = ServerConfig {
        api_key: args.api_key.clone(),
        max_body_bytes: args.max_body_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        origins: uma_server::OriginPolicy {
            check_host: false, // set by serve from the address it listens on
            allowed_hosts: args.allow_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            allowed_origins: args.allow_origins.clone(),
        },
        web: !args.no_web,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // HTTP work is light; the cores belong to the model's worker pool.
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Before binding: a signal right after "listening" must drain, not kill.
        let shutdown = uma_server::shutdown_signal();
        let address: SocketAddr = format!("{}:{}", args.host, args.port)
            .parse()
            .or_else(|_| {
                use std::net::ToSocketAddrs;
                (args.host.as_str(), args.port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other("no address"))
            })
            .with_context(|| format!("cannot resolve --host {}", args.host))?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        // The one line on stdout: scripts and tests wait for it.
        println!("uma: listening on http://{bound}");
        uma_server::serve(listener, registry, server_config, shutdown)
            .await
            .context("the server failed")
    })
}

/// A model of the command line, planned against the budget: how to start it and what it holds.
#[derive(Clone, Debug)]
struct ServedModel {
    entry: ModelEntry,
    path: PathBuf,
    config: EngineConfig,
}

impl ServedModel {
    /// Loads the model and starts its engine: a re-load maps the file afresh (pages of an
    /// earlier load may still be in the page cache, which makes it fast).
    fn start(&self) -> uma_engine::Result<EngineHandle> {
        // The error names the file (and the registry the model): no context to add.
        let engine = EngineHandle::open(&self.path, self.entry.name.clone(), self.config.clone())?;
        tracing::info!(
            model = engine.model_name(),
            context = self.config.context_length,
            parallel = self.config.max_num_seqs,
            kv_cache_tokens = self.config.num_kv_blocks() * self.config.block_size,
            kv_cache_mib = engine.kv_cache_bytes() >> 20,
            planned_mib = self.entry.memory_bytes >> 20,
            "model loaded"
        );
        Ok(engine)
    }
}

/// Names, engine configs and memory of every model on the command line. Refuses a model that
/// cannot fit the budget even alone, with the planner's breakdown.
fn plan_models(args: &ServeArgs, budget_bytes: u64) -> anyhow::Result<Vec<ServedModel>> {
    if args.model_name.is_some() && args.models.len() > 1 {
        bail!("--model-name names a single model; with several, write NAME=PATH");
    }
    let speculative = args.speculative.config()?;
    let mut models: Vec<ServedModel> = Vec::new();
    for argument in &args.models {
        let (name, model) = match argument.split_once('=') {
            Some((name, model)) if !name.is_empty() && !Path::new(argument).exists() => {
                (Some(name.to_owned()), model)
            }
            _ => (None, argument.as_str()),
        };
        let path = crate::model_path::resolve(Path::new(model))?;
        // A store name is the API name too; a file is known by its stem.
        let is_store_name = !Path::new(model).exists();
        let name = name.or_else(|| args.model_name.clone()).unwrap_or_else(|| {
            if is_store_name {
                model.to_owned()
            } else {
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
            }
        });
        if models.iter().any(|model| model.entry.name == name) {
            bail!("two models are named {name:?}: name them apart with NAME=PATH");
        }
        let file =
            GgufFile::open(&path).with_context(|| format!("cannot load {}", path.display()))?;
        let trained = trained_context_length(&path, &file)?;
        let context_length = context_length(&path, trained, args.ctx)?;
        let mut config = EngineConfig::new(context_length, args.parallel);
        config.kv_cache_type = args.memory.kv_cache_type();
        config.device = args.memory.device();
        config.max_num_batched_tokens = args.batch_tokens;
        if let Some(tokens) = args.kv_cache_tokens {
            config.num_kv_cache_tokens = tokens;
        }
        if let Some(queue) = args.max_queue {
            config.max_queued_requests = queue;
        }
        config.enable_prefix_caching = !args.no_prefix_cache;
        config.speculative = speculative.clone();
        let declared = uma_gguf::ModelParams::from_metadata(file.metadata())
            .ok()
            .and_then(|params| params.pooling_type)
            .and_then(Pooling::from_gguf);
        config.pooling = declared.or(args.pooling.map(Pooling::from));
        let request = KvRequest {
            context_length,
            num_sequences: args.parallel,
            kv_cache_tokens: config.num_kv_cache_tokens,
            min_kv_cache_tokens: context_length,
            kv_cache_type: config.kv_cache_type,
            max_num_batched_tokens: args.batch_tokens,
        };
        let draft_bytes = draft_memory_bytes(&config.speculative, &request, budget_bytes)?;
        let mut planned =
            plan_model(&path, &file, &request, budget_bytes.saturating_sub(draft_bytes))?;
        planned.memory_bytes += draft_bytes;
        if let Some(asked) = planned.shrunk_from {
            tracing::warn!(
                model = %name,
                asked,
                kv_cache_tokens = planned.kv_cache_tokens,
                "KV cache shrunk to fit the memory budget: requests queue or are preempted \
                 sooner"
            );
        }
        config.num_kv_cache_tokens = planned.kv_cache_tokens;
        tracing::info!(
            model = %name,
            memory = %format::bytes(planned.memory_bytes),
            kv_cache_tokens = planned.kv_cache_tokens,
            kv_cache_type = config.kv_cache_type.name(),
            "planned"
        );
        let info = model_info(&path, &file, &planned.spec, context_length, config.pooling);
        models.push(ServedModel {
            entry: ModelEntry { name, memory_bytes: planned.memory_bytes, info },
            path,
            config,
        });
    }
    Ok(models)
}

/// What the APIs (`/api/tags`, `/api/show`, `/api/ps`) tell about the model in `file`.
fn model_info(
    path: &Path,
    file: &GgufFile,
    spec: &uma_planner::ModelSpec,
    context_length: usize,
    pooling: Option<Pooling>,
) -> ModelInfo {
    let metadata = file.metadata();
    let file_type = metadata.get_u64(uma_gguf::keys::GENERAL_FILE_TYPE).ok().flatten();
    let file_metadata = std::fs::metadata(path).ok();
    let modified = file_metadata.as_ref().and_then(|m| m.modified().ok());
    ModelInfo {
        architecture: spec.architecture.clone().unwrap_or_default(),
        num_parameters: spec.num_parameters,
        quantization: file_type
            .and_then(file_type_name)
            .map_or_else(|| spec.quantization.clone(), str::to_owned),
        file_bytes: file_metadata.as_ref().map_or(0, |m| m.len()),
        modified_unix_secs: modified
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |age| age.as_secs()),
        context_length,
        chat_template: metadata
            .get_str(uma_gguf::keys::TOKENIZER_CHAT_TEMPLATE)
            .ok()
            .flatten()
            .map(str::to_owned),
        pooling,
    }
}

/// llama.cpp's name for a `general.file_type` value (its `llama_ftype`), as Ollama shows it.
fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}
