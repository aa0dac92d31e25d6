//! A borrowed view of a sequence's tokens, split into prompt and generated parts.

use crate::TokenId;

/// The tokens of one sequence so far: the prompt followed by the generated tokens.
///
/// Penalties need to know which tokens came from the prompt: the repetition penalty looks at
/// the last `repeat_last_n` tokens of prompt + generation (llama.cpp), presence and frequency
/// penalties by default only at generated tokens (OpenAI). The engine already stores a request's
/// tokens in one vector, so this is a borrowed view with no copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenHistory<'a> {
    tokens: &'a [TokenId],
    num_prompt_tokens: usize,
}

impl<'a> TokenHistory<'a> {
    /// `tokens` = prompt followed by generated tokens; the first `num_prompt_tokens` are the
    /// prompt (clamped to `tokens.len()`).
    pub fn new(tokens: &'a [TokenId], num_prompt_tokens: usize) -> Self {
        Self { tokens, num_prompt_tokens: num_prompt_tokens.min(tokens.len()) }
    }

    /// A history with no prompt: every token counts as generated.
    pub fn generated_only(tokens: &'a [TokenId]) -> Self {
        Self { tokens, num_prompt_tokens: 0 }
    }

    /// All tokens, prompt first.
    pub fn tokens(&self) -> &'a [TokenId] {
        self.tokens
    }

    /// The prompt tokens.
    pub fn prompt(&self) -> &'a [TokenId] {
        &self.tokens[..self.num_prompt_tokens]
    }

    /// The generated tokens.
    pub fn generated(&self) -> &'a [TokenId] {
        &self.tokens[self.num_prompt_tokens..]
    }

    /// The last `n` tokens of prompt + generation (all of them if there are fewer).
    pub fn last_n(&self, n: usize) -> &'a [TokenId] {
        &self.tokens[self.tokens.len().saturating_sub(n)..]
    }

    /// Number of prompt tokens.
    pub fn num_prompt_tokens(&self) -> usize {
        self.num_prompt_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prompt_and_generated() {
        let tokens = [1, 2, 3, 4, 5];
        let history = TokenHistory::new(&tokens, 2);
        assert_eq!(history.prompt(), &[1, 2]);
        assert_eq!(history.generated(), &[3, 4, 5]);
        assert_eq!(history.last_n(2), &[4, 5]);
        assert_eq!(history.last_n(10), &tokens);
        assert_eq!(history.last_n(0), &[] as &[TokenId]);
    }

    #[test]
    fn clamps_prompt_length() {
        let tokens = [1, 2];
        let history = TokenHistory::new(&tokens, 5);
        assert_eq!(history.num_prompt_tokens(), 2);
        assert!(history.generated().is_empty());
        assert_eq!(TokenHistory::generated_only(&tokens).generated(), &tokens);
    }
}
