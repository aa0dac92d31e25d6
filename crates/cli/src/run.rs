//! `uma run MODEL [PROMPT]`: one-shot generation with a prompt, an interactive chat without.
//!
//! Runs on the serving engine, started as `uma serve` starts it, with one sequence: each answer
//! is a request streamed back, and the conversation so far comes from the engine's prefix cache,
//! so a chat turn computes only the newest message.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use uma_chat_output::{OutputDelta, OutputParser, ReasoningFormat};
use uma_engine::{
    Completion, EngineConfig, EngineError, EngineHandle, GenerationRequest, RequestId,
    RequestStream, StreamEvent, TokenId, Usage,
};
use uma_gguf::GgufFile;
use uma_sampling::{FinishReason, SamplingParams};
use uma_tokenizer::ChatMessage;

use crate::memory_budget::{
    context_length, plan_model, trained_context_length, KvRequest, MemoryArgs,
};

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
    /// With --raw: special-token spellings in the text (`<|im_start|>`) become those tokens,
    /// for prompts that write the model's chat format by hand. Without it they stay text.
    #[arg(long, requires = "raw")]
    parse_special: bool,
    /// Context length in tokens (default: 4096, capped at the model's trained context).
    #[arg(long)]
    ctx: Option<usize>,
    #[command(flatten)]
    memory: MemoryArgs,
    #[command(flatten)]
    speculative: crate::speculative_args::SpeculativeArgs,
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
    /// Do not show a reasoning model's thinking (`<think>…</think>`), only its answer. Without
    /// it the thinking is shown dimmed on a terminal.
    #[arg(long)]
    hide_thinking: bool,
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
            stop: self.stop.clone().into(),
            ..SamplingParams::default()
        }
    }
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let params = args.sampling_params();
    params.validate()?;
    crate::threads::set_threads(args.threads)?;
    let (budget_bytes, _) = args.memory.budget()?;
    let chat = Chat::start(args, budget_bytes, params)?;
    // Ctrl-C stops the answer being generated; at the chat prompt it is handled by the reader.
    let handler = (chat.engine.clone(), Arc::clone(&chat.answering));
    ctrlc::set_handler(move || {
        let (engine, answering) = &handler;
        if let Some(id) = *lock(answering) {
            engine.cancel(id);
        }
    })
    .context("cannot install the Ctrl-C handler")?;

    let result = match &args.prompt {
        Some(prompt) => {
            let prompt = if args.raw {
                Prompt::raw(chat.engine.prompts().raw(prompt, args.parse_special)?)
            } else {
                chat.chat_prompt(&initial_messages(args, prompt))?
            };
            chat.answer(prompt).map(|answer| summary(&answer))
        }
        None => chat.converse(args),
    };
    chat.engine.shutdown(Duration::ZERO);
    result
}

fn initial_messages(args: &RunArgs, first: &str) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
    messages.push(ChatMessage::user(first));
    messages
}

/// Prompt tokens, and whether the answer starts inside a reasoning block.
struct Prompt {
    tokens: Vec<TokenId>,
    /// `Some` for chats with a reasoning model: how its thinking is marked.
    reasoning: Option<(ReasoningFormat, bool)>,
}

impl Prompt {
    /// A raw prompt: the output is shown as the model writes it.
    fn raw(tokens: Vec<TokenId>) -> Prompt {
        Prompt { tokens, reasoning: None }
    }
}

/// How a reasoning model's thinking is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thinking {
    Hidden,
    /// Dimmed with ANSI escapes (stdout is a terminal).
    Dimmed,
    /// As text, set apart by blank lines (stdout is a pipe or file).
    Plain,
}

/// What the terminal shows for parsed output `deltas`; `in_thinking` tracks whether the last
/// text shown was thinking (a dimmed span is closed before the answer starts).
fn display_text(deltas: &[OutputDelta], thinking: Thinking, in_thinking: &mut bool) -> String {
    let mut shown = String::new();
    for delta in deltas {
        match delta {
            OutputDelta::Reasoning(text) if thinking != Thinking::Hidden => {
                if !*in_thinking {
                    shown.push_str(if thinking == Thinking::Dimmed { "\x1b[2m" } else { "" });
                    *in_thinking = true;
                }
                shown.push_str(text);
            }
            OutputDelta::Content(text) => {
                if *in_thinking {
                    shown.push_str(if thinking == Thinking::Dimmed {
                        "\x1b[0m\n\n"
                    } else {
                        "\n\n"
                    });
                    *in_thinking = false;
                }
                shown.push_str(text);
            }
            _ => {}
        }
    }
    shown
}

/// One engine running one sequence at a time: each answer is a request, and the next turn's
/// prompt, which starts with this turn's prompt and answer, finds them in the prefix cache.
struct Chat {
    engine: EngineHandle,
    params: SamplingParams,
    thinking: Thinking,
    /// The request being answered, for Ctrl-C to cancel.
    answering: Arc<Mutex<Option<RequestId>>>,
    /// The model's trained context, the most `--ctx` can ask for.
    max_context_length: usize,
}

/// What one answer produced, for the summary line and the chat history.
#[derive(Debug)]
struct Answer {
    /// The generated text (stop strings removed).
    text: String,
    usage: Usage,
    finish_reason: FinishReason,
    /// From submitting the request to its first token.
    prefill_time: Duration,
    /// From the first token to the end.
    decode_time: Duration,
}

impl Chat {
    /// Plans the model in `args` against `budget_bytes` (refused with the breakdown when it
    /// cannot fit one full context) and starts its engine for one sequence, with prefix caching.
    fn start(args: &RunArgs, budget_bytes: u64, params: SamplingParams) -> anyhow::Result<Chat> {
        let path = &args.model;
        let file =
            GgufFile::open(path).with_context(|| format!("cannot load {}", path.display()))?;
        let max_context_length = trained_context_length(path, &file)?;
        let context_length = context_length(path, max_context_length, args.ctx)?;
        let mut config = EngineConfig::new(context_length, 1);
        config.kv_cache_type = args.memory.kv_cache_type();
        config.device = args.memory.device();
        config.enable_prefix_caching = true;
        config.speculative = args.speculative.config()?;
        let request =
            KvRequest::single(context_length, config.max_num_batched_tokens, config.kv_cache_type);
        let draft_bytes = crate::speculative_args::draft_memory_bytes(
            &config.speculative,
            &request,
            budget_bytes,
        )?;
        plan_model(path, &file, &request, budget_bytes.saturating_sub(draft_bytes))?;
        drop(file);
        let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned());
        let engine = EngineHandle::open(path, name.unwrap_or_default(), config)
            .with_context(|| format!("cannot load {}", path.display()))?;
        let thinking = if args.hide_thinking {
            Thinking::Hidden
        } else if std::io::stdout().is_terminal() {
            Thinking::Dimmed
        } else {
            Thinking::Plain
        };
        Ok(Chat { engine, params, thinking, answering: Arc::default(), max_context_length })
    }

    /// The prompt of a chat through the model's template, and where its answer starts.
    fn chat_prompt(&self, messages: &[ChatMessage]) -> anyhow::Result<Prompt> {
        let prompts = self.engine.prompts();
        let chat = prompts.chat_with_tools(messages, None)?;
        let reasoning = ReasoningFormat::detect(prompts.template_source())
            .map(|format| (format, format.starts_in_reasoning(&chat.rendered)));
        Ok(Prompt { tokens: chat.tokens, reasoning })
    }

    /// Generates after `prompt`, streaming the text to stdout as it becomes final (a reasoning
    /// model's thinking as `--hide-thinking` says); the answer's text leaves the thinking out.
    fn answer(&self, prompt: Prompt) -> anyhow::Result<Answer> {
        let started = Instant::now();
        let parser = prompt
            .reasoning
            .map(|(format, starts_in)| OutputParser::new(None, Some(format), starts_in));
        let request = GenerationRequest {
            prompt: prompt.tokens,
            params: self.params.clone(),
            sampler_stream: 0,
            grammar: None,
        };
        let mut stream = {
            // Held while submitting, so that a Ctrl-C meanwhile finds the request to cancel.
            let mut answering = lock(&self.answering);
            let stream = self.engine.submit(request).map_err(|error| match error {
                EngineError::PromptTooLong { .. } => anyhow!(
                    "{error}; raise --ctx (at most {}, the model's trained context)",
                    self.max_context_length
                ),
                error => error.into(),
            })?;
            *answering = Some(stream.id());
            stream
        };
        let streamed = stream_to_stdout(&mut stream, parser, self.thinking);
        *lock(&self.answering) = None;
        let (text, completion, first_token) = streamed?;
        if !text.ends_with('\n') {
            println!();
        }
        let first_token = first_token.unwrap_or_else(Instant::now);
        Ok(Answer {
            text,
            usage: completion.usage,
            finish_reason: completion.finish_reason,
            prefill_time: first_token - started,
            decode_time: first_token.elapsed(),
        })
    }

    /// The interactive chat (or lines from a pipe), until `/exit` or the end of input.
    fn converse(&self, args: &RunArgs) -> anyhow::Result<()> {
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            eprintln!(
                "uma: chatting with {} (context {} tokens, KV cache {:.0} MB). /help for commands.",
                args.model.display(),
                self.engine.config().context_length,
                self.engine.kv_cache_bytes() as f64 / 1e6
            );
        }
        let prompts = self.engine.prompts();
        let mut lines = LineReader::new(interactive)?;
        let mut history: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
        while let Some(line) = lines.next_line()? {
            let line = line.trim();
            match line {
                "" => continue,
                "/exit" | "/quit" | "/bye" => break,
                "/reset" | "/clear" => {
                    // The prefix cache needs no reset: a new conversation simply shares less.
                    history.truncate(usize::from(args.system.is_some()));
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
            let prompt = if args.raw {
                Prompt::raw(prompts.raw(line, args.parse_special)?)
            } else {
                self.chat_prompt(&history)?
            };
            match self.answer(prompt) {
                Ok(answer) => {
                    summary(&answer);
                    history.push(ChatMessage::assistant(answer.text));
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
}

/// Writes a request's text to stdout as it arrives (through `parser`, for a reasoning model:
/// thinking shown as `thinking` says); returns the answer's text (without the thinking), the
/// terminal event and when the first token came.
fn stream_to_stdout(
    stream: &mut RequestStream,
    mut parser: Option<OutputParser>,
    thinking: Thinking,
) -> anyhow::Result<(String, Completion, Option<Instant>)> {
    let mut stdout = std::io::stdout();
    let mut text = String::new();
    let mut first_token = None;
    let mut in_thinking = false;
    let mut show = |piece: &str| -> anyhow::Result<()> {
        if !piece.is_empty() {
            stdout.write_all(piece.as_bytes())?;
            stdout.flush()?;
        }
        Ok(())
    };
    let mut emit = |piece: &str, parser: &mut Option<OutputParser>| -> anyhow::Result<()> {
        match parser {
            Some(parser) => {
                let deltas = parser.push(piece);
                text.extend(deltas.iter().filter_map(|delta| match delta {
                    OutputDelta::Content(content) => Some(content.as_str()),
                    _ => None,
                }));
                show(&display_text(&deltas, thinking, &mut in_thinking))
            }
            None => {
                text.push_str(piece);
                show(piece)
            }
        }
    };
    loop {
        match stream.blocking_next() {
            Some(StreamEvent::Token(token)) => {
                first_token.get_or_insert_with(Instant::now);
                emit(&token.text, &mut parser)?;
            }
            Some(StreamEvent::Finished(completion)) => {
                emit(&completion.text, &mut parser)?;
                if let Some(parser) = parser.take() {
                    let (deltas, parsed) = parser.finish();
                    let mut shown = display_text(&deltas, thinking, &mut in_thinking);
                    if in_thinking && thinking == Thinking::Dimmed {
                        shown.push_str("\x1b[0m");
                    }
                    std::io::stdout().write_all(shown.as_bytes())?;
                    text = parsed.content;
                }
                return Ok((text, completion, first_token));
            }
            Some(StreamEvent::Failed(error)) => bail!("the answer failed: {error}"),
            None => bail!("the engine stopped before the answer ended"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded value is a plain id, consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The summary line, on stderr so that stdout holds only the answer.
fn summary(answer: &Answer) {
    let rate = |n: usize, t: Duration| {
        if t.as_secs_f64() > 0.0 {
            n as f64 / t.as_secs_f64()
        } else {
            0.0
        }
    };
    let usage = &answer.usage;
    let reused = usage.num_cached_tokens;
    let reused = if reused > 0 { format!(" ({reused} reused from cache)") } else { String::new() };
    let stopped = match answer.finish_reason {
        FinishReason::Stop => "",
        FinishReason::Length => ", stopped: length",
        FinishReason::Cancelled => ", stopped: cancelled",
    };
    let drafted = match usage.num_drafted_tokens {
        0 => String::new(),
        n => format!(", {} of {n} drafts accepted", usage.num_accepted_draft_tokens),
    };
    eprintln!(
        "[prompt: {} tokens{reused}, {:.1} tok/s | generated: {} tokens, {:.1} tok/s{drafted}{stopped}]",
        usage.num_prompt_tokens,
        rate(usage.num_prompt_tokens - usage.num_cached_tokens, answer.prefill_time),
        usage.num_generated_tokens,
        rate(usage.num_generated_tokens, answer.decode_time),
    );
}

const CHAT_HELP: &str = "/reset  forget the conversation\n/exit   leave (or Ctrl-D)\n\
                         Ctrl-C   stop the answer being written";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(thinking: Thinking, pieces: &[&str]) -> String {
        shown_as(ReasoningFormat::Think, thinking, pieces)
    }

    fn shown_as(format: ReasoningFormat, thinking: Thinking, pieces: &[&str]) -> String {
        let mut parser = OutputParser::new(None, Some(format), false);
        let mut in_thinking = false;
        let mut text = String::new();
        for piece in pieces {
            text.push_str(&display_text(&parser.push(piece), thinking, &mut in_thinking));
        }
        text + &display_text(&parser.finish().0, thinking, &mut in_thinking)
    }

    #[test]
    fn thinking_is_dimmed_plain_or_hidden() {
        let pieces = ["<thi", "nk>Two primes", " add up.</th", "ink>\n\n5 is", " prime."];
        assert_eq!(shown(Thinking::Hidden, &pieces), "5 is prime.");
        assert_eq!(shown(Thinking::Plain, &pieces), "Two primes add up.\n\n5 is prime.");
        assert_eq!(
            shown(Thinking::Dimmed, &pieces),
            "\x1b[2mTwo primes add up.\x1b[0m\n\n5 is prime."
        );
        // An answer without thinking is shown as written.
        assert_eq!(shown(Thinking::Dimmed, &["Just ", "this."]), "Just this.");
    }

    /// gpt-oss (harmony): the analysis channel is the thinking, the final channel the answer.
    #[test]
    fn harmony_analysis_is_thinking_and_final_the_answer() {
        let pieces = [
            "<|channel|>analysis<|mess",
            "age|>Two primes",
            " add up.<|end|><|start|>assistant<|channel|>final<|message|>5 is",
            " prime.",
        ];
        let harmony = ReasoningFormat::Harmony;
        assert_eq!(shown_as(harmony, Thinking::Hidden, &pieces), "5 is prime.");
        assert_eq!(
            shown_as(harmony, Thinking::Dimmed, &pieces),
            "\x1b[2mTwo primes add up.\x1b[0m\n\n5 is prime."
        );
    }
}
