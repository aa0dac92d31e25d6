//! The HTTP server: OpenAI-compatible routes over one or more engines.
//!
//! Owns: routes (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`), SSE
//! streaming, API errors with their status codes, bearer-token authentication, body limits, and
//! graceful shutdown. A handler validates and tokenizes, submits to the model's engine, and
//! streams back what the engine sends; dropping the response (a client that disconnects) cancels
//! the request.
//!
//! Does not own: scheduling, the model or sampling (`uma-engine` and below), or choosing and
//! loading models (the CLI hands it running engines).
#![forbid(unsafe_code)]

mod app;
mod generation;
pub mod openai;
mod serve;

pub use app::{router, ServerConfig};
pub use serve::{serve, shutdown_signal};
