//! What grammar-constrained decoding costs: decode tokens/s of the same requests with and without
//! a grammar, at 1 and 16 concurrent sequences, in both orders (issue 17's bound: at most
//! 10% slower). The grammar is a JSON Schema for an array of at least 80 strings: it cannot be
//! complete (and so cannot end the request) before `TOKENS`, so every constrained request
//! generates exactly as many tokens as its free twin, and most steps' masks are computed inside a
//! JSON string (most of the vocabulary allowed: llguidance's hardest common case for a
//! 151,936-token vocabulary). `VERBOSE=1` prints the tokens and seconds of each run.
//!
//!   cargo run --release -p uma-engine --example constrained_cost -- MODEL.gguf [TOKENS]

use std::time::Instant;

use uma_engine::{EngineConfig, EngineHandle, GenerationRequest, StreamEvent};
use uma_grammar::{GrammarSpec, OutputGrammar};
use uma_sampling::SamplingParams;
use uma_tokenizer::ChatMessage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: constrained_cost MODEL.gguf [TOKENS]")?;
    let tokens: u32 = args.next().map_or(Ok(128), |n| n.parse())?;
    let mut config = EngineConfig::new(2048, 16);
    config.enable_prefix_caching = true;
    let engine = EngineHandle::open(std::path::Path::new(&path), "bench", config)?;
    let compiler = engine.prompts().grammars()?;
    let schema = serde_json::json!({"type": "array", "items": {"type": "string"}, "minItems": 80});
    let grammar = compiler.compile(&GrammarSpec::JsonSchema(schema))?;
    let prompt = engine.prompts().chat(&[ChatMessage::user(
        "List twenty facts about the Moon as a JSON array of strings.",
    )])?;
    // Warm up (weights paged in, prompt cached).
    run(&engine, &prompt, 1, tokens, None)?;
    println!("sequences  free tok/s  constrained tok/s  (orders A B, B A)");
    for sequences in [1, 16] {
        let mut free = Vec::new();
        let mut constrained = Vec::new();
        // Both orders: constrained first, then free first.
        for round in 0..2 {
            let with = OutputGrammar { grammar: grammar.clone(), trigger: None };
            if round == 0 {
                constrained.push(run(&engine, &prompt, sequences, tokens, Some(with))?);
                free.push(run(&engine, &prompt, sequences, tokens, None)?);
            } else {
                free.push(run(&engine, &prompt, sequences, tokens, None)?);
                constrained.push(run(&engine, &prompt, sequences, tokens, Some(with))?);
            }
        }
        println!(
            "{sequences:>9}  {:>10}  {:>17}  ratio {:.3}",
            format_runs(&free),
            format_runs(&constrained),
            constrained.iter().sum::<f64>() / free.iter().sum::<f64>()
        );
    }
    engine.shutdown(std::time::Duration::ZERO);
    Ok(())
}

fn format_runs(runs: &[f64]) -> String {
    runs.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join("/")
}

/// Generated tokens per second of decoding (from each request's first token to its last), all
/// sequences together.
fn run(
    engine: &EngineHandle,
    prompt: &[u32],
    sequences: usize,
    tokens: u32,
    grammar: Option<OutputGrammar>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let params = SamplingParams {
        temperature: 1.0,
        seed: Some(7),
        max_tokens: Some(tokens),
        ignore_eos: true,
        ..SamplingParams::default()
    };
    let streams: Vec<_> = (0..sequences)
        .map(|i| {
            engine.submit(GenerationRequest {
                prompt: prompt.to_vec(),
                params: params.clone(),
                sampler_stream: i as u64,
                grammar: grammar.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut first = None;
    let mut generated = 0usize;
    for mut stream in streams {
        loop {
            match stream.blocking_next() {
                Some(StreamEvent::Token(_)) => {
                    first.get_or_insert_with(Instant::now);
                    generated += 1;
                }
                Some(StreamEvent::Finished(_)) => break,
                Some(StreamEvent::Failed(error)) => return Err(error.to_string().into()),
                None => return Err("the stream ended early".into()),
            }
        }
    }
    let seconds = first.map_or(0.0, |first| first.elapsed().as_secs_f64());
    if std::env::var_os("VERBOSE").is_some() {
        eprintln!("{sequences} sequences: {generated} tokens in {seconds:.2} s");
    }
    // The first token of each sequence comes from its prefill; count the decoded ones.
    Ok((generated - sequences) as f64 / seconds)
}
