//! `uma serve` under load, on the fast Gemma 3 270M test model: clients that abandon streams
//! mid-way must leave no KV block or request behind, a KV pool too small for the running set
//! must preempt without changing greedy output, and a full queue must answer 429 with
//! `Retry-After`. Each test starts its own server on a free port of 127.0.0.1 and stops it with
//! SIGTERM, which must exit with code 0.
//!
//! The tests take one lock each, so their servers never compete for the cores; alone on 2 cores
//! they take about 10, 20 and 2 s.

#[path = "common/server.rs"]
mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::{request, Server};
use uma_test_models::TestModel;

/// One server at a time in this binary (the machine may have 2 cores).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A test that panicked still released the cores: its poison is harmless.
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn model_name() -> &'static str {
    TestModel::Gemma3_270m.stem()
}

/// `uma serve GEMMA --port 0 --threads 2 ARGS…`.
fn start_server(args: &[&str]) -> Server {
    let model = uma_test_models::path(TestModel::Gemma3_270m);
    Server::start(&model, &[&["--port", "0", "--threads", "2"][..], args].concat())
}

/// SIGTERM must end the server with exit code 0.
fn stop_gracefully(server: Server) {
    let stderr_tail = server.stderr_tail(4000);
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}; stderr:\n{stderr_tail}");
}

/// The engine statistics of `/health` (`models[0].stats`).
fn stats(port: u16) -> Value {
    let health = request(port, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200, "{}", health.text());
    health.json()["models"][0]["stats"].clone()
}

fn stat(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or_else(|| panic!("no numeric {key} in /health stats: {stats}"))
}

/// Polls `/health` until no request is in flight; returns those stats.
fn wait_until_idle(port: u16, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let now = stats(port);
        if stat(&now, "num_in_flight") == 0 {
            return now;
        }
        assert!(Instant::now() < deadline, "still in flight after {timeout:?}: {now}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP/1.1 response read as it arrives: the head at once, then SSE events one by one from
/// the (chunked) body.
struct EventStream {
    reader: BufReader<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
    chunked: bool,
    /// Body bytes received and not yet returned as events.
    pending: Vec<u8>,
    body_ended: bool,
}

impl EventStream {
    /// Sends `POST path` with a JSON body and reads the response head.
    fn open(port: u16, path: &str, body: &Value) -> EventStream {
        EventStream::read_head(EventStream::send(port, path, body))
    }

    /// Sends `POST path` with a JSON body; the response is left unread.
    fn send(port: u16, path: &str, body: &Value) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAccept: text/event-stream\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send the request head");
        stream.write_all(body.as_bytes()).expect("send the request body");
        stream
    }

    /// Reads the status line and the headers of the response on `stream`.
    fn read_head(stream: TcpStream) -> EventStream {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("read a header line");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let chunked = headers.iter().any(|(name, value)| {
            name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
        });
        EventStream { reader, status, headers, chunked, pending: Vec::new(), body_ended: false }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The rest of the body (for error responses).
    fn read_body(mut self) -> Vec<u8> {
        while self.read_more() {}
        self.pending
    }

    /// Reads the next piece of the body into `pending`; false at its end.
    fn read_more(&mut self) -> bool {
        if self.body_ended {
            return false;
        }
        if !self.chunked {
            let mut buf = [0u8; 4096];
            let n = self.reader.read(&mut buf).expect("read the body");
            self.pending.extend_from_slice(&buf[..n]);
            self.body_ended = n == 0;
            return n > 0;
        }
        let mut size_line = String::new();
        self.reader.read_line(&mut size_line).expect("read a chunk size");
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        if size_hex.is_empty() {
            // The connection closed without the last chunk.
            self.body_ended = true;
            return false;
        }
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
        if size == 0 {
            self.body_ended = true;
            return false;
        }
        let mut chunk = vec![0u8; size + 2];
        self.reader.read_exact(&mut chunk).expect("read a chunk");
        self.pending.extend_from_slice(&chunk[..size]);
        true
    }

    /// The `data:` payload of the next SSE event, or `None` when the body ends.
    fn next_data(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.pending.drain(..end + 2).collect();
                let event = String::from_utf8(event).expect("UTF-8 event");
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|data| data.strip_prefix(' ').unwrap_or(data))
                    .collect();
                if data.is_empty() {
                    continue; // A keep-alive comment.
                }
                return Some(data.join("\n"));
            }
            if !self.read_more() {
                return None;
            }
        }
    }

    /// Closes the connection mid-stream, as a client that gives up does.
    fn abandon(self) {
        let stream = self.reader.into_inner();
        let _ = stream.shutdown(Shutdown::Both);
        // Dropped with unread data, the socket answers the server's next write with a reset.
    }
}

/// What one streaming chat request saw.
#[derive(Debug, Default)]
struct StreamOutcome {
    status: u16,
    /// The stream ended with `data: [DONE]`.
    done: bool,
    content_chunks: usize,
    completion_tokens: Option<u64>,
    /// The client closed the connection after `cancel_after` content chunks.
    abandoned: bool,
    error_body: String,
}

/// A streaming chat request with usage; with `cancel_after = Some(k)`, the client closes the
/// socket after the k-th content chunk.
fn stream_chat(
    port: u16,
    prompt: &str,
    max_tokens: u32,
    cancel_after: Option<usize>,
) -> StreamOutcome {
    let body = json!({
        "model": model_name(),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut stream = EventStream::open(port, "/v1/chat/completions", &body);
    let mut outcome = StreamOutcome { status: stream.status, ..StreamOutcome::default() };
    if stream.status != 200 {
        outcome.error_body = String::from_utf8_lossy(&stream.read_body()).into_owned();
        return outcome;
    }
    while let Some(data) = stream.next_data() {
        if data == "[DONE]" {
            outcome.done = true;
            break;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        if let Some(tokens) = chunk["usage"]["completion_tokens"].as_u64() {
            outcome.completion_tokens = Some(tokens);
        }
        let choices = chunk["choices"].as_array().map(Vec::as_slice).unwrap_or_default();
        if choices.iter().any(|c| c["delta"]["content"].as_str().is_some_and(|t| !t.is_empty())) {
            outcome.content_chunks += 1;
        }
        if cancel_after.is_some_and(|k| outcome.content_chunks >= k) {
            outcome.abandoned = true;
            stream.abandon();
            return outcome;
        }
    }
    outcome
}

/// A short distinct chat prompt for request `i` (short, so the tests spend their time
/// generating).
fn chat_prompt(i: usize) -> String {
    format!("Request {i}: tell a story about robot number {i}.")
}

/// A deterministic pseudo-random word sequence: distinct raw text of `num_words` words for
/// prompt `seed` (a small LCG, so every run sends the same text).
fn raw_prompt(seed: u64, num_words: usize) -> String {
    const WORDS: [&str; 32] = [
        "river", "stone", "window", "garden", "silver", "morning", "letter", "market", "quiet",
        "engine", "winter", "harbor", "paper", "signal", "forest", "candle", "bridge", "copper",
        "meadow", "thunder", "violet", "ladder", "orchard", "lantern", "canyon", "feather",
        "marble", "compass", "island", "velvet", "meteor", "saddle",
    ];
    let mut state =
        seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut words = vec![format!("Passage {seed}:")];
    while words.len() < num_words {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        words.push(WORDS[(state >> 59) as usize].to_owned());
    }
    words.join(" ")
}

#[test]
fn cancelled_streams_leave_no_blocks_behind() {
    let _serial = serial();
    const REQUESTS: usize = 48;
    const CONCURRENCY: usize = 12;
    const MAX_TOKENS: u32 = 24;
    let server = start_server(&["--ctx", "512", "--parallel", "8", "--kv-cache-tokens", "4096"]);
    let port = server.port;

    // Every fourth request closes its socket after its first content chunk.
    let is_cancelled = |i: usize| i.is_multiple_of(4);
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, outcomes) = (Arc::clone(&next), Arc::clone(&outcomes));
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    return;
                }
                let cancel_after = is_cancelled(i).then_some(1);
                let outcome = stream_chat(port, &chat_prompt(i), MAX_TOKENS, cancel_after);
                outcomes.lock().expect("outcomes").push((i, outcome));
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread panicked");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    assert_eq!(outcomes.len(), REQUESTS);

    let mut closed = 0u64;
    for (i, outcome) in &outcomes {
        assert_eq!(outcome.status, 200, "request {i}: {}", outcome.error_body);
        if is_cancelled(*i) {
            assert!(
                outcome.abandoned,
                "request {i} ended before its first content chunk: {outcome:?}"
            );
            closed += 1;
        } else {
            assert!(outcome.done, "request {i} has no [DONE]: {outcome:?}");
            assert_eq!(
                outcome.completion_tokens,
                Some(u64::from(MAX_TOKENS)),
                "request {i} (ignore_eos) generates max_tokens: {outcome:?}"
            );
        }
    }
    assert_eq!(closed, (REQUESTS / 4) as u64);

    let after = wait_until_idle(port, Duration::from_secs(20));
    let tail = || server.stderr_tail(3000);
    assert_eq!(stat(&after, "kv_num_used_blocks"), 0, "blocks leaked: {after}\n{}", tail());
    assert_eq!(stat(&after, "num_running") + stat(&after, "num_waiting"), 0, "{after}");
    assert_eq!(stat(&after, "num_failed_requests"), 0, "{after}\n{}", tail());
    // Every request ends exactly once: finished (it generated all its tokens) or cancelled.
    let cancelled = stat(&after, "num_cancelled_requests");
    let finished = stat(&after, "num_finished_requests");
    assert_eq!(cancelled + finished, REQUESTS as u64, "every request accounted for: {after}");
    // `>=` and not `>`: nothing but our closes cancels here. The other requests were read to
    // `[DONE]`, which the engine sends only after finishing them, so they count as finished,
    // and with the sum above `cancelled <= closed` always holds: `>` could never be true.
    // `>=` could fail only if a closed request still generated its last token before the
    // server noticed the closed socket (it would then count as finished). Not here: each is
    // closed after its first content chunk with 23 of its 24 tokens to go, while the server
    // writes every token as it comes, so a write one or two tokens later fails, the stream is
    // dropped and the engine cancels the request in its next step. Together: `==`.
    assert!(
        cancelled >= closed,
        "{closed} streams closed mid-way but the engine cancelled {cancelled}: {after}\n{}",
        tail()
    );
    eprintln!("{closed} streams closed mid-way: {cancelled} cancelled, {finished} finished");
    stop_gracefully(server);
}

#[test]
fn preemption_under_a_small_kv_pool_keeps_outputs_identical() {
    let _serial = serial();
    const REQUESTS: u64 = 8;
    // 512 KV tokens are 32 blocks of 16; each request needs ~120 + 64 tokens (12 blocks), so
    // at most two run to the end together and the others are preempted as the pool fills.
    let server = start_server(&[
        "--ctx",
        "256",
        "--kv-cache-tokens",
        "512",
        "--parallel",
        "8",
        "--batch-tokens",
        "256",
    ]);
    let port = server.port;
    let body = |i: u64| {
        json!({
            "model": model_name(),
            "prompt": raw_prompt(i, 115),
            "max_tokens": 64,
            "temperature": 0,
            "ignore_eos": true,
        })
        .to_string()
    };
    let complete = move |i: u64| -> (String, Value) {
        let response = request(
            port,
            "POST",
            "/v1/completions",
            &[("Content-Type", "application/json")],
            body(i).as_bytes(),
        );
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        let json = response.json();
        assert_eq!(json["usage"]["completion_tokens"], 64, "request {i}: {json}");
        let text = json["choices"][0]["text"].as_str().expect("choices[0].text").to_owned();
        (text, json["usage"].clone())
    };

    let concurrent: Vec<(String, Value)> = (0..REQUESTS)
        .map(|i| thread::spawn(move || complete(i)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().expect("a client thread panicked"))
        .collect();
    for (i, (_, usage)) in concurrent.iter().enumerate() {
        let prompt_tokens = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
        assert!((100..=150).contains(&prompt_tokens), "request {i}: ~120 prompt tokens: {usage}");
    }
    let loaded = wait_until_idle(port, Duration::from_secs(20));
    assert!(
        stat(&loaded, "num_preemptions") > 0,
        "8 requests on a 512-token pool must preempt: {loaded}"
    );
    assert_eq!(stat(&loaded, "num_failed_requests"), 0, "{loaded}");
    assert_eq!(stat(&loaded, "kv_num_used_blocks"), 0, "{loaded}");

    // The same requests alone, one after another: greedy output must not depend on batching,
    // chunked prefill or the recomputation after a preemption.
    let preemptions = stat(&loaded, "num_preemptions");
    for (i, (text, _)) in concurrent.iter().enumerate() {
        let (alone, _) = complete(i as u64);
        assert_eq!(
            *text, alone,
            "request {i}: the text under load (with {preemptions} preemptions) differs from \
             the text of the same request alone"
        );
    }
    let after = stats(port);
    assert_eq!(stat(&after, "num_preemptions"), preemptions, "one request alone never preempts");
    eprintln!(
        "{REQUESTS} requests of {} prompt tokens: {preemptions} preemptions, same greedy text",
        concurrent[0].1["prompt_tokens"]
    );
    stop_gracefully(server);
}

#[test]
fn queue_full_gives_429_with_retry_after() {
    let _serial = serial();
    let server = start_server(&["--parallel", "1", "--max-queue", "1"]);
    let port = server.port;
    let long = |i: usize| {
        json!({
            "model": model_name(),
            "messages": [{"role": "user", "content": chat_prompt(i)}],
            "max_tokens": 200,
            "temperature": 0,
            "ignore_eos": true,
            "stream": true,
        })
    };
    // One running, one queued: the limit of --parallel 1 --max-queue 1.
    let mut running = EventStream::open(port, "/v1/chat/completions", &long(0));
    assert_eq!(running.status, 200);
    assert!(running.next_data().is_some(), "the first request streams");
    // Its response head may wait for its first token: read it later.
    let queued = EventStream::send(port, "/v1/chat/completions", &long(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&stats(port), "num_in_flight") < 2 {
        assert!(Instant::now() < deadline, "the second request is not in flight: {}", stats(port));
        thread::sleep(Duration::from_millis(20));
    }

    let refused = request(
        port,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        long(2).to_string().as_bytes(),
    );
    assert_eq!(refused.status, 429, "{}", refused.text());
    let retry_after = refused.header("retry-after").expect("a Retry-After header");
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After is a number of seconds: {retry_after:?}"
    );
    let error = refused.json();
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    assert!(error["error"].get("param").is_some(), "{error}");
    // The refused request did not count against the server.
    let busy = stats(port);
    assert_eq!(stat(&busy, "num_in_flight"), 2, "{busy}");
    assert_eq!(stat(&busy, "num_failed_requests"), 0, "{busy}");

    // Closing the running one first lets the queued one start, if its head waits for that.
    running.abandon();
    let queued = EventStream::read_head(queued);
    assert_eq!(queued.status, 200);
    assert!(queued.header("content-type").is_some_and(|v| v.starts_with("text/event-stream")));
    queued.abandon();
    let idle = wait_until_idle(port, Duration::from_secs(20));
    assert_eq!(stat(&idle, "kv_num_used_blocks"), 0, "{idle}");
    assert_eq!(stat(&idle, "num_cancelled_requests"), 2, "{idle}");
    stop_gracefully(server);
}

/// Idle and half-sent connections cannot starve the server or hold up its exit: with a limit of
/// 4 connections and a 1 s header timeout, 8 idle connections delay `/health` by about a second,
/// a half-sent request's connection is closed, and SIGTERM with one open still exits in time.
#[test]
fn idle_and_half_sent_connections_are_bounded() {
    let _serial = serial();
    let gemma = uma_test_models::path(TestModel::Gemma3_270m);
    let limits = ["--max-connections", "4", "--header-timeout", "1", "--shutdown-grace", "2"];
    let server = Server::start(&gemma, &[&["--port", "0", "--ctx", "256"][..], &limits].concat());
    let idle: Vec<TcpStream> =
        (0..8).map(|_| TcpStream::connect(("127.0.0.1", server.port)).expect("connect")).collect();
    let started = Instant::now();
    let health = request(server.port, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "/health took {:?}", started.elapsed());
    // The idle connections were closed: reading gives end of file.
    for mut stream in idle {
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).expect("closed, not timed out"), 0);
    }
    // Half a request: closed after the header timeout.
    let mut half = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    half.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n").expect("write");
    half.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    // Another half-sent request open at SIGTERM does not hold the exit up.
    let mut pending = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    pending.write_all(b"GET /health HTTP/1.1\r\n").expect("write");
    let started = Instant::now();
    assert!(server.stop().success());
    assert!(started.elapsed() < Duration::from_secs(6), "exit took {:?}", started.elapsed());
}
