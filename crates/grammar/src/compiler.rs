//! Compiling grammars against one model's vocabulary, with a cache.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};
use toktrie::TokEnv;
use uma_tokenizer::Tokenizer;

use crate::constraint::Constraint;
use crate::error::{GrammarError, Result};
use crate::vocabulary::token_env;

/// How many compiled grammars a model keeps (the least recently compiled go first).
pub const MAX_CACHED_GRAMMARS: usize = 64;

/// What a request constrains its output to.
#[derive(Debug, Clone, PartialEq)]
pub enum GrammarSpec {
    /// JSON valid against this schema (llguidance's JSON Schema subset: objects, arrays, enums,
    /// `const`, `anyOf`/`oneOf`, `$ref`/`$defs`, string patterns and formats, numeric and length
    /// bounds).
    JsonSchema(Value),
    /// Any JSON object (OpenAI's `json_object`, Ollama's `"json"`).
    JsonObject,
    /// Text matching a regular expression (Rust `regex` syntax), whole.
    Regex(String),
    /// A Lark grammar (llguidance's dialect: `%json {…}` embeds a schema).
    Lark(String),
}

impl GrammarSpec {
    /// The grammar llguidance compiles. JSON is written compactly with the separators models
    /// write (`", "`, `": "`) and no free whitespace: a sampled run of spaces or newlines
    /// between tokens could otherwise go on until `max_tokens`.
    fn top_level(&self) -> TopLevelGrammar {
        match self {
            GrammarSpec::JsonSchema(schema) => {
                TopLevelGrammar::from_json_schema(with_json_layout(schema.clone()))
            }
            GrammarSpec::JsonObject => {
                TopLevelGrammar::from_json_schema(with_json_layout(json!({"type": "object"})))
            }
            GrammarSpec::Regex(regex) => TopLevelGrammar::from_regex(regex),
            GrammarSpec::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        }
    }

    /// The cache key: the kind and the text.
    fn key(&self) -> String {
        match self {
            GrammarSpec::JsonSchema(schema) => format!("json_schema {schema}"),
            GrammarSpec::JsonObject => "json_object".into(),
            GrammarSpec::Regex(regex) => format!("regex {regex}"),
            GrammarSpec::Lark(lark) => format!("lark {lark}"),
        }
    }
}

/// The JSON layout options (`x-guidance`) unless the schema sets its own.
fn with_json_layout(mut schema: Value) -> Value {
    if let Value::Object(object) = &mut schema {
        object.entry("x-guidance").or_insert_with(|| {
            json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
                // `oneOf` compiled as `anyOf`: exclusivity cannot be checked token by token,
                // and schemas generated from Pydantic unions use `oneOf` for what is `anyOf`.
                "coerce_one_of": true,
            })
        });
    }
    schema
}

/// A compiled grammar, ready to constrain any number of sequences. Cheap to clone.
#[derive(Clone)]
pub struct Grammar {
    /// A matcher at the grammar's start, never advanced: each sequence gets a deep copy.
    start: Arc<Mutex<Matcher>>,
    env: TokEnv,
}

impl std::fmt::Debug for Grammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammar").finish_non_exhaustive()
    }
}

impl PartialEq for Grammar {
    /// The same compiled grammar (what a cache hit returns), not merely an equal one.
    fn eq(&self, other: &Grammar) -> bool {
        Arc::ptr_eq(&self.start, &other.start)
    }
}

/// A grammar and how a request applies it: from the first token, or after a trigger text.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputGrammar {
    pub grammar: Grammar,
    /// `Some`: the output is free until it contains this text ([`Grammar::start_after`]).
    pub trigger: Option<String>,
}

impl OutputGrammar {
    /// The constraint of one sequence.
    pub fn start(&self) -> Constraint {
        match &self.trigger {
            Some(trigger) => self.grammar.start_after(trigger),
            None => self.grammar.start(),
        }
    }
}

impl Grammar {
    /// A constraint at the start of the grammar: every token of the output is constrained.
    pub fn start(&self) -> Constraint {
        Constraint::active(self.fresh_matcher(), self.env.clone())
    }

    /// A lazy constraint: the output is free until it contains `trigger`, and what follows the
    /// trigger must match the grammar (a tool call after its opening tag).
    pub fn start_after(&self, trigger: &str) -> Constraint {
        Constraint::lazy(self.fresh_matcher(), self.env.clone(), trigger.as_bytes().to_vec())
    }

    fn fresh_matcher(&self) -> Matcher {
        // A poisoned lock only means another thread panicked while copying; the start matcher
        // itself is never modified.
        let start = self.start.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        start.deep_clone()
    }
}

/// Compiles grammars for one model's vocabulary; shared by every request to that model.
pub struct GrammarCompiler {
    factory: ParserFactory,
    cache: Mutex<GrammarCache>,
}

impl std::fmt::Debug for GrammarCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarCompiler").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct GrammarCache {
    grammars: HashMap<String, Grammar>,
    /// Keys, oldest first.
    order: VecDeque<String>,
}

impl GrammarCompiler {
    /// A compiler for `tokenizer`'s vocabulary (builds its token trie: tens of milliseconds for
    /// a 150,000-token vocabulary).
    pub fn new(tokenizer: &Tokenizer) -> Result<GrammarCompiler> {
        let env = token_env(tokenizer)?;
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|error| GrammarError::Vocabulary { message: error.to_string() })?;
        // Errors go to the request, not to stderr.
        factory.quiet();
        *factory.limits_mut() = ParserLimits { verbose_errors: false, ..ParserLimits::default() };
        Ok(GrammarCompiler { factory, cache: Mutex::new(GrammarCache::default()) })
    }

    /// Compiles `spec` (or finds it in the cache). Fails when it does not compile or when no
    /// token can begin it.
    pub fn compile(&self, spec: &GrammarSpec) -> Result<Grammar> {
        let key = spec.key();
        if let Some(grammar) = self.lock_cache().grammars.get(&key) {
            return Ok(grammar.clone());
        }
        let parser = self
            .factory
            .create_parser(spec.top_level())
            .map_err(|error| GrammarError::Invalid { message: first_line(&error.to_string()) })?;
        let mut matcher = Matcher::new(Ok(parser));
        // Checked once here so that a grammar nothing can start is a bad request, not a
        // sequence that fails at its first step.
        let mask = matcher
            .compute_mask()
            .map_err(|error| GrammarError::Invalid { message: first_line(&error.to_string()) })?;
        if mask.num_set() == 0 {
            return Err(GrammarError::Inexpressible);
        }
        let grammar =
            Grammar { start: Arc::new(Mutex::new(matcher)), env: self.factory.tok_env().clone() };
        let mut cache = self.lock_cache();
        if !cache.grammars.contains_key(&key) {
            if cache.order.len() >= MAX_CACHED_GRAMMARS {
                if let Some(oldest) = cache.order.pop_front() {
                    cache.grammars.remove(&oldest);
                }
            }
            cache.order.push_back(key.clone());
            cache.grammars.insert(key, grammar.clone());
        }
        Ok(grammar)
    }

    /// How many grammars are cached.
    pub fn num_cached(&self) -> usize {
        self.lock_cache().grammars.len()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, GrammarCache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// llguidance's messages can carry the whole grammar after the first line.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.chars().take(500).collect()
}
