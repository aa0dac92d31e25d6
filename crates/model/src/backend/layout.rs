//! Where each token of a step sits, worked out once per step from the [`Batch`]: what every
//! backend operation that depends on positions or on the cache reads (a GPU backend uploads it
//! once per step).

use uma_ids::{BlockId, TokenId};

use crate::batch::{Batch, LogitsRequest, LogitsRow};

/// Where one batch token sits: its sequence and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPlace {
    /// Index of the sequence in the batch.
    pub sequence: usize,
    pub position: usize,
}

/// One step's tokens, in batch order, and the cache blocks of their sequences.
#[derive(Clone, Debug)]
pub struct BatchLayout<'a> {
    token_ids: Vec<TokenId>,          // [num_tokens]
    places: Vec<TokenPlace>,          // [num_tokens]
    block_tables: Vec<&'a [BlockId]>, // [num_sequences]
    output_tokens: Vec<usize>,        // [num_output_rows]: tokens the head computes, in order
}

impl<'a> BatchLayout<'a> {
    /// The layout of `batch`, and what each output row (logits or hidden state) belongs to.
    pub fn new(batch: &Batch<'a>) -> (BatchLayout<'a>, Vec<LogitsRow>) {
        let num_tokens = batch.num_tokens();
        let mut places = Vec::with_capacity(num_tokens);
        let mut token_ids = Vec::with_capacity(num_tokens);
        let mut output_tokens = Vec::new();
        let mut rows = Vec::new();
        for (si, s) in batch.sequences.iter().enumerate() {
            let n = s.token_ids.len();
            for (k, &t) in s.token_ids.iter().enumerate() {
                let position = s.start_position + k;
                let wanted = match s.logits {
                    LogitsRequest::None => false,
                    LogitsRequest::Last => k + 1 == n,
                    LogitsRequest::All => true,
                };
                if wanted {
                    output_tokens.push(places.len());
                    rows.push(LogitsRow { sequence: si, position });
                }
                places.push(TokenPlace { sequence: si, position });
                token_ids.push(t);
            }
        }
        let block_tables = batch.sequences.iter().map(|s| s.block_table).collect();
        (BatchLayout { token_ids, places, block_tables, output_tokens }, rows)
    }

    /// Tokens in the step.
    pub fn num_tokens(&self) -> usize {
        self.places.len()
    }

    /// Each token's id.
    pub fn token_ids(&self) -> &[TokenId] {
        &self.token_ids
    }

    /// Each token's sequence and position.
    pub fn places(&self) -> &[TokenPlace] {
        &self.places
    }

    /// Each sequence's block table: position `p` lives in `block_tables()[s][p / block_size]`.
    pub fn block_tables(&self) -> &[&'a [BlockId]] {
        &self.block_tables
    }

    /// The tokens whose final hidden states the head computes (logits or embeddings), in order.
    pub fn output_tokens(&self) -> &[usize] {
        &self.output_tokens
    }
}
