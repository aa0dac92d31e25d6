//! The engine end to end over a real model (Qwen2.5-Coder 0.5B): what a caller sees on its
//! streams must not depend on what else the engine is doing. Batching, preemption and the prefix
//! cache are invisible (the model gives bit-identical logits alone or batched, so token ids are
//! compared exactly); cancellation and shutdown free everything and never hang; refusals name the
//! right reason; the stop rules and the streamed text are exact.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use uma_engine::{
    EngineConfig, EngineError, EngineHandle, GenerationRequest, PromptEncoder, TokenId,
};
use uma_gguf::GgufFile;
use uma_model::Model;
use uma_sampling::{FinishReason, SamplingParams};

/// Usage must count what the stream carried.
fn assert_usage(what: &str, request: &GenerationRequest, run: &Run) {
    let usage = run.completion.usage;
    assert_eq!(usage.num_prompt_tokens, request.prompt.len(), "{what}: prompt tokens");
    assert_eq!(usage.num_generated_tokens, run.tokens.len(), "{what}: generated tokens");
}

/// `got` must be the reference runs, token for token and character for character.
fn assert_same_as_alone(what: &str, got: &[Run]) {
    let (requests, alone) = reference();
    assert_eq!(got.len(), alone.len());
    for (i, ((request, got), alone)) in requests.iter().zip(got).zip(alone).enumerate() {
        assert_eq!(got.tokens, alone.tokens, "{what}: request {i}: token ids differ from alone");
        assert_eq!(got.text, alone.text, "{what}: request {i}: text differs from alone");
        assert_eq!(got.logprobs, alone.logprobs, "{what}: request {i}: logprobs differ");
        assert_eq!(got.finish_reason(), alone.finish_reason(), "{what}: request {i}");
        assert_usage(what, request, got);
    }
}

#[test]
fn batching_does_not_change_greedy_or_seeded_outputs() {
    let (requests, alone) = reference();
    let half = requests.len() / 2;
    for run in &alone[..half] {
        assert!(run.logprobs.iter().all(|(logprob, top)| logprob.is_some() && top.len() == 2));
    }
    // The seeded half really samples: not all of it follows the greedy path.
    assert!(
        (0..half).any(|i| alone[i].tokens != alone[half + i].tokens),
        "temperature 0.8 gave the greedy tokens for every prompt"
    );

    let engine = start(config(512, requests.len()));
    // Submitted newest first: other request ids, other neighbours than alone.
    let order: Vec<usize> = (0..requests.len()).rev().collect();
    let batched = run_batch(&engine, requests, &order);
    let stats = wait_idle(&engine);
    assert_same_as_alone("batched", &batched);
    // They really ran together: far fewer steps than one per generated token.
    let num_generated: usize = batched.iter().map(|r| r.tokens.len()).sum();
    assert_eq!(stats.num_generated_tokens, num_generated as u64);
    assert!(
        stats.num_steps * 2 < num_generated as u64,
        "{} steps for {num_generated} tokens: the requests were not batched",
        stats.num_steps
    );
    assert_eq!(stats.num_finished_requests, requests.len() as u64);
    assert_eq!(stats.num_preemptions, 0);
    engine.shutdown(Duration::ZERO);
}

#[test]
fn preemption_is_invisible() {
    let (requests, alone) = reference();
    for (request, run) in requests.iter().zip(alone) {
        // Two blocks of 16 per prompt, three once 16 tokens are generated.
        assert!((17..=32).contains(&request.prompt.len()), "{} tokens", request.prompt.len());
        assert_eq!(run.tokens.len(), 16);
    }
    // Ten blocks of 16: five prompts fit, but five sequences growing to three blocks each do
    // not, so the newest running requests must be preempted (several times over). Steps of 20
    // tokens also split prompts and recomputations into chunks, next to other requests' decodes.
    let tiny = EngineConfig {
        num_kv_cache_tokens: 160,
        block_size: 16,
        max_num_batched_tokens: 20,
        ..config(128, 6)
    };
    let engine = start(tiny);
    // Greedy and seeded interleaved: other ids than alone, and other victims.
    let half = requests.len() / 2;
    let order: Vec<usize> = (0..half).flat_map(|i| [half + i, i]).collect();
    let runs = run_batch(&engine, requests, &order);
    let stats = wait_idle(&engine);
    assert_eq!(stats.kv_num_blocks, 10);
    for run in &runs {
        assert_eq!(run.finish_reason(), FinishReason::Length);
    }
    assert_same_as_alone("preempted", &runs);
    assert!(stats.num_preemptions > 0, "the pool was never short: {stats:#?}");
    assert_eq!(stats.kv_num_free_blocks, 10);
    assert_eq!(stats.num_finished_requests, requests.len() as u64);
    engine.shutdown(Duration::ZERO);
}

#[test]
fn streamed_text_equals_the_decoded_tokens() {
    // The reference runs hold code, CJK characters, emoji (several tokens per character) and
    // special tokens past an ignored end of turn; batched and preempted runs are compared to them
    // character for character.
    let (requests, alone) = reference();
    let tokenizer = alone_engine().prompts().tokenizer();
    for (i, (request, run)) in requests.iter().zip(alone).enumerate() {
        assert_usage("alone", request, run);
        let decoded = tokenizer.decode(&run.tokens, true).expect("decodes");
        assert_eq!(run.text, decoded, "request {i}: streamed text differs from the decoded ids");
    }
    assert!(
        alone.iter().any(|run| run.text.chars().any(|c| c.len_utf8() > 2)),
        "no multi-byte characters were generated: {alone:#?}"
    );
    // Cut right inside a character spread over several tokens: what was held back comes out
    // at the end, as the same U+FFFD a full decode gives.
    let cut = requests.iter().zip(alone).find_map(|(request, run)| {
        (1..run.tokens.len()).find_map(|k| {
            let text = tokenizer.decode(&run.tokens[..k], true).expect("decodes");
            text.ends_with('\u{FFFD}').then_some((request, &run.tokens[..k], text))
        })
    });
    let (request, tokens, text) = cut.expect("no reference output splits a character over tokens");
    let k = tokens.len();
    let params = SamplingParams { max_tokens: Some(k as u32), ..request.params.clone() };
    let cut_run = run(alone_engine(), GenerationRequest { params, ..request.clone() });
    assert_eq!(cut_run.finish_reason(), FinishReason::Length);
    assert_eq!(cut_run.tokens, tokens);
    assert_eq!(cut_run.text, text, "cut after {k} tokens inside a character");

    let special = alone.iter().flat_map(|run| &run.tokens).any(|&token| {
        let with = tokenizer.decode(&[token], false).expect("decodes");
        !with.is_empty() && tokenizer.decode(&[token], true).expect("decodes").is_empty()
    });
    assert!(special, "no special token was generated: {alone:#?}");
}

#[test]
fn cancellation_frees_running_and_waiting_requests() {
    let engine = start(config(512, 1));
    let long = SamplingParams { ignore_eos: true, ..greedy(200) };
    let prompt = chat(&engine, "Count from one to one hundred.");

    // A running request whose stream is dropped.
    let stream = engine.submit(request(prompt.clone(), long.clone())).expect("accepted");
    let (stream, tokens) = read_tokens(stream, 3);
    assert_eq!(tokens.len(), 3);
    drop(stream);
    let stats = wait_idle(&engine);
    assert_eq!(stats.num_cancelled_requests, 1);
    assert_eq!(stats.kv_num_free_blocks, stats.kv_num_blocks);
    assert!(stats.num_generated_tokens < 200, "the dropped request ran to its end");

    // A running request, and one waiting behind it for the only sequence slot.
    let running = engine.submit(request(prompt.clone(), long.clone())).expect("accepted");
    let waiting = engine.submit(request(prompt.clone(), long.clone())).expect("accepted");
    let (running, _) = read_tokens(running, 2);
    let stats = wait_for_stats(&engine, "one running, one waiting", |s| {
        s.num_running == 1 && s.num_waiting == 1
    });
    assert_eq!(stats.num_in_flight, 2);
    waiting.cancel();
    match read_to_end(waiting) {
        Ending::Finished(run) => {
            assert_eq!(run.finish_reason(), FinishReason::Cancelled);
            assert!(run.tokens.is_empty(), "a waiting request generated {:?}", run.tokens);
            assert_eq!(run.completion.usage.num_generated_tokens, 0);
            assert_eq!(run.completion.usage.num_prompt_tokens, prompt.len());
        }
        other => panic!("the waiting request ended with {other:?}"),
    }
    // cancel(): the tokens already made, then Finished(cancelled).
    running.cancel();
    let cancelled = finish(running);
    assert_eq!(cancelled.finish_reason(), FinishReason::Cancelled);
    assert!(cancelled.tokens.len() + 2 < 200, "the cancelled request ran to its end");
    assert_eq!(cancelled.completion.usage.num_generated_tokens, cancelled.tokens.len() + 2);
    let stats = wait_idle(&engine);
    assert_eq!(stats.num_cancelled_requests, 3);
    assert_eq!(stats.num_finished_requests, 0);
    assert_eq!(stats.kv_num_free_blocks, stats.kv_num_blocks);

    // The engine still serves.
    let last = run(&engine, request(prompt, greedy(3)));
    assert_eq!(last.finish_reason(), FinishReason::Length);
    let stats = wait_idle(&engine);
    assert_eq!((stats.num_finished_requests, stats.num_cancelled_requests), (1, 3));
    engine.shutdown(Duration::ZERO);
}

/// A cancelled answer keeps every token it made in its text, including text held back because
/// it could have been the start of a stop string (`uma run`'s Ctrl-C shows the answer so far).
#[test]
fn cancellation_releases_text_held_back_for_a_stop_string() {
    let engine = start(config(512, 1));
    let prompt = chat(&engine, "Count from one to one hundred.");
    let answer =
        run(&engine, request(prompt.clone(), SamplingParams { ignore_eos: true, ..greedy(40) }));
    // A stop string that the greedy answer starts but never completes: everything is held back.
    let stop = format!("{}\u{0}never", answer.text);
    let params = SamplingParams { ignore_eos: true, stop: vec![stop].into(), ..greedy(200) };
    let stream = engine.submit(request(prompt, params)).expect("accepted");
    let (stream, first) = read_tokens(stream, 3);
    stream.cancel();
    let cancelled = finish(stream);
    assert_eq!(cancelled.finish_reason(), FinishReason::Cancelled);
    let tokens: Vec<TokenId> = first.into_iter().chain(cancelled.tokens.iter().copied()).collect();
    assert!(tokens.len() < 40, "cancelled after the stop string could have matched");
    let expected = engine.prompts().tokenizer().decode(&tokens, true).expect("decodes");
    assert!(!expected.is_empty());
    let text = cancelled.text;
    assert_eq!(text, expected, "the cancelled answer lost its held-back text");
    engine.shutdown(Duration::ZERO);
}

/// A prefix shared with an earlier request that ends inside a block: the shared start of that
/// block is copied from the cached one, and the output is what computing it gives.
#[test]
fn a_prefix_ending_inside_a_block_is_copied_exactly() {
    let engine = start(config(512, 2));
    let block_size = engine.config().block_size;
    let context = "A queue is a list where items join at the back and leave from the front. \
                   A stack is a list where items join and leave at the top. ";
    let first = chat(&engine, &format!("{context}Which one is first in, first out?"));
    let second = chat(&engine, &format!("{context}Which one suits an undo history?"));
    let shared = first.iter().zip(&second).take_while(|(a, b)| a == b).count();
    assert!(shared % block_size != 0, "the shared prefix must end inside a block: {shared}");
    // Logprobs make the comparison bit-exact, not just argmax-deep.
    let params = SamplingParams { logprobs: Some(2), ..greedy(12) };
    run(&engine, request(first.clone(), greedy(4)));
    let reused = run(&engine, request(second.clone(), params.clone()));
    // The first request's block holding the divergence point was filled by its prompt alone
    // (the questions are longer than a block), so it was registered and its start is reused.
    assert!(first.len() >= shared / block_size * block_size + block_size);
    assert_eq!(reused.completion.usage.num_cached_tokens, shared);
    engine.shutdown(Duration::ZERO);

    let mut cold = config(512, 2);
    cold.enable_prefix_caching = false;
    let cold = start(cold);
    let computed = run(&cold, request(second, params));
    cold.shutdown(Duration::ZERO);
    assert_eq!(computed.completion.usage.num_cached_tokens, 0);
    assert_eq!(reused.tokens, computed.tokens, "copied KV changed the output");
    assert_eq!(reused.logprobs, computed.logprobs);
}

#[test]
fn a_repeated_prompt_comes_from_the_prefix_cache() {
    let engine = start(config(512, 2));
    let block_size = engine.config().block_size;
    let prompt = chat(
        &engine,
        "Here is some context about a small program. It reads a list of integers from standard \
         input, one per line, ignores empty lines and comments that start with a hash sign, \
         sorts the numbers, removes duplicates, and prints the median and the mean, each on its \
         own line. When the input is empty it prints nothing and exits with status one. Write \
         a short summary of what it does.",
    );
    assert!((90..=128).contains(&prompt.len()), "prompt of {} tokens", prompt.len());
    let first = run(&engine, request(prompt.clone(), greedy(8)));
    assert_eq!(first.completion.usage.num_cached_tokens, 0, "nothing was cached yet");
    let before = wait_idle(&engine);
    assert_eq!(before.prefix_cache_hit_tokens, 0);
    assert!(before.kv_num_cached_free_blocks > 0, "the prompt's full blocks stay cached");

    let second = run(&engine, request(prompt.clone(), greedy(8)));
    let cached = second.completion.usage.num_cached_tokens;
    // Every full block before the last prompt token, and, when the first request's generation
    // filled the block holding that token (registering it), that block's start up to the last
    // prompt token too (copied): the last token is always recomputed for its logits.
    let full_blocks = (prompt.len() - 1) / block_size * block_size;
    let computed_by_first = prompt.len() + first.tokens.len() - 1;
    let expected =
        if computed_by_first >= full_blocks + block_size { prompt.len() - 1 } else { full_blocks };
    assert_eq!(cached, expected, "cached tokens of a {}-token prompt", prompt.len());
    assert_eq!(second.tokens, first.tokens, "the cached prefix changed the output");
    assert_eq!(second.text, first.text);
    let after = wait_idle(&engine);
    assert_eq!(after.prefix_cache_hit_tokens - before.prefix_cache_hit_tokens, cached as u64);
    assert_eq!(after.prefix_cache_queried_tokens, 2 * prompt.len() as u64);
    engine.shutdown(Duration::ZERO);

    // Without the prefix cache, the reference runs (each prompt twice, greedy then seeded, one
    // full block or more) found nothing cached.
    let (requests, alone) = reference();
    for (request, run) in requests.iter().zip(alone) {
        assert!(request.prompt.len() > block_size);
        assert_eq!(run.completion.usage.num_cached_tokens, 0);
    }
    assert_eq!(alone_engine().stats().prefix_cache_hit_tokens, 0);
}

#[test]
fn invalid_requests_and_a_full_queue_are_refused() {
    let mut config = config(64, 1);
    config.max_queued_requests = 1;
    let engine = start(config);
    let prompt = chat(&engine, "What is the capital of France?");

    let refused = engine.submit(request(Vec::new(), greedy(4)));
    assert!(matches!(refused, Err(EngineError::EmptyPrompt)), "{refused:?}");

    let refused = engine.submit(request(vec![prompt[0]; 64], greedy(4)));
    assert!(
        matches!(
            refused,
            Err(EngineError::PromptTooLong { num_prompt_tokens: 64, context_length: 64 })
        ),
        "{refused:?}"
    );
    let refused = engine.submit(request(vec![prompt[0]; 100], greedy(4)));
    assert!(
        matches!(
            refused,
            Err(EngineError::PromptTooLong { num_prompt_tokens: 100, context_length: 64 })
        ),
        "{refused:?}"
    );

    for bad in [
        SamplingParams { temperature: -1.0, ..greedy(4) },
        SamplingParams { max_tokens: Some(0), ..greedy(4) },
        SamplingParams { stop: vec![String::new()].into(), ..greedy(4) },
    ] {
        let refused = engine.submit(request(prompt.clone(), bad.clone()));
        assert!(matches!(refused, Err(EngineError::InvalidParameters(_))), "{bad:?}: {refused:?}");
    }

    // Refusals take no slot: one running and one queued are accepted, a third is not.
    let long = SamplingParams { ignore_eos: true, ..SamplingParams::greedy() };
    let first = engine.submit(request(prompt.clone(), long.clone())).expect("first accepted");
    let second = engine.submit(request(prompt.clone(), long.clone())).expect("second accepted");
    let refused = engine.submit(request(prompt.clone(), long.clone()));
    assert!(matches!(refused, Err(EngineError::QueueFull { num_in_flight: 2 })), "{refused:?}");
    let refused = engine.submit(request(prompt.clone(), greedy(1)));
    assert!(matches!(refused, Err(EngineError::QueueFull { .. })), "{refused:?}");

    // Once they are over, there is room again.
    second.cancel();
    first.cancel();
    for stream in [first, second] {
        assert_eq!(finish(stream).finish_reason(), FinishReason::Cancelled);
    }
    let run = run(&engine, request(prompt.clone(), greedy(4)));
    assert_eq!(run.finish_reason(), FinishReason::Length);
    assert_eq!(run.tokens.len(), 4);
    let stats = wait_idle(&engine);
    assert_eq!(stats.num_prompt_tokens, 3 * prompt.len() as u64, "refusals reached the engine");
    engine.shutdown(Duration::ZERO);
}

#[test]
fn invalid_configs_are_refused_at_start() {
    // The checks need no real weights: the tiny in-memory model (trained context 256).
    let bytes = uma_test_models::tiny::tiny_model_bytes("qwen2").expect("tiny model");
    let file = Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF"));
    let start_tiny = |config: EngineConfig| {
        let model = Model::load(file.clone()).expect("tiny model loads");
        assert_eq!(model.config().max_position_embeddings, 256);
        let prompts = PromptEncoder::from_gguf(&file).expect("tiny encoder");
        EngineHandle::start(model, prompts, "tiny", config)
    };
    let cases = [
        EngineConfig { num_kv_cache_tokens: 127, ..config(128, 4) },
        EngineConfig { max_num_batched_tokens: 3, ..config(128, 4) },
        EngineConfig { block_size: 0, ..config(128, 4) },
        EngineConfig { max_num_seqs: 0, ..config(128, 4) },
        config(1, 1),
        config(257, 1),
    ];
    for case in cases {
        match start_tiny(case.clone()) {
            Err(EngineError::InvalidConfig { reason }) => assert!(!reason.is_empty()),
            Err(other) => panic!("{case:?}: {other}"),
            Ok(engine) => {
                engine.shutdown(Duration::ZERO);
                panic!("{case:?} was accepted");
            }
        }
    }
    // The limits themselves are accepted.
    let engine = start_tiny(EngineConfig { num_kv_cache_tokens: 256, ..config(256, 4) })
        .expect("a pool of exactly one full context");
    engine.shutdown(Duration::ZERO);
}

#[test]
fn stops_at_max_tokens_stop_strings_stop_tokens_and_a_full_context() {
    let engine = start(config(64, 1));
    let tokenizer = engine.prompts().tokenizer();
    let prompt = chat(&engine, "Write a Python function that reverses a string.");

    // max_tokens: exactly that many.
    let reference = run(&engine, request(prompt.clone(), greedy(24)));
    assert_eq!(reference.finish_reason(), FinishReason::Length, "{reference:?}");
    assert_eq!(reference.tokens.len(), 24);
    let short = run(&engine, request(prompt.clone(), greedy(5)));
    assert_eq!(short.finish_reason(), FinishReason::Length);
    assert_eq!(short.completion.usage.num_generated_tokens, 5);
    assert_eq!(short.tokens, reference.tokens[..5]);

    // A stop string from the reference output: the text ends right before its first occurrence.
    let word = reference
        .text
        .split_whitespace()
        .filter(|w| w.len() >= 3)
        .nth(2)
        .expect("the reference has words")
        .to_owned();
    let cut = reference.text.find(&word).expect("the word is in the text");
    let params = SamplingParams { stop: vec![word.clone()].into(), ..greedy(24) };
    let stopped = run(&engine, request(prompt.clone(), params));
    assert_eq!(stopped.finish_reason(), FinishReason::Stop, "stop string {word:?}");
    assert_eq!(stopped.text, reference.text[..cut], "stop string {word:?}");
    assert!(stopped.tokens.len() < 24);
    assert_eq!(stopped.tokens, reference.tokens[..stopped.tokens.len()]);

    // A stop token id from the reference: stops on it, its text not output.
    let stop_token = reference.tokens[6];
    let first_at = reference.tokens.iter().position(|&t| t == stop_token).expect("present");
    let params = SamplingParams { stop_token_ids: vec![stop_token].into(), ..greedy(24) };
    let stopped = run(&engine, request(prompt.clone(), params));
    assert_eq!(stopped.finish_reason(), FinishReason::Stop);
    assert_eq!(stopped.tokens, reference.tokens[..=first_at]);
    assert_eq!(stopped.text, tokenizer.decode(&reference.tokens[..first_at], true).unwrap());

    // A full context: the engine stops once the sequence holds context_length + 1 tokens (the
    // last sampled token needs no position of its own), whatever the prompt's length, down to
    // one position left.
    let context_length = engine.config().context_length;
    let mut long_prompt = prompt.clone();
    long_prompt.extend_from_slice(&reference.tokens);
    assert!((40..=56).contains(&long_prompt.len()), "{} tokens", long_prompt.len());
    let mut longest = long_prompt.clone();
    longest.resize(context_length - 1, prompt[0]);
    let until_full = SamplingParams { ignore_eos: true, ..SamplingParams::greedy() };
    let mut full_runs = Vec::new();
    for prompt in [long_prompt.clone(), longest] {
        let full = run(&engine, request(prompt.clone(), until_full.clone()));
        assert_eq!(full.finish_reason(), FinishReason::Length);
        let usage = full.completion.usage;
        assert_eq!(usage.num_prompt_tokens, prompt.len());
        assert_eq!(usage.num_generated_tokens, full.tokens.len());
        assert_eq!(
            usage.num_prompt_tokens + usage.num_generated_tokens,
            context_length + 1,
            "prompt of {} tokens",
            prompt.len()
        );
        assert_eq!(full.text, tokenizer.decode(&full.tokens, true).unwrap());
        full_runs.push(full);
    }
    // Text held back as the possible start of a stop string is released when the context fills.
    let full = &full_runs[0];
    let last = full.text.chars().last().expect("text was generated");
    let params = SamplingParams { stop: vec![format!("{last}\u{7}")].into(), ..until_full };
    let held = run(&engine, request(long_prompt, params));
    assert_eq!(held.finish_reason(), FinishReason::Length);
    assert_eq!(held.tokens, full.tokens);
    assert_eq!(held.text, full.text);
    assert!(held.completion.text.ends_with(last), "{:?} was not held back", last);
    let stats = wait_idle(&engine);
    assert_eq!(stats.num_finished_requests, 7);
    engine.shutdown(Duration::ZERO);
}

#[test]
fn shutdown_cancels_what_runs_and_refuses_new_requests() {
    let engine = start(config(256, 1));
    let prompt = chat(&engine, "Count from one to one hundred.");
    let long = SamplingParams { ignore_eos: true, ..greedy(200) };
    let running = engine.submit(request(prompt.clone(), long.clone())).expect("accepted");
    let waiting = engine.submit(request(prompt.clone(), long.clone())).expect("accepted");
    let (running, first) = read_tokens(running, 1);

    let (done, finished) = std::sync::mpsc::channel();
    let handle = engine.clone();
    std::thread::spawn(move || {
        handle.shutdown(Duration::ZERO);
        let _ = done.send(());
    });
    finished.recv_timeout(TIMEOUT).expect("shutdown returns");

    let run = finish(running);
    assert_eq!(run.finish_reason(), FinishReason::Cancelled);
    assert_eq!(run.completion.usage.num_generated_tokens, first.len() + run.tokens.len());
    assert!(run.completion.usage.num_generated_tokens < 200);
    let run = finish(waiting);
    assert_eq!(run.finish_reason(), FinishReason::Cancelled);
    assert!(run.tokens.is_empty());

    let refused = engine.submit(request(prompt.clone(), greedy(4)));
    assert!(matches!(refused, Err(EngineError::ShuttingDown)), "{refused:?}");
    // A second shutdown returns at once.
    engine.shutdown(Duration::ZERO);
    let stats = engine.stats();
    assert_eq!((stats.num_in_flight, stats.kv_num_used_blocks), (0, 0));
    assert_eq!(stats.num_cancelled_requests, 2);
}

#[test]
fn shutdown_with_a_grace_period_lets_requests_finish() {
    let engine = start(config(256, 1));
    let prompt = chat(&engine, "Count from one to one hundred.");
    let first = engine.submit(request(prompt.clone(), greedy(4))).expect("accepted");
    let second = engine.submit(request(prompt.clone(), greedy(3))).expect("accepted");
    engine.shutdown(Duration::from_secs(60));
    for (stream, n) in [(first, 4), (second, 3)] {
        let run = finish(stream);
        assert_eq!(run.finish_reason(), FinishReason::Length);
        assert_eq!(run.tokens.len(), n);
    }
    let refused = engine.submit(request(prompt, greedy(4)));
    assert!(matches!(refused, Err(EngineError::ShuttingDown)), "{refused:?}");
}

#[test]
fn a_prompt_outside_the_vocabulary_harms_no_other_request() {
    let (requests, alone) = reference();
    let engine = start(config(512, 2));
    // A request already decoding when the bad one arrives, so that both share the next step.
    let good = engine.submit(requests[0].clone()).expect("accepted");
    let (good, first) = read_tokens(good, 1);
    let mut bad_prompt = requests[1].prompt.clone();
    bad_prompt[3] = u32::MAX;
    // Refused at the door, or failed on its own: either way only the bad request is affected.
    if let Ok(bad) = engine.submit(request(bad_prompt, greedy(4))) {
        match read_to_end(bad) {
            Ending::Failed { tokens, .. } => assert!(tokens.is_empty()),
            other => panic!("a prompt outside the vocabulary ended with {other:?}"),
        }
    }
    match read_to_end(good) {
        Ending::Finished(run) => {
            let tokens: Vec<u32> = first.iter().chain(&run.tokens).copied().collect();
            assert_eq!(tokens, alone[0].tokens);
        }
        other => panic!("the request batched with a bad prompt ended with {other:?}"),
    }
    let stats = wait_idle(&engine);
    assert_eq!(stats.num_finished_requests, 1);
    engine.shutdown(Duration::ZERO);
}

#[test]
fn a_panic_in_the_engine_loop_fails_its_requests_and_marks_the_engine_failed() {
    let engine = start(config(256, 1));
    let prompt = chat(&engine, "Count from one to one hundred.");
    let long = SamplingParams { ignore_eos: true, ..greedy(200) };
    let running = engine.submit(request(prompt.clone(), long.clone())).expect("accepted");
    let waiting = engine.submit(request(prompt.clone(), long)).expect("accepted");
    let (running, _) = read_tokens(running, 1);
    assert_eq!(engine.failure(), None);
    engine.inject_panic_for_tests();
    for stream in [running, waiting] {
        match read_to_end(stream) {
            Ending::Failed { message, .. } => {
                assert!(message.contains("engine stopped after an internal error"), "{message}");
                assert!(message.contains("injected fault"), "{message}");
            }
            other => panic!("a request of the failed engine ended with {other:?}"),
        }
    }
    assert!(engine.failure().is_some_and(|detail| detail.contains("injected fault")));
    let refused = engine.submit(request(prompt.clone(), greedy(4)));
    assert!(matches!(refused, Err(EngineError::EngineFailed { .. })), "{refused:?}");
    let stats = engine.stats();
    assert_eq!((stats.num_in_flight, stats.num_failed_requests), (0, 2), "{stats:?}");
    engine.shutdown(Duration::ZERO);
}
