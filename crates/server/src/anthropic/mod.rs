//! Anthropic's Messages API: `POST /v1/messages` (`system`, content blocks, `tools` with
//! `tool_use` / `tool_result`, `tool_choice`, `stop_sequences`, `thinking`, `output_config`
//! formats; a `message` body or its SSE events) and `POST /v1/messages/count_tokens`. Clients
//! send their key as `x-api-key` (the router accepts it as well as `Authorization: Bearer`).
//!
//! Owns: the request body and its conversion to chat messages, output options and sampling
//! parameters (`request`), the response, event and error shapes (`response`, `answer`).
//!
//! Does not own: the tools, their grammar and the parsing of the output (`tools.rs`), running the
//! generation (`generation.rs`), errors' statuses (`error.rs`; [`AnthropicError`] only reshapes
//! them). Unknown request fields are ignored, as on the OpenAI routes; unknown content blocks are
//! refused.

mod answer;
mod request;
mod response;
mod routes;

pub(crate) use request::MessagesRequest;
pub(crate) use response::AnthropicError;
pub(crate) use routes::router;
