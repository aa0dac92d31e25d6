//! The engine thread: one loop of `schedule → execute → update` over every request of one model.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use uma_grammar::{Commit, Constraint, TokenMask};
use uma_model::backend::{Backend, PagedKvCache};
use uma_model::{Batch, BlockId, KvCacheType, Logits, LogitsRequest, Model};
use uma_sampling::{FinishReason, Sampler, StopCondition, StopReason, TokenHistory};
use uma_tokenizer::{StreamDecoder, Tokenizer};

use crate::draft_model::{DraftModel, DraftWanted};
use crate::engine_stats::EngineStats;
use crate::error::{EngineError, Result};
use crate::output::{Completion, StreamEvent, TokenOutput, Usage};
use crate::pooling::{Pooler, Pooling};
use crate::prompt_encoder::PromptEncoder;
use crate::scheduler::{ScheduledChunk, Scheduler, SchedulerOutput};
use crate::speculation::{
    best_draft_length, lookup_drafts, Drafter, SequenceSpeculation, SpeculativeConfig,
    SpeculativeMode, StepCost,
};
use crate::{RequestId, TokenId};

/// One step's grammar mask of a constrained sequence: `None` while a lazy grammar waits for its
/// trigger; an error when the grammar cannot go on.
type MaskResult = Result<Option<TokenMask>>;
type MaskResults = HashMap<RequestId, MaskResult>;

/// What the handle and the streams tell the engine thread.
#[derive(Debug)]
pub(crate) enum Command {
    Add(Box<NewRequest>),
    Cancel(RequestId),
    /// Accept nothing new; finish what runs, cancel what is left at `deadline`, then exit.
    Shutdown {
        deadline: Instant,
    },
    /// Compute one embedding between two steps.
    Embed(Box<EmbedRequest>),
    /// Panic in the engine loop, outside the model: how tests reach the engine's last guard.
    InjectPanic,
}

/// An embedding to compute: the validated input tokens, and where the vector goes.
#[derive(Debug)]
pub(crate) struct EmbedRequest {
    pub(crate) tokens: Vec<TokenId>,
    pub(crate) pooling: Pooling,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Vec<f32>>>,
}

/// A validated request, ready to schedule.
#[derive(Debug)]
pub(crate) struct NewRequest {
    pub(crate) id: RequestId,
    pub(crate) prompt: Vec<TokenId>,
    pub(crate) sampler: Sampler,
    pub(crate) stop: StopCondition,
    pub(crate) constraint: Option<Constraint>,
    pub(crate) events: UnboundedSender<StreamEvent>,
}

/// The output side of a request the engine is working on.
struct ActiveRequest {
    sampler: Sampler,
    stop: StopCondition,
    /// The request's grammar state; taken out while a step computes its mask.
    constraint: Option<Constraint>,
    decoder: StreamDecoder,
    events: UnboundedSender<StreamEvent>,
    num_prompt_tokens: usize,
    speculation: SequenceSpeculation,
}

impl ActiveRequest {
    /// The text still held back when the request stops for `reason`: the stop condition's
    /// (a possible start of a stop string) and the characters the decoder is still assembling,
    /// unless a stop string cut the output there.
    fn held_back_text(&mut self, tokenizer: &Tokenizer, reason: &StopReason) -> String {
        // Empty when the stop condition itself decided to stop: it sent its text already.
        let mut text = self.stop.finish(reason.clone());
        if !matches!(reason, StopReason::StopString { .. }) {
            text.push_str(&self.decoder.finish(tokenizer).unwrap_or_default());
        }
        text
    }
}

/// Where the engine thread publishes its state.
pub(crate) struct SharedState {
    pub(crate) num_in_flight: Arc<AtomicUsize>,
    pub(crate) stats: Arc<Mutex<EngineStats>>,
    /// Set once, when the engine loop panicked: what the panic said.
    pub(crate) failure: Arc<OnceLock<String>>,
}

/// Whether the engine loop goes on after one turn.
enum Turn {
    Continue,
    Exit,
}

/// Owns the model, its KV tensors (on the model's backend `B`) and the scheduler; runs on its
/// own thread.
pub(crate) struct EngineCore<B: Backend> {
    model: Model<B>,
    kv_cache: B::KvCache,
    scheduler: Scheduler,
    prompts: Arc<PromptEncoder>,
    commands: Receiver<Command>,
    shared: SharedState,
    context_length: usize,
    speculative: SpeculativeConfig,
    draft: Option<DraftModel<B>>,
    step_cost: StepCost,
    requests: HashMap<RequestId, ActiveRequest>,
    shutdown_deadline: Option<Instant>,
    counters: EngineStats,
}

impl<B: Backend> EngineCore<B> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        model: Model<B>,
        kv_cache: B::KvCache,
        scheduler: Scheduler,
        prompts: Arc<PromptEncoder>,
        commands: Receiver<Command>,
        shared: SharedState,
        context_length: usize,
        speculative: SpeculativeConfig,
        draft: Option<DraftModel<B>>,
    ) -> Self {
        EngineCore {
            model,
            kv_cache,
            scheduler,
            prompts,
            commands,
            shared,
            context_length,
            speculative,
            draft,
            step_cost: StepCost::default(),
            requests: HashMap::new(),
            shutdown_deadline: None,
            counters: EngineStats::default(),
        }
    }

    /// Runs until shut down, or until every handle and stream is gone. A panic anywhere in a
    /// turn (the model's own are caught closer, per step) leaves the scheduler and KV state
    /// unknown: the engine then fails every request it holds, marks itself failed for the
    /// handle and the registry to see, and refuses work until it is shut down.
    pub(crate) fn run(mut self) {
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.turn())) {
                Ok(Turn::Continue) => {}
                Ok(Turn::Exit) => break,
                Err(panic) => {
                    let detail = panic_detail(panic.as_ref());
                    tracing::error!(%detail, "the engine loop panicked; the engine is failed");
                    self.fail_everything(detail);
                    break;
                }
            }
        }
        tracing::debug!("engine thread exits");
    }

    /// Commands, then one step if there is work, then the published stats.
    fn turn(&mut self) -> Turn {
        if self.requests.is_empty() {
            if self.shutdown_deadline.is_some() {
                return Turn::Exit;
            }
            match self.commands.recv() {
                Ok(command) => self.handle(command),
                Err(_) => return Turn::Exit,
            }
        }
        while let Ok(command) = self.commands.try_recv() {
            self.handle(command);
        }
        if self.shutdown_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            let ids: Vec<RequestId> = self.requests.keys().copied().collect();
            for id in ids {
                self.cancel(id);
            }
        }
        if !self.requests.is_empty() {
            self.step();
        }
        self.publish_stats();
        Turn::Continue
    }

    /// After a panic: every request held and every one still arriving fails with the panic's
    /// detail, until shutdown. Touches neither the scheduler nor the model, whose state the
    /// panic may have left half-updated.
    fn fail_everything(mut self, detail: String) {
        let _ = self.shared.failure.set(detail.clone());
        let error = Arc::new(EngineError::EngineFailed { detail: detail.clone() });
        let requests = std::mem::take(&mut self.requests);
        self.counters.num_failed_requests += requests.len() as u64;
        self.shared.num_in_flight.fetch_sub(requests.len(), Ordering::AcqRel);
        // Published before the streams hear of it: whoever reads a failure sees it counted.
        self.publish_counters();
        for request in requests.into_values() {
            let _ = request.events.send(StreamEvent::Failed(error.clone()));
        }
        while let Ok(command) = self.commands.recv() {
            match command {
                Command::Add(request) => {
                    self.counters.num_failed_requests += 1;
                    self.shared.num_in_flight.fetch_sub(1, Ordering::AcqRel);
                    self.publish_counters();
                    let _ = request.events.send(StreamEvent::Failed(error.clone()));
                }
                Command::Embed(request) => {
                    let _ = request
                        .reply
                        .send(Err(EngineError::EngineFailed { detail: detail.clone() }));
                }
                Command::Shutdown { .. } => break,
                Command::Cancel(_) | Command::InjectPanic => {}
            }
        }
    }

    /// The counters and the in-flight count, without the scheduler's figures (kept as they
    /// were last published).
    fn publish_counters(&self) {
        if let Ok(mut shared) = self.shared.stats.lock() {
            *shared = EngineStats {
                num_in_flight: self.shared.num_in_flight.load(Ordering::Acquire),
                num_running: 0,
                num_waiting: 0,
                ..self.counters.clone()
            };
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Add(request) => self.add(*request),
            Command::Cancel(id) => self.cancel(id),
            Command::Shutdown { deadline } => self.shutdown_deadline = Some(deadline),
            Command::Embed(request) => {
                let EmbedRequest { tokens, pooling, reply } = *request;
                let _ = reply.send(self.embed(&tokens, pooling));
            }
            Command::InjectPanic => panic!("injected fault (tests)"),
        }
    }

    /// One embedding, computed at once: the input runs through the model in chunks of at most
    /// a step's tokens, with its own KV cache (its tokens attend to each other only), freed
    /// when done. Embeddings are short and rare next to generation, so they do not join the
    /// scheduler's batches; a long one delays the running streams by its compute time.
    fn embed(&mut self, tokens: &[TokenId], pooling: Pooling) -> Result<Vec<f32>> {
        let config = self.model.config();
        let block_size = uma_model::DEFAULT_BLOCK_SIZE;
        let num_blocks = tokens.len().div_ceil(block_size);
        // f16 whatever the pool's type: this cache lives for one request, and embeddings are
        // compared by cosine, where the f16 cache's precision is worth its few bytes.
        let mut kv = self.model.new_paged_kv_cache(num_blocks, block_size, KvCacheType::F16)?;
        let table: Vec<BlockId> = (0..num_blocks as u32).map(BlockId).collect();
        let mut pooler = Pooler::new(pooling, config.hidden_size);
        let chunk_size = self.scheduler.max_num_batched_tokens().max(1);
        for (chunk_index, chunk) in tokens.chunks(chunk_size).enumerate() {
            let rows = match pooling {
                Pooling::Mean => LogitsRequest::All,
                Pooling::Last => LogitsRequest::Last,
            };
            let batch = Batch::single(chunk, chunk_index * chunk_size, &table, rows);
            let model = &self.model;
            let states = run_model(|| model.hidden_states(&batch, &mut kv))?;
            for index in 0..states.rows().len() {
                pooler.add(states.row(index));
            }
        }
        Ok(pooler.finish())
    }

    fn add(&mut self, request: NewRequest) {
        let NewRequest { id, prompt, sampler, stop, constraint, events } = request;
        self.counters.num_prompt_tokens += prompt.len() as u64;
        let active = ActiveRequest {
            sampler,
            stop,
            constraint,
            decoder: StreamDecoder::new(true),
            events,
            num_prompt_tokens: prompt.len(),
            speculation: SequenceSpeculation::default(),
        };
        self.requests.insert(id, active);
        self.scheduler.add_request(id, prompt);
    }

    /// One step: plan, run the model once over every scheduled token, sample and send.
    fn step(&mut self) {
        self.propose_drafts();
        let plan = self.scheduler.schedule();
        if let Some(draft) = &mut self.draft {
            for &id in &plan.preempted {
                draft.remove(id);
            }
        }
        if plan.chunks.is_empty() {
            // Nothing fits right now (cannot last: one full context always fits an empty pool);
            // wait for a command rather than spin.
            match self.commands.recv_timeout(Duration::from_millis(5)) {
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            return;
        }
        self.counters.num_steps += 1;
        let started = Instant::now();
        let (result, mut masks) = self.execute_and_mask(&plan);
        if result.is_ok() {
            self.step_cost.record(plan.num_tokens(), started.elapsed().as_secs_f64());
        }
        let mut logits = match result {
            Ok(logits) => logits,
            Err(error) => {
                tracing::error!("step failed: {error}");
                let error = Arc::new(error);
                for chunk in &plan.chunks {
                    self.fail(chunk.request, &error);
                }
                return;
            }
        };
        self.scheduler.complete_step(&plan);
        // One logits row per sampling chunk, in order, and one more per draft; each sampler
        // edits its row in place.
        let mut rows = logits.rows_mut();
        for chunk in plan.chunks.iter().filter(|c| c.samples) {
            let chunk_rows: Vec<&mut [f32]> = rows.by_ref().take(1 + chunk.num_drafts).collect();
            if chunk.num_drafts > 0 {
                self.verify_drafts(chunk, chunk_rows);
            } else if let Some(row) = chunk_rows.into_iter().next() {
                let mask = masks.remove(&chunk.request);
                self.sample_and_send(chunk.request, row, mask, None);
            }
        }
    }

    /// Proposes drafts for the decoding sequences, within the step's verification budget, in
    /// the scheduler's order. Constrained sequences decode plainly (their masks are computed
    /// one token at a time).
    fn propose_drafts(&mut self) {
        if self.speculative.mode == SpeculativeMode::Off {
            return;
        }
        let decoding = self.scheduler.decoding_requests();
        let mut budget = self.speculative.max_verify_tokens.saturating_sub(decoding.len());
        let use_draft_model =
            self.speculative.mode != SpeculativeMode::Lookup && self.draft.is_some();
        let mut for_draft_model: Vec<(RequestId, usize)> = Vec::new();
        // What a draft costs, in tokens the step would produce in the same time: its row in the
        // step, and for the draft model also its share of a draft step. Before the costs are
        // measured, a row is taken to cost a fifth of a token and a draft step half a step.
        let (lookup_cost, draft_model_cost) = match self.speculative.always_draft {
            true => (0.0, 0.0),
            false => {
                let row = self.step_cost.row_cost(decoding.len()).unwrap_or(0.2);
                let draft_step = self.draft.as_ref().and_then(|draft| {
                    Some(
                        draft.step_seconds(decoding.len())?
                            / self.step_cost.seconds(decoding.len())?,
                    )
                });
                (row, row + draft_step.unwrap_or(0.5))
            }
        };
        let max_length = self.speculative.max_draft_tokens;
        for id in decoding {
            if budget == 0 {
                break;
            }
            let Some(request) = self.requests.get_mut(&id) else { continue };
            if request.constraint.is_some() {
                continue;
            }
            let tokens = self.scheduler.tokens(id);
            // The last draft's position must stay inside the context, and the bonus token after
            // the drafts must not pass max_tokens.
            let context_room = self.context_length.saturating_sub(tokens.len());
            let tokens_left = request.stop.num_tokens_left().map_or(usize::MAX, |n| n as usize);
            let cap = budget.min(context_room).min(tokens_left.saturating_sub(1));
            let speculation = &mut request.speculation;
            // Prompt lookup first: free to propose, and right whenever the text repeats itself.
            let length = best_draft_length(speculation.lookup.rate(), lookup_cost, max_length);
            let drafts = lookup_drafts(tokens, length.min(cap));
            if length == 0 {
                speculation.lookup.forget();
            }
            if !drafts.is_empty() {
                budget -= drafts.len();
                speculation.pending = Some(Drafter::Lookup);
                self.scheduler.set_drafts(id, &drafts);
                continue;
            }
            if use_draft_model {
                let acceptance = speculation.draft_model.rate();
                let length = best_draft_length(acceptance, draft_model_cost, max_length).min(cap);
                if length == 0 {
                    speculation.draft_model.forget();
                    continue;
                }
                for_draft_model.push((id, length));
                budget -= length;
            }
        }
        if let (Some(draft), false) = (&mut self.draft, for_draft_model.is_empty()) {
            let scheduler = &self.scheduler;
            let wanted: Vec<DraftWanted<'_>> = for_draft_model
                .iter()
                .map(|&(request, num_drafts)| DraftWanted {
                    request,
                    tokens: scheduler.tokens(request),
                    num_drafts,
                })
                .collect();
            let proposed = match catch_unwind(AssertUnwindSafe(|| draft.propose(&wanted))) {
                Ok(Ok(proposed)) => proposed,
                Ok(Err(error)) => {
                    tracing::warn!("the draft model failed a step: {error}");
                    return;
                }
                Err(panic) => {
                    let detail = panic_detail(panic.as_ref());
                    tracing::error!(%detail, "the draft model panicked; drafting stops");
                    self.draft = None;
                    return;
                }
            };
            for (id, drafts) in proposed {
                if let Some(request) = self.requests.get_mut(&id) {
                    request.speculation.pending = Some(Drafter::DraftModel);
                }
                self.scheduler.set_drafts(id, &drafts);
            }
        }
    }

    /// Verifies the drafts of `chunk` from its rows (the last real token's, then one per
    /// draft): samples each position's token exactly as plain decoding would and keeps going
    /// while the sampled token is the draft. Every sampled token is sent; the accepted drafts'
    /// KV, computed in this step, is kept and the rest rolled back.
    fn verify_drafts(&mut self, chunk: &ScheduledChunk, rows: Vec<&mut [f32]>) {
        let id = chunk.request;
        let drafts = self.scheduler.take_drafts(id);
        if let Some(request) = self.requests.get_mut(&id) {
            request.speculation.num_drafted += drafts.len();
        }
        self.counters.num_drafted_tokens += drafts.len() as u64;
        self.counters.num_draft_verifications += 1;
        let mut num_accepted = 0;
        for (index, row) in rows.into_iter().enumerate() {
            let draft = drafts.get(index).copied();
            let Some(token) = self.sample_and_send(id, row, None, draft) else { break };
            if draft != Some(token) {
                break;
            }
            num_accepted += 1;
        }
        // A request that finished on the way is gone, its blocks with it.
        if let Some(request) = self.requests.get_mut(&id) {
            request.speculation.record(drafts.len(), num_accepted);
            self.scheduler.accept_drafts(id, num_accepted);
            if let Some(draft) = &mut self.draft {
                draft.rollback(id, chunk.start + 1 + num_accepted);
            }
        }
    }

    /// Runs the step and, at the same time on a worker thread, the grammar masks of the
    /// constrained sequences that sample in it (llguidance takes from tens of microseconds to a
    /// few milliseconds per mask; the model's step hides that). Steps without constraints spawn
    /// nothing.
    fn execute_and_mask(&mut self, plan: &SchedulerOutput) -> (Result<Logits>, MaskResults) {
        let mut constrained: Vec<(RequestId, Constraint)> = Vec::new();
        for chunk in plan.chunks.iter().filter(|chunk| chunk.samples) {
            let request = self.requests.get_mut(&chunk.request);
            if let Some(constraint) = request.and_then(|request| request.constraint.take()) {
                constrained.push((chunk.request, constraint));
            }
        }
        if constrained.is_empty() {
            return (self.execute(plan), MaskResults::new());
        }
        let constrained_ids: Vec<RequestId> = constrained.iter().map(|(id, _)| *id).collect();
        let (logits, computed) = std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                constrained
                    .into_iter()
                    .map(|(id, mut constraint)| {
                        let mask = constraint.mask();
                        (id, constraint, mask)
                    })
                    .collect::<Vec<_>>()
            });
            let logits = self.execute(plan);
            (logits, worker.join())
        });
        let mut masks = MaskResults::new();
        match computed {
            Ok(computed) => {
                for (id, constraint, mask) in computed {
                    if let Some(request) = self.requests.get_mut(&id) {
                        request.constraint = Some(constraint);
                    }
                    masks.insert(id, mask.map_err(EngineError::GrammarFailed));
                }
            }
            // The constraints went down with the worker: those requests (and only those: the
            // unconstrained ones in the step have no constraint either) cannot go on.
            Err(panic) => {
                let detail = panic_detail(panic.as_ref());
                for id in constrained_ids {
                    let error = uma_grammar::GrammarError::Stuck { message: detail.clone() };
                    masks.insert(id, Err(EngineError::GrammarFailed(error)));
                }
            }
        }
        (logits, masks)
    }

    /// Runs the model over the planned chunks; a model error or panic fails the step, not the
    /// engine.
    fn execute(&mut self, plan: &SchedulerOutput) -> Result<Logits> {
        for copy in &plan.kv_copies {
            self.kv_cache
                .copy_block_prefix(copy.source, copy.destination, copy.num_tokens)
                .map_err(EngineError::StepFailed)?;
        }
        // The scheduler's block tables are the model's: borrowed as they are, no conversion.
        let scheduler = &self.scheduler;
        let mut batch = Batch::new();
        for chunk in &plan.chunks {
            let tokens = scheduler.chunk_tokens(chunk);
            let logits = match (chunk.samples, chunk.num_drafts) {
                (false, _) => LogitsRequest::None,
                (true, 0) => LogitsRequest::Last,
                (true, _) => LogitsRequest::All,
            };
            batch.push(tokens, chunk.start, scheduler.block_table(chunk.request), logits);
        }
        let (model, kv_cache) = (&self.model, &mut self.kv_cache);
        run_model(|| model.forward(&batch, kv_cache))
    }

    /// Samples the next token of `id` from its logits `row` (within its grammar's `mask`, for a
    /// constrained request), sends it, and finishes the request when it stops. Returns the
    /// token while the request goes on. A token equal to `draft`, the draft at its position,
    /// counts as an accepted draft (before a stop ends the request and reports its usage).
    fn sample_and_send(
        &mut self,
        id: RequestId,
        row: &mut [f32],
        mask: Option<MaskResult>,
        draft: Option<TokenId>,
    ) -> Option<TokenId> {
        let request = self.requests.get_mut(&id)?;
        match mask {
            Some(Ok(Some(mask))) => mask.apply(row),
            Some(Err(error)) => {
                self.fail(id, &Arc::new(error));
                return None;
            }
            Some(Ok(None)) | None => {}
        }
        let history = TokenHistory::new(self.scheduler.tokens(id), request.num_prompt_tokens);
        let sampled = match request.sampler.sample(row, history) {
            Ok(sampled) => sampled,
            Err(error) => {
                self.fail(id, &Arc::new(EngineError::SamplingFailed(error)));
                return None;
            }
        };
        let tokenizer = self.prompts.tokenizer();
        let piece = match request.decoder.push(tokenizer, sampled.token) {
            Ok(piece) => piece,
            Err(error) => {
                self.fail(id, &Arc::new(EngineError::Tokenizer(error)));
                return None;
            }
        };
        let grammar = match request.constraint.as_mut().map(|c| c.commit(sampled.token)) {
            Some(Err(error)) => {
                self.fail(id, &Arc::new(EngineError::GrammarFailed(error)));
                return None;
            }
            Some(Ok(commit)) => commit,
            None => Commit::Continue,
        };
        let update = request.stop.push(sampled.token, &piece);
        self.scheduler.append_token(id, sampled.token);
        self.counters.num_generated_tokens += 1;
        if draft == Some(sampled.token) {
            request.speculation.num_accepted += 1;
            self.counters.num_accepted_draft_tokens += 1;
        }

        let mut finished = update.finished;
        if finished.is_none() && grammar == Commit::Finished {
            finished = Some(StopReason::GrammarComplete);
        }
        // The last position's token needs no keys of its own: a sequence of context_length
        // computed positions ends one token past them.
        if finished.is_none() && self.scheduler.tokens(id).len() > self.context_length {
            finished = Some(StopReason::ContextFull);
        }
        let tail = match &finished {
            Some(reason) => request.held_back_text(tokenizer, reason),
            None => String::new(),
        };
        let token = TokenOutput {
            token: sampled.token,
            text: update.text,
            logprob: sampled.logprob,
            top_logprobs: sampled.top_logprobs,
        };
        if request.events.send(StreamEvent::Token(token)).is_err() {
            // The receiver is gone: the client disconnected.
            self.cancel(id);
            return None;
        }
        match finished {
            Some(reason) => {
                self.finish(id, reason.finish_reason(), tail);
                None
            }
            None => Some(sampled.token),
        }
    }

    fn usage(&self, id: RequestId) -> Usage {
        let Some(request) = self.requests.get(&id) else { return Usage::default() };
        Usage {
            num_prompt_tokens: request.num_prompt_tokens,
            num_cached_tokens: self.scheduler.num_cached_prompt_tokens(id),
            num_generated_tokens: request.stop.num_generated_tokens() as usize,
            num_drafted_tokens: request.speculation.num_drafted,
            num_accepted_draft_tokens: request.speculation.num_accepted,
        }
    }

    /// Sends the terminal event and forgets the request, freeing its blocks.
    fn finish(&mut self, id: RequestId, finish_reason: FinishReason, text: String) {
        let usage = self.usage(id);
        if let Some(request) = self.remove(id) {
            let _ = request.events.send(StreamEvent::Finished(Completion {
                finish_reason,
                text,
                usage,
            }));
            match finish_reason {
                FinishReason::Cancelled => self.counters.num_cancelled_requests += 1,
                _ => self.counters.num_finished_requests += 1,
            }
        }
    }

    /// Ends `id` as cancelled. What it generated is the caller's, held-back text included (a
    /// Ctrl-C in `uma run` shows the answer up to where it stopped).
    fn cancel(&mut self, id: RequestId) {
        let tokenizer = self.prompts.tokenizer();
        let tail = match self.requests.get_mut(&id) {
            Some(request) => request.held_back_text(tokenizer, &StopReason::Cancelled),
            None => String::new(),
        };
        self.finish(id, FinishReason::Cancelled, tail);
    }

    fn fail(&mut self, id: RequestId, error: &Arc<EngineError>) {
        if let Some(request) = self.remove(id) {
            let _ = request.events.send(StreamEvent::Failed(error.clone()));
            self.counters.num_failed_requests += 1;
        }
    }

    fn remove(&mut self, id: RequestId) -> Option<ActiveRequest> {
        let request = self.requests.remove(&id)?;
        self.scheduler.remove_request(id);
        if let Some(draft) = &mut self.draft {
            draft.remove(id);
        }
        self.shared.num_in_flight.fetch_sub(1, Ordering::AcqRel);
        Some(request)
    }

    pub(crate) fn publish_stats(&self) {
        let kv = self.scheduler.kv();
        let usage = kv.usage();
        let prefix = kv.prefix_cache_stats();
        let stats = EngineStats {
            num_in_flight: self.shared.num_in_flight.load(Ordering::Acquire),
            num_running: self.scheduler.num_running(),
            num_waiting: self.scheduler.num_waiting(),
            kv_block_size: kv.block_size(),
            kv_num_blocks: usage.num_blocks,
            kv_num_used_blocks: usage.num_used,
            kv_num_free_blocks: usage.num_free,
            kv_num_cached_free_blocks: usage.num_evictable_cached,
            prefix_cache_queried_tokens: prefix.num_queries,
            prefix_cache_hit_tokens: prefix.num_hits,
            num_preemptions: self.scheduler.num_preemptions(),
            ..self.counters.clone()
        };
        if let Ok(mut shared) = self.shared.stats.lock() {
            *shared = stats;
        }
    }
}

/// Runs the model: its error fails the step (or embedding), and so does a panic, caught so that
/// a bug in one batch does not take down the engine and every other request with it.
fn run_model<T>(compute: impl FnOnce() -> uma_model::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(compute)) {
        Ok(result) => result.map_err(EngineError::StepFailed),
        Err(panic) => Err(EngineError::ModelPanicked { detail: panic_detail(panic.as_ref()) }),
    }
}

/// What a caught panic said, when it said it with a string.
fn panic_detail(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
