//! Errors of the engine crate.

use uma_sampling::SamplingError;

/// Why a request was not accepted, or the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error(
        "the prompt has {num_prompt_tokens} tokens but the context holds {context_length} \
         (at least one position must remain for the reply)"
    )]
    PromptTooLong { num_prompt_tokens: usize, context_length: usize },
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange { token: u32, vocab_size: usize },
    #[error("too many requests: {num_in_flight} are running or queued (the limit)")]
    QueueFull { num_in_flight: usize },
    #[error("invalid sampling parameters: {0}")]
    InvalidParameters(#[from] SamplingError),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("invalid engine configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error(transparent)]
    Gguf(#[from] uma_gguf::GgufError),
    #[error("the file names no architecture (general.architecture)")]
    NoArchitecture,
    #[error(transparent)]
    Model(#[from] uma_model::ModelError),
    #[error(transparent)]
    Tokenizer(#[from] uma_tokenizer::TokenizerError),
    #[error(transparent)]
    Kv(#[from] uma_kv::KvError),
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
    #[error(
        "model {model:?} serves no embeddings: its file declares no pooling (start uma serve \
         with --pooling mean or last to embed with it anyway)"
    )]
    NoEmbeddings { model: String },
    #[error("the embedding failed: {message}")]
    EmbeddingFailed { message: String },
    #[error("cannot load model {name:?}: {message}")]
    LoadFailed { name: String, message: String },
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
