//! The HTTP server: OpenAI- and Ollama-compatible routes over the models of a
//! [`ModelRegistry`](uma_engine::ModelRegistry).
//!
//! Owns: the router with authentication, body limits, `/health` and `/metrics` (`app`); the
//! OpenAI routes (`openai/`) and the Ollama routes (`ollama/`), each parsing its requests and
//! rendering its answers, SSE or NDJSON; one protocol-neutral generation that both run
//! (`generation`: submit to the engine, merge the choices' events, count usage); API errors and
//! the one mapping from engine errors to status codes (`error`); metrics; graceful shutdown. A
//! handler validates and tokenizes, submits to the model's engine, and streams back what the
//! engine sends; dropping the response (a client that disconnects) cancels the request.
//!
//! The web page for people (`web`: chat, the server's memory, "will it fit?") is compiled in
//! and served at `/`; it calls the same public API as any client, plus `/v1/plan`.
//!
//! Does not own: scheduling, the model or sampling (`uma-engine` and below), which models are
//! resident (the registry loads and unloads them; a handler leases the model it needs), or what
//! a model costs in memory (the CLI plans that).
#![forbid(unsafe_code)]

mod anthropic;
mod app;
mod embedding;
mod encode;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod generation;
mod keep_alive;
mod metrics;
mod ollama;
pub mod openai;
mod origin;
mod request_checks;
mod responses;
mod serve;
mod state;
mod tools;
mod web;

pub use app::router;
pub use keep_alive::{parse_keep_alive, KeepAliveField};
pub use origin::OriginPolicy;
pub use serve::{serve, shutdown_signal};
pub use state::ServerConfig;
