//! `uma serve MODEL`: the OpenAI-compatible HTTP server over one model.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use uma_engine::{EngineConfig, EngineHandle, PromptEncoder};
use uma_gguf::GgufFile;
use uma_model::Model;
use uma_server::ServerConfig;

use crate::threads::set_threads;

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Path to a .gguf file.
    model: PathBuf,
    /// Address to listen on. The default accepts local clients only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Context length per sequence, in tokens (default: 4096, capped at the model's trained
    /// context).
    #[arg(long)]
    ctx: Option<usize>,
    /// Sequences generated at once (continuous batching).
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    /// KV cache size in tokens, shared by all sequences (default: --ctx × --parallel). Smaller
    /// pools queue or preempt requests when full; they never fail for lack of KV memory.
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
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "UMA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Name of the model in the API (default: the file name without .gguf).
    #[arg(long)]
    model_name: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Seconds that running requests may take to finish after SIGINT/SIGTERM before they are
    /// cancelled.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Worker threads for the model (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Context when `--ctx` is not given (as `uma run`).
const DEFAULT_CONTEXT: usize = 4096;

pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UMA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let threads = set_threads(args.threads)?;
    let engine = start_engine(args)?;
    let config = engine.config();
    tracing::info!(
        model = engine.model_name(),
        context = config.context_length,
        parallel = config.max_num_seqs,
        kv_cache_tokens = config.num_kv_blocks() * config.block_size,
        kv_cache_mib = engine.kv_cache_bytes() >> 20,
        threads,
        "model loaded"
    );
    let server_config = ServerConfig {
        api_key: args.api_key.clone(),
        max_body_bytes: args.max_body_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // HTTP work is light; the cores belong to the model's worker pool.
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
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
        uma_server::serve(listener, vec![engine], server_config, uma_server::shutdown_signal())
            .await
            .context("the server failed")
    })
}

fn start_engine(args: &ServeArgs) -> anyhow::Result<EngineHandle> {
    let path = &args.model;
    let file =
        Arc::new(GgufFile::open(path).with_context(|| format!("cannot load {}", path.display()))?);
    let prompts = PromptEncoder::from_gguf(&file)?;
    let model = Model::load(file)?;
    let trained = model.config().max_position_embeddings;
    let context_length = args.ctx.unwrap_or(DEFAULT_CONTEXT.min(trained));
    if context_length < 2 || context_length > trained {
        bail!("--ctx {context_length} is outside 2..={trained} (the model's trained context)");
    }
    let mut config = EngineConfig::new(context_length, args.parallel);
    config.max_num_batched_tokens = args.batch_tokens;
    if let Some(tokens) = args.kv_cache_tokens {
        config.num_kv_cache_tokens = tokens;
    }
    if let Some(queue) = args.max_queue {
        config.max_queued_requests = queue;
    }
    config.enable_prefix_caching = !args.no_prefix_cache;
    let name = args.model_name.clone().unwrap_or_else(|| {
        path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    });
    Ok(EngineHandle::start(model, prompts, name, config)?)
}
