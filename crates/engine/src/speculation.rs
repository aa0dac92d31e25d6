//! Speculative decoding: guess a sequence's next tokens cheaply, verify the guesses in one step.
//!
//! A decoding step reads every weight once for however many rows it computes, so on a machine
//! bound by memory bandwidth the rows after the first are nearly free. The engine proposes
//! drafts (from the sequence itself, [`lookup_drafts`], or from a small draft model), computes
//! the last real token and the drafts in one chunk, and samples each position's token from the
//! target's own logits exactly as plain decoding would: a draft is kept while it equals the
//! token sampled at its position. The emitted tokens are therefore the tokens plain decoding
//! gives (the same distribution, and with a seed the same tokens, since the sampler draws once
//! per emitted token), and every batched row is bit-identical to a single-token step. The
//! drafters here are deterministic, which is what makes "sample, then compare" the exact
//! speculative-sampling rule: the draft is accepted with the target's probability of it, and
//! on rejection the token comes from the target's distribution without it.

use crate::TokenId;

/// When the engine speculates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpeculativeMode {
    /// Never.
    Off,
    /// Prompt lookup: drafts copied from where the sequence's latest tokens occurred before.
    Lookup,
    /// A draft model proposes the tokens (prompt lookup first when it finds a match).
    Draft,
    /// The draft model when one is loaded, else prompt lookup, and only while the step is far
    /// from compute bound.
    #[default]
    Auto,
}

impl SpeculativeMode {
    /// Parses `off`, `lookup`, `draft` or `auto`.
    pub fn parse(text: &str) -> Option<SpeculativeMode> {
        match text {
            "off" => Some(SpeculativeMode::Off),
            "lookup" => Some(SpeculativeMode::Lookup),
            "draft" => Some(SpeculativeMode::Draft),
            "auto" => Some(SpeculativeMode::Auto),
            _ => None,
        }
    }
}

/// How much the engine speculates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeculativeConfig {
    pub mode: SpeculativeMode,
    /// Most draft tokens per sequence and step (fewer when they do not pay: see
    /// [`best_draft_length`]).
    pub max_draft_tokens: usize,
    /// Most tokens a step's decoding sequences compute together, drafts included: beyond it the
    /// rows stop being nearly free (the step turns compute bound) and drafts cost more than
    /// they save. Sequences beyond it decode plainly.
    pub max_verify_tokens: usize,
    /// The GGUF file of a draft model with the same vocabulary (`--draft`).
    pub draft_model: Option<std::path::PathBuf>,
    /// Draft `max_draft_tokens` whenever there are drafts, whatever they cost (tests and
    /// measurements); normally lengths follow [`best_draft_length`].
    pub always_draft: bool,
}

impl Default for SpeculativeConfig {
    fn default() -> Self {
        SpeculativeConfig {
            mode: SpeculativeMode::Auto,
            max_draft_tokens: 8,
            max_verify_tokens: 24,
            draft_model: None,
            always_draft: false,
        }
    }
}

impl SpeculativeConfig {
    /// No speculation at all.
    pub fn off() -> Self {
        SpeculativeConfig { mode: SpeculativeMode::Off, ..Self::default() }
    }
}

/// Longest n-gram matched by prompt lookup; longer matches predict better.
const MAX_NGRAM: usize = 4;
/// Shortest: one token repeats too often to predict anything.
const MIN_NGRAM: usize = 2;

/// Prompt lookup: finds the latest earlier occurrence of the longest suffix of `tokens` (of
/// `MAX_NGRAM` down to `MIN_NGRAM` tokens) and proposes the up to `max_tokens` tokens that
/// followed it. Empty when nothing matches.
pub fn lookup_drafts(tokens: &[TokenId], max_tokens: usize) -> Vec<TokenId> {
    if max_tokens == 0 {
        return Vec::new();
    }
    for n in (MIN_NGRAM..=MAX_NGRAM.min(tokens.len().saturating_sub(1))).rev() {
        let suffix = &tokens[tokens.len() - n..];
        // Occurrences that end before the suffix itself starts to be followed by something.
        let found = (0..tokens.len() - n).rev().find(|&start| &tokens[start..start + n] == suffix);
        if let Some(start) = found {
            let from = start + n;
            let to = (from + max_tokens).min(tokens.len());
            return tokens[from..to].to_vec();
        }
    }
    Vec::new()
}

/// Who proposed a sequence's drafts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drafter {
    Lookup,
    DraftModel,
}

/// How often one drafter's drafts hold for one sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Acceptance {
    /// Recent drafts that held, and recent verifications that ended on a rejected draft,
    /// decayed so the estimate follows the text (a copied span ends, a new one starts).
    recent_accepted: f64,
    recent_rejections: f64,
}

/// Weight of the past in the acceptance estimate, per verification.
const ACCEPTANCE_DECAY: f64 = 0.8;

impl Acceptance {
    /// The chance that the next draft holds, given that the ones before it did: accepted drafts
    /// over accepted drafts and rejections (each verification ends at its first rejection),
    /// starting from one of each.
    pub(crate) fn rate(&self) -> f64 {
        (self.recent_accepted + 1.0) / (self.recent_accepted + self.recent_rejections + 2.0)
    }

    /// A step without drafts: the past fades towards even odds, so a sequence whose drafts
    /// stopped paying tries again after a while (the text it copies may have come back).
    pub(crate) fn forget(&mut self) {
        self.recent_accepted *= ACCEPTANCE_DECAY;
        self.recent_rejections *= ACCEPTANCE_DECAY;
    }

    /// Records a verification in which `num_accepted` of `num_drafted` drafts held.
    pub(crate) fn record(&mut self, num_drafted: usize, num_accepted: usize) {
        let rejected = if num_accepted < num_drafted { 1.0 } else { 0.0 };
        self.recent_accepted = ACCEPTANCE_DECAY * self.recent_accepted + num_accepted as f64;
        self.recent_rejections = ACCEPTANCE_DECAY * self.recent_rejections + rejected;
    }
}

/// A sequence's speculation state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SequenceSpeculation {
    pub(crate) lookup: Acceptance,
    pub(crate) draft_model: Acceptance,
    /// Who proposed the drafts now waiting for verification.
    pub(crate) pending: Option<Drafter>,
    /// Drafts proposed for the sequence, and those sampled as proposed.
    pub(crate) num_drafted: usize,
    pub(crate) num_accepted: usize,
}

impl SequenceSpeculation {
    /// Records the verification of the pending drafts.
    pub(crate) fn record(&mut self, num_drafted: usize, num_accepted: usize) {
        match self.pending.take() {
            Some(Drafter::Lookup) => self.lookup.record(num_drafted, num_accepted),
            Some(Drafter::DraftModel) => self.draft_model.record(num_drafted, num_accepted),
            None => {}
        }
    }
}

/// The draft length that gains the most tokens per second, or 0 when drafting does not pay.
///
/// With acceptance `p`, k drafts give p + p² + … + pᵏ extra tokens; each draft row costs
/// `row_cost`: the tokens the step would have produced in the time that row takes, at its
/// current rate. On a machine where a step is bound by memory bandwidth a row costs little and
/// long drafts pay; where the rows are compute bound (a few CPU cores, or many sequences in the
/// step) only drafts that nearly always hold do.
pub(crate) fn best_draft_length(acceptance: f64, row_cost: f64, max_length: usize) -> usize {
    // The k-th draft adds pᵏ − cost, and pᵏ only falls with k: the gain grows while pᵏ is above
    // the cost and never again after.
    let (mut length, mut power) = (0, 1.0);
    while length < max_length {
        power *= acceptance;
        if power <= row_cost {
            break;
        }
        length += 1;
    }
    length
}

/// A step's time as a fixed part plus a part per token, fitted online by least squares over
/// recent steps: what a draft row costs on this machine, for this model, now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepCost {
    // Decayed sums of 1, x, y, x², xy (x: tokens in the step, y: seconds).
    sums: [f64; 5],
}

/// Weight of the past per step: about the last hundred steps count.
const STEP_COST_DECAY: f64 = 0.99;

impl StepCost {
    pub(crate) fn record(&mut self, num_tokens: usize, seconds: f64) {
        let x = num_tokens as f64;
        for (sum, value) in self.sums.iter_mut().zip([1.0, x, seconds, x * x, x * seconds]) {
            *sum = STEP_COST_DECAY * *sum + value;
        }
    }

    /// (fixed seconds, seconds per token), once the steps seen differ enough in size to tell
    /// the two apart.
    fn fit(&self) -> Option<(f64, f64)> {
        let [n, x, y, xx, xy] = self.sums;
        let variance = n * xx - x * x;
        if n < 4.0 || variance <= 1e-9 * n * n {
            return None;
        }
        let per_token = ((n * xy - x * y) / variance).max(0.0);
        let fixed = ((y - per_token * x) / n).max(0.0);
        Some((fixed, per_token))
    }

    /// Seconds of a step of `num_tokens` tokens, once fitted.
    pub(crate) fn seconds(&self, num_tokens: usize) -> Option<f64> {
        let (fixed, per_token) = self.fit()?;
        Some(fixed + per_token * num_tokens as f64)
    }

    /// What one more row costs in a step of `num_tokens` tokens, in tokens that step produces
    /// in the same time; `None` until the fit exists.
    pub(crate) fn row_cost(&self, num_tokens: usize) -> Option<f64> {
        let (fixed, per_token) = self.fit()?;
        let n = num_tokens.max(1) as f64;
        let step = fixed + per_token * n;
        (step > 0.0).then(|| per_token * n / step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_copies_what_followed_the_latest_occurrence_of_the_longest_suffix() {
        // "5 6 7" occurred at 1..4 followed by 8 9; the sequence ends with "5 6 7" again.
        let tokens = [4, 5, 6, 7, 8, 9, 1, 5, 6, 7];
        assert_eq!(lookup_drafts(&tokens, 8), [8, 9, 1, 5, 6, 7]);
        assert_eq!(lookup_drafts(&tokens, 2), [8, 9]);
        assert_eq!(lookup_drafts(&tokens, 0), Vec::<TokenId>::new());
        // The latest occurrence wins: "1 2" is followed by 3 first, then by 9.
        assert_eq!(lookup_drafts(&[1, 2, 3, 1, 2, 9, 0, 1, 2], 1), [9]);
        // A longer suffix match beats a later, shorter one: "7 1 2" only at 0..3.
        assert_eq!(lookup_drafts(&[7, 1, 2, 5, 1, 2, 6, 7, 1, 2], 1), [5]);
    }

    #[test]
    fn lookup_needs_a_match_of_two_tokens() {
        assert!(lookup_drafts(&[1, 2, 3, 4, 3], 4).is_empty());
        assert!(lookup_drafts(&[], 4).is_empty());
        assert!(lookup_drafts(&[1], 4).is_empty());
        assert!(lookup_drafts(&[1, 1], 4).is_empty());
        // A run of one token predicts itself.
        assert_eq!(lookup_drafts(&[1, 1, 1], 4), [1]);
    }

    #[test]
    fn drafts_are_as_long_as_they_pay() {
        // Free rows: draft as much as allowed while anything may hold.
        assert_eq!(best_draft_length(0.5, 0.0, 8), 8);
        // Rows costing a fifth of a step's tokens: p^k must stay above 0.2.
        assert_eq!(best_draft_length(0.9, 0.2, 32), 15);
        assert_eq!(best_draft_length(0.5, 0.2, 8), 2);
        // Rows as dear as a whole token: never.
        assert_eq!(best_draft_length(0.99, 1.0, 8), 0);
        assert_eq!(best_draft_length(0.0, 0.0, 8), 0);
    }

    #[test]
    fn the_acceptance_follows_recent_verifications() {
        let mut acceptance = Acceptance::default();
        assert_eq!(acceptance.rate(), 0.5);
        for _ in 0..20 {
            acceptance.record(8, 8);
        }
        assert!(acceptance.rate() > 0.95, "{}", acceptance.rate());
        for _ in 0..20 {
            acceptance.record(4, 0);
        }
        assert!(acceptance.rate() < 0.25, "{}", acceptance.rate());
        for _ in 0..40 {
            acceptance.forget();
        }
        assert!((acceptance.rate() - 0.5).abs() < 0.01, "back to even odds");
    }

    #[test]
    fn the_step_cost_is_fitted_from_steps_of_different_sizes() {
        let mut cost = StepCost::default();
        assert_eq!(cost.row_cost(1), None);
        // 30 ms fixed, 10 ms per token.
        for tokens in [1, 1, 4, 9, 1, 16, 2, 1] {
            cost.record(tokens, 0.030 + 0.010 * tokens as f64);
        }
        let one = cost.row_cost(1).expect("fitted");
        assert!((one - 0.25).abs() < 1e-6, "{one}");
        let sixteen = cost.row_cost(16).expect("fitted");
        assert!((sixteen - 160.0 / 190.0).abs() < 1e-6, "{sixteen}");
        // Steps all of one size cannot tell fixed from per-token time.
        let mut flat = StepCost::default();
        for _ in 0..10 {
            flat.record(1, 0.03);
        }
        assert_eq!(flat.row_cost(1), None);
    }

    #[test]
    fn modes_parse_from_their_names() {
        for (text, mode) in [
            ("off", SpeculativeMode::Off),
            ("lookup", SpeculativeMode::Lookup),
            ("draft", SpeculativeMode::Draft),
            ("auto", SpeculativeMode::Auto),
        ] {
            assert_eq!(SpeculativeMode::parse(text), Some(mode));
        }
        assert_eq!(SpeculativeMode::parse("ngram"), None);
    }
}
