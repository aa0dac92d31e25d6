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

use serde_json::{json, Value};
use server::{request, run_client_script, venv_python, Server};
use uma_test_models::TestModel;

const API_KEY: &str = "test-key";

/// `uma serve` with the 0.5B model (text) and the 1.5B one (function calls).
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
fn openai_responses_client_passes_against_uma_serve() {
    let python = venv_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/responses_client.py");
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
    assert!(out.contains("responses_client.py: all "), "no summary line:\n{out}{err}");
    stop_gracefully(server);
}

#[test]
fn raw_http_sse_framing_and_errors() {
    let server = start_server();
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
    assert_eq!(sse.status, 200, "{}", sse.text());
    let content_type = sse.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("text/event-stream"), "Content-Type {content_type:?}");
    let text = sse.text();
    let mut events: Vec<Value> = Vec::new();
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
        assert_eq!(data["sequence_number"], events.len(), "{event}");
        events.push(data);
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

    stop_gracefully(server);
}
