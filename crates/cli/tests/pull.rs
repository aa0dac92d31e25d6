//! `uma pull` against a local server that imitates a Hugging Face hub's API and file URLs
//! (revision, tree with LFS sha256, `resolve` with range requests): a download cut in the middle
//! fails, leaves no model behind, and resumes where it stopped; a wrong checksum is refused and
//! leaves nothing; quantization tags choose the file; the pulled model runs by its name.

mod common;

use common::assert_one_line_error;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use sha2::{Digest, Sha256};

/// What the fake hub serves and what it saw.
#[derive(Default)]
struct HubState {
    /// Repository → files (name, bytes, the sha256 the tree claims).
    repos: HashMap<String, Vec<(String, Vec<u8>, String)>>,
    /// Downloads still to cut after this many bytes (one per request, in order).
    cuts: Vec<usize>,
    /// The `Range` header of every download request ("" without one).
    ranges: Vec<String>,
    /// Sizes the tree lists instead of the files' own (a hub that lies about them).
    listed_sizes: HashMap<String, usize>,
}

struct FakeHub {
    url: String,
    state: Arc<Mutex<HubState>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeHub {
    fn start(state: HubState) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                thread::spawn(move || serve(stream, &state));
            }
        });
        FakeHub { url, state }
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<HubState>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = value.trim().to_owned();
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut state = state.lock().expect("state");
    let respond = |stream: &mut TcpStream, status: &str, body: &[u8], extra: &str| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    // /api/models/{owner}/{repo}/revision/main, /api/models/{owner}/{repo}/tree/{sha}
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let parts: Vec<&str> = rest.split('/').collect();
        let repo = format!("{}/{}", parts[0], parts.get(1).unwrap_or(&""));
        let Some(files) = state.repos.get(&repo) else {
            return respond(
                &mut stream,
                "404 Not Found",
                br#"{"error":"Repository not found"}"#,
                "",
            );
        };
        let body = match parts.get(2) {
            Some(&"revision") => r#"{"sha": "c0ffee"}"#.to_owned(),
            Some(&"tree") => {
                let listed = |name: &String, bytes: &Vec<u8>| {
                    state.listed_sizes.get(name).copied().unwrap_or(bytes.len())
                };
                let mut entries: Vec<serde_json::Value> = files
                    .iter()
                    .map(|(name, bytes, sha)| {
                        serde_json::json!({"type": "file", "path": name, "size": 134,
                                           "lfs": {"oid": sha, "size": listed(name, bytes)}})
                    })
                    .collect();
                entries.push(serde_json::json!({"type": "file", "path": "README.md", "size": 5}));
                entries.push(serde_json::json!({"type": "directory", "path": "docs"}));
                serde_json::Value::Array(entries).to_string()
            }
            _ => return respond(&mut stream, "404 Not Found", b"{}", ""),
        };
        return respond(
            &mut stream,
            "200 OK",
            body.as_bytes(),
            "Content-Type: application/json\r\n",
        );
    }
    // /{owner}/{repo}/resolve/c0ffee/{file}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let repo = format!("{}/{}", parts[0], parts.get(1).unwrap_or(&""));
    let file = state
        .repos
        .get(&repo)
        .and_then(|files| files.iter().find(|(name, _, _)| Some(&name.as_str()) == parts.get(4)))
        .map(|(_, bytes, _)| bytes.clone());
    let Some(bytes) = file else {
        return respond(&mut stream, "404 Not Found", b"not found", "");
    };
    state.ranges.push(range.clone());
    let start: usize = range.trim_end_matches('-').parse().unwrap_or(0);
    let (status, extra) = if start > 0 {
        (
            "206 Partial Content",
            format!("Content-Range: bytes {start}-{}/{}\r\n", bytes.len() - 1, bytes.len()),
        )
    } else {
        ("200 OK", String::new())
    };
    let body = &bytes[start..];
    let cut = if state.cuts.is_empty() { None } else { Some(state.cuts.remove(0)) };
    drop(state);
    match cut {
        // Promise the whole body, send part of it, hang up.
        Some(cut) => {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..cut.min(body.len())]);
        }
        None => respond(&mut stream, status, body, &extra),
    }
}

/// A fresh `$UMA_HOME`.
fn home(test: &str) -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("uma-pull-{test}"));
    let _ = fs::remove_dir_all(&home);
    home
}

fn uma(home: &PathBuf, hub: &FakeHub, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(args)
        .env("UMA_HOME", home)
        .env("HF_ENDPOINT", &hub.url)
        .env_remove("HF_TOKEN")
        .output()
        .expect("run uma")
}

/// The tiny llama model's bytes, built in memory: the tests run in parallel, and one test
/// rewriting a shared file while another reads it gave the reader a short model, whose "cut"
/// download then completed.
fn tiny_model_bytes() -> Vec<u8> {
    let bytes = uma_test_models::tiny::tiny_model_bytes("llama").expect("tiny model");
    assert!(bytes.len() > 1024, "a whole model, {} bytes", bytes.len());
    bytes
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn an_interrupted_pull_resumes_and_the_model_then_runs_by_name() {
    let model = tiny_model_bytes();
    let sha = sha256_hex(&model);
    let mut state = HubState::default();
    state.repos.insert(
        "owner/tiny-GGUF".into(),
        vec![
            ("tiny-q4_k_m.gguf".into(), model.clone(), sha.clone()),
            ("tiny-q8_0.gguf".into(), model.clone(), sha.clone()),
        ],
    );
    state.cuts = vec![model.len() / 3];
    let hub = FakeHub::start(state);
    let home = home("resume");

    let first = uma(&home, &hub, &["pull", "owner/tiny-GGUF:Q4_K_M"]);
    assert!(!first.status.success(), "the cut transfer must fail");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("run the same command again to resume"), "{stderr}");
    assert!(
        stdout(&uma(&home, &hub, &["list"])).contains("no models"),
        "nothing half-done is listed"
    );

    let second = stdout(&uma(&home, &hub, &["pull", "hf.co/owner/tiny-GGUF:Q4_K_M"]));
    assert!(second.contains("pulled hf.co/owner/tiny-GGUF:Q4_K_M"), "{second}");
    let ranges = hub.state.lock().expect("state").ranges.clone();
    assert_eq!(
        ranges,
        ["".to_owned(), format!("{}-", model.len() / 3)],
        "the second asked for the rest"
    );

    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&uma(&home, &hub, &["list", "--json"]))).expect("JSON");
    let manifest = &listed[0]["manifest"];
    assert_eq!(manifest["sha256"], sha.as_str());
    assert_eq!(manifest["size"], model.len());
    assert_eq!(manifest["revision"], "c0ffee");
    assert_eq!(manifest["source_repo"], "owner/tiny-GGUF");
    let path = listed[0]["path"].as_str().expect("path");
    assert_eq!(fs::read(path).expect("stored file"), model, "byte for byte");
    let parent = PathBuf::from(path).parent().expect("folder").to_owned();
    let leftovers: Vec<_> = fs::read_dir(parent)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial file left: {leftovers:?}");

    // It runs by its name, and pulling again finds it up to date.
    stdout(&uma(&home, &hub, &["run", "hf.co/owner/tiny-GGUF:Q4_K_M", "--raw", "hi", "-n", "2"]));
    let again = stdout(&uma(&home, &hub, &["pull", "owner/tiny-GGUF:Q4_K_M"]));
    assert!(again.contains("up to date"), "{again}");
}

#[test]
fn a_wrong_checksum_or_an_unknown_file_stores_nothing() {
    let model = tiny_model_bytes();
    let mut state = HubState::default();
    state
        .repos
        .insert("owner/bad".into(), vec![("bad-q4_0.gguf".into(), model.clone(), "00".repeat(32))]);
    let hub = FakeHub::start(state);
    let home = home("checksum");
    assert_one_line_error(
        &uma(&home, &hub, &["pull", "owner/bad"]),
        "checksum mismatch for bad-q4_0.gguf",
    );
    assert!(stdout(&uma(&home, &hub, &["list"])).contains("no models"));
    let folder = home.join("models/hf.co/owner/bad/bad-q4_0");
    let leftovers = fs::read_dir(&folder).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "the bad download was deleted");

    assert_one_line_error(
        &uma(&home, &hub, &["pull", "owner/bad:Q8_0"]),
        "owner/bad has no GGUF file matching \"Q8_0\"; its GGUF files: bad-q4_0.gguf",
    );
    assert_one_line_error(&uma(&home, &hub, &["pull", "owner/missing"]), "HTTP 404");
    // A hub that sends more than it listed: stopped at the listed size, nothing stored.
    let mut state = HubState::default();
    let sha = sha256_hex(&model);
    state.repos.insert("owner/long".into(), vec![("long-q4_0.gguf".into(), model.clone(), sha)]);
    state.listed_sizes.insert("long-q4_0.gguf".into(), 4096);
    let long_hub = FakeHub::start(state);
    assert_one_line_error(
        &uma(&home, &long_hub, &["pull", "owner/long"]),
        "long-q4_0.gguf: the hub sent more than the 4096 bytes it listed",
    );
    let folder = home.join("models/hf.co/owner/long/long-q4_0");
    let leftovers = fs::read_dir(&folder).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "the oversized download was deleted");
    assert_one_line_error(&uma(&home, &hub, &["pull", "owner/../etc"]), "invalid model name");
}
