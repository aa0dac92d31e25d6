//! `uma serve` as clients of OpenAI's Responses API use it: the official `openai` Python package
//! drives `POST /v1/responses` on a real server (tests/responses_client.py: text and item input,
//! `instructions`, multi-turn items, streaming, `previous_response_id` with retrieval and
//! deletion, function calls forced and answered with `function_call_output` on the Qwen2.5-Coder
//! 1.5B test model, `responses.parse` with a Pydantic model, refused requests, the key), and raw
//! HTTP checks what the client hides (the SSE framing: each event's name is its data's `type`,
//! numbered in order).
//!
//! The Python client lives in the venv made by `scripts/setup-test-clients.sh`
//! (`$UMA_TEST_VENV`, default `~/.cache/uma/venv-clients`).

#[path = "common/server.rs"]
mod server;

use serde_json::json;
use server::{request, start_text_and_tool_models, text_and_tool_client_passes};
use uma_test_models::TestModel;

const API_KEY: &str = "test-key";

/// With the 0.5B model for text and the 1.5B one for function calls.
#[test]
fn openai_responses_client_passes_against_uma_serve() {
    text_and_tool_client_passes("responses_client.py", API_KEY);
}

#[test]
fn raw_http_sse_framing_and_errors() {
    let server = start_text_and_tool_models(API_KEY);
    let port = server.port;
    let auth = format!("Bearer {API_KEY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let model = TestModel::QwenCoder05b.stem();

    // The stream: `event: TYPE` then `data: {"type": TYPE, "sequence_number": N, ...}`, N
    // counting from 0, from response.created to response.completed (or .incomplete).
    let body = json!({
        "model": model, "input": "Say hi.", "max_output_tokens": 6, "temperature": 0,
        "stream": true,
    });
    let sse = request(port, "POST", "/v1/responses", &headers, body.to_string().as_bytes());
    let events = sse.named_sse_events();
    for (number, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], number, "{event}");
    }
    let kinds: Vec<&str> = events.iter().filter_map(|event| event["type"].as_str()).collect();
    assert_eq!(kinds[..2], ["response.created", "response.in_progress"], "{kinds:?}");
    let last = events.last().expect("events");
    assert!(
        ["response.completed", "response.incomplete"].contains(&kinds[kinds.len() - 1]),
        "{kinds:?}"
    );
    let id = last["response"]["id"].as_str().expect("an id").to_owned();
    assert_eq!(events[0]["response"]["id"], id.as_str());
    assert_eq!(last["response"]["usage"]["output_tokens"], 6, "{last}");

    // The streamed response is kept like any other: GET returns it, DELETE forgets it.
    let path = format!("/v1/responses/{id}");
    let kept = request(port, "GET", &path, &headers, b"");
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(kept.json()["output"], last["response"]["output"]);
    let deleted = request(port, "DELETE", &path, &headers, b"");
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"], true);
    let gone = request(port, "GET", &path, &headers, b"");
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert!(gone.json()["error"]["message"].is_string(), "{}", gone.text());

    // A request error is OpenAI's error object, naming the field.
    let body = json!({"model": model});
    let refused = request(port, "POST", "/v1/responses", &headers, body.to_string().as_bytes());
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["error"]["param"], "input", "{}", refused.text());

    server.stop_gracefully();
}
