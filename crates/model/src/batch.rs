//! What one forward pass computes: tokens of several sequences, each at its own positions with
//! its own block table.

use uma_ids::{BlockId, TokenId};

/// Which of a sequence's positions in this step need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsRequest {
    /// None (a prefill chunk that is not the prompt's end).
    None,
    /// The last token of this step (generation).
    Last,
    /// Every token of this step (scoring, tests).
    All,
}

/// One sequence's part of a batch.
#[derive(Clone, Copy, Debug)]
pub struct SequenceInput<'a> {
    /// Tokens processed this step (at least one).
    pub token_ids: &'a [TokenId],
    /// Position of `token_ids[0]`; positions before it must already be in the cache.
    pub start_position: usize,
    /// Blocks holding positions `0 .. start_position + token_ids.len()`, in order: position `p`
    /// lives in `block_table[p / block_size]`. Blocks may be shared with other sequences for a
    /// common prefix: this step only writes positions `>= start_position`.
    pub block_table: &'a [BlockId],
    /// Which positions need logits.
    pub logits: LogitsRequest,
}

/// One step's input: sequences in order. Logit rows come back in the same order.
#[derive(Clone, Debug, Default)]
pub struct Batch<'a> {
    pub sequences: Vec<SequenceInput<'a>>,
}

impl<'a> Batch<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sequence.
    pub fn push(
        &mut self,
        token_ids: &'a [TokenId],
        start_position: usize,
        block_table: &'a [BlockId],
        logits: LogitsRequest,
    ) -> &mut Self {
        self.sequences.push(SequenceInput { token_ids, start_position, block_table, logits });
        self
    }

    /// A batch of one sequence.
    pub fn single(
        token_ids: &'a [TokenId],
        start_position: usize,
        block_table: &'a [BlockId],
        logits: LogitsRequest,
    ) -> Self {
        let mut batch = Self::new();
        batch.push(token_ids, start_position, block_table, logits);
        batch
    }

    /// Tokens in the batch.
    pub fn num_tokens(&self) -> usize {
        self.sequences.iter().map(|s| s.token_ids.len()).sum()
    }
}

/// Which sequence and position a logit row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogitsRow {
    /// Index of the sequence in the batch.
    pub sequence: usize,
    /// Position of the token whose next-token logits these are.
    pub position: usize,
}

/// Final hidden states (after the output norm) of the requested positions, in batch order.
#[derive(Clone, Debug, PartialEq)]
pub struct HiddenStates {
    hidden_size: usize,
    rows: Vec<LogitsRow>,
    values: Vec<f32>, // [num_rows, hidden_size]
}

impl HiddenStates {
    pub(crate) fn new(hidden_size: usize, rows: Vec<LogitsRow>, values: Vec<f32>) -> Self {
        debug_assert_eq!(values.len(), rows.len() * hidden_size);
        HiddenStates { hidden_size, rows, values }
    }

    /// Which token each row belongs to.
    pub fn rows(&self) -> &[LogitsRow] {
        &self.rows
    }

    /// Row `index`.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.hidden_size..(index + 1) * self.hidden_size]
    }
}

/// Logits of the requested positions, in batch order.
#[derive(Clone, Debug, PartialEq)]
pub struct Logits {
    vocab_size: usize,
    rows: Vec<LogitsRow>,
    values: Vec<f32>, // [num_rows, vocab_size]
}

impl Logits {
    pub(crate) fn new(vocab_size: usize, rows: Vec<LogitsRow>, values: Vec<f32>) -> Self {
        debug_assert_eq!(values.len(), rows.len() * vocab_size);
        Logits { vocab_size, rows, values }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// Vocabulary size (row length).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// What each row belongs to.
    pub fn rows(&self) -> &[LogitsRow] {
        &self.rows
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.vocab_size..(i + 1) * self.vocab_size]
    }

    /// Every row, to edit in place (samplers sanitize and penalize their row), in order.
    pub fn rows_mut(&mut self) -> std::slice::ChunksExactMut<'_, f32> {
        self.values.chunks_exact_mut(self.vocab_size)
    }

    /// The last row of sequence `sequence`, if it asked for any.
    pub fn last_of(&self, sequence: usize) -> Option<&[f32]> {
        self.rows.iter().rposition(|r| r.sequence == sequence).map(|i| self.row(i))
    }

    /// All values, `[num_rows, vocab_size]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}
