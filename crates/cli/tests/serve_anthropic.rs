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

use serde_json::{json, Value};
use server::{request, run_client_script, venv_python, Server};
use uma_test_models::TestModel;

const API_KEY: &str = "test-key";

/// `uma serve` with the 0.5B model (plain messages) and the 1.5B one (tool calls).
fn start_server() -> Server {
    let small = uma_test_models::path(TestModel::QwenCoder05b);
    let tools = uma_test_models::path(TestModel::QwenCoder15b);
    let (small, tools) = (small.to_str().expect("UTF-8"), tools.to_str().expect("UTF-8"));
    let args = [small, tools, "--port", "0", "--ctx", "2048", "--parallel", "2"];
    Server::start_with(&[&args[..], &["--api-key", API_KEY, "--threads", "2"]].concat())
}

fn stop_gracefully(server: Server) {
    let stderr_tail = server.stderr_tail(4000);
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}; stderr:\n{stderr_tail}");
}

#[test]
fn anthropic_python_client_passes_against_uma_serve() {
    let python = venv_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/anthropic_client.py");
    let server = start_server();
    let args = [
        "--base-url",
        &server.base_url,
        "--model",
        TestModel::QwenCoder05b.stem(),
        "--tool-model",
        TestModel::QwenCoder15b.stem(),
        "--api-key",
        API_KEY,
    ];
    let (out, err) = run_client_script(&python, script, &args, &server);
    assert!(out.contains("anthropic_client.py: all "), "no summary line:\n{out}{err}");
    stop_gracefully(server);
}

#[test]
fn raw_http_sse_framing_and_errors() {
    let server = start_server();
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
    assert_eq!(sse.status, 200, "{}", sse.text());
    let content_type = sse.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("text/event-stream"), "Content-Type {content_type:?}");
    let text = sse.text();
    let mut names = Vec::new();
    for event in text.split("\n\n").map(str::trim).filter(|event| !event.is_empty()) {
        let mut lines = event.lines().filter(|line| !line.starts_with(':')).peekable();
        if lines.peek().is_none() {
            continue; // A keep-alive comment.
        }
        let name = lines.next().and_then(|line| line.strip_prefix("event: "));
        let data = lines.next().and_then(|line| line.strip_prefix("data: "));
        let (Some(name), Some(data)) = (name, data) else { panic!("event {event:?} in {text:?}") };
        let data: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(data["type"], name, "{event}");
        names.push(name.to_owned());
    }
    let names: Vec<&str> = names.iter().map(String::as_str).filter(|&n| n != "ping").collect();
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

    stop_gracefully(server);
}
