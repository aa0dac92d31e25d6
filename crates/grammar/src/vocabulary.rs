//! The model's vocabulary as llguidance sees it: every token's bytes in a trie.

use std::sync::Arc;

use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use uma_tokenizer::Tokenizer;

use crate::error::{GrammarError, Result};

/// The trie of a vocabulary. Control tokens are spelled `0xFF` + their text, llguidance's mark
/// for "special": no grammar literal can produce them, so `<|im_end|>` in a JSON string is text,
/// never the end of the turn. The end-of-generation tokens are the trie's EOS set: they are
/// allowed exactly where the grammar may end.
struct Vocabulary {
    trie: TokTrie,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    // Only used for forced tokens and token healing, neither of which uma asks for: the trie's
    // greedy split is enough (and `tokenize_is_canonical` says it is not the model's own).
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.trie.greedy_tokenize(s)
    }

    fn tokenize_is_canonical(&self) -> bool {
        false
    }
}

/// Builds llguidance's view of `tokenizer`'s vocabulary.
pub(crate) fn token_env(tokenizer: &Tokenizer) -> Result<TokEnv> {
    let vocab_size = tokenizer.vocab_size();
    let end_of_generation = tokenizer.end_of_generation_tokens();
    let Some(&eos) = tokenizer.eos_token_id().as_ref().or(end_of_generation.first()) else {
        return Err(GrammarError::Vocabulary {
            message: "the vocabulary has no end-of-generation token".into(),
        });
    };
    let words: Vec<Vec<u8>> = (0..vocab_size as u32)
        .map(|id| {
            let bytes = tokenizer.token_bytes(id).unwrap_or_default();
            if tokenizer.is_special(id) || tokenizer.is_end_of_generation(id) {
                let mut special = Vec::with_capacity(bytes.len() + 1);
                special.push(TokTrie::SPECIAL_TOKEN_MARKER);
                special.extend_from_slice(&bytes);
                special
            } else {
                bytes
            }
        })
        .collect();
    let info = TokRxInfo::new(vocab_size as u32, eos);
    let mut eos_tokens = end_of_generation.to_vec();
    if !eos_tokens.contains(&eos) {
        eos_tokens.push(eos);
    }
    let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos_tokens);
    Ok(Arc::new(Vocabulary { trie }))
}
