//! `uma serve` as OpenAI clients use it: the official `openai` Python package drives a real
//! server over the Qwen2.5-Coder 0.5B test model (tests/openai_client.py: chat and completions,
//! streaming, n, stop, logprobs, seeds, cached tokens, errors, the API key), and raw HTTP checks
//! what client libraries hide (status codes, headers, the SSE framing). Each test starts its own
//! server on a free port of 127.0.0.1 and stops it with SIGTERM, which must exit with code 0.
//!
//! The Python client lives in a venv made by `scripts/setup-test-clients.sh`
//! (`$UMA_TEST_VENV`, default `~/.cache/uma/venv-clients`); without it the test fails and says
//! how to make it.

#[path = "common/server.rs"]
mod server;

use serde_json::Value;
use server::{request, request_large_body, run_client_checks, venv_python, Server};
use uma_test_models::TestModel;

const API_KEY: &str = "test-key";
const CONTEXT: &str = "1024";

/// `uma serve MODEL --port 0 --ctx 1024 --parallel 4 --api-key test-key --threads 2`.
fn start_server() -> Server {
    let model = uma_test_models::path(TestModel::QwenCoder05b);
    let listen = ["--port", "0", "--ctx", CONTEXT, "--parallel", "4"];
    Server::start(&model, &[&listen[..], &["--api-key", API_KEY, "--threads", "2"]].concat())
}

#[test]
fn openai_python_client_passes_against_uma_serve() {
    let python = venv_python();
    let model_id = TestModel::QwenCoder05b.stem();
    let server = start_server();

    let args = ["--base-url", &server.base_url, "--model", model_id];
    let args = [&args[..], &["--context", CONTEXT, "--api-key", API_KEY]].concat();
    run_client_checks(&python, "openai_client.py", &args, &server);
    server.stop_gracefully_after_one_stdout_line();
}

fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {API_KEY}"))
}

#[test]
fn raw_http_status_codes_headers_and_sse_framing() {
    let server = start_server();
    let port = server.port;
    let (auth_name, auth_value) = auth();
    let authorized = [(auth_name, auth_value.as_str()), ("Content-Type", "application/json")];

    // /health: 200 JSON, no key needed.
    let health = request(port, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(health.header("content-type").is_some_and(|v| v.starts_with("application/json")));
    assert!(health.json().is_object());

    // Every other route needs the key: 401 with the OpenAI error JSON.
    let denied = request(port, "GET", "/v1/models", &[], b"");
    assert_eq!(denied.status, 401, "{}", denied.text());
    assert_error_json(&denied.json());
    let wrong = request(port, "GET", "/v1/models", &[("Authorization", "Bearer nope")], b"");
    assert_eq!(wrong.status, 401, "{}", wrong.text());

    // A body over the limit (default --max-body-bytes: 8 MiB) is 413, before it is read whole.
    let big = request_large_body(port, "/v1/chat/completions", &authorized, 16 << 20);
    assert_eq!(big.status, 413, "{}", big.text());
    assert_error_json(&big.json());

    // More sequences than the engine ever holds (5 prompts × 16 choices; --parallel 4 holds 4
    // running and 64 queued): a 400 saying so, not a 429 that retrying never cures.
    let body = serde_json::json!({
        "model": TestModel::QwenCoder05b.stem(), "prompt": ["a", "b", "c", "d", "e"], "n": 16,
        "max_tokens": 1,
    });
    let never = request(port, "POST", "/v1/completions", &authorized, body.to_string().as_bytes());
    assert_eq!(never.status, 400, "{}", never.text());
    let message = never.json()["error"]["message"].as_str().unwrap_or("").to_owned();
    assert!(message.contains("80 sequences") && message.contains("at most 68"), "{message}");

    // Web pages: a foreign Origin is refused, a local page is not; on loopback, a foreign Host
    // name (DNS rebinding) is refused too.
    let foreign = request(port, "GET", "/health", &[("Origin", "https://evil.example")], b"");
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    assert_error_json(&foreign.json());
    let local = request(port, "GET", "/health", &[("Origin", "http://localhost:5173")], b"");
    assert_eq!(local.status, 200, "{}", local.text());
    let mut rebound = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::io::Write::write_all(
        &mut rebound,
        b"GET /health HTTP/1.1\r\nHost: attacker.example:8080\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut rebound, &mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    // A known route with the wrong method: 405 with the error JSON, not an empty body.
    let wrong_method = request(port, "GET", "/v1/chat/completions", &authorized, b"");
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.text());
    assert_error_json(&wrong_method.json());

    // Text longer than the context could ever hold (64 bytes a position) is a 400 before any
    // tokenizing, on the chat and completion routes; /health still answers at once.
    let context: usize = CONTEXT.parse().expect("a number");
    let long = "a".repeat(context * 64 + 1);
    let model = TestModel::QwenCoder05b.stem();
    for (route, body) in [
        (
            "/v1/chat/completions",
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": long}]}),
        ),
        ("/v1/completions", serde_json::json!({"model": model, "prompt": long})),
    ] {
        let refused = request(port, "POST", route, &authorized, body.to_string().as_bytes());
        assert_eq!(refused.status, 400, "{route}: {}", refused.text());
        let message = refused.json()["error"]["message"].as_str().unwrap_or("").to_owned();
        assert!(message.contains("refused before tokenizing"), "{route}: {message}");
    }
    assert_eq!(request(port, "GET", "/health", &[], b"").status, 200);

    // Streaming: text/event-stream, `data: {chunk}` events, closed by `data: [DONE]`.
    let body = serde_json::json!({
        "model": TestModel::QwenCoder05b.stem(),
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
        "temperature": 0,
        "stream": true,
    });
    let sse =
        request(port, "POST", "/v1/chat/completions", &authorized, body.to_string().as_bytes());
    assert_eq!(sse.status, 200, "{}", sse.text());
    let content_type = sse.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("text/event-stream"), "Content-Type {content_type:?}");
    let text = sse.text();
    let events: Vec<&str> = text.split("\n\n").map(str::trim).filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "the stream ends with [DONE]: {text:?}");
    assert!(events.len() >= 3, "role, content and finish chunks: {text:?}");
    for event in &events[..events.len() - 1] {
        let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("event {event:?}"));
        let chunk: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
    }

    server.stop_gracefully_after_one_stdout_line();
}

fn assert_error_json(body: &Value) {
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    assert!(error["type"].as_str().is_some_and(|t| !t.is_empty()), "type in {body}");
    for key in ["param", "code"] {
        assert!(error.get(key).is_some(), "{key} in {body}");
    }
}
