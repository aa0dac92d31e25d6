//! `uma serve` as Anthropic clients use it: the official `anthropic` Python package drives
//! `POST /v1/messages` on a real server (tests/anthropic_client.py: plain messages, `system`,
//! multi-turn, prefill, stop sequences, streaming, cached tokens, `count_tokens`, tool calls
//! forced and answered with their results on the Qwen2.5-Coder 1.5B test model, structured
//! output, refused requests, the key as `x-api-key`), and raw HTTP checks what the client hides
//! (the SSE framing: each event's name is its data's `type`).
//!
//! The Python client lives in the venv made by `scripts/setup-test-clients.sh`
//! (`$UMA_TEST_VENV`, default `~/.cache/uma/venv-clients`).

#[path = "common/server.rs"]
mod server;

use serde_json::json;
use server::{request, start_text_and_tool_models, text_and_tool_client_passes};
use uma_test_models::TestModel;

const API_KEY: &str = "test-key";

/// With the 0.5B model for plain messages and the 1.5B one for tool calls.
#[test]
fn anthropic_python_client_passes_against_uma_serve() {
    text_and_tool_client_passes("anthropic_client.py", API_KEY);
}

#[test]
fn raw_http_sse_framing_and_errors() {
    let server = start_text_and_tool_models(API_KEY);
    let port = server.port;
    let headers = [("x-api-key", API_KEY), ("Content-Type", "application/json")];
    let model = TestModel::QwenCoder05b.stem();

    // The stream: `event: NAME` then `data: {"type": NAME, ...}`, from message_start to
    // message_stop, in Anthropic's order.
    let body = json!({
        "model": model, "max_tokens": 6, "temperature": 0, "stream": true,
        "messages": [{"role": "user", "content": "Say hi."}],
    });
    let sse = request(port, "POST", "/v1/messages", &headers, body.to_string().as_bytes());
    let events = sse.named_sse_events();
    let names: Vec<&str> =
        events.iter().filter_map(|event| event["type"].as_str()).filter(|&n| n != "ping").collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"], "{names:?}");
    assert_eq!(names[1], "content_block_start", "{names:?}");
    assert_eq!(names[names.len() - 3], "content_block_stop", "{names:?}");

    // Errors in Anthropic's shape, the field named: a 400 and the 401 of a wrong key.
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let refused = request(port, "POST", "/v1/messages", &headers, body.to_string().as_bytes());
    assert_eq!(refused.status, 400, "{}", refused.text());
    let error = refused.json();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert!(
        error["error"]["message"].as_str().is_some_and(|m| m.contains("max_tokens")),
        "{error}"
    );
    let wrong = [("x-api-key", "nope"), ("Content-Type", "application/json")];
    let denied = request(port, "POST", "/v1/messages", &wrong, body.to_string().as_bytes());
    assert_eq!(denied.status, 401, "{}", denied.text());
    assert_eq!(denied.json()["error"]["type"], "authentication_error", "{}", denied.text());
    // The key as `x-api-key` opens the other APIs' routes too.
    let models = request(port, "GET", "/v1/models", &headers, b"");
    assert_eq!(models.status, 200, "{}", models.text());

    server.stop_gracefully();
}
