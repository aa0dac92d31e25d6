//! The web page of `uma serve` in a real browser: Debian's `chromium`, headless, driven by
//! `playwright` (tests/web_client.py) against a real server over the Qwen2.5-Coder 0.5B and
//! Gemma 3 270M test models. The script loads the page, picks a model, watches an answer stream
//! in, stops a long one (the server's /health and /metrics show it cancelled), reloads and finds
//! the conversation, checks the memory bar against /health and the plan view's numbers against
//! `uma plan --json` for the same input (run here), and records every request the browser makes:
//! none may leave the serving origin. A second test checks that the key prompt appears only with
//! `--api-key`, and that `--no-web` turns the page off and leaves the API.
//!
//! Screenshots of the chat, server and plan views go to `target/tmp/web-screenshots`, or to
//! `docs/screenshots` (the README's) with `UMA_UPDATE_SCREENSHOTS=1`.
//!
//! Needs the client venv (`scripts/setup-test-clients.sh`, which has playwright) and a Chromium
//! (`scripts/setup-browser.sh` installs Debian's; `UMA_BROWSER` names another); without them the
//! test fails and says so.

#[path = "common/model_home.rs"]
mod model_home;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use model_home::home_with_tiny_model;
use server::{request, run_client_checks, venv_python, Server};
use uma_test_models::TestModel;

const API_KEY: &str = "web-test-key";
/// The stored model the plan view plans by name.
const STORED_MODEL: &str = "tiny:q8";
/// The machines of the plan view's test: this one (its bandwidth given, so that both sides
/// agree without measuring), one the described model overflows and one it fits.
const PLAN_MACHINES: &str = "this,mac-mini-m4-16gb,h100-sxm-80gb";
const PLAN_BANDWIDTH: &str = "20";
/// The model the plan view describes, as `uma plan`'s flag and the form's field: a 70B model, too
/// big for this machine and the Mac mini, not for the H100.
const DESCRIPTION: [(&str, &str, &str); 10] = [
    ("--params", "#plan-params", "70.6B"),
    ("--layers", "#plan-layers", "80"),
    ("--hidden", "#plan-hidden", "8192"),
    ("--heads", "#plan-heads", "64"),
    ("--kv-heads", "#plan-kv-heads", "8"),
    ("--vocab", "#plan-vocab", "128256"),
    ("--trained-ctx", "#plan-trained", "131072"),
    ("--quant", "#plan-quant", "q4_k_m"),
    ("--ctx", "#plan-ctx", "8192"),
    ("--seqs", "#plan-seqs", "2"),
];

/// The Chromium to drive: `$UMA_BROWSER`, else `chromium` (or `chromium-browser`) on the PATH.
fn browser() -> PathBuf {
    if let Some(browser) = std::env::var_os("UMA_BROWSER") {
        return PathBuf::from(browser);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no chromium on the PATH: run `scripts/setup-browser.sh` (Debian's chromium), or set \
         UMA_BROWSER to a Chromium-based browser"
    );
}

/// Where the screenshots go.
fn screenshots_dir() -> PathBuf {
    let dir = if std::env::var_os("UMA_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots")
    };
    fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// `uma plan ARGS --hw PLAN_MACHINES --bandwidth PLAN_BANDWIDTH --device cpu --json`, written to
/// `file`. The page plans models for the running server, whose process has opened its GPU (or
/// not) already: it counts no GPU driver, as `--device cpu` does not.
fn uma_plan(home: &Path, args: &[&str], file: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_uma"))
        .arg("plan")
        .args(args)
        .args(["--hw", PLAN_MACHINES, "--bandwidth", PLAN_BANDWIDTH, "--device", "cpu", "--json"])
        .env("UMA_HOME", home)
        .output()
        .expect("run uma plan");
    assert!(
        output.status.success(),
        "uma plan {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::write(file, &output.stdout).expect("write the plan");
}

/// Runs web_client.py in `browser` against `server` (which serves the Qwen2.5-Coder 0.5B model),
/// with the arguments `extra` added, and checks that all its checks passed.
fn run_web_client(python: &Path, browser: &Path, server: &Server, extra: &[&str]) {
    let browser = browser.to_str().expect("UTF-8");
    let model = TestModel::QwenCoder05b.stem();
    let args = ["--base-url", &server.base_url, "--browser", browser, "--model", model];
    run_client_checks(python, "web_client.py", &[&args[..], extra].concat(), server);
}

#[test]
fn the_web_page_works_in_a_real_browser() {
    let python = venv_python();
    let browser = browser();
    let home = home_with_tiny_model("uma-home-web-browser", STORED_MODEL);
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // What `uma plan --json` says for the inputs the script types into the plan view: the
    // described model, and the stored model by name.
    let described = tmp.join("web-plan-described.json");
    let flags: Vec<&str> =
        DESCRIPTION.iter().flat_map(|(flag, _, value)| [*flag, *value]).collect();
    uma_plan(&home, &flags, &described);
    let form: serde_json::Map<String, serde_json::Value> = DESCRIPTION
        .iter()
        .map(|(_, field, value)| ((*field).to_owned(), serde_json::json!(value)))
        .collect();
    let form = serde_json::Value::Object(form).to_string();
    let stored = tmp.join("web-plan-stored.json");
    uma_plan(&home, &[STORED_MODEL], &stored);

    let qwen = uma_test_models::path(TestModel::QwenCoder05b);
    let gemma = uma_test_models::path(TestModel::Gemma3_270m);
    let (qwen, gemma) = (qwen.to_str().expect("UTF-8"), gemma.to_str().expect("UTF-8"));
    let home_text = home.to_str().expect("UTF-8");
    let server = Server::start_with_env(
        &[
            qwen,
            gemma,
            "--port",
            "0",
            "--ctx",
            "2048",
            "--parallel",
            "2",
            "--threads",
            "2",
            "--memory",
            "3GB",
        ],
        &[("UMA_HOME", home_text)],
    );

    // The page as served: its type, its policy, no key needed.
    let page = request(server.port, "GET", "/", &[], b"");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let policy = page.header("content-security-policy").unwrap_or("");
    assert!(policy.contains("connect-src 'self'") && policy.contains("script-src 'self'"));

    let screenshots = screenshots_dir();
    let args = [
        "--plan-described",
        described.to_str().expect("UTF-8"),
        "--plan-form",
        &form,
        "--plan-stored",
        stored.to_str().expect("UTF-8"),
        "--stored-model",
        STORED_MODEL,
        "--plan-machines",
        PLAN_MACHINES,
        "--plan-bandwidth",
        PLAN_BANDWIDTH,
        "--screenshots",
        screenshots.to_str().expect("UTF-8"),
    ];
    run_web_client(&python, &browser, &server, &args);
    for view in ["chat", "server", "plan"] {
        let shot = screenshots.join(format!("{view}.png"));
        let size = fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or empty", shot.display());
    }
    server.stop_gracefully();
}

#[test]
fn the_key_prompt_comes_only_with_api_key_and_no_web_turns_the_page_off() {
    let python = venv_python();
    let browser = browser();
    let model = uma_test_models::path(TestModel::QwenCoder05b);
    let listen = ["--port", "0", "--ctx", "512", "--parallel", "1", "--threads", "2"];

    let server = Server::start(&model, &[&listen[..], &["--api-key", API_KEY]].concat());
    let page = request(server.port, "GET", "/", &[], b"");
    assert_eq!(page.status, 200, "the page needs no key: {}", page.text());
    assert!(!page.text().contains(API_KEY));
    assert_eq!(request(server.port, "GET", "/v1/plan", &[], b"").status, 401);
    run_web_client(&python, &browser, &server, &["--api-key", API_KEY]);
    server.stop_gracefully();

    let server = Server::start(&model, &[&listen[..], &["--no-web"]].concat());
    for path in ["/", "/assets/app.js", "/assets/style.css"] {
        let answer = request(server.port, "GET", path, &[], b"");
        assert_eq!(answer.status, 404, "{path} with --no-web: {}", answer.text());
        assert!(answer.json()["error"]["message"].is_string());
    }
    assert_eq!(request(server.port, "GET", "/v1/models", &[], b"").status, 200, "the API stays");
    server.stop_gracefully();
}
