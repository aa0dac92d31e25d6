//! What speculative decoding gains (issue 19): decode tokens/s of the same greedy requests
//! with speculation off and on, measured in both orders, for three workloads
//! (`uma_engine::speculative_workload`):
//!
//! - `edit`: rewrite a 300-line Python file with two small changes, one stream (prompt lookup);
//! - `chat`: ordinary chat prompts, one stream (the draft model when given, else lookup);
//! - `chat16`: sixteen chat streams at once (`auto`: speculation turns itself down).
//!
//! The outputs with and without speculation are compared token for token as well.
//! `uma bench MODEL --speculative lookup|draft` measures the first two from the command line.
//!
//!   cargo run --release -p uma-engine --example speculative_speed -- MODEL.gguf [DRAFT.gguf] [TOKENS]

use std::path::{Path, PathBuf};

use uma_engine::speculative_workload::{
    chat_tokens, decode_greedy, edit_prompt, Decoded, CHAT_PROMPTS,
};
use uma_engine::{EngineConfig, EngineHandle, SpeculativeConfig, SpeculativeMode, TokenId};

type Error = Box<dyn std::error::Error>;

/// Functions in the edit workload's file: 300 lines.
const EDIT_FUNCTIONS: usize = 30;

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

    let edit = vec![chat_tokens(plain.prompts(), &edit_prompt(EDIT_FUNCTIONS))?];
    let chats: Vec<Vec<TokenId>> = CHAT_PROMPTS
        .iter()
        .map(|text| chat_tokens(plain.prompts(), text))
        .collect::<Result<_, _>>()?;
    let chats16: Vec<Vec<TokenId>> = (0..16).map(|i| chats[i % chats.len()].clone()).collect();
    // Warm up: pages in the weights, fills the prefix cache with the prompts.
    for engine in [&plain, &lookup, &auto].into_iter().chain(drafted.as_ref()) {
        decode_greedy(engine, &edit, 4)?;
        decode_greedy(engine, &chats16, 4)?;
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

fn mode(mode: SpeculativeMode, draft_model: Option<PathBuf>) -> SpeculativeConfig {
    SpeculativeConfig { mode, draft_model, ..SpeculativeConfig::default() }
}

fn engine(model: &Path, speculative: SpeculativeConfig) -> Result<EngineHandle, Error> {
    let mut config = EngineConfig::new(8192, 16);
    config.speculative = speculative;
    Ok(EngineHandle::open(model, "bench", config)?)
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
    let plain_first = decode_greedy(plain, prompts, tokens)?;
    let spec_second = decode_greedy(speculative, prompts, tokens)?;
    let spec_first = decode_greedy(speculative, prompts, tokens)?;
    let plain_second = decode_greedy(plain, prompts, tokens)?;
    if plain_first.outputs != spec_second.outputs {
        return Err(format!("{workload}: speculative output differs from plain").into());
    }
    let rate = Decoded::tokens_per_second;
    let plain_rate = (rate(&plain_first) + rate(&plain_second)) / 2.0;
    let spec_rate = (rate(&spec_first) + rate(&spec_second)) / 2.0;
    println!(
        "{workload:<8}  {speculation:<11}  {:>5.1}/{:<5.1}  {:>8.1}/{:<8.1}  {:>5.2}  {}/{}",
        rate(&plain_first),
        rate(&plain_second),
        rate(&spec_second),
        rate(&spec_first),
        spec_rate / plain_rate,
        spec_second.num_accepted_draft_tokens + spec_first.num_accepted_draft_tokens,
        spec_second.num_drafted_tokens + spec_first.num_drafted_tokens
    );
    Ok(())
}
