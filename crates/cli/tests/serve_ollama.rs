//! uma's Ollama API driven by the official `ollama` Python client (tests/ollama_client.py:
//! tags, show, ps, version, generate and chat whole and streamed, context continuation, options,
//! seeds, stop, keep-alive load and unload, `format` as "json" and as a pydantic schema, tools
//! called whole and streamed, tool results in the history, `think`, errors), plus what the client
//! hides: bodies sent without a JSON content type (as `curl -d` in Ollama's docs does), NDJSON
//! framing, and fields the client would refuse to send.
//!
//! The server serves Gemma 3 270M as `gemma` (quick, for the plain checks) and Qwen2.5-Coder
//! 1.5B Instruct as `qwen` (the tools model: its answers must parse, its calls must be right).

#[path = "common/server.rs"]
mod server;

use server::{request, run_client_script, venv_python, Server};
use uma_test_models::TestModel;

fn start_server() -> Server {
    let gemma = format!("gemma={}", uma_test_models::path(TestModel::Gemma3_270m).display());
    let qwen = format!("qwen={}", uma_test_models::path(TestModel::QwenCoder15b).display());
    Server::start_with(&[
        &gemma,
        &qwen,
        "--port",
        "0",
        "--threads",
        "2",
        "--ctx",
        "1024",
        "--parallel",
        "2",
    ])
}

#[test]
fn ollama_python_client_passes_against_uma_serve() {
    let server = start_server();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ollama_client.py");
    let args = ["--host", &server.base_url, "--model", "gemma", "--tools-model", "qwen"];
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

/// The 400 of `body` sent to `path`, checked to name `field` in its one `error` field.
fn assert_refused(server: &Server, path: &str, body: &str, field: &str) {
    let response = request(server.port, "POST", path, &[], body.as_bytes());
    assert_eq!(response.status, 400, "{body}: {}", response.text());
    let error = response.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains(field), "{field:?} in {error:?} for {body}");
}

#[test]
fn format_tools_and_think_fields_on_the_wire() {
    let server = start_server();
    // Values the Python client refuses to send itself.
    let chat = r#"{"model": "gemma", "messages": [{"role": "user", "content": "x"}]"#;
    for (fields, field) in [
        (r#""format": "xml""#, "format"),
        (r#""format": 7"#, "format"),
        (r#""think": "maybe""#, "think"),
        (r#""tools": "get_weather""#, "tools"),
        (r#""tools": [{"type": "retrieval"}]"#, "tools[0].type"),
        (r#""tools": [{"function": {"name": "f", "parameters": []}}]"#, "tools[0].parameters"),
    ] {
        assert_refused(&server, "/api/chat", &format!("{chat}, {fields}}}"), field);
    }
    let history = r#"{"model": "gemma", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}]}"#;
    assert_refused(&server, "/api/chat", history, "messages[0].tool_calls[0].function.arguments");
    let generate = r#"{"model": "gemma", "prompt": "x", "format": ["json"]}"#;
    assert_refused(&server, "/api/generate", generate, "format");
    let raw_bad_schema =
        r#"{"model": "gemma", "prompt": "x", "raw": true, "format": {"type": "no-such-type"}}"#;
    assert_refused(&server, "/api/generate", raw_bad_schema, "format");

    // A raw prompt follows a schema from its first token (no template, nothing parsed out).
    let body = br#"{"model": "gemma", "prompt": "Is the sky blue? Answer in JSON:", "raw": true, "stream": false, "options": {"temperature": 0, "num_predict": 16}, "format": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false}}"#;
    let response = request(server.port, "POST", "/api/generate", &[], body);
    assert_eq!(response.status, 200, "{}", response.text());
    let reply = response.json();
    let answer: serde_json::Value =
        serde_json::from_str(reply["response"].as_str().expect("response")).expect("JSON");
    assert!(answer["ok"].is_boolean(), "{reply}");
    assert_eq!(reply["done_reason"], "stop", "{reply}");
    assert!(reply.get("thinking").is_none(), "{reply}");
    assert!(server.stop().success());
}
