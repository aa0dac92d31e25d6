//! The scheduler: which tokens of which requests the next step computes.
//!
//! It looks only at token counts: a request has `tokens` (prompt, then generated tokens) of which
//! `num_computed_tokens` already have keys and values in the cache. There is no prefill or decode
//! mode; a step takes up to `max_num_batched_tokens` tokens:
//!
//! 1. Running requests that are decoding (one token left to compute) go first, so a long prompt
//!    can never starve streams that are already producing text.
//! 2. Running requests still in their prompt get the next chunk of it (chunked prefill).
//! 3. Waiting requests are admitted, oldest first, while tokens, sequence slots and KV blocks
//!    last. A prefix already in the cache counts as computed.
//!
//! Speculative decoding: a decoding request may carry draft tokens ([`Scheduler::set_drafts`]),
//! guesses of its next tokens. Its chunk is then the last token plus the drafts, computed in one
//! go; the engine verifies them from the chunk's logits and tells the scheduler how many held
//! ([`Scheduler::take_drafts`], [`Scheduler::accept_drafts`]). Drafts never take a decode
//! token from another request, never preempt anyone (they are dropped first), and their KV
//! is never registered in the prefix cache unless accepted.
//!
//! When a running request cannot get a block, the newest running request is preempted: its blocks
//! are freed and it goes back to the front of the queue, to be recomputed later (its prefix
//! usually comes back from the prefix cache). Nothing fails for lack of memory as long as one
//! request's full context fits in the pool, which the engine checks at start-up.

use std::collections::{HashMap, VecDeque};

use uma_kv::{BlockId, KvCacheManager, RequestId, TokenId};

/// Limits of one step and of the running set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Sequences that may be running (have KV blocks) at once.
    pub max_num_seqs: usize,
    /// Tokens computed per step, decode and prompt tokens together.
    pub max_num_batched_tokens: usize,
}

/// One request's share of a step: compute `tokens[start .. start + num_tokens]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledChunk {
    pub request: RequestId,
    /// Position of the first token computed (the request's `num_computed_tokens` before the step).
    pub start: usize,
    pub num_tokens: usize,
    /// Whether this chunk reaches the request's last known token, so its logits give the next
    /// token.
    pub samples: bool,
    /// Draft tokens at the end of the chunk: the engine needs the logits of every position
    /// from the last real token on to verify them.
    pub num_drafts: usize,
}

/// Copy the KV of positions `0..num_tokens` of block `source` into block `destination` before
/// the step runs: a newly admitted request whose cached prefix ends inside a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCopy {
    pub source: BlockId,
    pub destination: BlockId,
    pub num_tokens: usize,
}

/// What one step computes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerOutput {
    /// Done before the step: the sources hold cached contents that this step's writes may
    /// overwrite (an evicted source can be reallocated in the same step).
    pub kv_copies: Vec<KvCopy>,
    pub chunks: Vec<ScheduledChunk>,
    /// Requests preempted in this step (their KV was freed; they wait to be recomputed).
    pub preempted: Vec<RequestId>,
}

impl SchedulerOutput {
    /// Tokens computed in the step.
    pub fn num_tokens(&self) -> usize {
        self.chunks.iter().map(|c| c.num_tokens).sum()
    }
}

/// The token state of one request.
#[derive(Clone, Debug)]
struct SequenceState {
    /// Prompt, then generated tokens.
    tokens: Vec<TokenId>,
    num_computed_tokens: usize,
    /// Prompt tokens found in the prefix cache when the request was first admitted.
    num_cached_prompt_tokens: Option<usize>,
    /// The last `num_drafts` of `tokens` are unverified drafts.
    num_drafts: usize,
}

impl SequenceState {
    /// Keeps the first `num_drafts` drafts (all when there are fewer) and drops the rest.
    fn keep_drafts(&mut self, num_drafts: usize) {
        let num_kept = self.num_drafts.min(num_drafts);
        self.tokens.truncate(self.tokens.len() - self.num_drafts + num_kept);
        self.num_drafts = num_kept;
    }

    /// Prompt and generated tokens, without drafts.
    fn committed(&self) -> &[TokenId] {
        &self.tokens[..self.tokens.len() - self.num_drafts]
    }
}

/// Waiting and running requests, and the KV block bookkeeping they share.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCacheManager,
    sequences: HashMap<RequestId, SequenceState>,
    /// Oldest first; preempted requests go back to the front.
    waiting: VecDeque<RequestId>,
    /// In admission order: the last one is the newest, the first to be preempted.
    running: Vec<RequestId>,
    num_preemptions: u64,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig, kv: KvCacheManager) -> Self {
        Scheduler {
            config,
            kv,
            sequences: HashMap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            num_preemptions: 0,
        }
    }

    /// Queues a request whose prompt is `prompt` (not empty).
    pub fn add_request(&mut self, request: RequestId, prompt: Vec<TokenId>) {
        debug_assert!(!prompt.is_empty(), "the engine rejects empty prompts");
        let state = SequenceState {
            tokens: prompt,
            num_computed_tokens: 0,
            num_cached_prompt_tokens: None,
            num_drafts: 0,
        };
        self.sequences.insert(request, state);
        self.waiting.push_back(request);
    }

    /// Plans the next step and reserves its KV blocks.
    pub fn schedule(&mut self) -> SchedulerOutput {
        let mut output = SchedulerOutput::default();
        let mut budget = self.config.max_num_batched_tokens;

        // Decoding requests first, then the ones still in their prompt; admission order within.
        let mut order: Vec<RequestId> = self.running.clone();
        order.sort_by_key(|id| !self.is_decoding(*id));
        // Each decoding request's drafts leave one token of budget to every later one.
        let mut num_decoding_left = order.iter().filter(|id| self.is_decoding(**id)).count();
        for request in order {
            if budget == 0 {
                break;
            }
            if output.preempted.contains(&request) {
                continue;
            }
            if self.is_decoding(request) {
                num_decoding_left -= 1;
                let state = self.sequences.get_mut(&request).expect("running requests have state");
                state.keep_drafts(budget.saturating_sub(num_decoding_left + 1));
            }
            let num_tokens = self.num_remaining_tokens(request).min(budget);
            if self.reserve_or_preempt(request, num_tokens, &mut output) {
                budget -= num_tokens;
            }
        }

        // Admit only when nothing had to be preempted: memory is short otherwise.
        while output.preempted.is_empty()
            && budget > 0
            && self.running.len() < self.config.max_num_seqs
        {
            let Some(&request) = self.waiting.front() else { break };
            let Some(num_tokens) = self.admit(request, budget, &mut output) else { break };
            self.waiting.pop_front();
            self.running.push(request);
            output.chunks.push(self.chunk(request, num_tokens));
            budget -= num_tokens;
        }
        output
    }

    /// Records that the step ran: every chunk's tokens now have KV, and full blocks become
    /// findable by later requests. Drafts do not count as computed until accepted.
    pub fn complete_step(&mut self, output: &SchedulerOutput) {
        for chunk in &output.chunks {
            let Some(state) = self.sequences.get_mut(&chunk.request) else { continue };
            state.num_computed_tokens = chunk.start + chunk.num_tokens - chunk.num_drafts;
            self.kv.cache_computed_blocks(chunk.request, &state.tokens, state.num_computed_tokens);
        }
    }

    /// Running requests that are decoding (only their last token left to compute), in the order
    /// the next step takes them.
    pub fn decoding_requests(&self) -> Vec<RequestId> {
        self.running.iter().copied().filter(|&id| self.is_decoding(id)).collect()
    }

    /// Proposes `drafts` as the next tokens of `request`, to be verified in its next chunk.
    /// Ignored unless the request is running, decoding (one token left to compute) and carries
    /// no drafts yet.
    pub fn set_drafts(&mut self, request: RequestId, drafts: &[TokenId]) {
        if drafts.is_empty() || !self.running.contains(&request) || !self.is_decoding(request) {
            return;
        }
        let state = self.sequences.get_mut(&request).expect("running requests have state");
        if state.num_drafts == 0 {
            state.tokens.extend_from_slice(drafts);
            state.num_drafts = drafts.len();
        }
    }

    /// After a step that computed `request`'s drafts: removes them from its tokens and returns
    /// them, for the engine to verify against the step's logits. Each token the engine then
    /// samples goes through [`append_token`](Self::append_token) as usual, and
    /// [`accept_drafts`](Self::accept_drafts) says how many of them were the drafts.
    pub fn take_drafts(&mut self, request: RequestId) -> Vec<TokenId> {
        let Some(state) = self.sequences.get_mut(&request) else { return Vec::new() };
        let drafts = state.tokens.split_off(state.tokens.len() - state.num_drafts);
        state.num_drafts = 0;
        drafts
    }

    /// The first `num_accepted` tokens appended since [`take_drafts`](Self::take_drafts) were
    /// its drafts, so their KV, computed in the step, is right: they count as computed, and
    /// their full blocks become findable. The blocks reserved for the rejected ones are freed.
    pub fn accept_drafts(&mut self, request: RequestId, num_accepted: usize) {
        let Some(state) = self.sequences.get_mut(&request) else { return };
        state.num_computed_tokens =
            (state.num_computed_tokens + num_accepted).min(state.tokens.len() - 1);
        self.kv.cache_computed_blocks(request, &state.tokens, state.num_computed_tokens);
        // The next step computes the token after them: keep its block.
        self.kv.truncate(request, state.num_computed_tokens + 1);
    }

    /// Appends a sampled token to a request (it is computed in a later step).
    pub fn append_token(&mut self, request: RequestId, token: TokenId) {
        if let Some(state) = self.sequences.get_mut(&request) {
            state.tokens.push(token);
        }
    }

    /// Removes a finished or cancelled request and frees its blocks. Unknown ids are ignored.
    pub fn remove_request(&mut self, request: RequestId) {
        if self.sequences.remove(&request).is_none() {
            return;
        }
        self.kv.free(request);
        self.running.retain(|&r| r != request);
        self.waiting.retain(|&r| r != request);
    }

    /// The request's tokens (prompt, then generated), without drafts.
    pub fn tokens(&self, request: RequestId) -> &[TokenId] {
        self.sequences.get(&request).map_or(&[], |s| s.committed())
    }

    /// The tokens `chunk` computes, drafts included.
    pub fn chunk_tokens(&self, chunk: &ScheduledChunk) -> &[TokenId] {
        self.sequences
            .get(&chunk.request)
            .map_or(&[], |s| &s.tokens[chunk.start..chunk.start + chunk.num_tokens])
    }

    /// Prompt tokens that came from the prefix cache when the request was first admitted.
    pub fn num_cached_prompt_tokens(&self, request: RequestId) -> usize {
        self.sequences.get(&request).and_then(|s| s.num_cached_prompt_tokens).unwrap_or(0)
    }

    /// The request's block table.
    pub fn block_table(&self, request: RequestId) -> &[BlockId] {
        self.kv.block_table(request)
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Tokens one step computes at most.
    pub fn max_num_batched_tokens(&self) -> usize {
        self.config.max_num_batched_tokens
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Preemptions since start.
    pub fn num_preemptions(&self) -> u64 {
        self.num_preemptions
    }

    /// The KV block bookkeeping (usage, prefix-cache statistics).
    pub fn kv(&self) -> &KvCacheManager {
        &self.kv
    }

    /// Running with only its last real token (and maybe drafts) left to compute.
    fn is_decoding(&self, request: RequestId) -> bool {
        self.sequences.get(&request).is_some_and(|s| {
            s.num_computed_tokens > 0 && s.tokens.len() - s.num_drafts == s.num_computed_tokens + 1
        })
    }

    fn num_remaining_tokens(&self, request: RequestId) -> usize {
        self.sequences
            .get(&request)
            .map_or(0, |s| s.tokens.len().saturating_sub(s.num_computed_tokens))
    }

    fn chunk(&self, request: RequestId, num_tokens: usize) -> ScheduledChunk {
        let state = &self.sequences[&request];
        let start = state.num_computed_tokens;
        let samples = start + num_tokens == state.tokens.len();
        ScheduledChunk {
            request,
            start,
            num_tokens,
            samples,
            // Drafts are the last tokens: only a chunk that reaches the end carries them.
            num_drafts: if samples { state.num_drafts } else { 0 },
        }
    }

    /// Reserves blocks for `num_tokens` more tokens of running `request`, preempting the newest
    /// running requests until it fits. Returns false when `request` itself had to be preempted.
    fn reserve_or_preempt(
        &mut self,
        request: RequestId,
        mut num_tokens: usize,
        output: &mut SchedulerOutput,
    ) -> bool {
        loop {
            let state = &self.sequences[&request];
            let reserved = self.kv.allocate_slots(
                request,
                &state.tokens,
                state.num_computed_tokens,
                num_tokens,
                None,
            );
            if reserved.is_some() {
                output.chunks.push(self.chunk(request, num_tokens));
                return true;
            }
            // Drafts are a bet: they go before anyone is preempted.
            let state = self.sequences.get_mut(&request).expect("running requests have state");
            if state.num_drafts > 0 {
                num_tokens -= state.num_drafts;
                state.keep_drafts(0);
                continue;
            }
            let victim = self.running.pop().expect("the request being scheduled is running");
            self.preempt(victim, output);
            if victim == request {
                return false;
            }
        }
    }

    fn preempt(&mut self, victim: RequestId, output: &mut SchedulerOutput) {
        self.kv.free(victim);
        let state = self.sequences.get_mut(&victim).expect("running requests have state");
        state.keep_drafts(0);
        state.num_computed_tokens = 0;
        self.num_preemptions += 1;
        // A victim scheduled earlier in this step loses its chunk: its blocks are gone.
        output.chunks.retain(|c| c.request != victim);
        output.preempted.push(victim);
        self.waiting.push_front(victim);
    }

    /// Reserves blocks for the first chunk of waiting `request`, counting its cached prefix as
    /// computed (a prefix ending inside a block is copied from the cached block). Returns the
    /// chunk's token count, or `None` when the blocks are not there.
    fn admit(
        &mut self,
        request: RequestId,
        budget: usize,
        output: &mut SchedulerOutput,
    ) -> Option<usize> {
        let state = &self.sequences[&request];
        let computed = self.kv.get_computed_blocks(&state.tokens);
        let num_computed = computed.num_computed_tokens;
        let num_tokens = (state.tokens.len() - num_computed).min(budget);
        self.kv.allocate_slots(
            request,
            &state.tokens,
            num_computed,
            num_tokens,
            Some(&computed),
        )?;
        if let Some(partial) = computed.partial {
            let destination = self.kv.block_table(request)[computed.blocks.len()];
            output.kv_copies.push(KvCopy {
                source: partial.source,
                destination,
                num_tokens: partial.num_tokens,
            });
        }
        let state = self.sequences.get_mut(&request).expect("checked above");
        state.num_computed_tokens = num_computed;
        state.num_cached_prompt_tokens.get_or_insert(num_computed);
        Some(num_tokens)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn scheduler(num_blocks: usize, max_num_seqs: usize, budget: usize) -> Scheduler {
        let kv = KvCacheManager::new(num_blocks, 4, true).expect("kv");
        Scheduler::new(SchedulerConfig { max_num_seqs, max_num_batched_tokens: budget }, kv)
    }

    /// Runs one step as the engine does, "sampling" token 1 for every request that samples.
    /// Drafts are verified as the engine does: the first half of them is accepted.
    fn step(s: &mut Scheduler) -> SchedulerOutput {
        let output = s.schedule();
        s.complete_step(&output);
        for chunk in output.chunks.iter().filter(|c| c.samples) {
            let drafts = s.take_drafts(chunk.request);
            assert_eq!(drafts.len(), chunk.num_drafts);
            let accepted = &drafts[..drafts.len() / 2];
            for &token in accepted {
                s.append_token(chunk.request, token);
            }
            s.append_token(chunk.request, 1);
            s.accept_drafts(chunk.request, accepted.len());
        }
        output
    }

    #[test]
    fn drafts_are_computed_after_the_last_token_and_rolled_back_when_rejected() {
        let mut s = scheduler(64, 4, 512);
        let id = RequestId(1);
        s.add_request(id, prompt(10, 0));
        step(&mut s); // the prompt; token 1 sampled
        assert_eq!(s.decoding_requests(), [id]);
        s.set_drafts(id, &[5, 6, 7]);
        assert_eq!(s.tokens(id).len(), 11, "drafts are not the request's tokens");
        let output = s.schedule();
        let chunk = output.chunks[0];
        assert_eq!((chunk.start, chunk.num_tokens, chunk.num_drafts), (10, 4, 3));
        assert!(chunk.samples);
        assert_eq!(s.chunk_tokens(&chunk), [1, 5, 6, 7]);
        assert_eq!(s.block_table(id).len(), 4, "positions 0..14 in blocks of 4");
        s.complete_step(&output);
        assert_eq!(s.take_drafts(id), [5, 6, 7]);
        // 5 held, 9 was sampled where 6 was guessed.
        s.append_token(id, 5);
        s.append_token(id, 9);
        s.accept_drafts(id, 1);
        assert_eq!(s.tokens(id)[10..], [1, 5, 9]);
        assert_eq!(s.block_table(id).len(), 4, "position 12 still needs the fourth block");
        let chunk = s.schedule().chunks[0];
        assert_eq!((chunk.start, chunk.num_tokens, chunk.num_drafts), (12, 1, 0));
        s.kv().check_invariants().expect("invariants");
    }

    #[test]
    fn rejected_drafts_free_their_blocks_and_never_enter_the_prefix_cache() {
        let mut s = scheduler(64, 4, 512);
        let id = RequestId(1);
        s.add_request(id, prompt(7, 0));
        step(&mut s);
        s.set_drafts(id, &[20, 21, 22, 23, 24, 25, 26]);
        let output = s.schedule();
        assert_eq!(s.block_table(id).len(), 4, "positions 0..15");
        s.complete_step(&output);
        s.take_drafts(id);
        s.append_token(id, 9); // the first draft is rejected
        s.accept_drafts(id, 0);
        assert_eq!(s.block_table(id).len(), 3, "positions 0..9");
        // The drafts filled block 2 (positions 8..12) in the step, but only the two computed
        // blocks are findable: a prompt that continues with the rejected drafts finds those two.
        let mut guess = prompt(7, 0);
        guess.extend([1, 20, 21, 22, 23, 24]);
        s.add_request(RequestId(2), guess);
        step(&mut s);
        assert_eq!(s.num_cached_prompt_tokens(RequestId(2)), 8);
        s.kv().check_invariants().expect("invariants");
    }

    #[test]
    fn drafts_leave_every_decoding_request_its_token() {
        let mut s = scheduler(64, 4, 3);
        s.add_request(RequestId(1), prompt(2, 1));
        s.add_request(RequestId(2), prompt(1, 2));
        step(&mut s);
        s.set_drafts(RequestId(1), &[5, 6, 7, 8]);
        s.set_drafts(RequestId(2), &[5, 6, 7, 8]);
        let output = s.schedule();
        let sizes: Vec<(usize, usize)> =
            output.chunks.iter().map(|c| (c.num_tokens, c.num_drafts)).collect();
        assert_eq!(sizes, [(2, 1), (1, 0)], "one draft fits beside the other's decode token");
    }

    #[test]
    fn drafts_are_dropped_before_anyone_is_preempted() {
        // 3 blocks of 4: the request's 8 positions fill two, drafts would need two more.
        let mut s = scheduler(3, 4, 64);
        let id = RequestId(1);
        s.add_request(id, prompt(7, 1));
        step(&mut s);
        s.set_drafts(id, &[5, 6, 7, 8, 9]);
        let output = s.schedule();
        assert!(output.preempted.is_empty());
        assert_eq!((output.chunks[0].num_tokens, output.chunks[0].num_drafts), (1, 0));
        s.complete_step(&output);
        assert!(s.take_drafts(id).is_empty());
        assert_eq!(s.tokens(id).len(), 8);
    }

    fn prompt(len: usize, salt: u32) -> Vec<TokenId> {
        (0..len as u32).map(|i| 100 + salt * 1000 + i).collect()
    }

    #[test]
    fn long_prompts_are_computed_in_chunks_and_sample_at_the_end() {
        let mut s = scheduler(64, 4, 32);
        s.add_request(RequestId(1), prompt(100, 0));
        let sizes: Vec<(usize, usize, bool)> = (0..4)
            .map(|_| {
                let c = step(&mut s).chunks[0];
                (c.start, c.num_tokens, c.samples)
            })
            .collect();
        assert_eq!(sizes, [(0, 32, false), (32, 32, false), (64, 32, false), (96, 4, true)]);
        // Then one token per step.
        let c = step(&mut s).chunks[0];
        assert_eq!((c.start, c.num_tokens, c.samples), (100, 1, true));
    }

    #[test]
    fn decoding_requests_go_before_prompt_chunks() {
        let mut s = scheduler(256, 4, 16);
        s.add_request(RequestId(1), prompt(5, 1));
        step(&mut s); // request 1 is now decoding
        s.add_request(RequestId(2), prompt(200, 2));
        step(&mut s); // request 2 admitted with a 15-token chunk
        for _ in 0..5 {
            let output = step(&mut s);
            assert_eq!(output.chunks[0].request, RequestId(1), "the decode comes first");
            assert_eq!(output.chunks[0].num_tokens, 1);
            assert_eq!(output.chunks[1].num_tokens, 15, "the prompt gets the rest of the budget");
            assert!(output.num_tokens() <= 16);
        }
    }

    #[test]
    fn admission_stops_at_max_num_seqs() {
        let mut s = scheduler(256, 2, 512);
        for id in 1..=3 {
            s.add_request(RequestId(id), prompt(8, id as u32));
        }
        let output = step(&mut s);
        assert_eq!(output.chunks.len(), 2);
        assert_eq!((s.num_running(), s.num_waiting()), (2, 1));
        s.remove_request(RequestId(1));
        let output = step(&mut s);
        assert!(output.chunks.iter().any(|c| c.request == RequestId(3)));
    }

    #[test]
    fn the_newest_request_is_preempted_when_blocks_run_out_and_recomputed_later() {
        // 6 blocks of 4 positions; two requests of 8-token prompts take 2 blocks each.
        let mut s = scheduler(6, 4, 64);
        s.add_request(RequestId(1), prompt(8, 1));
        s.add_request(RequestId(2), prompt(8, 2));
        step(&mut s);
        let mut preempted_at = None;
        for i in 0..8 {
            let output = step(&mut s);
            if !output.preempted.is_empty() {
                assert_eq!(output.preempted, [RequestId(2)], "the newest is preempted");
                assert!(output.chunks.iter().all(|c| c.request == RequestId(1)));
                preempted_at = Some(i);
                break;
            }
        }
        assert!(preempted_at.is_some(), "the pool must run out");
        assert_eq!(s.num_preemptions(), 1);
        assert_eq!(s.num_waiting(), 1);
        let generated_by_2 = s.tokens(RequestId(2)).len() - 8;
        assert!(generated_by_2 > 0);
        // Once request 1 is gone, request 2 comes back and recomputes prompt and generated
        // tokens before sampling again.
        s.remove_request(RequestId(1));
        let output = step(&mut s);
        let chunk = output.chunks[0];
        assert_eq!(chunk.request, RequestId(2));
        assert_eq!(chunk.start + chunk.num_tokens, 8 + generated_by_2);
        assert!(chunk.samples);
        s.kv().check_invariants().expect("invariants");
    }

    #[test]
    fn a_cached_prefix_counts_as_computed() {
        let mut s = scheduler(64, 4, 512);
        s.add_request(RequestId(1), prompt(10, 1));
        step(&mut s);
        s.remove_request(RequestId(1));
        s.add_request(RequestId(2), prompt(10, 1));
        let chunk = step(&mut s).chunks[0];
        // Two full blocks of 4 were cached; request 1's third block never filled, so it was not
        // registered; the last prompt token is always recomputed.
        assert_eq!((chunk.start, chunk.num_tokens), (8, 2));
        assert_eq!(s.num_cached_prompt_tokens(RequestId(2)), 8);
        assert!(step(&mut s).kv_copies.is_empty());
    }

    #[test]
    fn a_cached_prefix_ending_inside_a_block_is_copied_not_recomputed() {
        let mut s = scheduler(64, 4, 512);
        s.add_request(RequestId(1), prompt(10, 1));
        // The prompt step, then decode steps until the third block (positions 8..12) is full.
        for _ in 0..3 {
            step(&mut s);
        }
        let source = s.block_table(RequestId(1))[2];
        s.remove_request(RequestId(1));
        s.add_request(RequestId(2), prompt(11, 1));
        let output = step(&mut s);
        let destination = s.block_table(RequestId(2))[2];
        // Tokens 8 and 9 are request 1's prompt tokens in that block; token 10 differs (request
        // 1 generated token 1 there), and is the last one anyway.
        assert_eq!(output.kv_copies, [KvCopy { source, destination, num_tokens: 2 }]);
        assert_ne!(source, destination);
        assert_eq!((output.chunks[0].start, output.chunks[0].num_tokens), (10, 1));
        assert_eq!(s.num_cached_prompt_tokens(RequestId(2)), 10);
    }

    #[test]
    fn removing_requests_frees_every_block() {
        let mut s = scheduler(32, 4, 16);
        for id in 1..=4 {
            s.add_request(RequestId(id), prompt(9, id as u32));
        }
        for _ in 0..6 {
            step(&mut s);
        }
        for id in 1..=4 {
            s.remove_request(RequestId(id));
        }
        assert_eq!(s.kv().usage().num_used, 0);
        assert_eq!(s.kv().num_free_blocks(), 32);
        assert_eq!((s.num_running(), s.num_waiting()), (0, 0));
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Add { len: usize, family: u32 },
        Step,
        Draft { index: usize, len: usize },
        Remove(usize),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (1usize..40, 0u32..3).prop_map(|(len, family)| Operation::Add { len, family }),
            Just(Operation::Step),
            Just(Operation::Step),
            Just(Operation::Step),
            (0usize..8).prop_map(Operation::Remove),
            (0usize..8, 1usize..9).prop_map(|(index, len)| Operation::Draft { index, len }),
        ]
    }

    proptest! {
        /// Whatever arrives and leaves: steps stay within their budget and the requests' tokens,
        /// the running set stays within its limit, the block pool stays consistent, and every
        /// request either runs or waits until it is removed.
        #[test]
        fn steps_respect_budget_limits_and_block_accounting(
            operations in proptest::collection::vec(operation(), 1..120),
        ) {
            // 20 blocks of 4 = 80 positions: one 40-token prompt plus its replies always fits.
            let mut s = scheduler(20, 3, 24);
            let mut live: Vec<RequestId> = Vec::new();
            let mut next_id = 1;
            for operation in operations {
                match operation {
                    Operation::Add { len, family } => {
                        let id = RequestId(next_id);
                        next_id += 1;
                        // Families share prefixes so the prefix cache gets hits.
                        s.add_request(id, prompt(len, family));
                        live.push(id);
                    }
                    Operation::Step => {
                        let output = step(&mut s);
                        prop_assert!(output.num_tokens() <= 24);
                        prop_assert!(s.num_running() <= 3);
                        for chunk in &output.chunks {
                            prop_assert!(chunk.num_tokens >= 1);
                            prop_assert!(!output.preempted.contains(&chunk.request));
                            let table = s.block_table(chunk.request).len();
                            // Blocks of rejected drafts are gone after the step.
                            let kept = chunk.start + chunk.num_tokens - chunk.num_drafts;
                            prop_assert!(table * 4 >= kept);
                        }
                        // Requests at 60 tokens finish, so that contexts stay bounded.
                        let done: Vec<RequestId> =
                            live.iter().copied().filter(|&id| s.tokens(id).len() >= 60).collect();
                        for id in done {
                            s.remove_request(id);
                            live.retain(|&r| r != id);
                        }
                    }
                    Operation::Draft { index, len } => {
                        if !live.is_empty() {
                            let id = live[index % live.len()];
                            s.set_drafts(id, &vec![7; len]);
                        }
                    }
                    Operation::Remove(index) => {
                        if !live.is_empty() {
                            let id = live.remove(index % live.len());
                            s.remove_request(id);
                        }
                    }
                }
                prop_assert_eq!(s.num_running() + s.num_waiting(), live.len());
                if let Err(violation) = s.kv().check_invariants() {
                    prop_assert!(false, "{}", violation);
                }
            }
            for id in live {
                s.remove_request(id);
            }
            prop_assert_eq!(s.kv().usage().num_used, 0);
        }
    }
}
