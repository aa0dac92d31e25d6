//! One API request's generations: `n` choices for each prompt submitted to the engine, their
//! events merged, and either collected into one response or turned into stream chunks.
//!
//! Chat and text completions differ only in how a choice's text becomes JSON ([`Endpoint`]);
//! everything else (submission, errors, usage, logprobs, disconnects) is here once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use serde_json::Value;
use uma_engine::{EngineHandle, GenerationRequest, StreamEvent, TokenId, TokenOutput};
use uma_sampling::{FinishReason, SamplingParams};

use crate::metrics::Metrics;
use crate::openai::{
    self, ApiError, ChoiceOutput, ChunkDelta, ResponseMeta, TokenLogprob, TopLogprob,
};

/// Which API shape the output takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Text,
}

/// The generations of one request, in flight. Dropping it cancels them all (each engine stream
/// cancels its request when dropped), which is how a client disconnect reaches the engine.
pub(crate) struct Generation {
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    pub(crate) meta: ResponseMeta,
    endpoint: Endpoint,
    events: SelectAll<BoxStream<'static, (u32, StreamEvent)>>,
    /// Prompt length of each prompt; choice `index` belongs to prompt `index / n`.
    prompt_lengths: Vec<usize>,
    n: u32,
    logprobs: Option<u32>,
    /// Cached prompt tokens of each prompt (the best of its choices).
    cached_tokens: HashMap<u32, usize>,
    completion_tokens: usize,
    started: Instant,
}

impl Generation {
    /// Submits `n` choices of each prompt. Fails, cancelling what was submitted, if any is
    /// refused.
    pub(crate) fn submit(
        engine: &EngineHandle,
        metrics: &Arc<Metrics>,
        meta: ResponseMeta,
        endpoint: Endpoint,
        prompts: Vec<Vec<TokenId>>,
        params: &SamplingParams,
        n: u32,
    ) -> Result<Generation, ApiError> {
        let mut events = stream::select_all(Vec::<BoxStream<'static, (u32, StreamEvent)>>::new());
        let prompt_lengths = prompts.iter().map(Vec::len).collect();
        for (prompt_index, prompt) in prompts.into_iter().enumerate() {
            for choice in 0..n {
                let request = GenerationRequest {
                    prompt: prompt.clone(),
                    params: params.clone(),
                    sampler_stream: u64::from(choice),
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
            meta,
            endpoint,
            events,
            prompt_lengths,
            n,
            logprobs: params.logprobs,
            cached_tokens: HashMap::new(),
            completion_tokens: 0,
            started: Instant::now(),
        })
    }

    /// Waits for every choice and builds the whole response body.
    pub(crate) async fn collect(mut self) -> Result<Value, ApiError> {
        let num_choices = self.prompt_lengths.len() * self.n as usize;
        let mut choices: Vec<ChoiceOutput> = (0..num_choices as u32)
            .map(|index| ChoiceOutput {
                index,
                text: String::new(),
                finish_reason: None,
                logprobs: self.logprobs.map(|_| Vec::new()),
            })
            .collect();
        while let Some((index, event)) = self.next_event().await {
            let choice = &mut choices[index as usize];
            match event {
                StreamEvent::Token(token) => {
                    choice.text.push_str(&token.text);
                    if let Some(entry) = self.token_logprob(&token) {
                        choice.logprobs.get_or_insert_with(Vec::new).push(entry);
                    }
                }
                StreamEvent::Finished(completion) => {
                    choice.text.push_str(&completion.text);
                    choice.finish_reason = Some(completion.finish_reason);
                }
                StreamEvent::Failed(error) => return Err(ApiError::from(&*error)),
            }
        }
        self.log_done();
        let usage = self.usage();
        Ok(match self.endpoint {
            Endpoint::Chat => openai::chat_completion(&self.meta, &choices, &usage),
            Endpoint::Text => openai::text_completion(&self.meta, &choices, &usage),
        })
    }

    /// The next event of any choice, usage recorded; `None` when every choice has ended.
    pub(crate) async fn next_event(&mut self) -> Option<(u32, StreamEvent)> {
        let (index, event) = self.events.next().await?;
        if let StreamEvent::Finished(completion) = &event {
            self.record_usage(index, &completion.usage);
        }
        Some((index, event))
    }

    /// The stream of SSE `data:` payloads: chunks as tokens arrive, a usage chunk if asked for,
    /// then `[DONE]`.
    pub(crate) fn into_chunks(self, include_usage: bool) -> BoxStream<'static, String> {
        let state = ChunkState {
            generation: self,
            include_usage,
            text_offsets: HashMap::new(),
            started_choices: Vec::new(),
            finished: false,
        };
        stream::unfold(state, |mut state| async move {
            let payloads = state.next_payloads().await?;
            Some((stream::iter(payloads), state))
        })
        .flatten()
        .boxed()
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
    }

    pub(crate) fn usage(&self) -> openai::Usage {
        // The prompt counts once however many choices it has, as OpenAI counts it.
        openai::Usage {
            prompt_tokens: self.prompt_lengths.iter().sum::<usize>() as u32,
            completion_tokens: self.completion_tokens as u32,
            cached_tokens: self.cached_tokens.values().sum::<usize>() as u32,
        }
    }

    pub(crate) fn log_done(&self) {
        let usage = self.usage();
        tracing::info!(
            id = %self.meta.id,
            prompt_tokens = usage.prompt_tokens,
            cached_tokens = usage.cached_tokens,
            completion_tokens = usage.completion_tokens,
            seconds = format_args!("{:.2}", self.started.elapsed().as_secs_f64()),
            "completed"
        );
    }

    fn chunk(
        &self,
        index: u32,
        delta: ChunkDelta,
        finish: Option<FinishReason>,
        logprobs: Option<&[TokenLogprob]>,
        text_offset: usize,
    ) -> Value {
        match self.endpoint {
            Endpoint::Chat => openai::chat_chunk(&self.meta, index, &delta, finish, logprobs),
            Endpoint::Text => {
                let choice = ChoiceOutput {
                    index,
                    text: delta.content.unwrap_or_default(),
                    finish_reason: finish,
                    logprobs: logprobs.map(<[TokenLogprob]>::to_vec),
                };
                openai::text_chunk(&self.meta, &choice, text_offset)
            }
        }
    }
}

/// Streaming state: which choices have sent their first chunk, and how much text each sent.
struct ChunkState {
    generation: Generation,
    include_usage: bool,
    text_offsets: HashMap<u32, usize>,
    started_choices: Vec<u32>,
    finished: bool,
}

impl ChunkState {
    /// The payloads the next engine event produces (`None` once `[DONE]` was sent).
    async fn next_payloads(&mut self) -> Option<Vec<String>> {
        if self.finished {
            return None;
        }
        let Some((index, event)) = self.generation.next_event().await else {
            self.finished = true;
            let mut payloads = Vec::new();
            if self.include_usage {
                let usage = self.generation.usage();
                let chunk = match self.generation.endpoint {
                    Endpoint::Chat => openai::chat_usage_chunk(&self.generation.meta, &usage),
                    Endpoint::Text => openai::text_usage_chunk(&self.generation.meta, &usage),
                };
                payloads.push(chunk.to_string());
            }
            self.generation.log_done();
            payloads.push("[DONE]".to_owned());
            return Some(payloads);
        };
        let mut payloads = Vec::new();
        if self.generation.endpoint == Endpoint::Chat && !self.started_choices.contains(&index) {
            self.started_choices.push(index);
            payloads.push(self.chunk(index, ChunkDelta::role(), None, None).to_string());
        }
        match event {
            StreamEvent::Token(token) => {
                let logprob = self.generation.token_logprob(&token);
                // An empty delta says nothing unless it carries a logprob.
                if !token.text.is_empty() || logprob.is_some() {
                    let logprobs = logprob.map(|entry| vec![entry]);
                    let chunk = self.chunk(
                        index,
                        ChunkDelta::content(token.text),
                        None,
                        logprobs.as_deref(),
                    );
                    payloads.push(chunk.to_string());
                }
            }
            StreamEvent::Finished(completion) => {
                let delta = if completion.text.is_empty() {
                    ChunkDelta::empty()
                } else {
                    ChunkDelta::content(completion.text)
                };
                let chunk = self.chunk(index, delta, Some(completion.finish_reason), None);
                payloads.push(chunk.to_string());
            }
            StreamEvent::Failed(error) => {
                tracing::error!(id = %self.generation.meta.id, "generation failed: {error}");
                self.finished = true;
                payloads.push(ApiError::from(&*error).body().to_string());
                payloads.push("[DONE]".to_owned());
            }
        }
        Some(payloads)
    }

    fn chunk(
        &mut self,
        index: u32,
        delta: ChunkDelta,
        finish: Option<FinishReason>,
        logprobs: Option<&[TokenLogprob]>,
    ) -> Value {
        let offset = self.text_offsets.entry(index).or_default();
        let text_offset = *offset;
        *offset += delta.content.as_deref().map_or(0, |text| text.chars().count());
        self.generation.chunk(index, delta, finish, logprobs, text_offset)
    }
}
