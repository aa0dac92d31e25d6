//! The `uma` binary: argument parsing and one function per subcommand. Library crates do the work;
//! this crate turns their results and errors into what a person (or `--json`) reads.
#![forbid(unsafe_code)]

mod bench;
mod format;
mod memory_budget;
mod model_path;
mod output;
mod plan;
mod pull;
mod run;
mod serve;
mod show;
mod speculative_args;
mod store_commands;
mod threads;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "uma", version, about = "Run quantized LLMs locally, memory first")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chat with a model in the terminal, or answer one prompt and exit.
    Run(run::RunArgs),
    /// Describe a GGUF model: architecture, sizes, quantization mix, KV and bandwidth needs.
    Show(show::ShowArgs),
    /// Measure prompt and generation speed, batched decode, and decode against memory bandwidth.
    Bench(bench::BenchArgs),
    /// Serve a model over an OpenAI-compatible HTTP API (127.0.0.1 by default).
    Serve(serve::ServeArgs),
    /// Will it fit? Memory breakdown, longest context, predicted speed and cost, per machine.
    Plan(Box<plan::PlanArgs>),
    /// Download a GGUF model from a Hugging Face-compatible hub into the local store.
    Pull(pull::PullArgs),
    /// List the models in the local store.
    List(store_commands::ListArgs),
    /// Remove models from the local store.
    Rm(store_commands::RemoveArgs),
}

fn main() -> ExitCode {
    quiet_mesa_device_select();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(mut args) => {
            model_path::resolve_in(&mut args.model).and_then(|()| run::run(&args))
        }
        Command::Show(mut args) => {
            model_path::resolve_in(&mut args.model).and_then(|()| show::run(&args))
        }
        Command::Bench(mut args) => {
            model_path::resolve_in(&mut args.model).and_then(|()| bench::run(&args))
        }
        Command::Serve(args) => serve::run(&args),
        Command::Plan(mut args) => match args.model.as_mut() {
            Some(model) => model_path::resolve_in(model).and_then(|()| plan::run(&args)),
            None => plan::run(&args),
        },
        Command::Pull(args) => pull::run(&args),
        Command::List(args) => store_commands::list(&args),
        Command::Rm(args) => store_commands::remove(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the context chain joined, so scripts and people both get the whole story.
            eprintln!("uma: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Mesa's implicit Vulkan layer `device_select` connects to Wayland while listing GPUs, and without a
/// login session (no `XDG_RUNTIME_DIR`: ssh, containers, CI) libwayland prints two "error:" lines on
/// every GPU probe, `--device auto` included. wgpu orders the adapters itself, so the layer is turned
/// off there unless the user chose a GPU through it. Done first, before any thread reads the
/// environment.
fn quiet_mesa_device_select() {
    let unset = |name| std::env::var_os(name).is_none();
    if unset("XDG_RUNTIME_DIR") && unset("MESA_VK_DEVICE_SELECT") && unset("NODEVICE_SELECT") {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}
