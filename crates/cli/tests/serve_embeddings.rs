//! Embeddings over HTTP: `uma serve --pooling mean` answers `/v1/embeddings`, `/api/embed` and
//! `/api/embeddings` with the same vectors, through the official `openai` and `ollama` clients
//! (tests/embeddings_client.py) and raw requests; a model without pooling says so.

#[path = "common/server.rs"]
mod server;

use serde_json::{json, Value};
use server::{request, run_client_script, venv_python, Server};
use uma_test_models::TestModel;

fn post(server: &Server, path: &str, body: &Value) -> server::Response {
    let json = [("Content-Type", "application/json")];
    request(server.port, "POST", path, &json, body.to_string().as_bytes())
}

#[test]
fn embeddings_through_both_apis_and_their_clients() {
    let qwen = format!("q={}", uma_test_models::path(TestModel::QwenCoder05b).display());
    let args =
        [qwen.as_str(), "--pooling", "mean", "--port", "0", "--threads", "2", "--ctx", "256"];
    let server = Server::start_with(&args);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/embeddings_client.py");
    let (out, err) = run_client_script(
        &venv_python(),
        script,
        &["--host", &server.base_url, "--model", "q"],
        &server,
    );
    assert!(out.contains("embeddings_client.py: ok"), "{out}{err}");

    // Token-id input, usage, and the refusals.
    let by_ids = post(&server, "/v1/embeddings", &json!({"model": "q", "input": [[9707, 1879]]}));
    assert_eq!(by_ids.status, 200, "{}", by_ids.text());
    assert_eq!(by_ids.json()["usage"]["prompt_tokens"], 2);
    let wrong_size =
        post(&server, "/v1/embeddings", &json!({"model": "q", "input": "x", "dimensions": 64}));
    assert_eq!(wrong_size.status, 400);
    assert!(wrong_size.text().contains("embedding size, 896"), "{}", wrong_size.text());
    let long = "word ".repeat(400);
    let too_long = post(&server, "/v1/embeddings", &json!({"model": "q", "input": long}));
    assert_eq!(too_long.status, 400, "{}", too_long.text());
    let cut = post(&server, "/api/embed", &json!({"model": "q", "input": long}));
    assert_eq!(cut.status, 200, "Ollama's default truncates: {}", cut.text());
    assert_eq!(cut.json()["prompt_eval_count"], 256);
    let refused =
        post(&server, "/api/embed", &json!({"model": "q", "input": long, "truncate": false}));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(server.stop().success());
}

#[test]
fn a_model_without_pooling_refuses_embeddings_clearly() {
    let gemma = format!("g={}", uma_test_models::path(TestModel::Gemma3_270m).display());
    let server =
        Server::start_with(&[gemma.as_str(), "--port", "0", "--threads", "2", "--ctx", "256"]);
    for (path, body) in [
        ("/v1/embeddings", json!({"model": "g", "input": "hello"})),
        ("/api/embed", json!({"model": "g", "input": "hello"})),
    ] {
        let response = post(&server, path, &body);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert!(response.text().contains("serves no embeddings"), "{path}: {}", response.text());
        assert!(response.text().contains("--pooling"), "the message says how: {}", response.text());
    }
    assert!(server.stop().success());
}
