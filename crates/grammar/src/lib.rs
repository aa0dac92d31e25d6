//! Grammar-constrained decoding: a request's grammar (a JSON Schema, any JSON object, a regular
//! expression or a Lark grammar) compiled against the model's vocabulary with `llguidance`, and
//! for every step of a constrained sequence the set of tokens that keep its output inside the
//! grammar.
//!
//! Owns:
//! - [`GrammarCompiler`]: one per model; turns a [`GrammarSpec`] into a [`Grammar`], checking it
//!   (an invalid schema or a grammar no token can start is an error here, before any step), and
//!   caches compiled grammars by their text so that agents repeating a schema compile it once.
//! - [`Constraint`]: one per sequence; [`Constraint::mask`] gives the allowed tokens
//!   ([`TokenMask`]), [`Constraint::commit`] moves past the chosen one. A lazy constraint
//!   ([`Grammar::start_after`]) stays dormant until its trigger text (`<tool_call>`) appears in
//!   the output, then constrains what follows.
//!
//! Does not own: sampling (`uma-sampling` draws from the masked logits), when masks are computed
//! (the engine computes them on a worker thread while the model runs), or which grammar an API
//! request means (the server builds the [`GrammarSpec`]).
#![forbid(unsafe_code)]

mod compiler;
mod constraint;
mod error;
mod vocabulary;

pub use compiler::{Grammar, GrammarCompiler, GrammarSpec, OutputGrammar, MAX_CACHED_GRAMMARS};
pub use constraint::{Commit, Constraint, TokenMask};
pub use error::{GrammarError, Result};
