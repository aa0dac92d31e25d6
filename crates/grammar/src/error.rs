//! What can go wrong with a grammar: at compile time (the request's fault, a 400) or while a
//! sequence is constrained (it ends with this error).

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// The grammar or schema does not compile.
    #[error("invalid grammar: {message}")]
    Invalid { message: String },
    /// The grammar compiles but no token of the model's vocabulary can begin it.
    #[error("the model's vocabulary cannot produce any text this grammar accepts")]
    Inexpressible,
    /// The vocabulary cannot be turned into llguidance's token trie.
    #[error("the vocabulary cannot be used for grammars: {message}")]
    Vocabulary { message: String },
    /// A constrained sequence cannot go on: its grammar allows no token here, or it was given
    /// a token the grammar does not allow.
    #[error("constrained decoding stopped: {message}")]
    Stuck { message: String },
}

/// This crate's result type.
pub type Result<T, E = GrammarError> = std::result::Result<T, E>;
