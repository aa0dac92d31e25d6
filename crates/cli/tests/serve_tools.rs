//! Tool calling and structured output of `uma serve`, end to end through the official clients:
//! the `openai` Python package and the `openai-agents` framework drive a real server
//! (tests/tools_client.py, which says what each check asserts). Qwen2.5-Coder 1.5B answers the
//! tool calls and the agent; the 0.5B model answers the structured-output loop (150 constrained
//! answers at temperature 1.0, where the grammar is under test, not the model) and the bad
//! requests.
//!
//! Each test starts its own server on a free port of 127.0.0.1 and stops it with SIGTERM, which
//! must exit with code 0. The tests take turns (one lock): each runs a model on every core.
//!
//! The Python clients live in a venv made by `scripts/setup-test-clients.sh`
//! (`$UMA_TEST_VENV`, default `~/.cache/uma/venv-clients`); without it the tests fail and say
//! how to make it.

#[path = "common/server.rs"]
mod server;

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use server::{run_client_script, venv_python, Server};
use uma_test_models::TestModel;

const API_KEY: &str = "test-key";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools_client.py");

/// One server, and so one model computing, at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `uma serve MODEL --port 0 --ctx 2048 --parallel PARALLEL --api-key test-key --threads 2`.
fn start_server(model: TestModel, parallel: &str) -> Server {
    let path = uma_test_models::path(model);
    let args = ["--port", "0", "--ctx", "2048", "--parallel", parallel, "--threads", "2"];
    Server::start(&path, &[&args[..], &["--api-key", API_KEY]].concat())
}

/// Runs the checks `only` of tools_client.py against a fresh server of `model`, prints what
/// they report, and checks that all of them passed.
fn run_checks(model: TestModel, parallel: &str, only: &[&str], extra: &[&str]) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let python = venv_python();
    let started = Instant::now();
    let server = start_server(model, parallel);
    let mut args = vec!["--base-url", server.base_url.as_str(), "--model", model.stem()];
    args.extend(["--api-key", API_KEY]);
    for &check in only {
        args.extend(["--only", check]);
    }
    args.extend_from_slice(extra);
    let (out, err) = run_client_script(&python, SCRIPT, &args, &server);
    // The measurements (wall times, token counts, the answers) are part of the result.
    println!("{out}");
    assert!(
        out.contains(&format!("tools_client.py: all {} checks ok", only.len())),
        "no summary line:\n{out}{err}"
    );
    server.stop_gracefully_after_one_stdout_line();
    println!("{} with its server: {:.1} s", only.join(", "), started.elapsed().as_secs_f64());
}

#[test]
fn tool_calls_streamed_fed_back_and_parsed_through_the_openai_client() {
    let checks =
        ["required_calls", "streamed_calls", "named_call", "tool_results_answer", "parse_pydantic"];
    run_checks(TestModel::QwenCoder15b, "4", &checks, &[]);
}

#[test]
fn an_agent_framework_calls_two_tools_and_answers_with_their_results() {
    run_checks(TestModel::QwenCoder15b, "4", &["agent_two_tools"], &[]);
}

#[test]
fn structured_output_at_temperature_one_always_validates() {
    let extra = ["--concurrency", "16", "--prompts", "50"];
    run_checks(TestModel::QwenCoder05b, "16", &["structured_output"], &extra);
}

#[test]
fn bad_tool_and_format_requests_are_400s_naming_the_field() {
    run_checks(TestModel::QwenCoder05b, "4", &["bad_requests"], &[]);
}
