//! uma's Ollama API driven by the official `ollama` Python client (tests/ollama_client.py:
//! tags, show, ps, version, generate and chat whole and streamed, context continuation, options,
//! seeds, stop, keep-alive load and unload, errors), plus what the client hides: bodies sent
//! without a JSON content type (as `curl -d` in Ollama's docs does) and NDJSON framing.

#[path = "common/server.rs"]
mod server;

use server::{request, run_client_script, venv_python, Server};
use uma_test_models::TestModel;

fn start_server() -> Server {
    let gemma = format!("gemma={}", uma_test_models::path(TestModel::Gemma3_270m).display());
    Server::start_with(&[
        &gemma,
        "--port",
        "0",
        "--threads",
        "2",
        "--ctx",
        "512",
        "--parallel",
        "2",
    ])
}

#[test]
fn ollama_python_client_passes_against_uma_serve() {
    let server = start_server();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ollama_client.py");
    let args = ["--host", &server.base_url, "--model", "gemma"];
    let (out, err) = run_client_script(&venv_python(), script, &args, &server);
    assert!(out.contains("ollama_client.py: all "), "no summary line:\n{out}{err}");
    assert!(server.stop().success());
}

#[test]
fn curl_style_bodies_and_ndjson_lines() {
    let server = start_server();
    // No Content-Type at all, and curl's default form type: both are read as JSON.
    let body = br#"{"model": "gemma", "prompt": "Hello", "raw": true, "options": {"num_predict": 3, "temperature": 0}}"#;
    for headers in [&[][..], &[("Content-Type", "application/x-www-form-urlencoded")][..]] {
        let response = request(server.port, "POST", "/api/generate", headers, body);
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("content-type"), Some("application/x-ndjson"));
        let lines: Vec<serde_json::Value> = response
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect();
        let last = lines.last().expect("lines");
        assert_eq!(last["done"], true);
        assert_eq!(last["eval_count"], 3);
        assert!(lines[..lines.len() - 1].iter().all(|line| line["done"] == false));
    }
    let broken = request(server.port, "POST", "/api/chat", &[], b"{\"model\": ");
    assert_eq!(broken.status, 400);
    assert!(broken.json()["error"].as_str().is_some_and(|e| e.contains("invalid request body")));
    // Gemma's template raises on two user turns in a row: the request's fault, a 400.
    let body = br#"{"model": "gemma", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}"#;
    let refused = request(server.port, "POST", "/api/chat", &[], body);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.json()["error"].as_str().is_some_and(|e| e.contains("alternate")));
    assert!(server.stop().success());
}
