//! A small model of the target's family that proposes drafts: its greedy continuation of each
//! sequence, a few tokens at a time, with its own KV cache that follows the target's tokens.
//!
//! Per sequence it remembers how many of the sequence's positions it has computed. Drafting
//! first computes what it has not seen (the prompt the first time, afterwards the one or two
//! tokens the target added), then feeds its own guesses back one step at a time, all drafting
//! sequences batched in each step. After the target's verification the positions it computed
//! for rejected guesses are forgotten ([`DraftModel::rollback`]).

use std::collections::HashMap;

use uma_kv::KvCacheManager;
use uma_model::backend::Backend;
use uma_model::{Batch, LogitsRequest, Model};
use uma_sampling::argmax;

use crate::error::{EngineError, Result};
use crate::prompt_encoder::PromptEncoder;
use crate::speculation::StepCost;
use crate::{RequestId, TokenId};

/// What a sequence wants drafted: its tokens so far and how many guesses.
pub(crate) struct DraftWanted<'a> {
    pub(crate) request: RequestId,
    pub(crate) tokens: &'a [TokenId],
    pub(crate) num_drafts: usize,
}

/// The draft model with its KV pool.
pub(crate) struct DraftModel<B: Backend> {
    model: Model<B>,
    kv_cache: B::KvCache,
    blocks: KvCacheManager,
    /// Positions of each sequence whose KV the draft model holds (they are the sequence's).
    num_computed: HashMap<RequestId, usize>,
    /// Most tokens computed in one forward call while catching up on a prompt.
    max_chunk_tokens: usize,
    /// Its steps' time, fitted: what a draft step costs next to the model's.
    cost: StepCost,
}

impl<B: Backend> DraftModel<B> {
    /// A draft model with a pool of `num_blocks` blocks of `block_size` positions. Its
    /// tokenizer must be the target's token for token: a draft is a token id, and the same id
    /// must mean the same text to both.
    pub(crate) fn new(
        model: Model<B>,
        draft_prompts: &PromptEncoder,
        target_prompts: &PromptEncoder,
        num_blocks: usize,
        block_size: usize,
        max_chunk_tokens: usize,
    ) -> Result<Self> {
        check_same_vocabulary(draft_prompts, target_prompts)?;
        let kv_cache =
            model.new_paged_kv_cache(num_blocks, block_size, uma_model::KvCacheType::F16)?;
        let blocks = KvCacheManager::new(num_blocks, block_size, false)?;
        Ok(DraftModel {
            model,
            kv_cache,
            blocks,
            num_computed: HashMap::new(),
            max_chunk_tokens: max_chunk_tokens.max(1),
            cost: StepCost::default(),
        })
    }

    /// The greedy continuation of each wanted sequence, `num_drafts` tokens long (shorter or
    /// empty for a sequence the pool has no room for). A failed step proposes nothing; the
    /// target then decodes plainly.
    pub(crate) fn propose(
        &mut self,
        wanted: &[DraftWanted<'_>],
    ) -> Result<HashMap<RequestId, Vec<TokenId>>> {
        let mut drafts: HashMap<RequestId, Vec<TokenId>> = HashMap::new();
        // Reserve the positions each sequence's drafting computes: its unseen tokens, then its
        // guesses but the last.
        let mut active: Vec<&DraftWanted<'_>> = Vec::new();
        for want in wanted.iter().filter(|want| want.num_drafts > 0 && !want.tokens.is_empty()) {
            let computed = self.num_computed.get(&want.request).copied().unwrap_or(0);
            let computed = computed.min(want.tokens.len() - 1);
            let num_new = want.tokens.len() - computed + want.num_drafts - 1;
            let reserved =
                self.blocks.allocate_slots(want.request, want.tokens, computed, num_new, None);
            if reserved.is_some() {
                self.num_computed.insert(want.request, computed);
                active.push(want);
            }
        }
        // Catch up: every unseen token but the last, in chunks.
        for want in &active {
            loop {
                let computed = self.num_computed[&want.request];
                let num_unseen = want.tokens.len() - 1 - computed;
                if num_unseen == 0 {
                    break;
                }
                let chunk =
                    &want.tokens[computed..computed + num_unseen.min(self.max_chunk_tokens)];
                let table = self.blocks.block_table(want.request);
                let batch = Batch::single(chunk, computed, table, LogitsRequest::None);
                timed_forward(&self.model, &mut self.kv_cache, &mut self.cost, &batch)?;
                self.num_computed.insert(want.request, computed + chunk.len());
            }
        }
        // Then one token per sequence per step: the last real token, then each guess.
        let mut inputs: Vec<TokenId> =
            active.iter().map(|want| *want.tokens.last().expect("not empty")).collect();
        for round in 0.. {
            let running: Vec<usize> =
                (0..active.len()).filter(|&i| active[i].num_drafts > round).collect();
            if running.is_empty() {
                break;
            }
            let mut batch = Batch::new();
            for &i in &running {
                let want = active[i];
                let position = self.num_computed[&want.request];
                let table = self.blocks.block_table(want.request);
                batch.push(std::slice::from_ref(&inputs[i]), position, table, LogitsRequest::Last);
            }
            let logits = timed_forward(&self.model, &mut self.kv_cache, &mut self.cost, &batch)?;
            for (row, &i) in running.iter().enumerate() {
                // A row without a finite logit guesses token 0, which verification rejects.
                let guess = argmax(logits.row(row)).unwrap_or(0);
                let want = active[i];
                *self.num_computed.get_mut(&want.request).expect("reserved") += 1;
                drafts.entry(want.request).or_default().push(guess);
                inputs[i] = guess;
            }
        }
        // Each sequence's positions now run through its second-to-last guess (the last one was
        // never fed back), exactly what was reserved.
        Ok(drafts)
    }

    /// Seconds of a draft step over `num_tokens` tokens, once measured.
    pub(crate) fn step_seconds(&self, num_tokens: usize) -> Option<f64> {
        self.cost.seconds(num_tokens)
    }

    /// After verification: of the positions the draft model computed for `request`, only the
    /// first `num_valid` hold the sequence's real tokens.
    pub(crate) fn rollback(&mut self, request: RequestId, num_valid: usize) {
        if let Some(computed) = self.num_computed.get_mut(&request) {
            *computed = (*computed).min(num_valid);
            self.blocks.truncate(request, *computed);
        }
    }

    /// Forgets `request` (finished, cancelled, or preempted by the target).
    pub(crate) fn remove(&mut self, request: RequestId) {
        self.num_computed.remove(&request);
        self.blocks.free(request);
    }
}

/// One forward pass, its time recorded in `cost`.
fn timed_forward<B: Backend>(
    model: &Model<B>,
    kv_cache: &mut B::KvCache,
    cost: &mut StepCost,
    batch: &Batch<'_>,
) -> Result<uma_model::Logits> {
    let started = std::time::Instant::now();
    let logits = model.forward(batch, kv_cache)?;
    cost.record(batch.num_tokens(), started.elapsed().as_secs_f64());
    Ok(logits)
}

/// The same tokens under the same ids: checked on every id, by its bytes. What a draft model
/// must share with the model it drafts for (checked at load, and by `uma plan --draft`).
pub fn check_same_vocabulary(draft: &PromptEncoder, target: &PromptEncoder) -> Result<()> {
    let (draft, target) = (draft.tokenizer(), target.tokenizer());
    let mismatch = |reason: String| Err(EngineError::DraftMismatch { reason });
    if draft.vocab_size() != target.vocab_size() {
        return mismatch(format!(
            "the draft model has {} tokens, the model {}",
            draft.vocab_size(),
            target.vocab_size()
        ));
    }
    for id in 0..target.vocab_size() as TokenId {
        if draft.token_bytes(id) != target.token_bytes(id) {
            return mismatch(format!("token {id} differs between the draft model and the model"));
        }
    }
    Ok(())
}
