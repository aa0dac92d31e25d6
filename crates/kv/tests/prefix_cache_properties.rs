//! Random sequences of engine-like operations against a model of what each block's KV holds.
//!
//! The model (`contents`) records, per block, the token prefix whose KV the last write left in
//! it. A prefix-cache hit is correct only if the block holds exactly the looked-up prompt's
//! prefix up to the end of that block: same tokens and same history. Prompts come from a
//! two-token alphabet so prefixes collide often.

use std::collections::HashSet;

use proptest::prelude::*;
use uma_kv::{BlockId, KvCacheManager, RequestId, TokenId};

#[derive(Clone, Debug)]
enum Operation {
    /// A new request: prefix lookup, then blocks for its first chunk.
    Admit {
        prompt: Vec<TokenId>,
        num_chunk_tokens: usize,
    },
    /// Blocks for the next chunk of a running request.
    Schedule {
        which: usize,
        num_chunk_tokens: usize,
    },
    /// The step ran: the scheduled tokens' KV is written, full blocks are registered.
    Execute {
        which: usize,
    },
    /// A sampled token joins a request that has computed all its tokens.
    Append {
        which: usize,
        token: TokenId,
    },
    Free {
        which: usize,
    },
    /// Free, then admit again with every token so far, under the same id.
    Preempt {
        which: usize,
        num_chunk_tokens: usize,
    },
    ResetPrefixCache,
}

fn operation() -> impl Strategy<Value = Operation> {
    let prompt = prop::collection::vec(0..2u32, 1..24);
    prop_oneof![
        3 => (prompt, 1..12usize)
            .prop_map(|(prompt, num_chunk_tokens)| Operation::Admit { prompt, num_chunk_tokens }),
        3 => (any::<usize>(), 1..12usize)
            .prop_map(|(which, num_chunk_tokens)| Operation::Schedule { which, num_chunk_tokens }),
        4 => any::<usize>().prop_map(|which| Operation::Execute { which }),
        2 => (any::<usize>(), 0..2u32).prop_map(|(which, token)| Operation::Append { which, token }),
        2 => any::<usize>().prop_map(|which| Operation::Free { which }),
        1 => (any::<usize>(), 1..12usize)
            .prop_map(|(which, num_chunk_tokens)| Operation::Preempt { which, num_chunk_tokens }),
        1 => Just(Operation::ResetPrefixCache),
    ]
}

#[derive(Debug)]
struct Running {
    id: RequestId,
    tokens: Vec<TokenId>,
    num_computed_tokens: usize,
    /// Allocated for, not yet computed.
    num_scheduled_tokens: usize,
}

struct Harness {
    manager: KvCacheManager,
    block_size: usize,
    running: Vec<Running>,
    next_id: u64,
    /// `[num_blocks]`: the prefix whose KV the block holds (`None`: garbage since allocation).
    contents: Vec<Option<Vec<TokenId>>>,
}

impl Harness {
    fn new(num_blocks: usize, block_size: usize) -> Self {
        Self {
            manager: KvCacheManager::new(num_blocks, block_size, true)
                .expect("the strategy picks valid shapes"),
            block_size,
            running: Vec::new(),
            next_id: 0,
            contents: vec![None; num_blocks],
        }
    }

    fn apply(&mut self, operation: Operation) -> Result<(), TestCaseError> {
        match operation {
            Operation::Admit { prompt, num_chunk_tokens } => {
                let id = RequestId(self.next_id);
                self.next_id += 1;
                self.admit(id, prompt, num_chunk_tokens)?;
            }
            Operation::Schedule { which, num_chunk_tokens } => {
                let Some(index) = self.pick(which) else { return Ok(()) };
                let request = &self.running[index];
                let remaining = request.tokens.len() - request.num_computed_tokens;
                if request.num_scheduled_tokens == 0 && remaining > 0 {
                    let num_tokens = num_chunk_tokens.min(remaining);
                    let (id, num_computed) = (request.id, request.num_computed_tokens);
                    let tokens = request.tokens.clone();
                    if self.allocate(id, &tokens, num_computed, num_tokens, None)? {
                        self.running[index].num_scheduled_tokens = num_tokens;
                    }
                }
            }
            Operation::Execute { which } => {
                let Some(index) = self.pick(which) else { return Ok(()) };
                self.execute(index)?;
            }
            Operation::Append { which, token } => {
                let Some(index) = self.pick(which) else { return Ok(()) };
                let request = &mut self.running[index];
                if request.num_scheduled_tokens == 0
                    && request.num_computed_tokens == request.tokens.len()
                {
                    request.tokens.push(token);
                }
            }
            Operation::Free { which } => {
                let Some(index) = self.pick(which) else { return Ok(()) };
                let request = self.running.swap_remove(index);
                self.manager.free(request.id);
                prop_assert!(self.manager.block_table(request.id).is_empty());
            }
            Operation::Preempt { which, num_chunk_tokens } => {
                let Some(index) = self.pick(which) else { return Ok(()) };
                let request = self.running.swap_remove(index);
                self.manager.free(request.id);
                self.admit(request.id, request.tokens, num_chunk_tokens)?;
            }
            Operation::ResetPrefixCache => {
                let nothing_referenced = self.manager.usage().num_used == 0;
                prop_assert_eq!(self.manager.reset_prefix_cache(), nothing_referenced);
                if nothing_referenced {
                    prop_assert_eq!(self.manager.usage().num_cached, 0);
                }
            }
        }
        self.check()
    }

    fn pick(&self, which: usize) -> Option<usize> {
        (!self.running.is_empty()).then(|| which % self.running.len())
    }

    fn admit(
        &mut self,
        id: RequestId,
        tokens: Vec<TokenId>,
        num_chunk_tokens: usize,
    ) -> Result<(), TestCaseError> {
        let computed = self.manager.get_computed_blocks(&tokens);
        let num_full_tokens = computed.blocks.len() * self.block_size;
        let num_partial = computed.partial.map_or(0, |partial| partial.num_tokens);
        prop_assert_eq!(computed.num_computed_tokens, num_full_tokens + num_partial);
        prop_assert!(computed.num_computed_tokens < tokens.len(), "a hit covers the last token");
        for (index, block) in computed.blocks.iter().enumerate() {
            let expected = &tokens[..(index + 1) * self.block_size];
            prop_assert_eq!(
                self.contents[block.index()].as_deref(),
                Some(expected),
                "hit {:?} at block {} holds other KV",
                block,
                index
            );
        }
        // A partial hit's positions must hold the KV of exactly this prefix.
        if let Some(partial) = computed.partial {
            prop_assert!(partial.num_tokens > 0 && partial.num_tokens < self.block_size);
            let held = self.contents[partial.source.index()].clone().unwrap_or_default();
            let end = num_full_tokens + partial.num_tokens;
            prop_assert!(
                held.len() >= end && held[..end] == tokens[..end],
                "partial hit {:?} holds other KV",
                partial.source
            );
        }
        let num_computed = computed.num_computed_tokens;
        let num_tokens = num_chunk_tokens.min(tokens.len() - num_computed);
        if self.allocate(id, &tokens, num_computed, num_tokens, Some(&computed))? {
            if computed.partial.is_some() {
                // The engine copies the partial positions into the request's next block.
                let block = self.manager.block_table(id)[computed.blocks.len()];
                self.contents[block.index()] = Some(tokens[..num_computed].to_vec());
            }
            self.running.push(Running {
                id,
                tokens,
                num_computed_tokens: num_computed,
                num_scheduled_tokens: num_tokens,
            });
        }
        Ok(())
    }

    /// Calls `allocate_slots` and checks its outcome; returns whether it succeeded.
    fn allocate(
        &mut self,
        id: RequestId,
        tokens: &[TokenId],
        num_computed: usize,
        num_tokens: usize,
        computed: Option<&uma_kv::ComputedBlocks>,
    ) -> Result<bool, TestCaseError> {
        let used_before = self.used_blocks();
        let usage_before = self.manager.usage();
        let table_before = self.manager.block_table(id).to_vec();
        let hits = computed.map(|computed| computed.blocks.as_slice());
        let result = self.manager.allocate_slots(id, tokens, num_computed, num_tokens, computed);
        let Some(new_blocks) = result else {
            prop_assert_eq!(
                self.manager.usage(),
                usage_before,
                "a failed allocation changed usage"
            );
            prop_assert_eq!(self.manager.block_table(id), &table_before[..]);
            return Ok(false);
        };
        for block in &new_blocks {
            prop_assert!(!used_before.contains(block), "{:?} handed out while in use", block);
            self.contents[block.index()] = None;
        }
        let mut expected_table = table_before;
        expected_table.extend_from_slice(hits.unwrap_or(&[]));
        expected_table.extend_from_slice(&new_blocks);
        prop_assert_eq!(self.manager.block_table(id), &expected_table[..]);
        prop_assert_eq!(
            expected_table.len(),
            (num_computed + num_tokens).div_ceil(self.block_size)
        );
        Ok(true)
    }

    fn execute(&mut self, index: usize) -> Result<(), TestCaseError> {
        let request = &self.running[index];
        let table = self.manager.block_table(request.id).to_vec();
        let others: HashSet<BlockId> = self
            .running
            .iter()
            .filter(|other| other.id != request.id)
            .flat_map(|other| self.manager.block_table(other.id).iter().copied())
            .collect();
        let start = request.num_computed_tokens;
        for position in start..start + request.num_scheduled_tokens {
            let block = table[position / self.block_size];
            prop_assert!(!others.contains(&block), "writing into shared {:?}", block);
            self.contents[block.index()] = Some(request.tokens[..=position].to_vec());
        }
        let request = &mut self.running[index];
        request.num_computed_tokens += request.num_scheduled_tokens;
        request.num_scheduled_tokens = 0;
        self.manager.cache_computed_blocks(
            request.id,
            &request.tokens,
            request.num_computed_tokens,
        );
        Ok(())
    }

    fn used_blocks(&self) -> HashSet<BlockId> {
        self.running
            .iter()
            .flat_map(|request| self.manager.block_table(request.id).iter().copied())
            .collect()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        if let Err(violation) = self.manager.check_invariants() {
            return Err(TestCaseError::fail(violation));
        }
        let usage = self.manager.usage();
        prop_assert_eq!(usage.num_blocks, self.manager.num_blocks());
        prop_assert_eq!(usage.num_free + usage.num_used, usage.num_blocks);
        prop_assert_eq!(usage.num_free, self.manager.num_free_blocks());
        prop_assert_eq!(usage.num_used, self.used_blocks().len());
        prop_assert!(usage.num_evictable_cached <= usage.num_free);
        prop_assert!(usage.num_evictable_cached <= usage.num_cached);
        for request in &self.running {
            let num_positions = request.num_computed_tokens + request.num_scheduled_tokens;
            prop_assert_eq!(
                self.manager.block_table(request.id).len(),
                num_positions.div_ceil(self.block_size)
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_operations_keep_invariants_and_hits_hold_their_prefix(
        num_blocks in 2..16usize,
        block_size in 1..5usize,
        operations in prop::collection::vec(operation(), 1..80),
    ) {
        let mut harness = Harness::new(num_blocks, block_size);
        for operation in operations {
            harness.apply(operation)?;
        }
        while let Some(request) = harness.running.pop() {
            harness.manager.free(request.id);
            harness.check()?;
        }
        let usage = harness.manager.usage();
        prop_assert_eq!(usage.num_free, num_blocks, "ref counts do not balance");
        prop_assert_eq!(usage.num_evictable_cached, usage.num_cached);
    }
}
