//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden, and may change at will).
//!
//! Each function takes a request body as bytes and does what its route does with it before the
//! engine is involved: deserialize it as the route's extractor does, then run every check and
//! conversion the route runs without a model (sampling parameters, messages, prompts, inputs,
//! `keep_alive`, ...), and render the error a refused request gets. Results are discarded: what
//! a fuzzer looks for is a panic, an allocation out of proportion to the body, or a hang. A few
//! invariants the later steps of each route rely on are asserted, so that breaking them is a
//! crash too.

use std::hint::black_box;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::Json;
use serde::de::DeserializeOwned;
use uma_engine::KeepAlive;
use uma_tokenizer::ChatMessage;

use crate::anthropic::MessagesRequest;
use crate::error::ApiError;
use crate::keep_alive::{parse_keep_alive, KeepAliveField};
use crate::ollama::{
    ChatRequest, EmbedRequest, GenerateRequest, LegacyEmbeddingsRequest, Options, ShowRequest,
};
use crate::openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingRequest, PromptInput, WithGenerationFields,
    MAX_CHOICES, MAX_EMBEDDING_INPUTS,
};
use crate::responses::ResponsesRequest;
use crate::tools::{OutputOptions, ToolChoice, MAX_TEMPLATE_KWARGS, MAX_TOOLS};

/// An entry point: a request body in, nothing out.
pub type EntryPoint = fn(&[u8]);

/// Every entry point, by name, for a target that picks one per input.
pub const REQUEST_KINDS: &[(&str, EntryPoint)] = &[
    ("openai_chat_completions", openai_chat_completions),
    ("openai_completions", openai_completions),
    ("openai_embeddings", openai_embeddings),
    ("ollama_generate", ollama_generate),
    ("ollama_chat", ollama_chat),
    ("ollama_embed", ollama_embed),
    ("ollama_embeddings", ollama_embeddings),
    ("ollama_show", ollama_show),
    ("keep_alive", keep_alive),
    // Appended, so that the seeds' selectors keep their routes.
    ("anthropic_messages", anthropic_messages),
    ("openai_responses", openai_responses),
];

/// `POST /v1/messages` (and `count_tokens`) up to leasing the model.
pub fn anthropic_messages(body: &[u8]) {
    render(openai_body::<MessagesRequest>(body).and_then(|request| {
        let params = request.sampling_params()?;
        assert!(params.validate().is_ok());
        let conversation = request.conversation()?;
        let options = request.output_options()?;
        check_output_options(&options);
        black_box((params, conversation, options, request.stream()));
        Ok(())
    }));
}

/// `POST /v1/responses` up to looking up `previous_response_id`.
pub fn openai_responses(body: &[u8]) {
    render(openai_body::<ResponsesRequest>(body).and_then(|request| {
        let params = request.sampling_params()?;
        assert!(params.validate().is_ok());
        let options = request.output_options()?;
        check_output_options(&options);
        let input = request.input_messages()?;
        black_box((params, options, input, request.stream(), request.store()));
        Ok(())
    }));
}

/// What `prepare_chat` relies on: tools bounded and named, a named choice among them.
fn check_output_options(options: &OutputOptions) {
    assert!(options.tools.len() <= MAX_TOOLS);
    assert!(options.template_kwargs.len() <= MAX_TEMPLATE_KWARGS);
    if let ToolChoice::Function(name) = &options.tool_choice {
        assert!(options.tools.iter().any(|tool| &tool.name == name));
    }
    black_box(options.template_tools());
}

/// `POST /v1/chat/completions` up to tokenizing the messages.
pub fn openai_chat_completions(body: &[u8]) {
    render(openai_chat_checks(body));
}

/// `POST /v1/completions` up to tokenizing the prompts.
pub fn openai_completions(body: &[u8]) {
    render(openai_completion_checks(body));
}

/// `POST /v1/embeddings` up to tokenizing the inputs.
pub fn openai_embeddings(body: &[u8]) {
    render(openai_embedding_checks(body));
}

/// `POST /api/generate` up to leasing the model.
pub fn ollama_generate(body: &[u8]) {
    render(ollama_generate_checks(body));
}

/// `POST /api/chat` up to leasing the model.
pub fn ollama_chat(body: &[u8]) {
    render(ollama_chat_checks(body));
}

/// `POST /api/embed` up to leasing the model.
pub fn ollama_embed(body: &[u8]) {
    render(ollama_embed_checks(body));
}

/// `POST /api/embeddings` (Ollama's older embedding route) up to leasing the model.
pub fn ollama_embeddings(body: &[u8]) {
    render(ollama_body::<LegacyEmbeddingsRequest>(body).map(|request| {
        black_box((request.model, request.prompt, keep_alive_of(request.keep_alive)));
    }));
}

/// `POST /api/show` up to looking the model up.
pub fn ollama_show(body: &[u8]) {
    render(ollama_body::<ShowRequest>(body).and_then(|request| {
        let name = request.model.or(request.name);
        let name =
            name.ok_or_else(|| ApiError::invalid_request("`model` is required", Some("model")))?;
        black_box(name);
        Ok(())
    }));
}

/// A `keep_alive` field: the body as the field's JSON value, and the body as a duration string.
pub fn keep_alive(body: &[u8]) {
    if let Ok(field) = serde_json::from_slice::<KeepAliveField>(body) {
        check_keep_alive(field.0);
    }
    if let Ok(keep_alive) = parse_keep_alive(&String::from_utf8_lossy(body)) {
        check_keep_alive(keep_alive);
    }
}

/// Renders a refusal as the routes do (the Ollama routes send the same message in their own
/// shape), so that every error message is formatted and serialized.
fn render(result: Result<(), ApiError>) {
    if let Err(error) = result {
        black_box(error.into_response());
    }
}

/// The registry adds a keep-alive to clocks and timestamps: it must stay within a century.
fn check_keep_alive(keep_alive: KeepAlive) {
    if let KeepAlive::For(duration) = keep_alive {
        assert!(duration <= Duration::from_secs(100 * 366 * 86_400), "{duration:?}");
    }
}

fn keep_alive_of(field: Option<KeepAliveField>) -> Option<KeepAlive> {
    let keep_alive = field.map(|field| field.0);
    if let Some(keep_alive) = keep_alive {
        check_keep_alive(keep_alive);
    }
    keep_alive
}

/// The OpenAI routes' extractor: axum's `Json`, its rejection turned into the route's error.
fn openai_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    Ok(Json::<T>::from_bytes(body)?.0)
}

/// The Ollama routes' parsing (`ollama::routes::parsed`): any content type, then serde_json.
fn ollama_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_request(format!("invalid request body: {error}"), None))
}

fn openai_chat_checks(body: &[u8]) -> Result<(), ApiError> {
    let request: ChatCompletionRequest = openai_body(body)?;
    let params = request.sampling_params()?;
    let messages = request.chat_messages()?;
    let options = request.output_options()?;
    check_output_options(&options);
    let keep_alive = keep_alive_of(request.keep_alive);
    // What the route hands the generation; `sampling_params` checked `n`.
    let n = request.n();
    assert!((1..=MAX_CHOICES).contains(&n), "n = {n}");
    assert!(params.validate().is_ok());
    assert_eq!(params.logprobs, request.logprobs());
    assert!(!messages.is_empty());
    black_box((params, messages, keep_alive, request.stream(), request.include_usage()));
    Ok(())
}

fn openai_completion_checks(body: &[u8]) -> Result<(), ApiError> {
    let request: CompletionRequest = openai_body(body)?;
    let params = request.sampling_params()?;
    let keep_alive = keep_alive_of(request.keep_alive);
    let n = request.n();
    assert!((1..=MAX_CHOICES).contains(&n), "n = {n}");
    assert!(params.validate().is_ok());
    let prompts = request.prompts();
    assert!(!prompts.is_empty());
    for prompt in prompts {
        match prompt {
            PromptInput::Text(text) => black_box(text.len()),
            PromptInput::TokenIds(ids) => {
                assert!(!ids.is_empty());
                black_box(ids.iter().max().copied().unwrap_or(0) as usize)
            }
        };
    }
    // Generation::submit's count of sequences.
    black_box(prompts.len().saturating_mul(n as usize));
    let parse_special = request.parse_special == Some(true);
    black_box((params, keep_alive, parse_special, request.stream(), request.include_usage()));
    black_box(request.logprobs());
    Ok(())
}

fn openai_embedding_checks(body: &[u8]) -> Result<(), ApiError> {
    let request: EmbeddingRequest = openai_body(body)?;
    let items = request.items()?;
    let base64 = request.base64()?;
    let keep_alive = keep_alive_of(request.keep_alive);
    assert!((1..=MAX_EMBEDDING_INPUTS).contains(&items.len()));
    black_box((items, base64, keep_alive, request.dimensions));
    Ok(())
}

fn ollama_generate_checks(body: &[u8]) -> Result<(), ApiError> {
    let request: GenerateRequest = ollama_body(body)?;
    request.check_supported()?;
    let keep_alive = keep_alive_of(request.keep_alive);
    if request.is_load_only() {
        // The route only loads (or unloads) the model.
        black_box((request.model, keep_alive));
        return Ok(());
    }
    let params = Options::sampling_params(request.options.as_ref())?;
    assert!(params.validate().is_ok());
    let context = request.context.clone().unwrap_or_default();
    let text = request.prompt.clone().unwrap_or_default();
    // Raw prompts are tokenized as they are; others go through the chat template as a system
    // message (when given) and a user message.
    let parse_special = request.raw == Some(true) && request.parse_special == Some(true);
    let messages = if request.raw == Some(true) {
        Vec::new()
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(text.clone()));
        messages
    };
    black_box((params, context, text, messages, parse_special, keep_alive));
    black_box(request.stream.unwrap_or(true));
    Ok(())
}

fn ollama_chat_checks(body: &[u8]) -> Result<(), ApiError> {
    let request: ChatRequest = ollama_body(body)?;
    request.check_supported()?;
    let keep_alive = keep_alive_of(request.keep_alive);
    let messages = request.chat_messages()?;
    check_output_options(&request.output_options()?);
    black_box(request.think()?);
    if messages.is_empty() {
        // The route only loads (or unloads) the model.
        black_box((request.model, keep_alive));
        return Ok(());
    }
    let params = Options::sampling_params(request.options.as_ref())?;
    assert!(params.validate().is_ok());
    black_box((params, messages, keep_alive, request.stream.unwrap_or(true)));
    Ok(())
}

fn ollama_embed_checks(body: &[u8]) -> Result<(), ApiError> {
    let request: EmbedRequest = ollama_body(body)?;
    let texts = request.texts()?;
    let keep_alive = keep_alive_of(request.keep_alive);
    assert!(!texts.is_empty() && texts.iter().all(|text| !text.is_empty()));
    black_box((texts, keep_alive, request.truncate.unwrap_or(true)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry point takes valid requests, refusals and garbage without panicking.
    #[test]
    fn entry_points_take_any_body() {
        let bodies: &[&[u8]] = &[
            br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}"#,
            br#"{"model": "m", "prompt": [[1, 2], [3]], "logprobs": 2, "keep_alive": "5m"}"#,
            br#"{"model": "m", "input": ["a", "b"], "encoding_format": "base64"}"#,
            br#"{"model": "m", "prompt": "hi", "system": "s", "options": {"num_predict": 9}}"#,
            br#"{"model": "m", "messages": [], "keep_alive": 0}"#,
            br#"{"model": "m", "input": "a", "truncate": false}"#,
            br#"{"name": "m"}"#,
            br#""1h30m""#,
            br#"{"model": "m", "temperature": "hot"}"#,
            br#"{"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}], "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "f"}}"#,
            br#"{"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}], "tools": [{"type": "function", "name": "f"}], "text": {"format": {"type": "json_object"}}}"#,
            br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required", "chat_template_kwargs": {"enable_thinking": false}}"#,
            b"\xff\xfe not json",
            b"",
        ];
        for (_, run) in REQUEST_KINDS {
            for body in bodies {
                run(body);
            }
        }
    }
}
