//! A `uma serve` process for the end-to-end tests: started on a free port of 127.0.0.1, ready once
//! its one stdout line `uma: listening on http://…` arrives, and always stopped — by
//! [`Server::stop`], which sends SIGTERM and returns the exit status, or by `Drop` when a test
//! panics first. Also a minimal HTTP/1.1 client over `std::net::TcpStream` for the details that
//! client libraries hide (status codes, headers, the raw SSE stream).
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use uma_test_models::TestModel;

/// How long model loading may take before the `listening on` line.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a graceful shutdown may take after SIGTERM (no request is running by then).
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `uma serve`.
pub(crate) struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`, as printed by the server.
    pub(crate) base_url: String,
    pub(crate) port: u16,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts `uma serve MODEL ARGS…` and waits for its `listening on` line.
    ///
    /// # Panics
    /// When the server exits before it listens (showing its stderr) or does not listen within
    /// [`READY_TIMEOUT`].
    pub(crate) fn start(model: &Path, args: &[&str]) -> Server {
        let model = model.to_str().expect("a UTF-8 model path");
        Server::start_with(&[&[model][..], args].concat())
    }

    /// Starts `uma serve ARGS…` (models among the arguments) and waits as [`Server::start`].
    pub(crate) fn start_with(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Starts `uma serve ARGS…` with the environment variables `env` added, and waits as
    /// [`Server::start`].
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uma"))
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start uma serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");

        // Both pipes are drained for the server's whole life, so its logs never block it.
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_tx, line_rx) = mpsc::channel::<String>();
        let lines = Arc::clone(&stdout_lines);
        let stdout_reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("stdout lock").push(line.clone());
                let _ = line_tx.send(line);
            }
        });
        let sink = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).map(|n| n > 0).unwrap_or(false) {
                sink.lock().expect("stderr lock").push_str(&String::from_utf8_lossy(&buf));
                buf.clear();
            }
        });

        let mut server = Server {
            child: Some(child),
            base_url: String::new(),
            port: 0,
            stdout_lines,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match line_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("uma: listening on ") {
                        let url = url.trim().to_owned();
                        server.port = url
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.trim_end_matches('/').parse().ok())
                            .unwrap_or_else(|| panic!("no port in {line:?}"));
                        assert!(
                            url.starts_with("http://127.0.0.1:"),
                            "listens on loopback only: {line:?}"
                        );
                        server.base_url = url.trim_end_matches('/').to_owned();
                        return server;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting.
                    let status = server.wait_exit(Duration::from_secs(10));
                    server.join_readers();
                    panic!(
                        "uma serve exited ({status:?}) before listening; stdout: {:?}\nstderr:\n{}",
                        server.stdout_lines(),
                        server.stderr()
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "uma serve did not print `uma: listening on …` within {READY_TIMEOUT:?}; \
                         stderr:\n{}",
                        server.stderr()
                    );
                }
            }
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Resident memory of the server process (Linux `VmRSS`), in bytes.
    pub(crate) fn resident_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("kB");
        kib * 1024
    }

    /// Everything the server wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// The last `max` bytes of stderr (on a character boundary), for failure messages.
    pub(crate) fn stderr_tail(&self, max: usize) -> String {
        let all = self.stderr();
        let mut start = all.len().saturating_sub(max);
        while !all.is_char_boundary(start) {
            start += 1;
        }
        all[start..].to_owned()
    }

    /// The lines the server wrote to stdout so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().expect("stdout lock").clone()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status.
    ///
    /// # Panics
    /// When the server has not exited [`SHUTDOWN_TIMEOUT`] after SIGTERM (it is then killed).
    pub(crate) fn stop(mut self) -> ExitStatus {
        self.sigterm();
        let status = self.wait_exit(SHUTDOWN_TIMEOUT);
        self.join_readers();
        status.unwrap_or_else(|| {
            panic!(
                "uma serve still running {SHUTDOWN_TIMEOUT:?} after SIGTERM (killed); stderr:\n{}",
                self.stderr_tail(4000)
            )
        })
    }

    /// Stops the server ([`Server::stop`]) and checks the graceful shutdown: exit code 0 after
    /// SIGTERM. Returns the lines the server wrote on stdout before it.
    pub(crate) fn stop_gracefully(self) -> Vec<String> {
        let lines = self.stdout_lines();
        let stderr_tail = self.stderr_tail(4000);
        let status = self.stop();
        assert_eq!(
            status.code(),
            Some(0),
            "exit after SIGTERM: {status:?}; stderr:\n{stderr_tail}"
        );
        lines
    }

    /// [`Server::stop_gracefully`], and checks that the server wrote exactly one line on stdout
    /// (its `listening on` line).
    pub(crate) fn stop_gracefully_after_one_stdout_line(self) {
        let lines = self.stop_gracefully();
        assert_eq!(lines.len(), 1, "exactly one line on stdout: {lines:?}");
    }

    fn sigterm(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        }
    }

    /// Waits up to `timeout` for the exit; on timeout kills the process and returns `None`.
    /// Takes the child, so it is reaped once.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Reached with a live child only when a test panicked before `stop`: never panic here.
        if self.child.is_some() {
            self.sigterm();
            let _ = self.wait_exit(Duration::from_secs(10));
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("HTTP {} body is not JSON ({e}): {}", self.status, self.text())
        })
    }

    /// The events of a 200 `text/event-stream` answer whose events are named (the Anthropic and
    /// Responses APIs'): each is `event: NAME` then `data: JSON`, and the data's `type` must be
    /// NAME. Returns the data, in order; keep-alive comments are skipped.
    pub(crate) fn named_sse_events(&self) -> Vec<serde_json::Value> {
        assert_eq!(self.status, 200, "{}", self.text());
        let content_type = self.header("content-type").unwrap_or("");
        assert!(content_type.starts_with("text/event-stream"), "Content-Type {content_type:?}");
        let text = self.text();
        let mut events = Vec::new();
        for event in text.split("\n\n").map(str::trim).filter(|event| !event.is_empty()) {
            let mut lines = event.lines().filter(|line| !line.starts_with(':')).peekable();
            if lines.peek().is_none() {
                continue; // A keep-alive comment.
            }
            let name = lines.next().and_then(|line| line.strip_prefix("event: "));
            let data = lines.next().and_then(|line| line.strip_prefix("data: "));
            let (Some(name), Some(data)) = (name, data) else {
                panic!("event {event:?} in {text:?}")
            };
            let data: serde_json::Value =
                serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            assert_eq!(data["type"], name, "{event}");
            events.push(data);
        }
        events
    }
}

/// One HTTP/1.1 request with `Connection: close` to 127.0.0.1:`port`. `headers` are extra header
/// lines (`("Authorization", "Bearer k")`); `Content-Length` is added when there is a body.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = connect(port);
    let head = request_head(method, path, headers, body.len());
    stream.write_all(head.as_bytes()).expect("send the request head");
    stream.write_all(body).expect("send the request body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_response(&raw)
}

/// Sends a body of `body_len` bytes while reading the response in parallel: a server that answers
/// early (413) and closes the connection must not lose its answer to our unfinished upload.
pub(crate) fn request_large_body(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> Response {
    let mut stream = connect(port);
    let mut reader = stream.try_clone().expect("clone the socket");
    let read = thread::spawn(move || {
        let mut raw = Vec::new();
        // A reset after the response keeps what was read before it.
        let _ = reader.read_to_end(&mut raw);
        raw
    });
    let head = request_head("POST", path, headers, body_len);
    let _ = stream.write_all(head.as_bytes());
    let chunk = vec![b' '; 64 << 10];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        if stream.write_all(&chunk[..n]).is_err() {
            break; // The server stopped reading: its answer is on the way.
        }
        sent += n;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let raw = read.join().expect("the reader thread");
    assert!(!raw.is_empty(), "no response to a {body_len}-byte body (sent {sent} bytes)");
    parse_response(&raw)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(60))).expect("write timeout");
    stream
}

fn request_head(method: &str, path: &str, headers: &[(&str, &str)], body_len: usize) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if body_len > 0 || method == "POST" {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().expect("numeric Content-Length");
        assert!(rest.len() >= len, "body cut short: {} of {len} bytes", rest.len());
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Response { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_line = std::str::from_utf8(&data[..eol]).expect("ASCII chunk size");
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
        data = &data[eol + 2..];
        if size == 0 {
            return body;
        }
        assert!(data.len() >= size + 2, "chunk cut short");
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The interpreter of the client venv.
pub(crate) fn venv_python() -> PathBuf {
    let venv = std::env::var_os("UMA_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| ".".into());
        home.join(".cache/uma/venv-clients")
    });
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "no Python client venv at {}: run `scripts/setup-test-clients.sh` \
         (set UMA_TEST_VENV to use another folder)",
        venv.display()
    );
    python
}

/// Runs a client script (`python script args…`) against `server` for at most 300 s, and returns
/// its stdout and stderr; fails the test, with the server's log, if it fails or hangs.
pub(crate) fn run_client_script(
    python: &Path,
    script: &str,
    args: &[&str],
    server: &Server,
) -> (String, String) {
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The scripts take seconds; their own requests time out after 60 s each.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().expect("stdout reader"), err.join().expect("stderr reader"));
    assert!(
        status.is_some_and(|s| s.success()),
        "{script} failed ({}):\n{out}{err}\n--- uma serve stderr (tail) ---\n{}",
        status.map_or("timed out after 300 s".to_owned(), |s| s.to_string()),
        server.stderr_tail(6000)
    );
    (out, err)
}

/// Runs the client script `tests/NAME` with `python` (see [`run_client_script`]) and checks its
/// summary line `NAME: all …`; returns its stdout and stderr.
pub(crate) fn run_client_checks(
    python: &Path,
    name: &str,
    args: &[&str],
    server: &Server,
) -> (String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name);
    let (out, err) = run_client_script(python, script.to_str().expect("UTF-8"), args, server);
    assert!(out.contains(&format!("{name}: all ")), "no summary line:\n{out}{err}");
    (out, err)
}

/// `uma serve` with the Qwen2.5-Coder 0.5B test model (text) and the 1.5B one (tool calls):
/// `--ctx 2048 --parallel 2 --threads 2 --api-key API_KEY`.
pub(crate) fn start_text_and_tool_models(api_key: &str) -> Server {
    let text = uma_test_models::path(TestModel::QwenCoder05b);
    let tools = uma_test_models::path(TestModel::QwenCoder15b);
    let (text, tools) = (text.to_str().expect("UTF-8"), tools.to_str().expect("UTF-8"));
    let args = [text, tools, "--port", "0", "--ctx", "2048", "--parallel", "2"];
    Server::start_with(&[&args[..], &["--api-key", api_key, "--threads", "2"]].concat())
}

/// The client script `tests/NAME` passes against [`start_text_and_tool_models`], told the
/// server's `--base-url`, the text `--model`, the `--tool-model` and the `--api-key`; the server
/// then stops gracefully.
pub(crate) fn text_and_tool_client_passes(name: &str, api_key: &str) {
    let python = venv_python();
    let server = start_text_and_tool_models(api_key);
    let args = [
        "--base-url",
        &server.base_url,
        "--model",
        TestModel::QwenCoder05b.stem(),
        "--tool-model",
        TestModel::QwenCoder15b.stem(),
        "--api-key",
        api_key,
    ];
    run_client_checks(&python, name, &args, &server);
    server.stop_gracefully();
}
