//! OpenAI's Responses API: `POST /v1/responses` (`input` as text or items, `instructions`,
//! function `tools` with `function_call` / `function_call_output` items, `text.format` JSON
//! formats, `previous_response_id`; a response object or its SSE events, from
//! `response.created` to `response.completed`), `GET` and `DELETE /v1/responses/{id}`.
//!
//! Owns: the request body and its conversion to chat messages, output options and sampling
//! parameters (`request`), the output items and events folded from the parsed output
//! (`output`), and the store of past responses, in memory and bounded (`store`).
//!
//! Does not own: the tools, their grammar and the parsing of the output (`tools.rs`), running the
//! generation (`generation.rs`), the error object (`error.rs`: errors are OpenAI's). Unknown
//! request fields are ignored, as on the chat route; unknown items and content parts are refused.

mod output;
mod request;
mod routes;
mod store;

pub(crate) use request::ResponsesRequest;
pub(crate) use routes::router;
pub(crate) use store::ResponseStore;
