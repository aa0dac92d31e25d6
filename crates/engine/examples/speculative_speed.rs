//! What speculative decoding gains (issue 19): decode tokens/s of the same greedy requests
//! with speculation off and on, measured in both orders, for three workloads:
//!
//! - `edit`: rewrite a 300-line Python file with two small changes, one stream (prompt lookup);
//! - `chat`: ordinary chat prompts, one stream (the draft model when given, else lookup);
//! - `chat16`: sixteen chat streams at once (`auto`: speculation turns itself down).
//!
//! The outputs with and without speculation are compared token for token as well.
//!
//!   cargo run --release -p uma-engine --example speculative_speed -- MODEL.gguf [DRAFT.gguf] [TOKENS]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uma_engine::{
    EngineConfig, EngineHandle, GenerationRequest, SpeculativeConfig, SpeculativeMode, StreamEvent,
    TokenId,
};
use uma_sampling::SamplingParams;
use uma_tokenizer::ChatMessage;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(args.first().ok_or("usage: MODEL.gguf [DRAFT.gguf] [TOKENS]")?);
    let draft = args.get(1).filter(|a| a.ends_with(".gguf")).map(PathBuf::from);
    let tokens: u32 = args.last().and_then(|a| a.parse().ok()).unwrap_or(256);
    let plain = engine(&model, SpeculativeConfig::off())?;
    let lookup = engine(&model, mode(SpeculativeMode::Lookup, None))?;
    let drafted = match &draft {
        Some(path) => Some(engine(&model, mode(SpeculativeMode::Draft, Some(path.clone())))?),
        None => None,
    };
    let auto = engine(&model, mode(SpeculativeMode::Auto, draft.clone()))?;

    let edit = vec![chat(&plain, &edit_prompt())?];
    let chats: Vec<Vec<TokenId>> =
        CHATS.iter().map(|t| chat(&plain, t)).collect::<Result<_, _>>()?;
    let chats16: Vec<Vec<TokenId>> = (0..16).map(|i| chats[i % chats.len()].clone()).collect();
    // Warm up: pages in the weights, fills the prefix cache with the prompts.
    for engine in [&plain, &lookup, &auto].into_iter().chain(drafted.as_ref()) {
        run(engine, &edit, 4)?;
        run(engine, &chats16, 4)?;
    }
    println!("workload  speculation  plain tok/s  speculative tok/s  ratio  accepted/drafted");
    compare("edit", "lookup", &plain, &lookup, &edit, tokens)?;
    let (name, chat_engine) = match &drafted {
        Some(engine) => ("draft", engine),
        None => ("lookup", &lookup),
    };
    for prompt in &chats {
        compare("chat", name, &plain, chat_engine, std::slice::from_ref(prompt), tokens)?;
    }
    compare("chat16", "auto", &plain, &auto, &chats16, tokens)?;
    Ok(())
}

const CHATS: [&str; 3] = [
    "Explain how a hash map handles collisions, in two short paragraphs.",
    "Write a Python function that merges two sorted lists, with a docstring and an example.",
    "What are three differences between TCP and UDP?",
];

fn mode(mode: SpeculativeMode, draft_model: Option<PathBuf>) -> SpeculativeConfig {
    SpeculativeConfig { mode, draft_model, ..SpeculativeConfig::default() }
}

fn engine(model: &Path, speculative: SpeculativeConfig) -> Result<EngineHandle, Error> {
    let mut config = EngineConfig::new(8192, 16);
    config.speculative = speculative;
    Ok(EngineHandle::open(model, "bench", config)?)
}

fn chat(engine: &EngineHandle, text: &str) -> Result<Vec<TokenId>, Error> {
    Ok(engine.prompts().chat(&[ChatMessage::user(text)])?)
}

/// A 300-line Python module and the request to change two small things in it.
fn edit_prompt() -> String {
    let mut file = String::new();
    for i in 0..30 {
        file.push_str(&format!(
            "def compute_total_{i}(values):\n    total = 0\n    for value in values:\n        \
             if value > {i}:\n            total += value * {m}\n        else:\n            \
             total -= {i}\n    return total\n\n\n",
            m = i % 7 + 1
        ));
    }
    format!(
        "Here is a Python file:\n\n```python\n{file}```\n\nRename every function `compute_total_N` \
         to `sum_above_N` (same N) and change nothing else. Reply with the whole updated file \
         in one code block."
    )
}

/// Each request's tokens, the decode rate, and (accepted, drafted) draft tokens.
type Measured = (Vec<Vec<TokenId>>, f64, (usize, usize));

/// Runs `prompts` at once, greedy, `tokens` each; returns the tokens of each and the decode
/// rate (all generated tokens after each stream's first, over the time from the first first
/// token to the last end), with the engine's accepted and drafted counts.
fn run(engine: &EngineHandle, prompts: &[Vec<TokenId>], tokens: u32) -> Result<Measured, Error> {
    let params = SamplingParams { max_tokens: Some(tokens), ..SamplingParams::greedy() };
    let mut streams = Vec::new();
    for prompt in prompts {
        let request = GenerationRequest {
            prompt: prompt.clone(),
            params: params.clone(),
            sampler_stream: 0,
            grammar: None,
        };
        streams.push(engine.submit(request)?);
    }
    let mut outputs = Vec::new();
    let mut first: Option<Instant> = None;
    let mut counts = (0, 0);
    let mut decoded = 0;
    for mut stream in streams {
        let mut output = Vec::new();
        while let Some(event) = stream.blocking_next() {
            match event {
                StreamEvent::Token(token) => {
                    first.get_or_insert_with(Instant::now);
                    output.push(token.token);
                }
                StreamEvent::Finished(done) => {
                    counts.0 += done.usage.num_accepted_draft_tokens;
                    counts.1 += done.usage.num_drafted_tokens;
                    break;
                }
                StreamEvent::Failed(error) => return Err(error.to_string().into()),
            }
        }
        decoded += output.len().saturating_sub(1);
        outputs.push(output);
    }
    let seconds = first.map_or(Duration::ZERO, |f| f.elapsed()).as_secs_f64();
    Ok((outputs, decoded as f64 / seconds.max(1e-9), counts))
}

/// Both orders; prints the mean rates and checks the outputs are the same.
fn compare(
    workload: &str,
    speculation: &str,
    plain: &EngineHandle,
    speculative: &EngineHandle,
    prompts: &[Vec<TokenId>],
    tokens: u32,
) -> Result<(), Error> {
    let (a, plain_first, _) = run(plain, prompts, tokens)?;
    let (b, spec_second, counts_1) = run(speculative, prompts, tokens)?;
    let (_, spec_first, counts_2) = run(speculative, prompts, tokens)?;
    let (_, plain_second, _) = run(plain, prompts, tokens)?;
    if a != b {
        return Err(format!("{workload}: speculative output differs from plain").into());
    }
    let plain_rate = (plain_first + plain_second) / 2.0;
    let spec_rate = (spec_first + spec_second) / 2.0;
    println!(
        "{workload:<8}  {speculation:<11}  {:>5.1}/{:<5.1}  {:>8.1}/{:<8.1}  {:>5.2}  {}/{}",
        plain_first,
        plain_second,
        spec_second,
        spec_first,
        spec_rate / plain_rate,
        counts_1.0 + counts_2.0,
        counts_1.1 + counts_2.1
    );
    Ok(())
}
