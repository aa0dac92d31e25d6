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
    /// Most draft tokens per sequence and step.
    pub max_draft_tokens: usize,
    /// Most tokens a step's decoding sequences compute together, drafts included: beyond it the
    /// rows stop being nearly free (the step turns compute bound) and drafts cost more than
    /// they save. Sequences beyond it decode plainly.
    pub max_verify_tokens: usize,
    /// The GGUF file of a draft model with the same vocabulary (`--draft`).
    pub draft_model: Option<std::path::PathBuf>,
}

impl Default for SpeculativeConfig {
    fn default() -> Self {
        SpeculativeConfig {
            mode: SpeculativeMode::Auto,
            max_draft_tokens: 8,
            max_verify_tokens: 24,
            draft_model: None,
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

/// A sequence's speculation state: how many drafts to propose next, and what it got so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SequenceSpeculation {
    /// Drafts proposed next time (adapts to the acceptance).
    draft_length: usize,
    max_draft_tokens: usize,
    /// Drafts proposed for the sequence, and those sampled as proposed.
    pub(crate) num_drafted: usize,
    pub(crate) num_accepted: usize,
}

impl SequenceSpeculation {
    pub(crate) fn new(max_draft_tokens: usize) -> Self {
        SequenceSpeculation {
            draft_length: max_draft_tokens.min(4),
            max_draft_tokens,
            num_drafted: 0,
            num_accepted: 0,
        }
    }

    /// Drafts to propose now.
    pub(crate) fn draft_length(&self) -> usize {
        self.draft_length
    }

    /// Adapts the draft length after a verification in which `num_accepted` of `num_drafted`
    /// drafts held (the counts themselves are kept by the engine as tokens are sent). All
    /// held: propose twice as many next time; otherwise one more than held, so a sequence whose
    /// guesses keep failing costs one extra row per step.
    pub(crate) fn adapt(&mut self, num_drafted: usize, num_accepted: usize) {
        self.draft_length = if num_accepted == num_drafted {
            (2 * self.draft_length).clamp(1, self.max_draft_tokens)
        } else {
            (num_accepted + 1).min(self.max_draft_tokens)
        };
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
    fn the_draft_length_grows_on_success_and_shrinks_on_failure() {
        let mut speculation = SequenceSpeculation::new(8);
        assert_eq!(speculation.draft_length(), 4);
        speculation.adapt(4, 4);
        assert_eq!(speculation.draft_length(), 8);
        speculation.adapt(8, 8);
        assert_eq!(speculation.draft_length(), 8, "capped");
        speculation.adapt(8, 2);
        assert_eq!(speculation.draft_length(), 3);
        speculation.adapt(3, 0);
        assert_eq!(speculation.draft_length(), 1);
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
