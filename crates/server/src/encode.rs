//! Tokenizing and chat-template rendering off the async workers: those serve every route,
//! `/health` included, and two 7.5 MB prompts encoded on them froze the server for 13 s. Text
//! that could never fit the context is refused before any of that work.

use std::sync::Arc;

use uma_engine::{EngineError, EngineHandle, PromptEncoder, TokenId};
use uma_tokenizer::ChatMessage;

use crate::error::ApiError;

/// More bytes than any tokenizer puts in one token on average: text longer than this many
/// bytes per context position cannot fit, whatever it tokenizes to.
const MAX_BYTES_PER_TOKEN: usize = 64;

/// Refuses `bytes` of text that cannot fit `engine`'s context (the request's `field`).
pub(crate) fn check_fits(
    engine: &EngineHandle,
    bytes: usize,
    field: &'static str,
) -> Result<(), ApiError> {
    let context = engine.config().context_length;
    if bytes > context.saturating_mul(MAX_BYTES_PER_TOKEN) {
        let message = format!(
            "The {field} is {bytes} bytes: more than the {context}-token context can hold \
             (at most {} bytes, {MAX_BYTES_PER_TOKEN} per token), refused before tokenizing.",
            context * MAX_BYTES_PER_TOKEN
        );
        return Err(ApiError::invalid_request(message, Some(field)));
    }
    Ok(())
}

/// Cuts `text` (at a character boundary) to the most bytes `engine`'s context could hold, for
/// inputs that are truncated to the context anyway.
pub(crate) fn cut_to_fit(engine: &EngineHandle, text: &mut String) {
    let limit = engine.config().context_length.saturating_mul(MAX_BYTES_PER_TOKEN);
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Runs `encode` with the engine's prompt encoder on tokio's blocking pool.
pub(crate) async fn off_the_workers<T: Send + 'static>(
    engine: &EngineHandle,
    encode: impl FnOnce(&PromptEncoder) -> Result<T, EngineError> + Send + 'static,
) -> Result<Result<T, EngineError>, ApiError> {
    let encoder: Arc<PromptEncoder> = engine.prompt_encoder();
    tokio::task::spawn_blocking(move || encode(&encoder))
        .await
        .map_err(|error| ApiError::internal(format!("encoding the prompt failed: {error}")))
}

/// The tokens of `text` read raw (no template), off the workers, after [`check_fits`];
/// special-token spellings become those tokens only with `parse_special`.
pub(crate) async fn raw_tokens(
    engine: &EngineHandle,
    text: String,
    parse_special: bool,
    field: &'static str,
) -> Result<Result<Vec<TokenId>, EngineError>, ApiError> {
    check_fits(engine, text.len(), field)?;
    off_the_workers(engine, move |encoder| encoder.raw(&text, parse_special)).await
}

/// The size of the text a message puts into the template: its content, and its tool calls'
/// names and arguments (rendered as JSON) and its name and call id.
pub(crate) fn message_bytes(message: &ChatMessage) -> usize {
    let content = message.content.as_ref().map_or(0, text_bytes);
    let calls: usize = message
        .tool_calls
        .iter()
        .flatten()
        .map(|call| {
            let id = call.id.as_ref().map_or(0, String::len);
            call.function.name.len() + text_bytes(&call.function.arguments) + id
        })
        .sum();
    let strings = [&message.name, &message.tool_call_id, &message.reasoning];
    content + calls + strings.iter().map(|s| s.as_ref().map_or(0, String::len)).sum::<usize>()
}

/// The size of a JSON value as the template sees it: a string's text, anything else as JSON.
fn text_bytes(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(text) => text.len(),
        other => other.to_string().len(),
    }
}
