//! `--device` end to end: `uma serve --device gpu` answers like `--device cpu` on the tiny model
//! of every architecture (greedy, the same tokens up to a near-tie of the CPU's own top two, which
//! the test prints), streams, and `uma run` and `uma bench` take the flag; a missing GPU is one
//! clear error with `--device gpu` and a fall-back to the CPU with `--device auto`.
//!
//! The GPU is whatever the machine has (lavapipe in CI). Without one, the GPU tests say so and
//! pass, unless `UMA_REQUIRE_GPU=1` (CI) makes that a failure.

#[path = "common/server.rs"]
mod server;

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use server::{request, Server};

/// Greedy tokens may part where the CPU's two best tokens are this close (in log-probability):
/// f32 activations on the GPU against Q8-quantized ones on the CPU move logits by about 1%.
const NEAR_TIE: f64 = 0.05;

/// Whether a GPU opens (`uma bench --device gpu` on a tiny model), or `None` when the machine
/// has none and none is required.
fn gpu_present(model: &Path) -> bool {
    let output =
        uma(&["bench", path(model), "--device", "gpu", "-p", "8", "-n", "4", "-r", "1"], &[]);
    if output.status.success() {
        return true;
    }
    let required = std::env::var_os("UMA_REQUIRE_GPU").is_some_and(|v| v != "0");
    let stderr = common::text(&output.stderr);
    assert!(!required, "UMA_REQUIRE_GPU is set and uma bench --device gpu failed:\n{stderr}");
    eprintln!("SKIPPED: no GPU ({stderr})");
    false
}

fn uma(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run uma")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The tiny model of `arch`, written to a temporary file.
fn tiny_model(dir: &Path, arch: &str) -> PathBuf {
    let file = dir.join(format!("tiny-{arch}.gguf"));
    uma_test_models::tiny::write_tiny_model(arch, &file).expect("write the tiny model");
    file
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uma-device-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Greedy completion of `prompt` with the top two log-probabilities of every token.
fn complete(server: &Server, model: &str, prompt: &str) -> Value {
    let body = json!({
        "model": model, "prompt": prompt, "max_tokens": 16, "temperature": 0, "logprobs": 2
    });
    let response = request(
        server.port,
        "POST",
        "/v1/completions",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// The gap between the two best log-probabilities at position `i` of `answer`.
fn top2_gap(answer: &Value, i: usize) -> f64 {
    let top = answer["choices"][0]["logprobs"]["top_logprobs"][i].as_object().expect("top");
    let mut values: Vec<f64> = top.values().map(|v| v.as_f64().expect("logprob")).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    values.first().copied().unwrap_or(0.0) - values.get(1).copied().unwrap_or(f64::NEG_INFINITY)
}

fn tokens(answer: &Value) -> Vec<String> {
    answer["choices"][0]["logprobs"]["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("a token").to_owned())
        .collect()
}

#[test]
fn serve_on_the_gpu_answers_like_the_cpu_for_every_architecture() {
    let dir = temp_dir("serve");
    if !gpu_present(&tiny_model(&dir, "llama")) {
        return;
    }
    for arch in uma_test_models::tiny::TINY_ARCHS {
        let model = tiny_model(&dir, arch);
        let args = ["--port", "0", "--ctx", "128", "--parallel", "2", "--threads", "2"];
        let cpu = Server::start(&model, &[&args[..], &["--device", "cpu"]].concat());
        let gpu = Server::start(&model, &[&args[..], &["--device", "gpu"]].concat());
        for prompt in ["Hello there, how", "abc abc abc abc"] {
            let name = format!("tiny-{arch}");
            let (want, got) = (complete(&cpu, &name, prompt), complete(&gpu, &name, prompt));
            let (want_tokens, got_tokens) = (tokens(&want), tokens(&got));
            let agree = want_tokens.iter().zip(&got_tokens).take_while(|(a, b)| a == b).count();
            if agree < want_tokens.len().min(got_tokens.len()) {
                let gap = top2_gap(&want, agree);
                println!("{arch} {prompt:?}: GPU parts from the CPU at token {agree} (CPU top-2 gap {gap:.4})");
                assert!(
                    gap < NEAR_TIE,
                    "{arch} {prompt:?}: token {agree}: GPU {:?}, CPU {:?} with a top-2 gap of {gap}",
                    got_tokens[agree],
                    want_tokens[agree]
                );
            } else {
                assert_eq!(want_tokens.len(), got_tokens.len(), "{arch} {prompt:?}: lengths");
                println!("{arch} {prompt:?}: {agree} tokens agree");
            }
        }
        // Streaming goes through the same engine: the chunks add up to the whole answer.
        let body = json!({"model": format!("tiny-{arch}"), "prompt": "Hello", "max_tokens": 8, "temperature": 0, "stream": true});
        let response = request(
            gpu.port,
            "POST",
            "/v1/completions",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(response.status, 200);
        let text = response.text();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{arch}: {text}");
        for server in [cpu, gpu] {
            assert_eq!(server.stop().code(), Some(0), "{arch}: graceful exit");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_and_bench_take_the_device() {
    let dir = temp_dir("run");
    let model = tiny_model(&dir, "qwen2");
    if !gpu_present(&model) {
        return;
    }
    let output = uma(
        &[
            "run",
            path(&model),
            "--raw",
            "-n",
            "6",
            "--temperature",
            "0",
            "--device",
            "gpu",
            "Hello",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    assert!(common::text(&output.stderr).contains("tok/s"), "{}", common::text(&output.stderr));
    let output =
        uma(&["bench", path(&model), "--device", "gpu", "-p", "16", "-n", "4", "-r", "1"], &[]);
    let stdout = common::text(&output.stdout);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    assert!(stdout.contains("device: GPU "), "{stdout}");
    assert!(stdout.contains("GPU probe"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Hides every Vulkan driver (and the other backends) from wgpu: a machine without a GPU.
const NO_GPU: [(&str, &str); 3] = [
    ("WGPU_BACKEND", "vulkan"),
    ("VK_DRIVER_FILES", "/nonexistent.json"),
    ("VK_ICD_FILENAMES", "/nonexistent.json"),
];

#[test]
fn without_a_gpu_device_gpu_is_one_clear_error_and_auto_falls_back_to_the_cpu() {
    let dir = temp_dir("none");
    let model = tiny_model(&dir, "llama");
    let args = ["run", path(&model), "--raw", "-n", "4", "--temperature", "0", "Hello"];
    let output = uma(&[&args[..], &["--device", "gpu"]].concat(), &NO_GPU);
    assert!(!output.status.success());
    common::assert_one_line_error(&output, "GPU");
    let output = uma(&[&args[..], &["--device", "auto"]].concat(), &NO_GPU);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let _ = std::fs::remove_dir_all(dir);
}
