//! One request's generations, whatever the protocol: `n` choices for each prompt submitted to the
//! engine, their events merged and made ready to render (token logprobs decoded to text), usage
//! counted, and either collected into one [`Outcome`] or read event by event.
//!
//! Nothing here knows a wire format: `openai/answer.rs` and `ollama/answer.rs` render these.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use uma_chat_output::{OutputDelta, OutputParser, ParsedOutput};
use uma_engine::{EngineError, EngineHandle, GenerationRequest, StreamEvent, TokenId, TokenOutput};
use uma_grammar::OutputGrammar;
use uma_sampling::{FinishReason, SamplingParams};

use crate::metrics::Metrics;
use crate::tools::OutputParsing;

/// One of the most likely tokens at a position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopLogprob {
    pub(crate) token: String,
    pub(crate) logprob: f32,
    /// The token's bytes (its text may be part of a UTF-8 character).
    pub(crate) bytes: Vec<u8>,
}

/// The logprob of a chosen token, with the most likely tokens at its position, best first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenLogprob {
    pub(crate) token: String,
    pub(crate) logprob: f32,
    pub(crate) bytes: Vec<u8>,
    pub(crate) top_logprobs: Vec<TopLogprob>,
}

/// Token counts of a request, all choices together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u32,
    pub(crate) completion_tokens: u32,
    /// Prompt tokens whose KV came from the prefix cache.
    pub(crate) cached_tokens: u32,
    /// Speculative decoding: draft tokens the model confirmed, and those it did not.
    pub(crate) accepted_draft_tokens: u32,
    pub(crate) rejected_draft_tokens: u32,
}

/// One generated choice: the whole of it for a full response, or what one stream chunk adds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChoiceOutput {
    pub(crate) index: u32,
    pub(crate) text: String,
    /// `Some` once the choice has ended (always, in a collected [`Outcome`]).
    pub(crate) finish_reason: Option<FinishReason>,
    /// `Some` when the request asked for logprobs: one entry per token of `text`.
    pub(crate) logprobs: Option<Vec<TokenLogprob>>,
    /// For chats: `text` read as reasoning, content and tool calls.
    pub(crate) parsed: Option<ParsedOutput>,
}

/// Every choice of a generation, ended, and what they cost.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) choices: Vec<ChoiceOutput>,
    pub(crate) usage: Usage,
}

/// What one choice produced next.
#[derive(Debug, Clone)]
pub(crate) enum ChoiceEvent {
    /// A generated token and the text that became final with it (often empty while a character
    /// or a possible stop string is held back), with its logprobs when the request asked, and
    /// for chats what that text adds to the reasoning, content and tool calls.
    Token { token: TokenId, text: String, logprob: Option<TokenLogprob>, deltas: Vec<OutputDelta> },
    /// The choice ended: the text released at the end, and why it ended; for chats the last
    /// deltas and the whole output parsed.
    Finished {
        text: String,
        finish_reason: FinishReason,
        deltas: Vec<OutputDelta>,
        parsed: Option<ParsedOutput>,
    },
    /// The engine failed the choice; the generation has nothing more to give.
    Failed(Arc<EngineError>),
}

/// The generations of one request, in flight. Dropping it cancels them all (each engine stream
/// cancels its request when dropped), which is how a client disconnect reaches the engine.
pub(crate) struct Generation {
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    /// Names the request in the log (and, for OpenAI, in its response).
    id: String,
    events: SelectAll<BoxStream<'static, (u32, StreamEvent)>>,
    /// Prompt length of each prompt; choice `index` belongs to prompt `index / n`.
    prompt_lengths: Vec<usize>,
    n: u32,
    logprobs: Option<u32>,
    /// Cached prompt tokens of each prompt (the best of its choices).
    cached_tokens: HashMap<u32, usize>,
    completion_tokens: usize,
    drafted_tokens: usize,
    accepted_draft_tokens: usize,
    started: Instant,
    /// For chats, how the output is read, and each choice's parser (made at its first event).
    parsing: Option<OutputParsing>,
    parsers: HashMap<u32, OutputParser>,
}

/// What a generation's output must follow, and how it is read back.
#[derive(Debug, Default)]
pub(crate) struct OutputHandling {
    /// The grammar every choice follows.
    pub(crate) grammar: Option<OutputGrammar>,
    /// `Some` for chats: the text is parsed into reasoning, content and tool calls.
    pub(crate) parsing: Option<OutputParsing>,
}

impl Generation {
    /// Submits `n` choices of each prompt; choice `c` of prompt `p` has index `p * n + c`.
    /// Fails, cancelling what was submitted, if the engine refuses any.
    pub(crate) fn submit(
        engine: &EngineHandle,
        metrics: &Arc<Metrics>,
        id: String,
        prompts: Vec<Vec<TokenId>>,
        params: &SamplingParams,
        n: u32,
        output: OutputHandling,
    ) -> Result<Generation, EngineError> {
        // More sequences than the engine ever holds would be refused with 429 forever (and the
        // choices it did take would crowd out other clients): a 400 now.
        let requested = prompts.len().saturating_mul(n as usize);
        let limit = engine.max_in_flight();
        if requested > limit {
            return Err(EngineError::TooManySequences { requested, limit });
        }
        let mut events = stream::select_all(Vec::<BoxStream<'static, (u32, StreamEvent)>>::new());
        let prompt_lengths = prompts.iter().map(Vec::len).collect();
        for (prompt_index, prompt) in prompts.into_iter().enumerate() {
            for choice in 0..n {
                let request = GenerationRequest {
                    prompt: prompt.clone(),
                    params: params.clone(),
                    sampler_stream: u64::from(choice),
                    grammar: output.grammar.clone(),
                };
                let request_stream = engine.submit(request)?;
                let index = prompt_index as u32 * n + choice;
                let choice_events =
                    stream::unfold(request_stream, |mut request_stream| async move {
                        let event = request_stream.next().await?;
                        Some((event, request_stream))
                    })
                    .map({
                        let mut timer = metrics.token_timer(engine.model_name());
                        move |event| {
                            timer.observe(&event);
                            (index, event)
                        }
                    });
                events.push(choice_events.boxed());
            }
        }
        Ok(Generation {
            engine: engine.clone(),
            metrics: metrics.clone(),
            id,
            events,
            prompt_lengths,
            n,
            logprobs: params.logprobs,
            cached_tokens: HashMap::new(),
            completion_tokens: 0,
            drafted_tokens: 0,
            accepted_draft_tokens: 0,
            started: Instant::now(),
            parsing: output.parsing,
            parsers: HashMap::new(),
        })
    }

    /// Whether the output is parsed (a chat): events carry deltas and the parsed output.
    pub(crate) fn parses_output(&self) -> bool {
        self.parsing.is_some()
    }

    /// The id the request is logged under.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Waits for every choice to end.
    pub(crate) async fn collect(mut self) -> Result<Outcome, Arc<EngineError>> {
        let num_choices = self.prompt_lengths.len() * self.n as usize;
        let mut choices: Vec<ChoiceOutput> = (0..num_choices as u32)
            .map(|index| ChoiceOutput {
                index,
                text: String::new(),
                finish_reason: None,
                logprobs: self.logprobs.map(|_| Vec::new()),
                parsed: None,
            })
            .collect();
        while let Some((index, event)) = self.next_event().await {
            let choice = &mut choices[index as usize];
            match event {
                ChoiceEvent::Token { text, logprob, .. } => {
                    choice.text.push_str(&text);
                    if let Some(entry) = logprob {
                        choice.logprobs.get_or_insert_with(Vec::new).push(entry);
                    }
                }
                ChoiceEvent::Finished { text, finish_reason, parsed, .. } => {
                    choice.text.push_str(&text);
                    choice.finish_reason = Some(finish_reason);
                    choice.parsed = parsed;
                }
                ChoiceEvent::Failed(error) => return Err(error),
            }
        }
        self.log_done();
        Ok(Outcome { choices, usage: self.usage() })
    }

    /// The next event of any choice (usage recorded) with the choice's index; `None` when every
    /// choice has ended.
    pub(crate) async fn next_event(&mut self) -> Option<(u32, ChoiceEvent)> {
        let (index, event) = self.events.next().await?;
        let event = match event {
            StreamEvent::Token(token) => ChoiceEvent::Token {
                logprob: self.token_logprob(&token),
                deltas: self.parser(index).map(|p| p.push(&token.text)).unwrap_or_default(),
                token: token.token,
                text: token.text,
            },
            StreamEvent::Finished(completion) => {
                self.record_usage(index, &completion.usage);
                let (deltas, parsed) = match self.parser(index) {
                    Some(parser) => {
                        let mut deltas = parser.push(&completion.text);
                        let parser = self.parsers.remove(&index).expect("made by self.parser");
                        let (last, parsed) = parser.finish();
                        deltas.extend(last);
                        (deltas, Some(parsed))
                    }
                    None => (Vec::new(), None),
                };
                ChoiceEvent::Finished {
                    text: completion.text,
                    finish_reason: completion.finish_reason,
                    deltas,
                    parsed,
                }
            }
            StreamEvent::Failed(error) => ChoiceEvent::Failed(error),
        };
        Some((index, event))
    }

    /// Choice `index`'s parser, for chats.
    fn parser(&mut self, index: u32) -> Option<&mut OutputParser> {
        let parsing = self.parsing?;
        Some(self.parsers.entry(index).or_insert_with(|| parsing.parser()))
    }

    fn token_logprob(&self, token: &TokenOutput) -> Option<TokenLogprob> {
        self.logprobs?;
        let logprob = token.logprob?;
        let text = |id: TokenId| {
            self.engine.prompts().tokenizer().decode(&[id], false).unwrap_or_default()
        };
        let token_text = text(token.token);
        Some(TokenLogprob {
            bytes: token_text.as_bytes().to_vec(),
            token: token_text,
            logprob,
            top_logprobs: token
                .top_logprobs
                .iter()
                .map(|&(id, logprob)| {
                    let token = text(id);
                    TopLogprob { bytes: token.as_bytes().to_vec(), token, logprob }
                })
                .collect(),
        })
    }

    fn record_usage(&mut self, index: u32, usage: &uma_engine::Usage) {
        self.metrics.count_tokens(self.engine.model_name(), usage);
        let prompt = index / self.n;
        let cached = self.cached_tokens.entry(prompt).or_default();
        *cached = (*cached).max(usage.num_cached_tokens);
        self.completion_tokens += usage.num_generated_tokens;
        self.drafted_tokens += usage.num_drafted_tokens;
        self.accepted_draft_tokens += usage.num_accepted_draft_tokens;
    }

    /// The tokens counted so far (all of them once every choice has ended).
    pub(crate) fn usage(&self) -> Usage {
        // The prompt counts once however many choices it has, as OpenAI counts it.
        Usage {
            prompt_tokens: self.prompt_lengths.iter().sum::<usize>() as u32,
            completion_tokens: self.completion_tokens as u32,
            cached_tokens: self.cached_tokens.values().sum::<usize>() as u32,
            accepted_draft_tokens: self.accepted_draft_tokens as u32,
            rejected_draft_tokens: (self.drafted_tokens - self.accepted_draft_tokens) as u32,
        }
    }

    pub(crate) fn log_done(&self) {
        let usage = self.usage();
        tracing::info!(
            id = %self.id,
            prompt_tokens = usage.prompt_tokens,
            cached_tokens = usage.cached_tokens,
            completion_tokens = usage.completion_tokens,
            seconds = format_args!("{:.2}", self.started.elapsed().as_secs_f64()),
            "completed"
        );
    }
}

/// `{prefix}-` and 32 hex digits, unique within the process (a counter) and unlikely to repeat
/// across processes (std's randomly keyed hasher over the counter and the time).
pub(crate) fn new_request_id(prefix: &str) -> String {
    static NUM_IDS: AtomicU64 = AtomicU64::new(0);
    let count = NUM_IDS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |time| time.as_nanos());
    let hasher = RandomState::new();
    let high = hasher.hash_one((count, nanos, 0_u8));
    let low = hasher.hash_one((count, nanos, 1_u8));
    format!("{prefix}-{high:016x}{low:016x}")
}
