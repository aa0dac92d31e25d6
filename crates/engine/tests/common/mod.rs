//! Helpers shared by the engine integration tests: one real model, engines over it, and streams
//! read to their end with a time limit (a hung engine fails the test instead of hanging it).
#![allow(dead_code)]

use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use uma_engine::{
    Completion, EngineConfig, EngineHandle, EngineStats, GenerationRequest, PromptEncoder,
    RequestStream, StreamEvent, TokenId,
};
use uma_gguf::GgufFile;
use uma_model::Model;
use uma_sampling::{FinishReason, SamplingParams};
use uma_test_models::TestModel;
use uma_tokenizer::ChatMessage;

/// The longest any single wait may take before the test fails as hung.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// The memory-mapped 0.5B test model, opened once per test binary.
pub(crate) fn file() -> Arc<GgufFile> {
    static FILE: OnceLock<Arc<GgufFile>> = OnceLock::new();
    FILE.get_or_init(|| {
        Arc::new(GgufFile::open(uma_test_models::path(TestModel::QwenCoder05b)).expect("opens"))
    })
    .clone()
}

/// The model's weights, loaded afresh (a `Model` moves into the engine).
pub(crate) fn model() -> Model {
    Model::load(file()).expect("model loads")
}

/// The model's tokenizer and chat template.
pub(crate) fn prompt_encoder() -> PromptEncoder {
    PromptEncoder::from_gguf(&file()).expect("prompt encoder")
}

/// Starts an engine over the test model.
pub(crate) fn start(config: EngineConfig) -> EngineHandle {
    EngineHandle::start(model(), prompt_encoder(), "qwen-test", config).expect("engine starts")
}

/// A config with the given context and sequences, everything else defaulted.
pub(crate) fn config(context_length: usize, max_num_seqs: usize) -> EngineConfig {
    EngineConfig::new(context_length, max_num_seqs)
}

/// The prompt tokens of a chat: a short system message (shorter than the template's default, to
/// keep prompts cheap) and `text` from the user.
pub(crate) fn chat(engine: &EngineHandle, text: &str) -> Vec<TokenId> {
    let messages = [ChatMessage::system("Be brief."), ChatMessage::user(text)];
    engine.prompts().chat(&messages).expect("chat prompt")
}

/// An engine that runs one sequence at a time without a prefix cache: every request submitted to
/// it runs alone, from scratch. Shared by the tests (its stats mix theirs).
pub(crate) fn alone_engine() -> &'static EngineHandle {
    static ENGINE: OnceLock<EngineHandle> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = config(512, 1);
        config.enable_prefix_caching = false;
        // Plain decoding: the reference the other engines (which speculate by default) must
        // match token for token.
        config.speculative = uma_engine::SpeculativeConfig::off();
        start(config)
    })
}

/// The reference requests: four chats (code, non-ASCII text, emoji spread over several tokens
/// each, and a short answer whose end of turn is ignored), each greedy with two top logprobs and
/// seeded, 16 tokens, with their runs on [`alone_engine`].
pub(crate) fn reference() -> &'static (Vec<GenerationRequest>, Vec<Run>) {
    static REFERENCE: OnceLock<(Vec<GenerationRequest>, Vec<Run>)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let engine = alone_engine();
        let texts = [
            "Write a Python function that reverses a string.",
            "Say hello in Chinese and in Japanese.",
            "Reply with three rare emoji of animals and nothing else.",
            "Say yes.",
        ];
        let mut requests = Vec::new();
        let with_logprobs = SamplingParams { logprobs: Some(2), ..greedy(16) };
        for params in [with_logprobs, seeded(42, 16)] {
            for text in texts {
                let params = SamplingParams { ignore_eos: true, ..params.clone() };
                requests.push(request(chat(engine, text), params));
            }
        }
        let runs = requests.iter().map(|r| run(engine, r.clone())).collect();
        (requests, runs)
    })
}

/// Greedy, `max_tokens` tokens at most.
pub(crate) fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams { max_tokens: Some(max_tokens), ..SamplingParams::greedy() }
}

/// Seeded sampling at temperature 0.8, `max_tokens` tokens at most.
pub(crate) fn seeded(seed: u64, max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        seed: Some(seed),
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    }
}

/// A request on sampler stream 0.
pub(crate) fn request(prompt: Vec<TokenId>, params: SamplingParams) -> GenerationRequest {
    GenerationRequest { prompt, params, sampler_stream: 0, grammar: None }
}

/// A token's logprob and its top logprobs.
pub(crate) type Logprobs = (Option<f32>, Vec<(TokenId, f32)>);

/// Everything one request produced.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Run {
    /// Ids of every `Token` event, in order.
    pub(crate) tokens: Vec<TokenId>,
    /// Their logprobs and top logprobs (when asked for).
    pub(crate) logprobs: Vec<Logprobs>,
    /// The `text` of every `Token` event, concatenated, then the completion's `text`.
    pub(crate) text: String,
    pub(crate) completion: Completion,
}

impl Run {
    pub(crate) fn finish_reason(&self) -> FinishReason {
        self.completion.finish_reason
    }
}

/// How a stream ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ending {
    Finished(Run),
    Failed {
        tokens: Vec<TokenId>,
        message: String,
    },
    /// The stream returned `None` without a terminal event.
    Closed {
        tokens: Vec<TokenId>,
    },
}

/// Reads `stream` to its terminal event on a helper thread; fails the test after [`TIMEOUT`].
pub(crate) fn read_to_end(stream: RequestStream) -> Ending {
    read_to_end_within(stream, TIMEOUT)
}

/// [`read_to_end`] with an explicit time limit.
pub(crate) fn read_to_end_within(mut stream: RequestStream, limit: Duration) -> Ending {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tokens = Vec::new();
        let mut logprobs = Vec::new();
        let mut text = String::new();
        let ending = loop {
            match stream.blocking_next() {
                Some(StreamEvent::Token(token)) => {
                    tokens.push(token.token);
                    logprobs.push((token.logprob, token.top_logprobs));
                    text.push_str(&token.text);
                }
                Some(StreamEvent::Finished(completion)) => {
                    text.push_str(&completion.text);
                    break Ending::Finished(Run { tokens, logprobs, text, completion });
                }
                Some(StreamEvent::Failed(error)) => {
                    break Ending::Failed { tokens, message: error.to_string() }
                }
                None => break Ending::Closed { tokens },
            }
        };
        // After the terminal event the stream yields nothing more.
        let after = stream.blocking_next();
        let _ = sender.send((ending, after));
    });
    match receiver.recv_timeout(limit) {
        Ok((ending, after)) => {
            assert_eq!(after, None, "events after the terminal one");
            ending
        }
        Err(RecvTimeoutError::Timeout) => panic!("the stream did not end within {limit:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("the reading thread panicked"),
    }
}

/// Reads `stream` to a `Finished` event and returns the run; any other ending fails the test.
pub(crate) fn finish(stream: RequestStream) -> Run {
    match read_to_end(stream) {
        Ending::Finished(run) => run,
        other => panic!("expected a Finished event, got {other:?}"),
    }
}

/// Submits and reads to the end.
pub(crate) fn run(engine: &EngineHandle, request: GenerationRequest) -> Run {
    finish(engine.submit(request).expect("accepted"))
}

/// Submits every request, in the order `order` gives (indices into `requests`), before reading
/// any stream; returns the runs in the order of `requests`. A different order than the
/// reference's gives the requests other ids and other neighbours.
pub(crate) fn run_batch(
    engine: &EngineHandle,
    requests: &[GenerationRequest],
    order: &[usize],
) -> Vec<Run> {
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..requests.len()).collect::<Vec<_>>(), "order is a permutation");
    let streams: Vec<(usize, RequestStream)> =
        order.iter().map(|&i| (i, engine.submit(requests[i].clone()).expect("accepted"))).collect();
    let mut runs: Vec<Option<Run>> = vec![None; requests.len()];
    for (i, stream) in streams {
        runs[i] = Some(finish(stream));
    }
    runs.into_iter().map(|run| run.expect("every request ran")).collect()
}

/// The next event, failing the test after [`TIMEOUT`]. Returns the stream with it.
pub(crate) fn next_event(mut stream: RequestStream) -> (RequestStream, Option<StreamEvent>) {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let event = stream.blocking_next();
        let _ = sender.send((stream, event));
    });
    receiver.recv_timeout(TIMEOUT).expect("an event within the time limit")
}

/// Reads `n` token events, failing on anything else.
pub(crate) fn read_tokens(mut stream: RequestStream, n: usize) -> (RequestStream, Vec<TokenId>) {
    let mut tokens = Vec::new();
    for _ in 0..n {
        let (back, event) = next_event(stream);
        stream = back;
        match event {
            Some(StreamEvent::Token(token)) => tokens.push(token.token),
            other => panic!("expected a token, got {other:?}"),
        }
    }
    (stream, tokens)
}

/// Polls the engine's stats until `done` holds; fails with the last stats after [`TIMEOUT`].
pub(crate) fn wait_for_stats(
    engine: &EngineHandle,
    what: &str,
    done: impl Fn(&EngineStats) -> bool,
) -> EngineStats {
    let started = Instant::now();
    loop {
        let stats = engine.stats();
        if done(&stats) {
            return stats;
        }
        assert!(started.elapsed() < TIMEOUT, "{what}: not reached; last stats {stats:#?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the engine holds no request and no KV block.
pub(crate) fn wait_idle(engine: &EngineHandle) -> EngineStats {
    wait_for_stats(engine, "idle engine", |s| {
        s.num_in_flight == 0
            && s.num_running == 0
            && s.num_waiting == 0
            && s.kv_num_used_blocks == 0
    })
}
