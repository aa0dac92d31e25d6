//! Grammar-constrained requests in the engine: the output follows the grammar, a finished grammar
//! ends the request, and unconstrained requests batched with constrained ones get exactly the
//! tokens they get alone.
mod common;

use common::{chat, config, reference, run_batch, start};
use serde_json::{json, Value};
use uma_engine::{EngineHandle, GenerationRequest};
use uma_grammar::{GrammarSpec, OutputGrammar};
use uma_sampling::{FinishReason, SamplingParams};

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "population": {"type": "integer", "minimum": 0},
            "continent": {"enum": ["Africa", "America", "Asia", "Europe", "Oceania"]}
        },
        "required": ["city", "population", "continent"],
        "additionalProperties": false
    })
}

fn constrained(engine: &EngineHandle, params: SamplingParams) -> GenerationRequest {
    let compiler = engine.prompts().grammars().expect("a grammar compiler");
    let grammar = compiler.compile(&GrammarSpec::JsonSchema(schema())).expect("compiles");
    GenerationRequest {
        prompt: chat(engine, "Describe the largest city of France as JSON."),
        params,
        sampler_stream: 0,
        grammar: Some(OutputGrammar { grammar, trigger: None }),
    }
}

fn check_document(text: &str) {
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let continent = value["continent"].as_str().unwrap_or_default();
    assert!(value["city"].is_string() && value["population"].is_u64(), "{text}");
    let continents = ["Africa", "America", "Asia", "Europe", "Oceania"];
    assert!(continents.contains(&continent), "{text}");
    assert_eq!(value.as_object().map(|object| object.len()), Some(3), "{text}");
}

#[test]
fn constrained_and_free_requests_share_steps() {
    let engine = start(config(1024, 16));
    let (free, alone) = reference();
    let mut requests = free.clone();
    // Greedy, then sampled at temperature 1 with several seeds: every one must parse.
    requests.push(constrained(
        &engine,
        SamplingParams { max_tokens: Some(80), ..SamplingParams::greedy() },
    ));
    for seed in 0..5 {
        let params = SamplingParams {
            temperature: 1.0,
            seed: Some(seed),
            max_tokens: Some(80),
            ..SamplingParams::default()
        };
        requests.push(constrained(&engine, params));
    }
    let order: Vec<usize> = (0..requests.len()).rev().collect();
    let runs = run_batch(&engine, &requests, &order);
    // The same output (the prefix cache may have served part of the prompt).
    for (run, expected) in runs.iter().zip(alone) {
        assert_eq!(
            (&run.tokens, &run.logprobs, &run.text, run.finish_reason()),
            (&expected.tokens, &expected.logprobs, &expected.text, expected.finish_reason()),
            "a free request batched with constrained ones"
        );
    }
    for run in &runs[free.len()..] {
        // The grammar ends the request at the closing brace (or the model ends its turn there).
        assert_eq!(run.finish_reason(), FinishReason::Stop, "{:?}", run.text);
        check_document(&run.text);
    }
}

#[test]
fn max_tokens_cuts_a_constrained_request_like_any_other() {
    let engine = start(config(1024, 4));
    let request =
        constrained(&engine, SamplingParams { max_tokens: Some(3), ..SamplingParams::greedy() });
    let run = run_batch(&engine, &[request], &[0]).remove(0);
    assert_eq!(run.finish_reason(), FinishReason::Length);
    assert_eq!(run.tokens.len(), 3);
    assert!(run.text.starts_with("{\""), "{}", run.text);
}
