//! Ollama's API on the same server and models: `POST /api/generate` and `POST /api/chat`
//! (NDJSON streams by default, or one object with `"stream": false`), `GET /api/tags`,
//! `POST /api/show`, `GET /api/ps`, `GET /api/version`. Requests share the OpenAI routes'
//! models, engines, generations, errors and memory registry; only the wire format differs.
//! `options` map to sampling parameters with Ollama's defaults; `keep_alive` sets how long the
//! model stays loaded; an empty prompt only loads (or with `keep_alive: 0` unloads) the model, as
//! in Ollama. `format` (`"json"` or a JSON Schema), `/api/chat`'s `tools` (and tool calls and
//! tool results in its history) and `think` go through the same protocol-neutral layer as the
//! OpenAI routes' (`crate::tools`): the answer follows the format's grammar, and its reasoning
//! and tool calls come back parsed as Ollama returns them (`thinking`, `message.tool_calls`).
//! Images are refused.

mod answer;
mod request;
mod response;
mod routes;

// For `crate::fuzzing`, which runs these requests' parsing and checks without an engine.
pub(crate) use request::{
    ChatRequest, EmbedRequest, GenerateRequest, LegacyEmbeddingsRequest, Options, ShowRequest,
};
pub(crate) use response::OllamaError;
pub(crate) use routes::router;
