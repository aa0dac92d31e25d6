//! One constrained sequence: the allowed tokens at each step, and the grammar's progress.

use llguidance::Matcher;
use toktrie::{SimpleVob, TokEnv};
use uma_ids::TokenId;

use crate::error::{GrammarError, Result};

/// The tokens a constrained sequence may choose next.
#[derive(Debug, Clone)]
pub struct TokenMask {
    allowed: SimpleVob,
}

impl TokenMask {
    /// Whether `token` is allowed.
    pub fn allows(&self, token: TokenId) -> bool {
        (token as usize) < self.allowed.len() && self.allowed.is_allowed(token)
    }

    /// How many tokens are allowed.
    pub fn num_allowed(&self) -> usize {
        self.allowed.num_set()
    }

    /// Sets the logit of every token the grammar does not allow to `-inf` (rows longer than the
    /// vocabulary, padded output heads, lose their padding too).
    pub fn apply(&self, logits: &mut [f32]) {
        let words = self.allowed.as_slice();
        for (word_index, chunk) in logits.chunks_mut(32).enumerate() {
            let word = words.get(word_index).copied().unwrap_or(0);
            if word == u32::MAX {
                continue;
            }
            for (bit, logit) in chunk.iter_mut().enumerate() {
                if word & (1 << bit) == 0 {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// What committing a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The grammar goes on (or has not started: a lazy constraint before its trigger).
    Continue,
    /// The grammar is complete and nothing can follow: the sequence should stop here.
    Finished,
}

/// The grammar state of one sequence.
pub struct Constraint {
    matcher: Matcher,
    env: TokEnv,
    /// For a lazy constraint, what it waits for; `None` once constraining.
    trigger: Option<Trigger>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("dormant", &self.trigger.is_some())
            .field("stopped", &self.matcher.is_stopped())
            .finish_non_exhaustive()
    }
}

/// The trigger text of a lazy constraint, and the output's last bytes that could begin it.
struct Trigger {
    text: Vec<u8>,
    recent: Vec<u8>,
}

impl Constraint {
    pub(crate) fn active(matcher: Matcher, env: TokEnv) -> Constraint {
        Constraint { matcher, env, trigger: None }
    }

    pub(crate) fn lazy(matcher: Matcher, env: TokEnv, trigger: Vec<u8>) -> Constraint {
        Constraint { matcher, env, trigger: Some(Trigger { text: trigger, recent: Vec::new() }) }
    }

    /// Whether the constraint still waits for its trigger (its output is free).
    pub fn is_dormant(&self) -> bool {
        self.trigger.is_some()
    }

    /// The tokens allowed next (only the end-of-generation tokens once the grammar is
    /// complete); `None` while a lazy constraint is dormant. An error when the grammar allows
    /// nothing here (the sequence cannot go on).
    pub fn mask(&mut self) -> Result<Option<TokenMask>> {
        if self.trigger.is_some() {
            return Ok(None);
        }
        let allowed = self.matcher.compute_mask_or_eos().map_err(stuck)?;
        if allowed.num_set() == 0 {
            return Err(GrammarError::Stuck {
                message: "the grammar allows no token of the vocabulary here".into(),
            });
        }
        Ok(Some(TokenMask { allowed }))
    }

    /// Moves past `token`, the one the sequence chose (from this step's mask, when it had one).
    pub fn commit(&mut self, token: TokenId) -> Result<Commit> {
        if let Some(trigger) = &mut self.trigger {
            let bytes = self.env.tok_trie().token(token);
            trigger.recent.extend_from_slice(bytes);
            let Some(end) = find(&trigger.recent, &trigger.text) else {
                // Keep only what could still be the start of the trigger.
                let keep = trigger.text.len().saturating_sub(1).min(trigger.recent.len());
                trigger.recent.drain(..trigger.recent.len() - keep);
                return Ok(Commit::Continue);
            };
            let rest = trigger.recent[end..].to_vec();
            self.trigger = None;
            // The token that completed the trigger may carry the grammar's first bytes.
            if !rest.is_empty() {
                let tokens = self.env.tok_trie().greedy_tokenize(&rest);
                self.matcher.consume_tokens(&tokens).map_err(stuck)?;
            }
            return Ok(self.progress());
        }
        self.matcher.consume_token(token).map_err(stuck)?;
        Ok(self.progress())
    }

    fn progress(&self) -> Commit {
        if self.matcher.is_stopped() {
            Commit::Finished
        } else {
            Commit::Continue
        }
    }
}

fn stuck(error: impl std::fmt::Display) -> GrammarError {
    let message = error.to_string();
    GrammarError::Stuck { message: message.lines().next().unwrap_or_default().to_owned() }
}

/// The end of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle).map(|at| at + needle.len())
}
