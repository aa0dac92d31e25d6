//! The HTTP server: OpenAI-compatible routes over the models of a [`ModelRegistry`](uma_engine::ModelRegistry).
//!
//! Owns: routes (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`,
//! `/metrics`), SSE streaming, API errors with their status codes, bearer-token authentication,
//! body limits, metrics, and graceful shutdown. A handler validates and tokenizes, submits to the model's engine, and
//! streams back what the engine sends; dropping the response (a client that disconnects) cancels
//! the request.
//!
//! Does not own: scheduling, the model or sampling (`uma-engine` and below), which models are
//! resident (the registry loads and unloads them; a handler leases the model it needs), or what
//! a model costs in memory (the CLI plans that).
#![forbid(unsafe_code)]

mod app;
mod embedding;
mod error;
mod generation;
mod keep_alive;
mod metrics;
mod ollama;
pub mod openai;
mod serve;

pub use app::{router, ServerConfig};
pub use keep_alive::{parse_keep_alive, KeepAliveField};
pub use serve::{serve, shutdown_signal};
