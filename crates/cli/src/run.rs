//! `uma run MODEL [PROMPT]`: one-shot generation with a prompt, an interactive chat without.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use uma_sampling::{FinishReason, SamplingParams};
use uma_tokenizer::ChatMessage;

use crate::memory_budget::MemoryArgs;
use crate::session::{GenerationStats, Session};

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// A .gguf file, or the name of a model in the store (`uma list`).
    pub(crate) model: PathBuf,
    /// Generate an answer to this prompt and exit; without it, start an interactive chat.
    prompt: Option<String>,
    /// System prompt for the chat template.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as raw text, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Context length in tokens (default: 4096, capped at the model's trained context).
    #[arg(long)]
    ctx: Option<usize>,
    #[command(flatten)]
    memory: MemoryArgs,
    /// Most tokens to generate per answer (default: until the model stops or the context is full).
    #[arg(short = 'n', long)]
    max_tokens: Option<u32>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep only the K most likely tokens (0: off).
    #[arg(long, default_value_t = 40)]
    top_k: i32,
    /// Keep the smallest set of tokens whose probability reaches P.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens less likely than P times the most likely one.
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalise tokens seen in the last --repeat-last-n tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Window of the repeat penalty (-1: everything, 0: off).
    #[arg(long, default_value_t = 64)]
    repeat_last_n: i32,
    /// Subtract this from the logit of every token already generated.
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    /// Subtract this times the count of every token already generated.
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    /// Seed for reproducible sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when the answer produces this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Worker threads (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

impl RunArgs {
    fn sampling_params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            ..SamplingParams::default()
        }
    }
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let params = args.sampling_params();
    params.validate()?;
    crate::threads::set_threads(args.threads)?;
    let (budget_bytes, _) = args.memory.budget()?;
    let kv_cache_type = args.memory.kv_cache_type();
    let mut session = Session::load(&args.model, args.ctx, budget_bytes, kv_cache_type)?;
    // Ctrl-C stops the answer being generated; at the chat prompt it is handled by the reader.
    let cancel = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&cancel);
    ctrlc::set_handler(move || handler_flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;

    match &args.prompt {
        Some(prompt) => {
            let tokens = if args.raw {
                session.raw_tokens(prompt)?
            } else {
                session.chat_tokens(&initial_messages(args, prompt))?
            };
            let stats = answer(&mut session, &tokens, &params, &cancel)?;
            summary(&stats);
            Ok(())
        }
        None => chat(&mut session, args, &params, &cancel),
    }
}

fn initial_messages(args: &RunArgs, first: &str) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
    messages.push(ChatMessage::user(first));
    messages
}

/// Streams one answer to stdout.
fn answer(
    session: &mut Session,
    tokens: &[u32],
    params: &SamplingParams,
    cancel: &AtomicBool,
) -> anyhow::Result<GenerationStats> {
    cancel.store(false, Ordering::Relaxed);
    let mut stdout = std::io::stdout();
    let stats = session.generate(tokens, params, cancel, |piece| {
        stdout.write_all(piece.as_bytes())?;
        Ok(stdout.flush()?)
    })?;
    if !stats.text.ends_with('\n') {
        println!();
    }
    Ok(stats)
}

/// The summary line, on stderr so that stdout holds only the answer.
fn summary(stats: &GenerationStats) {
    let rate = |n: usize, t: std::time::Duration| {
        if t.as_secs_f64() > 0.0 {
            n as f64 / t.as_secs_f64()
        } else {
            0.0
        }
    };
    let reused = stats.num_prompt_tokens - stats.num_prefilled_tokens;
    let reused = if reused > 0 { format!(" ({reused} reused from cache)") } else { String::new() };
    let stopped = match stats.finish_reason {
        FinishReason::Stop => "",
        FinishReason::Length => ", stopped: length",
        FinishReason::Cancelled => ", stopped: cancelled",
    };
    eprintln!(
        "[prompt: {} tokens{reused}, {:.1} tok/s | generated: {} tokens, {:.1} tok/s{stopped}]",
        stats.num_prompt_tokens,
        rate(stats.num_prefilled_tokens, stats.prefill_time),
        stats.num_generated_tokens,
        rate(stats.num_generated_tokens, stats.decode_time),
    );
}

const CHAT_HELP: &str = "/reset  forget the conversation\n/exit   leave (or Ctrl-D)\n\
                         Ctrl-C   stop the answer being written";

fn chat(
    session: &mut Session,
    args: &RunArgs,
    params: &SamplingParams,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "uma: chatting with {} (context {} tokens, KV cache {:.0} MB). /help for commands.",
            args.model.display(),
            session.context_length(),
            session.kv_cache_bytes() as f64 / 1e6
        );
    }
    let mut lines = LineReader::new(interactive)?;
    let mut history: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
    while let Some(line) = lines.next_line()? {
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" | "/bye" => break,
            "/reset" | "/clear" => {
                history.truncate(usize::from(args.system.is_some()));
                session.reset();
                eprintln!("(conversation reset)");
                continue;
            }
            "/help" | "/?" => {
                eprintln!("{CHAT_HELP}");
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::user(line));
        let tokens =
            if args.raw { session.raw_tokens(line)? } else { session.chat_tokens(&history)? };
        match answer(session, &tokens, params, cancel) {
            Ok(stats) => {
                history.push(ChatMessage::assistant(stats.text.clone()));
                summary(&stats);
            }
            // A turn that cannot run (context full) is reported; the chat goes on.
            Err(error) => {
                history.pop();
                eprintln!("uma: error: {error:#}");
            }
        }
    }
    Ok(())
}

/// Lines from a terminal (with editing and history) or from a pipe.
enum LineReader {
    Terminal(Box<rustyline::DefaultEditor>),
    Pipe(std::io::StdinLock<'static>),
}

impl LineReader {
    fn new(interactive: bool) -> anyhow::Result<Self> {
        Ok(if interactive {
            LineReader::Terminal(Box::new(rustyline::DefaultEditor::new()?))
        } else {
            LineReader::Pipe(std::io::stdin().lock())
        })
    }

    /// The next line, or `None` at end of input.
    fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        match self {
            LineReader::Terminal(editor) => loop {
                match editor.readline(">>> ") {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        return Ok(Some(line));
                    }
                    // Ctrl-C at the prompt: clear the line, stay in the chat.
                    Err(rustyline::error::ReadlineError::Interrupted) => {
                        eprintln!("(Ctrl-C stops an answer; /exit or Ctrl-D leaves)");
                    }
                    Err(rustyline::error::ReadlineError::Eof) => return Ok(None),
                    Err(error) => return Err(error.into()),
                }
            },
            LineReader::Pipe(stdin) => {
                let mut line = String::new();
                Ok((stdin.read_line(&mut line)? > 0).then_some(line))
            }
        }
    }
}
