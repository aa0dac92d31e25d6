//! `uma serve` with two real models under one memory budget: both answer at once when they fit
//! together (and the process stays within the planned memory), the least recently used idle one
//! is unloaded when they do not, requests that arrive while a model loads wait for that one load,
//! keep-alive unloads idle models (per request and by default), and a model that cannot fit is
//! refused at start with the planner's breakdown.
//!
//! Linux only: memory is read from /proc. The tests take one lock, so their servers never share
//! the cores.

#![cfg(target_os = "linux")]

#[path = "common/server.rs"]
mod server;

use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::{request, Server};
use uma_test_models::TestModel;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn model_argument(name: &str, model: TestModel) -> String {
    format!("{name}={}", uma_test_models::path(model).display())
}

/// `uma serve gemma=… qwen=… --ctx 512 --parallel 2 ARGS…` on a free port.
fn start(args: &[&str]) -> Server {
    let gemma = model_argument("gemma", TestModel::Gemma3_270m);
    let qwen = model_argument("qwen", TestModel::QwenCoder05b);
    let fixed = [&gemma, &qwen, "--ctx", "512", "--parallel", "2", "--port", "0", "--threads", "2"];
    Server::start_with(&[&fixed[..], args].concat())
}

/// A short greedy chat with `model`; the response JSON (status checked).
fn chat(server: &Server, model: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Name one colour."}],
        "max_tokens": 8,
        "temperature": 0,
    });
    for (key, value) in extra.as_object().expect("an object") {
        body[key] = value.clone();
    }
    let response = post_chat(server, &body);
    assert_eq!(response.status, 200, "{model}: {}", response.text());
    let reply = response.json();
    assert_eq!(reply["model"], model);
    assert!(!reply["choices"][0]["message"]["content"].as_str().unwrap_or("").is_empty());
    reply
}

fn post_chat(server: &Server, body: &Value) -> server::Response {
    let json = [("Content-Type", "application/json")];
    request(server.port, "POST", "/v1/chat/completions", &json, body.to_string().as_bytes())
}

/// `GET /v1/models` as (id, status, memory_bytes), in order.
fn models(server: &Server) -> Vec<(String, String, u64)> {
    let list = request(server.port, "GET", "/v1/models", &[], b"").json();
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|model| {
            (
                model["id"].as_str().expect("id").to_owned(),
                model["status"].as_str().expect("status").to_owned(),
                model["memory_bytes"].as_u64().expect("memory_bytes"),
            )
        })
        .collect()
}

fn statuses(server: &Server) -> Vec<String> {
    models(server).into_iter().map(|(_, status, _)| status).collect()
}

fn health(server: &Server) -> Value {
    request(server.port, "GET", "/health", &[], b"").json()
}

/// Polls until the statuses are `expected`, for up to 20 s.
fn wait_for_statuses(server: &Server, expected: &[&str]) {
    let start = Instant::now();
    while statuses(server) != expected {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "statuses stayed {:?}, expected {expected:?}",
            statuses(server)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The planned memory of each model (gemma, qwen), from a server with room for both.
fn planned_memory() -> (u64, u64) {
    let server = start(&["--memory", "8GB"]);
    let sizes = models(&server);
    assert!(server.stop().success());
    (sizes[0].2, sizes[1].2)
}

#[test]
fn two_models_answer_at_once_within_the_budget() {
    let _serial = serial();
    let server = start(&["--memory", "8GB"]);
    let listed = models(&server);
    assert_eq!(listed.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["gemma", "qwen"]);
    assert_eq!(statuses(&server), ["resident", "resident"], "both fit, both loaded at start");
    let planned: u64 = listed.iter().map(|m| m.2).sum();
    // Gemma 270M weighs ~250 MB, Qwen 0.5B ~400 MB (plus KV, scratch and tokenizers).
    assert!(listed[0].2 > 250_000_000 && listed[1].2 > 400_000_000, "{listed:?}");
    let health = health(&server);
    assert_eq!(health["memory_held_bytes"].as_u64(), Some(planned));
    assert_eq!(health["memory_budget_bytes"].as_u64(), Some(8_000_000_000));

    // Four requests to each model at once.
    let mut peak_resident = 0;
    thread::scope(|scope| {
        let workers: Vec<_> = ["gemma", "qwen", "gemma", "qwen", "gemma", "qwen", "gemma", "qwen"]
            .into_iter()
            .map(|model| {
                let server = &server;
                scope.spawn(move || {
                    chat(server, model, json!({"max_tokens": 48, "ignore_eos": true}))
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            peak_resident = peak_resident.max(server.resident_bytes());
            thread::sleep(Duration::from_millis(20));
        }
        for worker in workers {
            let reply = worker.join().expect("request thread");
            assert_eq!(reply["usage"]["completion_tokens"], 48);
        }
    });
    assert!(
        peak_resident <= planned,
        "the process held {peak_resident} bytes under load, more than the planned {planned}"
    );
    assert!(server.stop().success());
}

#[test]
fn the_least_recently_used_idle_model_makes_room_and_keep_alive_unloads() {
    let _serial = serial();
    let (gemma_bytes, qwen_bytes) = planned_memory();
    // Room for either model, not for both.
    let budget = (gemma_bytes.max(qwen_bytes) + gemma_bytes.min(qwen_bytes) / 2).to_string();
    let server = start(&["--memory", &budget, "--keep-alive", "-1"]);
    assert_eq!(statuses(&server), ["resident", "available"], "gemma is first and fits alone");

    // Two requests for qwen at once: one load, both answered, gemma unloaded for it.
    thread::scope(|scope| {
        let server = &server;
        let first = scope.spawn(move || chat(server, "qwen", json!({})));
        let second = scope.spawn(move || chat(server, "qwen", json!({})));
        first.join().expect("first");
        second.join().expect("second");
    });
    assert_eq!(statuses(&server), ["available", "resident"]);
    let log = server.stderr();
    assert_eq!(count(&log, "loading model=qwen"), 1, "one load served both requests:\n{log}");
    assert!(health(&server)["memory_held_bytes"].as_u64() == Some(qwen_bytes));

    // keep_alive 0 on the request: gemma comes back (qwen makes room) and leaves when done.
    chat(&server, "gemma", json!({"keep_alive": 0}));
    wait_for_statuses(&server, &["available", "available"]);
    // Its memory counts until its engine thread has exited, a moment later.
    let unloaded = Instant::now();
    while health(&server)["memory_held_bytes"].as_u64() != Some(0) {
        assert!(unloaded.elapsed() < Duration::from_secs(20), "gemma's memory was never released");
        thread::sleep(Duration::from_millis(50));
    }
    // A keep_alive that is not a duration is a 400 naming the problem.
    let body = json!({"model": "gemma", "messages": [{"role": "user", "content": "hi"}], "keep_alive": "soon"});
    let refused = post_chat(&server, &body);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("keep_alive"), "{}", refused.text());
    assert!(server.stop().success());

    // The default keep-alive unloads an idle model by itself.
    let server = start(&["--memory", &budget, "--keep-alive", "1s"]);
    let loaded = Instant::now();
    wait_for_statuses(&server, &["available", "available"]);
    assert!(loaded.elapsed() >= Duration::from_millis(500), "unloaded before its keep-alive");
    chat(&server, "qwen", json!({}));
    assert_eq!(statuses(&server), ["available", "resident"]);
    wait_for_statuses(&server, &["available", "available"]);
    assert!(server.stop().success());
}

#[test]
fn a_model_that_cannot_fit_is_refused_with_the_breakdown() {
    let _serial = serial();
    let output = Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(["serve", &model_argument("qwen", TestModel::QwenCoder05b), "--memory", "200MB"])
        .output()
        .expect("run uma serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in ["does not fit in the memory budget", "weights", "KV cache", "budget 200.00 MB"] {
        assert!(stderr.contains(part), "{part:?} missing from:\n{stderr}");
    }
    assert!(output.stdout.is_empty(), "it never listened");
}

#[test]
fn an_empty_api_key_is_refused_before_anything_loads() {
    for (flag, environment) in [(Some(""), None), (None, Some("  "))] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_uma"));
        command.args(["serve", &model_argument("qwen", TestModel::QwenCoder05b)]);
        command.env_remove("UMA_API_KEY");
        if let Some(key) = flag {
            command.args(["--api-key", key]);
        }
        if let Some(key) = environment {
            command.env("UMA_API_KEY", key);
        }
        let output = command.output().expect("run uma serve");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is empty"), "{stderr}");
        assert!(output.stdout.is_empty(), "it never listened");
    }
}

#[test]
fn sigterm_right_after_listening_drains_and_exits_cleanly() {
    let _serial = serial();
    // The handlers are installed before the address is announced: a signal at once is a clean
    // shutdown (exit 0), not death by SIGTERM.
    for _ in 0..3 {
        let gemma = model_argument("gemma", TestModel::Gemma3_270m);
        let server = Server::start_with(&[&gemma, "--port", "0", "--ctx", "256"]);
        assert!(server.stop().success());
    }
}
