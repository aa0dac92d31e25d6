//! The one error type of the engine crate: why a request was refused, why an accepted request
//! failed inside the engine thread, or why an engine or a model could not start.

use std::sync::Arc;

use uma_sampling::SamplingError;

/// An error a model loader returns (see [`crate::ModelRegistry::new`]): whatever the loader's own
/// type is, kept whole (source chain included) for every request that waited on the load.
pub type LoadError = Arc<dyn std::error::Error + Send + Sync>;

/// Why a request was not accepted or failed, or why the engine could not start.
///
/// Errors of lower crates that end a step are in the message rather than a `#[source]` where
/// the variant adds words, so that printing the error chain does not say them twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    // Refused at submission: the request is the caller's to fix.
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error(
        "the prompt has {num_prompt_tokens} tokens but the context holds {context_length} \
         (at least one position must remain for the reply)"
    )]
    PromptTooLong { num_prompt_tokens: usize, context_length: usize },
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange { token: u32, vocab_size: usize },
    #[error("invalid sampling parameters: {0}")]
    InvalidParameters(#[from] SamplingError),
    #[error(
        "model {model:?} serves no embeddings: its file declares no pooling (start uma serve \
         with --pooling mean or last to embed with it anyway)"
    )]
    NoEmbeddings { model: String },
    /// A message's text spells a control token, and the chat template rewrote that text so
    /// that it cannot be found and kept as plain text.
    #[error(
        "message {index} contains {spelling:?}, the spelling of one of the model's control \
         tokens, and the chat template changes that message's text, so it cannot be kept as \
         plain text"
    )]
    ControlTokenInMessage { index: usize, spelling: String },

    /// One request asks for more sequences (prompts × choices) than the engine ever holds at
    /// once: waiting would never help.
    #[error(
        "the request asks for {requested} sequences (prompts × n) at once; this model takes at most {limit}"
    )]
    TooManySequences { requested: usize, limit: usize },

    /// The draft model cannot draft for this model.
    #[error("the draft model does not fit this model: {reason}")]
    DraftMismatch { reason: String },

    // Refused at submission: the engine cannot take it now.
    #[error("too many requests: {num_in_flight} are running or queued (the limit)")]
    QueueFull { num_in_flight: usize },
    /// The engine stopped accepting requests, or stopped before answering.
    #[error("the engine is shutting down")]
    ShuttingDown,

    // Failed inside the engine thread, after it was accepted: a step's failure fails every
    // request of the step; the engine itself carries on.
    /// The model refused the step's batch or KV copy (a bug, or a batch it cannot run).
    #[error(transparent)]
    StepFailed(uma_model::ModelError),
    /// The model panicked while computing a step or an embedding (a bug).
    #[error("internal error in the model: {detail}")]
    ModelPanicked { detail: String },
    /// The engine loop itself panicked (a bug outside the model): the engine failed every
    /// request it held and takes no more; the registry reloads the model.
    #[error("the model's engine stopped after an internal error ({detail}); it is reloaded on the next request")]
    EngineFailed { detail: String },
    /// The request's grammar cannot go on (it allows no token here) or refused the chosen one.
    #[error(transparent)]
    GrammarFailed(uma_grammar::GrammarError),
    /// The sampler could not pick a token from the step's logits.
    #[error(transparent)]
    SamplingFailed(SamplingError),
    /// Computing an embedding failed (`error` says how).
    #[error("the embedding failed: {error}")]
    EmbeddingFailed { error: Box<EngineError> },

    // The engine, or the model it serves, could not start.
    #[error("invalid engine configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error(transparent)]
    Gguf(#[from] uma_gguf::GgufError),
    #[error("the file names no architecture (general.architecture)")]
    NoArchitecture,
    #[error(transparent)]
    Model(#[from] uma_model::ModelError),
    /// Building the tokenizer or chat template, encoding a prompt, or decoding a sampled token.
    #[error(transparent)]
    Tokenizer(#[from] uma_tokenizer::TokenizerError),
    #[error(transparent)]
    Kv(#[from] uma_kv::KvError),
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "the model needs about {} MiB on the GPU (weights and KV cache) but {gpu} holds {} MiB \
         ({limit_source}); use --device cpu, a smaller context (--ctx) or --kv-cache-type q8_0",
        needed_bytes >> 20,
        limit_bytes >> 20
    )]
    GpuTooSmall { gpu: String, needed_bytes: u64, limit_bytes: u64, limit_source: &'static str },

    // The model registry.
    #[error("no model named {name:?} is served here")]
    UnknownModel { name: String },
    #[error(
        "model {name:?} needs {} MiB but the memory budget is {} MiB",
        memory_bytes >> 20,
        budget_bytes >> 20
    )]
    ModelTooLarge { name: String, memory_bytes: u64, budget_bytes: u64 },
    #[error(
        "model {name:?} needs {} MiB; {} MiB of the {} MiB budget are held by models with \
         requests running ({}); try again when they finish",
        memory_bytes >> 20,
        held_bytes >> 20,
        budget_bytes >> 20,
        busy.join(", ")
    )]
    NoRoom {
        name: String,
        memory_bytes: u64,
        budget_bytes: u64,
        held_bytes: u64,
        busy: Vec<String>,
    },
    /// The registry's loader failed; every request that waited on the load gets this error.
    #[error("cannot load model {name:?}: {error}")]
    LoadFailed { name: String, error: LoadError },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
