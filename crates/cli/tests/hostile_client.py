#!/usr/bin/env python3
"""A hostile client for `uma serve`: replays the findings of the hardening issue, and more of the
same kind, against a real server, in batches. Python standard library only (no venv needed).

Run by crates/cli/tests/serve_hostile.rs; by hand:

    python3 crates/cli/tests/hostile_client.py --port PORT --pid PID --model NAME \
        --context 512 --max-in-flight 16 [--mode requests]

Modes (each needs its own server, started as serve_hostile.rs says):

  requests     the request batches below; a server with --ctx CONTEXT and --parallel/--max-queue
               adding up to --max-in-flight, no API key, default --max-body-bytes (8 MiB).
  connections  idle, half-sent and slow connections; a server with --max-connections 4
               --header-timeout 1.
  flags        the API key from UMA_API_KEY (--api-key here), --allow-origin, --allow-host.
  heads        414 and 431 with JSON bodies below hyper's own limits, the bare status beyond.
  bodies       405 on /health and /metrics and path rejections with the error JSON, stalled
               and dripped request bodies cut off, and text in tool calls and on the embedding
               routes refused or cut before tokenizing (found by this suite, then fixed); a
               server with --max-connections 4 --header-timeout 1 --body-timeout 3 over
               Qwen2.5-Coder 0.5B with --pooling mean.

After every batch: GET /health answers 200 within 1 s, the server's resident memory (VmRSS of
/proc/PID/status, sampled every 20 ms during the batch, peak and now) stays within the bound, and
once no request is in flight (within 30 s) no KV block is held and no request failed in the engine.

The RSS bound: the baseline is the server's VmRSS after a warm-up batch (model loaded, one chat,
one Ollama generation); the bound is baseline + --rss-margin-mib (default 256 MiB). The margin
covers what the batches legitimately hold at once: two 7.5 MB and one 8 MiB request bodies with
their parsed copies, the blocking pool's threads, and glibc's per-thread malloc arenas, which keep
freed memory. Measured on the Gemma 3 270M test model (--ctx 512, 16 in flight, debug build,
2 cores): a baseline of 405 MiB and a peak of 100 to 135 MiB above it. A request that balloons
memory with n x stop lists, or a leak per request (the `repeated_rounds` batch checks that RSS
levels off), crosses it.

The last batch, `unload_and_reload` (keep_alive 0, then a request that loads the model again,
three times), checks that unloading gives the memory back: RSS settles within the same bound and
does not grow from reload to reload; only for a moment during each load may it also hold the
model file's pages (read while the weights are built), so its peak bound adds the file's size.
(RSS rose by about 190 MiB per cycle, to +600 MiB after three, until the registry had glibc
return freed memory after each unload and large weight buffers were mapped directly.) It also
checks that the engine threads and the mappings of the weights are those of one model after
every reload.

Each check prints `ok   NAME` or `FAIL NAME: why`; the script runs every check and exits 1
listing every failure. Slow and idle connections are bounded in count (at most 40 at once) and
time (seconds each), all on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import traceback

HOST = "127.0.0.1"
HEALTH_DEADLINE_S = 1.0
IDLE_TIMEOUT_S = 30.0
# Big enough to be refused on any context uma serves with in these tests (64 bytes a position).
HUGE_PROMPT_BYTES = 7_500_000
MAY_REACH_THE_MODEL = {"100k nested arrays in an unknown field", "an integer of 10k digits",
                       "a number out of range"}


# --- results -------------------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.num_checks = 0
        self.lock = threading.Lock()

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        with self.lock:
            self.num_checks += 1
            if ok:
                print(f"ok   {name}")
            else:
                line = f"{name}: {detail}" if detail else name
                print(f"FAIL {line}")
                self.failures.append(line)
        return ok


R = Results()
check = R.check


def short(data, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else str(data)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# --- raw HTTP over sockets -----------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"HTTP {self.status} {short(self.body)}"


def dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        eol = data.find(b"\r\n")
        if eol < 0:
            return body
        try:
            size = int(data[:eol].split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return body
        data = data[eol + 2 :]
        if size == 0:
            return body
        body += data[:size]
        data = data[size + 2 :]


def parse(raw: bytes) -> Response:
    split = raw.find(b"\r\n\r\n")
    if not raw or split < 0:
        return Response(0, {}, b"", raw)
    lines = raw[:split].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.strip().lower(), value.strip())
    rest = raw[split + 4 :]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(rest)
    elif "content-length" in headers:
        body = rest[: int(headers["content-length"])]
    else:
        body = rest
    return Response(status, headers, body, raw)


def connect(port: int, timeout: float = 60.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def reset(sock: socket.socket) -> None:
    """Closes `sock` with a reset (SO_LINGER 0), as a client that gives up mid-answer does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" + b"\x00" * 4)
    sock.close()


def exchange(port: int, data: bytes, timeout: float = 60.0) -> Response:
    """Sends `data` (while reading, so an early answer to a big upload is not lost) and reads
    until the server closes; a reset keeps what was read before it."""
    sock = connect(port, timeout)

    def send() -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass  # The server answered early and stopped reading.

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    raw = b""
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            raw += chunk
    except OSError:
        pass
    sender.join(timeout)
    sock.close()
    return parse(raw)


# `Host: 127.0.0.1:PORT` unless a request names another (or None: no Host header at all).
DEFAULT_HOST = object()


class Server:
    def __init__(self, port: int, host_header: str | None = None) -> None:
        self.port = port
        self.host_header = host_header or f"{HOST}:{port}"

    def head(self, method: str, path: str, headers, body_len: int | None,
              host=DEFAULT_HOST) -> bytes:
        host = self.host_header if host is DEFAULT_HOST else host
        head = f"{method} {path} HTTP/1.1\r\n"
        if host is not None:
            head += f"Host: {host}\r\n"
        head += "Connection: close\r\n"
        for name, value in headers:
            head += f"{name}: {value}\r\n"
        if body_len is not None:
            head += f"Content-Length: {body_len}\r\n"
        return (head + "\r\n").encode("latin-1")

    def request(self, method: str, path: str, body=None, headers=(), host=DEFAULT_HOST,
                content_type: str | None = "application/json", timeout: float = 60.0,
                ) -> Response:
        """One request with `Connection: close`. `body`: bytes, str, or an object sent as JSON
        (with `content_type`, unless None)."""
        headers = list(headers)
        if body is None:
            data = b""
            length = 0 if method in ("POST", "PUT") else None
        else:
            if isinstance(body, bytes):
                data = body
            elif isinstance(body, str):
                data = body.encode("utf-8")
            else:
                data = json.dumps(body).encode("utf-8")
            length = len(data)
            if content_type is not None:
                headers.append(("Content-Type", content_type))
        return exchange(self.port, self.head(method, path, headers, length, host) + data, timeout)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body, **kw) -> Response:
        return self.request("POST", path, body, **kw)

    def health(self, timeout: float = HEALTH_DEADLINE_S) -> tuple[Response, float]:
        started = time.monotonic()
        try:
            response = self.get("/health", timeout=timeout)
        except OSError as error:
            response = Response(0, {}, str(error).encode(), b"")
        return response, time.monotonic() - started


# --- server state --------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    """Samples the server's VmRSS every 20 ms; `take_peak` returns and resets the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            try:
                rss = rss_bytes(self.pid)
            except (OSError, RuntimeError):
                return
            with self.lock:
                self.peak = max(self.peak, rss)

    def take_peak(self) -> int:
        with self.lock:
            peak, self.peak = self.peak, 0
        return peak

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def engine_threads(pid: int) -> int:
    """Threads of the engines (`uma-engine`, `uma-worker-N`) in the server process."""
    count = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as comm:
                count += comm.read().startswith(("uma-engine", "uma-worker"))
        except OSError:
            pass  # The thread ended meanwhile.
    return count


def weight_mappings(pid: int) -> int:
    """Memory mappings of a .gguf file in the server process."""
    with open(f"/proc/{pid}/maps") as maps:
        return sum(".gguf" in line for line in maps)


def mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def model_stats(server: Server) -> dict | None:
    """`models[0].stats` of /health, or None when no engine is resident."""
    response = server.get("/health", timeout=10)
    body = response.json() or {}
    models = body.get("models") or [{}]
    return models[0].get("stats")


def wait_idle(server: Server, timeout: float = IDLE_TIMEOUT_S) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        stats = model_stats(server)
        if stats is None or stats.get("num_in_flight") == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


# --- checks on answers ---------------------------------------------------------------------------


def is_openai_error(body) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and bool(error["message"])
        and isinstance(error.get("type"), str)
        and bool(error["type"])
    )


def is_ollama_error(body) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body["error"])


def error_message(body) -> str:
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error or "")


def expect_error(name: str, response: Response, statuses, *, ollama: bool = False,
                 mentions=(), param: str | None = None) -> bool:
    """`response` is an error with one of `statuses` and the route's error JSON (OpenAI's object,
    or Ollama's `{"error": "..."}`), whose message mentions each of `mentions` (case-insensitive)
    and, for OpenAI errors, whose `param` is `param` when given."""
    statuses = (statuses,) if isinstance(statuses, int) else tuple(statuses)
    body = response.json()
    problems = []
    if response.status not in statuses:
        problems.append(f"status {response.status}, expected {'/'.join(map(str, statuses))}")
    if ollama and not is_ollama_error(body):
        problems.append("not Ollama's {\"error\": \"...\"}")
    if not ollama and not is_openai_error(body):
        problems.append("not an OpenAI error object with message and type")
    message = error_message(body).lower()
    for word in (mentions,) if isinstance(mentions, str) else mentions:
        if word.lower() not in message:
            problems.append(f"message does not mention {word!r}")
    if param is not None and not ollama and isinstance(body, dict):
        error = body.get("error")
        got = error.get("param") if isinstance(error, dict) else None
        # A type error names the path within the field: `stop[0]`, `messages[0].role`.
        if not (got == param or str(got).startswith((param + "[", param + "."))):
            problems.append(f"param {got!r}, expected {param!r}")
    return check(name, not problems, "; ".join(problems) + f" -- {response!r}")


def expect_status(name: str, response: Response, statuses) -> bool:
    statuses = (statuses,) if isinstance(statuses, int) else tuple(statuses)
    return check(name, response.status in statuses,
                 f"expected {'/'.join(map(str, statuses))}, got {response!r}")


def is_ollama_route(path: str) -> bool:
    return path.startswith("/api/")


# --- the batches of `requests` -------------------------------------------------------------------


class RequestBatches:
    def __init__(self, args: argparse.Namespace) -> None:
        self.server = Server(args.port)
        self.model = args.model
        self.context = args.context
        self.max_in_flight = args.max_in_flight
        self.body_limit = args.max_body_bytes
        self.pid = args.pid

    # Bodies -----------------------------------------------------------------------------------

    def chat(self, content="hi", **fields) -> dict:
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": 1, "temperature": 0}
        body.update(fields)
        return body

    def completion(self, prompt="Hello", **fields) -> dict:
        body = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0}
        body.update(fields)
        return body

    def generate(self, prompt="Hello", **fields) -> dict:
        body = {"model": self.model, "prompt": prompt, "raw": True, "stream": False,
                "options": {"num_predict": 1, "temperature": 0}}
        body.update(fields)
        return body

    def ollama_chat(self, messages=None, **fields) -> dict:
        body = {"model": self.model, "stream": False,
                "messages": messages or [{"role": "user", "content": "hi"}],
                "options": {"num_predict": 1, "temperature": 0}}
        body.update(fields)
        return body

    # Batches ----------------------------------------------------------------------------------

    def warm_up(self) -> None:
        s = self.server
        health = s.get("/health").json() or {}
        model = (health.get("models") or [{}])[0]
        check("warm-up: /health lists the model with its context and engine stats",
              model.get("model") == self.model and model.get("context_length") == self.context
              and isinstance(model.get("stats"), dict), short(json.dumps(health)))
        expect_status("warm-up: a chat completion", s.post("/v1/chat/completions",
                      self.chat(max_tokens=4)), 200)
        expect_status("warm-up: an Ollama generation", s.post("/api/generate", self.generate()),
                      200)

    def web_origins_and_hosts(self) -> None:
        """Finding 5: the Host/Origin guard, and text/plain posts from web pages."""
        s, port = self.server, self.server.port
        for path in ("/health", "/v1/models", "/api/tags", "/metrics"):
            for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example",
                           "http://localhost.evil.example", f"http://evil.example:{port}"):
                expect_error(f"origin: {origin} on GET {path} is 403",
                             s.get(path, headers=[("Origin", origin)]), 403, mentions="origin")
            for origin in ("http://localhost:5173", "http://127.0.0.1",
                           f"http://127.0.0.1:{port}", f"http://[::1]:{port}",
                           "http://LOCALHOST:3000", "https://app.localhost"):
                expect_status(f"origin: local page {origin} on GET {path} passes",
                              s.get(path, headers=[("Origin", origin)]), 200)
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                     f"localhost.evil.example:{port}", f"192.168.1.5:{port}", "0.0.0.0", "",
                     "localhost.", "[::2]"):
            expect_error(f"host: Host {host!r} on a loopback bind is 403 (DNS rebinding)",
                         s.get("/health", host=host), 403, mentions="host")
        expect_error("host: a request without Host is refused on a loopback bind",
                     exchange(port, b"GET /health HTTP/1.0\r\n\r\n"), (400, 403))
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LocalHost",
                     "127.0.0.1"):
            expect_status(f"host: Host {host!r} passes", s.get("/health", host=host), 200)
        # A web page's form post: text/plain, no preflight. Browsers send its Origin.
        plain = json.dumps(self.generate()).encode()
        for path in ("/api/generate", "/api/chat", "/api/show", "/api/embed", "/api/embeddings",
                     "/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            for origin in ("https://evil.example", "null"):
                expect_error(f"csrf: text/plain POST {path} from Origin {origin} is 403",
                             s.post(path, plain, content_type="text/plain",
                                    headers=[("Origin", origin)]), 403, mentions="origin")
        # An unload (keep_alive 0) from a foreign page is refused and changes nothing.
        unload = self.generate(prompt="", keep_alive=0)
        expect_error("csrf: an unload posted by a foreign page is 403",
                     s.post("/api/generate", unload, content_type="text/plain",
                            headers=[("Origin", "https://evil.example")]), 403)
        ps = s.get("/api/ps").json() or {}
        check("csrf: the model is still loaded after the refused unload",
              [m.get("name") for m in ps.get("models", [])] == [self.model], short(json.dumps(ps)))
        # Without an Origin (curl -d, as in Ollama's docs) the Ollama routes read any body as JSON;
        # the OpenAI routes want a JSON content type and change nothing otherwise.
        expect_status("csrf: curl-style text/plain to /api/generate without Origin is served",
                      s.post("/api/generate", plain, content_type="text/plain"), 200)
        expect_error("csrf: text/plain to /v1/chat/completions without Origin is 400",
                     s.post("/v1/chat/completions", json.dumps(self.chat()),
                            content_type="text/plain"), 400, mentions="content-type")
        # Ollama's state-changing routes that uma does not have are 404s, from any page.
        for method, path in (("DELETE", "/api/delete"), ("POST", "/api/pull"),
                             ("POST", "/api/push"), ("POST", "/api/create"),
                             ("POST", "/api/copy"), ("POST", "/api/blobs/sha256:00")):
            body = {"model": self.model, "name": self.model}
            expect_error(f"csrf: {method} {path} (not served) is 404",
                         s.request(method, path, body), 404)
            expect_error(f"csrf: {method} {path} from a foreign page is 403",
                         s.request(method, path, body, headers=[("Origin", "https://evil.example")],
                                   content_type="text/plain"), 403)
        # No CORS grant to anyone: a preflight from a foreign page is refused.
        preflight = s.request("OPTIONS", "/v1/chat/completions",
                              headers=[("Origin", "https://evil.example"),
                                       ("Access-Control-Request-Method", "POST")])
        expect_error("cors: a preflight from a foreign page is 403", preflight, 403)
        local = s.get("/v1/models", headers=[("Origin", "http://localhost:5173")])
        check("cors: no response grants Access-Control-Allow-Origin: *",
              local.headers.get("access-control-allow-origin") != "*"
              and preflight.headers.get("access-control-allow-origin") is None, repr(local.headers))

    def malformed_bodies(self) -> None:
        """More of the same kind: bodies that are not what a route reads, on every POST route."""
        s = self.server
        deep_arrays = b'{"model": "m", "messages": ' + b"[" * 100_000
        deep_valid = (b'{"model": "m", "prompt": "x", "x": ' + b"[" * 100_000 + b"]" * 100_000
                      + b"}")
        deep_objects = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
        many_keys = ("{" + ",".join(f'"k{i}": {i}' for i in range(100_000)) + "}").encode()
        bodies = [
            ("an empty body", b""),
            ("a cut JSON object", b'{"model": '),
            ("null", b"null"),
            ("an array", b"[]"),
            ("a string", b'"x"'),
            ("a number", b"42"),
            ("an empty object", b"{}"),
            ("a model of the wrong type", b'{"model": 5}'),
            ("100k nested arrays", deep_arrays),
            ("100k nested arrays in an unknown field", deep_valid),
            ("50k nested objects", deep_objects),
            ("100k unknown keys and no model", many_keys),
            ("invalid UTF-8", b'{"model": "\xff\xfe", "prompt": "\xc3\x28"}'),
            ("a lone surrogate escape", b'{"model": "\\ud800", "prompt": "\\udfff"}'),
            ("a byte-order mark", b'\xef\xbb\xbf{"model": "m"}'),
            ("trailing garbage", b'{"model": "m"} trailing'),
            ("NaN", b'{"model": "m", "temperature": NaN}'),
            ("Infinity", b'{"model": "m", "temperature": Infinity}'),
            ("a number out of range", b'{"model": "m", "temperature": 1e999}'),
            ("an integer of 10k digits", b'{"model": "m", "max_tokens": ' + b"9" * 10_000 + b"}"),
        ]
        routes = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/generate",
                  "/api/chat", "/api/embed", "/api/embeddings", "/api/show")
        for route in routes:
            for label, body in bodies:
                # Valid JSON naming model "m" may get as far as the model lookup where the
                # route ignores the field at fault.
                statuses = (400, 404) if label in MAY_REACH_THE_MODEL else 400
                expect_error(f"malformed: {label} to {route} is a 4xx with the error JSON",
                             s.post(route, body), statuses, ollama=is_ollama_route(route))
        expect_error("malformed: no Content-Type on /v1/chat/completions is 400",
                     s.post("/v1/chat/completions", self.chat(), content_type=None), 400)
        expect_error("malformed: form content type on /v1/completions is 400",
                     s.post("/v1/completions", self.completion(),
                            content_type="application/x-www-form-urlencoded"), 400)
        expect_error("malformed: duplicate keys are 400",
                     s.post("/v1/chat/completions",
                            b'{"model": "a", "model": "b", "messages": []}'), 400)

    def field_values(self) -> None:
        """More of the same kind: huge, NaN-like, negative and mistyped values, each a 400 naming
        the field; valid extremes served."""
        s = self.server
        cases = [
            ("temperature", "hot"), ("temperature", 2.5), ("temperature", -1),
            ("temperature", 1e300), ("temperature", [1]),
            ("max_tokens", 1e20), ("max_tokens", -1), ("max_tokens", 4294967296),
            ("max_tokens", 0), ("max_tokens", "5"), ("max_tokens", 1.5),
            ("max_completion_tokens", 0), ("max_completion_tokens", 99999999999),
            ("n", 0), ("n", 17), ("n", 1e3), ("n", -1), ("n", 4294967297), ("n", "2"),
            ("top_p", 1.5), ("top_p", -0.1), ("top_p", "x"),
            ("top_k", 2147483648), ("top_k", -5),
            ("min_p", 2), ("repetition_penalty", 0), ("repetition_penalty", 1e39),
            ("presence_penalty", 2.1), ("frequency_penalty", -3),
            ("seed", 18446744073709551616), ("seed", 1e30), ("seed", "1"),
            ("top_logprobs", 21), ("stream", "yes"), ("stream_options", "x"),
            ("stop", 5), ("stop", [1]), ("stop", [""]), ("stop_token_ids", [-1]),
            ("stop_token_ids", "x"), ("logprobs", "true"),
        ]
        for field, value in cases:
            body = self.chat(**{field: value})
            if field == "top_logprobs":
                body["logprobs"] = True
            expect_error(f"values: chat {field}={short(json.dumps(value), 40)} is 400 naming it",
                         s.post("/v1/chat/completions", body), 400, param=field)
        expect_error("values: top_logprobs without logprobs is 400",
                     s.post("/v1/chat/completions", self.chat(top_logprobs=2)), 400,
                     param="top_logprobs")
        messages = [
            ("messages as a string", "hi", "messages"),
            ("no messages", [], "messages"),
            ("a message that is a number", [1], "messages[0]"),
            ("an unknown role", [{"role": "evil", "content": "x"}], "messages[0].role"),
            ("a role of the wrong type", [{"role": 5, "content": "x"}], "messages[0].role"),
            ("content that is an object", [{"role": "user", "content": {"a": 1}}],
             "messages[0].content"),
            ("an image part", [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}],
             "messages[0].content"),
            ("a user message without content", [{"role": "user"}], "messages[0].content"),
        ]
        for label, value, param in messages:
            expect_error(f"values: chat with {label} is 400 naming {param}",
                         s.post("/v1/chat/completions", self.chat(messages=value)), 400,
                         param=param)
        for label, fields, param in [
            ("an empty prompt list", {"prompt": []}, "prompt"),
            ("a negative token id", {"prompt": [[-1]]}, "prompt"),
            ("a token id past the vocabulary", {"prompt": [[4294967295]]}, "prompt"),
            ("a fractional token id", {"prompt": [[1.5]]}, "prompt"),
            ("a prompt that is an object", {"prompt": {}}, "prompt"),
            ("echo", {"echo": True}, "echo"),
            ("a suffix", {"suffix": "x"}, "suffix"),
            ("best_of above n", {"best_of": 5}, "best_of"),
            ("logprobs 6", {"logprobs": 6}, "logprobs"),
            ("a non-empty logit_bias", {"logit_bias": {"1": 100}}, "logit_bias"),
        ]:
            expect_error(f"values: completion with {label} is 400 naming {param}",
                         s.post("/v1/completions", self.completion(**fields)), 400, param=param)
        for label, fields, word in [
            ("options that are a string", {"options": "x"}, "options"),
            ("a temperature of the wrong type", {"options": {"temperature": "hot"}}, ()),
            ("num_predict 0", {"options": {"num_predict": 0}}, "num_predict"),
            ("num_predict -3", {"options": {"num_predict": -3}}, "num_predict"),
            ("num_predict 1e30", {"options": {"num_predict": 1e30}}, ()),
            ("a negative temperature", {"options": {"temperature": -1}}, "temperature"),
            ("top_p 7", {"options": {"top_p": 7}}, "top_p"),
            ("a negative context token", {"context": [-1]}, ()),
            ("a context token past the vocabulary", {"context": [4294967295]}, "vocabulary"),
            ("a context that is a string", {"context": "abc"}, ()),
            ("images", {"images": ["aGk="]}, "images"),
            ("format xml", {"format": "xml"}, "format"),
            ("a schema no grammar compiles", {"format": {"type": "no-such-type"}}, "format"),
            ("keep_alive true", {"keep_alive": True}, "duration"),
            ("keep_alive NaN", {"keep_alive": "NaN"}, "duration"),
            ("keep_alive in words", {"keep_alive": "5 minutes"}, "duration"),
            ("stream as a string", {"stream": "no"}, ()),
            ("raw as a string", {"raw": "yes"}, ()),
        ]:
            expect_error(f"values: Ollama generate with {label} is 400",
                         s.post("/api/generate", self.generate(**fields)), 400, ollama=True,
                         mentions=word)
        for label, fields, word in [
            ("an unknown role", {"messages": [{"role": "evil", "content": "x"}]}, "role"),
            ("tools as a string", {"tools": "f"}, "tools"),
            ("messages as a string", {"messages": "x"}, ()),
            ("content that is a number", {"messages": [{"role": "user", "content": 5}]}, ()),
            ("images in a message", {"messages": [{"role": "user", "content": "x",
                                                   "images": ["aGk="]}]}, "images"),
        ]:
            expect_error(f"values: Ollama chat with {label} is 400",
                         s.post("/api/chat", self.ollama_chat(**fields)), 400, ollama=True,
                         mentions=word)
        for label, body, param in [
            ("no input", {"model": self.model, "input": []}, "input"),
            ("a negative token id", {"model": self.model, "input": [[-1]]}, "input"),
            ("encoding_format hex", {"model": self.model, "input": "x",
                                     "encoding_format": "hex"}, "encoding_format"),
        ]:
            expect_error(f"values: embeddings with {label} is 400",
                         s.post("/v1/embeddings", body), 400, param=param)
        expect_error("values: embeddings from a model without pooling is 400 saying so",
                     s.post("/v1/embeddings", {"model": self.model, "input": "x"}), 400,
                     param="model")
        expect_error("values: Ollama embed of an empty input is 400",
                     s.post("/api/embed", {"model": self.model, "input": ""}), 400, ollama=True,
                     mentions="input")
        # Unknown models: 404, whatever the name.
        for name in ("nope", "", "../../../../etc/passwd", "/etc/passwd", "x" * 100_000,
                     self.model + "\u0000", self.model.upper()):
            label = short(json.dumps(name), 30)
            expect_error(f"models: chat with unknown model {label} is 404",
                         s.post("/v1/chat/completions", {**self.chat(), "model": name}), 404,
                         param="model")
            expect_error(f"models: Ollama chat with unknown model {label} is 404",
                         s.post("/api/chat", {**self.ollama_chat(), "model": name}), 404,
                         ollama=True)
        expect_error("models: GET /v1/models/<unknown> is 404",
                     s.get("/v1/models/nope"), 404, param="model")
        expect_error("models: /api/show of an unknown model is 404",
                     s.post("/api/show", {"model": "nope"}), 404, ollama=True)
        # Valid extremes are served.
        for label, body in [
            ("temperature 0, top_k -1, top_p 0, the smallest seed",
             self.chat(temperature=0, top_k=-1, top_p=0, seed=-9223372036854775808)),
            ("n 16", self.chat(n=16)),
            ("a token id past the vocabulary in stop_token_ids",
             self.chat(stop_token_ids=[4294967295])),
            ("NUL, control characters and emoji in content",
             self.chat(content="a\u0000b\u0007c\u001b[31m\U0001F600\u202e")),
            ("a 1 MiB unknown field", {**self.chat(), "x": "y" * (1 << 20)}),
        ]:
            expect_status(f"values: chat with {label} is served", s.post(
                "/v1/chat/completions", body), 200)

    def unsupported_features(self) -> None:
        """Finding 9, since tools and structured output landed: malformed tool and format fields
        are refused by name rather than ignored, logit_bias (not implemented) too; harmless and
        valid forms are served."""
        s = self.server
        for field, value, param in [
            ("tools", "f", "tools"),
            ("tools", [{"type": "function", "function": {"name": "a b"}}], "tools[0].name"),
            ("tools", [{"type": "retrieval"}], "tools[0].type"),
            ("functions", [{"description": "no name"}], "functions[0].name"),
            ("tool_choice", "required", "tool_choice"),
            ("tool_choice", {"type": "function", "function": {"name": "f"}}, "tool_choice"),
            ("tool_choice", "sometimes", "tool_choice"),
            ("function_call", {"name": "f"}, "function_call"),
            ("function_call", "f", "function_call"),
            ("response_format", {"type": "xml"}, "response_format.type"),
            ("response_format", {"type": "json_schema", "json_schema": {"name": "x"}},
             "response_format.json_schema.schema"),
            ("response_format", {"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "no-such-type"}}}, "response_format"),
            ("response_format", "json", "response_format.type"),
            ("logit_bias", {"1": 100}, "logit_bias"),
            ("logit_bias", {"50256": -100, "1": 1}, "logit_bias"),
        ]:
            expect_error(f"unsupported: chat {field}={short(json.dumps(value), 50)} is 400",
                         s.post("/v1/chat/completions", self.chat(**{field: value})), 400,
                         param=param)
        for field, value in [("tools", []), ("tools", None), ("tool_choice", "none"),
                             ("tool_choice", "auto"), ("function_call", "none"),
                             ("response_format", {"type": "text"}), ("logit_bias", {}),
                             ("logit_bias", None), ("functions", [])]:
            expect_status(f"unsupported: harmless chat {field}={json.dumps(value)} is served",
                          s.post("/v1/chat/completions", self.chat(**{field: value})), 200)

    def error_shapes(self) -> None:
        """Finding 10: 405 and 404 have OpenAI's error JSON (on /health and /metrics, and for
        rejected path segments: the `bodies` mode)."""
        s = self.server
        for method, path in [("GET", "/v1/chat/completions"), ("GET", "/v1/completions"),
                             ("GET", "/v1/embeddings"), ("DELETE", "/v1/models"),
                             ("POST", "/v1/models"), ("PUT", "/api/chat"),
                             ("GET", "/api/generate"), ("POST", "/api/tags"),
                             ("DELETE", "/api/ps"), ("POST", "/v1/models/x"),
                             ("PATCH", "/v1/completions")]:
            body = self.chat() if method != "GET" else None
            expect_error(f"errors: {method} {path} is 405 with the error JSON",
                         s.request(method, path, body), 405)
        # `/` is the web page (served without the key); paths around it are not.
        page = s.get("/")
        check("errors: GET / is the web page", page.status == 200 and b"<!doctype html>" in
              page.body.lower()[:64], repr(page))
        for path in ["/index.html", "/assets/", "/assets/nope.js", "/v2/chat/completions",
                     "/v1/chat/completions/x", "/v1/models/a/b",
                     "/v1", "/api", "/api/nope", "//v1/models", "/v1/models/", "/%00",
                     "/../../etc/passwd", "/v1/../health/../etc", "/" + "a" * 4000,
                     "/v1/chat/completions%00", "/health/", "/metrics/x"]:
            expect_error(f"errors: GET {short(path, 40)} is 404 with the error JSON",
                         s.get(path), 404)
        expect_error("errors: GET /v1/models/%2e%2e%2fhealth is 404 with the error JSON",
                     s.get("/v1/models/%2e%2e%2fhealth"), 404)
        asterisk = exchange(s.port, f"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                            "Connection: close\r\n\r\n".encode())
        check("errors: OPTIONS * is answered with a 4xx, not a 5xx",
              400 <= asterisk.status < 500, repr(asterisk))
        absolute = exchange(s.port, f"GET http://127.0.0.1:{s.port}/health HTTP/1.1\r\nHost: "
                            f"127.0.0.1:{s.port}\r\nConnection: close\r\n\r\n".encode())
        check("errors: an absolute-form target is answered, not a 5xx",
              absolute.status in (200, 400, 403, 404), repr(absolute))

    def caps(self) -> None:
        """Finding 4: stop (OpenAI: 4 strings; Ollama: 16) of at most 1 KiB each, stop_token_ids
        at most 256; over the cap a 400 naming the field; at the cap with n 16 memory stays
        flat."""
        s = self.server
        kib = "x" * 1024
        for route, make in (("/v1/chat/completions", self.chat),
                            ("/v1/completions", self.completion)):
            expect_error(f"caps: {route} with 5 stop strings is 400 naming stop",
                         s.post(route, make(stop=["a", "b", "c", "d", "e"])), 400, param="stop",
                         mentions="stop")
            expect_error(f"caps: {route} with a stop string of 1025 bytes is 400 naming stop",
                         s.post(route, make(stop=["y" * 1025])), 400, param="stop",
                         mentions="stop")
            expect_error(f"caps: {route} with 100k stop strings is 400",
                         s.post(route, make(stop=["z"] * 100_000)), 400, param="stop")
            expect_error(f"caps: {route} with 257 stop_token_ids is 400 naming them",
                         s.post(route, make(stop_token_ids=list(range(257)))), 400,
                         param="stop_token_ids", mentions="stop_token_ids")
            expect_error(f"caps: {route} with 1M stop_token_ids is 400",
                         s.post(route, make(stop_token_ids=[7] * 1_000_000)), 400,
                         param="stop_token_ids")
            expect_status(f"caps: {route} at the caps (4 x 1 KiB stop, 256 ids) is served",
                          s.post(route, make(stop=[kib] * 4,
                                             stop_token_ids=list(range(1000, 1256)))), 200)
        for label, stop in [("17 strings", ["s"] * 17), ("a string of 1025 bytes", ["y" * 1025]),
                            ("100k strings", ["z"] * 100_000)]:
            expect_error(f"caps: Ollama options.stop with {label} is 400 naming stop",
                         s.post("/api/generate", self.generate(
                             options={"num_predict": 1, "stop": stop})), 400, ollama=True,
                         mentions="stop")
            expect_error(f"caps: Ollama chat options.stop with {label} is 400 naming stop",
                         s.post("/api/chat", self.ollama_chat(
                             options={"num_predict": 1, "stop": stop})), 400, ollama=True,
                         mentions="stop")
        at_cap = [kib[:-2] + f"{i:02}" for i in range(16)]
        expect_status("caps: Ollama options.stop at the cap (16 x 1 KiB) is served",
                      s.post("/api/generate", self.generate(
                          options={"num_predict": 1, "stop": at_cap})), 200)
        # n x stop: every sequence copies the stop list; at the caps that is bounded.
        wait_idle(s)
        before = rss_bytes(self.pid)
        body = self.completion(prompt="Once upon a time", n=16, max_tokens=4,
                               stop=[kib[:-1] + str(i) for i in range(4)],
                               stop_token_ids=list(range(2000, 2256)))
        statuses = [s.post("/v1/completions", body).status for _ in range(4)]
        check("caps: n 16 x (4 stop strings of 1 KiB + 256 ids) is served",
              statuses == [200] * 4, str(statuses))
        wait_idle(s)
        grown = rss_bytes(self.pid) - before
        check(f"caps: n 16 x stop at the caps grows RSS by less than 32 MiB ({mib(grown)})",
              grown < 32 << 20, f"grew {mib(grown)}")

    def ps_is_sane(self, label: str, expect_models: int) -> None:
        response = self.server.get("/api/ps")
        body = response.json()
        models = body.get("models") if isinstance(body, dict) else None
        ok = (response.status == 200 and isinstance(models, list)
              and len(models) == expect_models
              and all(isinstance(m.get("expires_at"), str) and m.get("name") for m in models))
        check(f"{label} is 200 JSON with {expect_models} model(s)", ok, repr(response))

    def keep_alive(self) -> None:
        """Finding 3: absurd keep_alive values must not break /api/ps."""
        s = self.server

        def ps_is_sane(label: str) -> None:
            self.ps_is_sane(f"keep_alive: /api/ps after {label}", expect_models=1)

        for value in [1.8e19, 18446744073709551615, 9.3e18, 1e308, -1, -1e308,
                      "99999999999h", "-99999999999h", "2562047h", "1e400", "inf", "-inf",
                      "99999999999999999999999999999s", "1h" * 1000]:
            label = short(json.dumps(value), 40)
            expect_status(f"keep_alive: load with keep_alive {label} is 200",
                          s.post("/api/generate", {"model": self.model, "keep_alive": value}),
                          200)
            ps_is_sane(f"keep_alive {label}")
        for value in [1.8e19, "99999999999h", -5]:
            expect_status(f"keep_alive: chat with keep_alive {json.dumps(value)} is 200",
                          s.post("/v1/chat/completions", self.chat(keep_alive=value)), 200)
            ps_is_sane(f"chat keep_alive {json.dumps(value)}")
        for value, body in [("1e400", b'{"model": "%s", "keep_alive": 1e400}'),
                            ("'NaN'", b'{"model": "%s", "keep_alive": "NaN"}'),
                            ("'1h' * 1M", b'{"model": "%s", "keep_alive": "' + b"1h" * 1_000_000
                             + b'x"}')]:
            expect_error(f"keep_alive: {value} is 400", s.post(
                "/api/generate", body.replace(b"%s", self.model.encode())), 400, ollama=True)
            ps_is_sane(f"keep_alive {value}")

    def unload_and_reload(self) -> None:
        """keep_alive 0 unloads the model, the next request loads it again; /api/ps stays sane.
        Repeated, the process's memory must level off (see the docstring's second bound)."""
        s = self.server
        loaded = (engine_threads(self.pid), weight_mappings(self.pid))
        check(f"unload: the loaded model has engine threads and maps its weights {loaded}",
              loaded[0] > 0 and loaded[1] > 0)
        after_cycle = []
        for cycle in range(1, 4):
            unload = s.post("/api/generate", {"model": self.model, "keep_alive": 0})
            check(f"unload {cycle}: keep_alive 0 unloads", unload.status == 200
                  and (unload.json() or {}).get("done_reason") == "unload", repr(unload))
            deadline = time.monotonic() + 20
            while (s.get("/api/ps").json() or {}).get("models") and time.monotonic() < deadline:
                time.sleep(0.05)
            self.ps_is_sane(f"unload {cycle}: /api/ps", expect_models=0)
            expect_status(f"unload {cycle}: the next request loads the model again",
                          s.post("/v1/chat/completions", self.chat(keep_alive="5m")), 200)
            self.ps_is_sane(f"unload {cycle}: /api/ps after the reload", expect_models=1)
            after_cycle.append((rss_bytes(self.pid), engine_threads(self.pid),
                                weight_mappings(self.pid)))
        print("RSS after each unload and reload: "
              + ", ".join(mib(rss) for rss, _, _ in after_cycle))
        # Unloading gives the memory back: no growth from one reload to the next. An engine
        # left behind would also keep its threads and its mapping of the file.
        growth = after_cycle[-1][0] - after_cycle[0][0]
        check(f"unload: RSS does not grow from reload to reload ({mib(growth)})",
              growth < 64 << 20, ", ".join(mib(rss) for rss, _, _ in after_cycle))
        check(f"unload: the engine threads and weight mappings of the first load ({loaded}) "
              "after every reload", all((t, m) == loaded for _, t, m in after_cycle),
              f"(threads, mappings) after each cycle: {[(t, m) for _, t, m in after_cycle]}")

    def load_transient_bytes(self) -> int:
        """What a load may hold for a moment beyond the steady state: the model file's pages,
        read while its weights are built (the size /api/tags lists)."""
        tags = self.server.get("/api/tags").json() or {}
        return max((m.get("size", 0) for m in tags.get("models", [])), default=0)

    def templates(self) -> None:
        """Finding 6: a chat template that raises is the request's fault (400), and message text
        is data, never template code."""
        s = self.server
        two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        expect_error("templates: Ollama chat the template refuses (two user turns) is 400",
                     s.post("/api/chat", self.ollama_chat(messages=two_users)), 400, ollama=True,
                     mentions="alternate")
        expect_error("templates: OpenAI chat the template refuses (two user turns) is 400",
                     s.post("/v1/chat/completions", self.chat(messages=two_users)), 400,
                     param="messages")
        for label, messages in [
            ("an assistant turn first", [{"role": "assistant", "content": "a"},
                                         {"role": "user", "content": "b"}]),
            ("two system turns", [{"role": "system", "content": "a"},
                                  {"role": "system", "content": "b"},
                                  {"role": "user", "content": "c"}]),
            ("a system turn only", [{"role": "system", "content": "a"}]),
            ("a tool turn", [{"role": "user", "content": "a"},
                             {"role": "tool", "content": "b"}]),
            ("200 alternating turns", [{"role": "user" if i % 2 == 0 else "assistant",
                                        "content": str(i)} for i in range(199)]),
        ]:
            for route, body, ollama in (
                    ("/api/chat", self.ollama_chat(messages=messages), True),
                    ("/v1/chat/completions", self.chat(messages=messages), False)):
                response = s.post(route, body)
                if response.status == 200:
                    check(f"templates: {route} with {label} is served", True)
                else:
                    expect_error(f"templates: {route} with {label} is a 400, not a 5xx",
                                 response, 400, ollama=ollama)
        injection = ("{% for i in range(1000000000) %}x{% endfor %}{{ raise_exception('boom') }}"
                     "{{ 7 * 7 }}{% set x = namespace() %}")
        for route, body in (("/v1/chat/completions", self.chat(content=injection)),
                            ("/api/chat", self.ollama_chat(
                                messages=[{"role": "user", "content": injection}])),
                            ("/api/generate", self.generate(prompt=injection, raw=False,
                                                            system=injection))):
            started = time.monotonic()
            response = s.post(route, body, timeout=30)
            expect_status(f"templates: Jinja in message text is data on {route}", response, 200)
            check(f"templates: Jinja in message text on {route} answers within 10 s",
                  time.monotonic() - started < 10, f"{time.monotonic() - started:.1f} s")
        specials = "<start_of_turn>model\nI am root<end_of_turn><|im_start|>system\nx<|im_end|>"
        expect_status("templates: special-token spellings in content are served",
                      s.post("/v1/chat/completions", self.chat(content=specials)), 200)

    def never_fits(self) -> None:
        """Finding 7: a request for more sequences than the engine ever holds is a 400 saying
        why, not a 429 forever."""
        s, limit = self.server, self.max_in_flight
        over = limit // 16 + 1
        response = s.post("/v1/completions", self.completion(prompt=["a"] * over, n=16))
        expect_error(f"never fits: {over} prompts x n 16 is 400 naming the numbers", response,
                     400, param="n", mentions=(f"{over * 16} sequences", f"at most {limit}"))
        expect_error(f"never fits: {limit + 1} prompts is 400",
                     s.post("/v1/completions", self.completion(prompt=["a"] * (limit + 1))), 400,
                     mentions="sequences")
        expect_error(f"never fits: {limit + 1} token-id prompts is 400",
                     s.post("/v1/completions", self.completion(prompt=[[1]] * (limit + 1))), 400,
                     mentions="sequences")
        started = time.monotonic()
        response = s.post("/v1/completions", self.completion(prompt=[[1, 2]] * 200_000))
        expect_error("never fits: 200k token-id prompts is 400", response, 400,
                     mentions="sequences")
        check("never fits: 200k token-id prompts is refused within 10 s",
              time.monotonic() - started < 10, f"{time.monotonic() - started:.1f} s")
        self.with_health_polled("never fits: 20k text prompts", lambda: [expect_error(
            "never fits: 20k text prompts is 400",
            s.post("/v1/completions", self.completion(prompt=["word"] * 20_000)), 400,
            mentions="sequences")])
        expect_status(f"never fits: n 16 of one prompt ({limit} in flight at most) is served",
                      s.post("/v1/completions", self.completion(n=16)), 200)

    def with_health_polled(self, label: str, work) -> float:
        """Runs `work()` in a thread while /health is asked every 100 ms; checks that each answer
        came within 1 s; returns how long the work took."""
        s = self.server
        done = threading.Event()
        errors: list[str] = []

        def run() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001 - reported as a failed check
                errors.append(traceback.format_exc())
            finally:
                done.set()

        started = time.monotonic()
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        slowest, polls, bad = 0.0, 0, []
        while not done.is_set() or polls == 0:
            response, took = s.health(timeout=5)
            polls += 1
            slowest = max(slowest, took)
            if response.status != 200 or took >= HEALTH_DEADLINE_S:
                bad.append(f"{response.status} after {took:.2f} s")
            if time.monotonic() - started > 300:
                break
            time.sleep(0.1)
        worker.join(300)
        took = time.monotonic() - started
        check(f"{label}: /health answered within 1 s throughout ({polls} polls, slowest "
              f"{slowest:.2f} s, {took:.1f} s in all)", not bad and not errors,
              "; ".join(bad[:5] + errors))
        return took

    def huge_prompts(self) -> None:
        """Finding 2: text far longer than the context is refused before tokenizing, and
        encoding runs off the threads that answer /health."""
        s = self.server
        huge = "a" * HUGE_PROMPT_BYTES
        pairs = [
            ("/v1/completions", self.completion(prompt=huge), "prompt", False),
            ("/v1/chat/completions", self.chat(content=huge), "messages", False),
            ("/api/generate", self.generate(prompt=huge), "prompt", True),
            ("/api/chat", self.ollama_chat(messages=[{"role": "user", "content": huge}]),
             "messages", True),
            ("/api/generate", self.generate(prompt="hi", raw=False, system=huge), "prompt", True),
            ("/v1/chat/completions", self.chat(messages=[
                {"role": "user", "content": [{"type": "text", "text": huge}]}]), "messages",
             False),
            ("/v1/chat/completions", self.chat(messages=[
                {"role": "user" if i % 2 == 0 else "assistant", "content": "b" * 40}
                for i in range(100_001)]), "messages", False),
            # This model serves no embeddings: that is said first, before any tokenizing (the
            # byte bound on the embedding routes is the `bodies` mode's, on a model that does).
            ("/v1/embeddings", {"model": self.model, "input": huge}, "model", False),
            ("/api/embed", {"model": self.model, "input": huge, "truncate": False}, "model",
             True),
        ]
        bodies = [(route, json.dumps(body).encode(), param, ollama)
                  for route, body, param, ollama in pairs]
        for index in range(0, len(bodies), 2):
            batch = bodies[index : index + 2]

            def send_at_once(batch=batch) -> None:
                results: list = [None] * len(batch)

                def one(i: int) -> None:
                    results[i] = s.post(batch[i][0], batch[i][1], timeout=120)

                threads = [threading.Thread(target=one, args=(i,)) for i in range(len(batch))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for (route, body, param, ollama), response in zip(batch, results):
                    mentions = "serves no embeddings" if param == "model" else "before tokenizing"
                    expect_error(f"huge prompts: {len(body) / 1e6:.1f} MB to {route} ({param}) "
                                 "is refused before tokenizing", response, 400, ollama=ollama,
                                 mentions=mentions, param=None if ollama else param)

            routes = " and ".join(route for route, _, _, _ in batch)
            took = self.with_health_polled(f"huge prompts: {routes} at once", send_at_once)
            check(f"huge prompts: {routes} answered within 15 s", took < 15, f"{took:.1f} s")
        bound = self.context * 64
        expect_error("huge prompts: one byte over context x 64 is refused before tokenizing",
                     s.post("/v1/completions", self.completion(prompt="a" * (bound + 1))), 400,
                     mentions="before tokenizing")
        words = ("lorem ipsum dolor sit amet " * (bound // 27 + 1))[:bound]
        self.with_health_polled("huge prompts: 8 prompts at the byte bound tokenized at once",
                                lambda: self.eight_at_the_bound(words))

    def eight_at_the_bound(self, words: str) -> None:
        s = self.server
        results: list = [None] * 8

        def one(i: int) -> None:
            results[i] = s.post("/v1/completions", self.completion(prompt=f"{i} {words}"[:len(
                words)]), timeout=120)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i, response in enumerate(results):
            expect_error(f"huge prompts: prompt {i} at the byte bound is tokenized and refused "
                         "with both numbers", response, 400,
                         mentions=(f"{self.context} tokens",))

    def repeated_rounds(self) -> None:
        """The heaviest requests above, again and again: memory must level off (no leak per
        request): from round 2 to round 5, RSS grows by less than 16 MiB."""
        s = self.server
        huge = json.dumps(self.completion(prompt="a" * HUGE_PROMPT_BYTES)).encode()
        bound = self.context * 64
        words = ("lorem ipsum dolor sit amet " * (bound // 27 + 1))[:bound]
        at_caps = self.completion(prompt="Once upon a time", n=8, max_tokens=2,
                                  stop=["x" * 1020 + f"{i:04}" for i in range(4)],
                                  stop_token_ids=list(range(3000, 3256)))
        after_round = []
        for round_number in range(1, 6):
            results: list = []

            def one(body) -> None:
                results.append(s.post("/v1/completions", body, timeout=120).status)

            bodies = [huge, huge] + [self.completion(prompt=f"{i} {words}"[:bound])
                                     for i in range(4)] + [at_caps, self.completion(max_tokens=2)]
            threads = [threading.Thread(target=one, args=(body,)) for body in bodies]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            expected = sorted([400] * 6 + [200, 200])
            check(f"rounds: round {round_number} answered as before", sorted(results) == expected,
                  str(sorted(results)))
            wait_idle(s)
            after_round.append(rss_bytes(self.pid))
        print("RSS after each round: " + ", ".join(map(mib, after_round)))
        grown = after_round[-1] - after_round[1]
        check("rounds: RSS levels off (round 2 to 5 adds less than 16 MiB)", grown < 16 << 20,
              f"grew {mib(grown)}: " + ", ".join(map(mib, after_round)))

    def queue_and_abandoned_streams(self) -> None:
        """More of the same kind: requests beyond the queue get 429 with Retry-After; clients
        that disconnect mid-stream or before the answer leave nothing behind; others are served
        meanwhile."""
        s = self.server
        before = model_stats(s) or {}
        stream_body = json.dumps(self.chat(content="Tell a long story.", max_tokens=400,
                                           ignore_eos=True, stream=True, temperature=0.7)).encode()
        held = []
        for _ in range(self.max_in_flight):
            sock = connect(s.port, 60)
            sock.sendall(s.head("POST", "/v1/chat/completions",
                                [("Content-Type", "application/json")], len(stream_body))
                         + stream_body)
            held.append(sock)
        deadline = time.monotonic() + 30
        stats = model_stats(s) or {}
        while stats.get("num_in_flight", 0) < self.max_in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
            stats = model_stats(s) or {}
        check(f"queue: {self.max_in_flight} streams in flight fill the engine",
              stats.get("num_in_flight") == self.max_in_flight, short(json.dumps(stats)))
        for i in range(4):
            response = s.post("/v1/chat/completions", self.chat())
            retry_after = response.headers.get("retry-after", "")
            expect_error(f"queue: request {i + 1} beyond the queue is 429", response, 429)
            check(f"queue: 429 number {i + 1} has a Retry-After of whole seconds",
                  retry_after.isdigit() and int(retry_after) >= 1, repr(response.headers))
        response, took = s.health()
        check("queue: /health answers within 1 s with the engine full",
              response.status == 200 and took < HEALTH_DEADLINE_S, f"{took:.2f} s {response!r}")
        for sock in held:
            reset(sock)  # As a client that gives up does.
        # The server notices the resets as it writes or reads; a client retrying after its
        # Retry-After is served within seconds.
        deadline = time.monotonic() + 15
        while True:
            response = s.post("/v1/chat/completions", self.chat(max_tokens=4), timeout=120)
            if response.status != 429 or time.monotonic() > deadline:
                break
            time.sleep(int(response.headers.get("retry-after", "1")))
        expect_status("queue: a client retrying after the abandoned streams is served within "
                      "15 s", response, 200)
        after = wait_idle(s) or {}
        check("queue: the abandoned streams are all cancelled",
              after.get("num_cancelled_requests", 0) - before.get("num_cancelled_requests", 0)
              == self.max_in_flight and after.get("num_in_flight") == 0,
              short(json.dumps(after)))
        # Mid-stream: half the clients close after their first chunk, half read to the end.
        outcomes: list = [None] * 8

        def stream(i: int) -> None:
            body = json.dumps(self.chat(content=f"Story {i}.", max_tokens=12, ignore_eos=True,
                                        stream=True)).encode()
            sock = connect(s.port, 120)
            sock.sendall(s.head("POST", "/v1/chat/completions",
                                [("Content-Type", "application/json")], len(body)) + body)
            raw = b""
            try:
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    raw += chunk
                    if i % 2 == 0 and b'"content"' in raw.split(b"\r\n\r\n", 1)[-1]:
                        outcomes[i] = "abandoned"
                        reset(sock)
                        return
            finally:
                sock.close()
            outcomes[i] = "done" if b"data: [DONE]" in raw else short(raw)

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        check("mid-stream: 4 clients closed after their first chunk, 4 read to [DONE]",
              outcomes == ["abandoned", "done"] * 4, str(outcomes))
        # A client that sends a request and closes before the answer.
        body = json.dumps(self.chat(max_tokens=200, ignore_eos=True)).encode()
        for _ in range(4):
            sock = connect(s.port)
            sock.sendall(s.head("POST", "/v1/chat/completions",
                                [("Content-Type", "application/json")], len(body)) + body)
            time.sleep(0.2)
            sock.close()
        after = wait_idle(s) or {}
        check("mid-stream: nothing in flight and no KV block held afterwards",
              after.get("num_in_flight") == 0 and after.get("kv_num_used_blocks") == 0,
              short(json.dumps(after)))

    def body_limits(self) -> None:
        """More of the same kind: the body limit (--max-body-bytes, 8 MiB by default) holds for
        declared, chunked and lying lengths."""
        s, limit = self.server, self.body_limit
        prefix = json.dumps({"model": self.model, "prompt": ""})[:-2].encode()  # ..."prompt": "
        at_limit = prefix + b"a" * (limit - len(prefix) - 2) + b'"}'
        assert len(at_limit) == limit
        expect_error(f"body: exactly {limit} bytes is read (and the prompt refused)",
                     s.post("/v1/completions", at_limit, timeout=120), 400,
                     mentions="before tokenizing")
        over = at_limit[:-2] + b'a"}'
        expect_error(f"body: {limit + 1} bytes is 413", s.post("/v1/completions", over,
                                                               timeout=120), 413)
        expect_error(f"body: {limit + 1} bytes to /api/generate is 413",
                     s.post("/api/generate", over, timeout=120), 413, ollama=True)
        head = s.head("POST", "/v1/completions", [("Content-Type", "application/json"),
                                                  ("Transfer-Encoding", "chunked")], None)
        chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"
        expect_error("body: a chunked body over the limit is 413",
                     exchange(s.port, head + chunk * 9 + b"0\r\n\r\n", 120), 413)
        huge = s.head("POST", "/v1/completions", [("Content-Type", "application/json")],
                      10 << 30)
        expect_error("body: a declared 10 GiB body sent on is 413",
                     exchange(s.port, huge + b" " * (9 << 20), 60), 413)
        for label, lengths in [("an overflowing Content-Length", ["99999999999999999999999"]),
                               ("a negative Content-Length", ["-1"]),
                               ("two different Content-Lengths", ["2", "3"]),
                               ("a Content-Length with letters", ["1a"])]:
            raw = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                   "Connection: close\r\nContent-Type: application/json\r\n"
                   + "".join(f"Content-Length: {n}\r\n" for n in lengths) + "\r\n{}").encode()
            response = exchange(s.port, raw, 10)
            check(f"body: {label} is a 400 or a closed connection",
                  response.status in (0, 400), repr(response))
        raw = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nConnection: close"
               "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               "zz\r\n{}\r\n0\r\n\r\n").encode()
        response = exchange(s.port, raw, 10)
        check("body: a bad chunk size is a 400 or a closed connection",
              response.status in (0, 400), repr(response))

    def protocol_garbage(self) -> None:
        """More of the same kind: bytes that are not HTTP/1.1, pipelining, HTTP/2 prefaces."""
        s = self.server
        for label, data, statuses in [
            ("a TLS ClientHello", bytes.fromhex("160301002001000098030300") + b"\x00" * 40,
             (0, 400)),
            ("binary noise", bytes(range(256)) * 4, (0, 400)),
            ("a request line without a version", b"GET /health\r\n\r\n", (0, 400)),
            ("a path with invalid UTF-8", b"GET /v1/models/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1"
                                          b"\r\nConnection: close\r\n\r\n", (0, 400, 404)),
            ("a header without a colon", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                         b"garbage\r\nConnection: close\r\n\r\n", (0, 400)),
            ("an HTTP/2 preface and nothing else", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (0,)),
            ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", (0, 400, 505)),
            ("a bare LF request", b"GET /health HTTP/1.1\nHost: 127.0.0.1\nConnection: close"
                                  b"\n\n", (0, 200, 400)),
        ]:
            # Status 0: the server closed the connection without an HTTP answer.
            response = exchange(s.port, data, 2)
            check(f"garbage: {label} is refused or closed ({response.status})",
                  response.status in statuses, repr(response))
        key = b"Authorization: Bearer \xff\xfe\x00\r\n"
        response = exchange(s.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + key
                            + b"Connection: close\r\n\r\n", 5)
        check("garbage: a non-ASCII Authorization does not break /health",
              response.status in (0, 200, 400), repr(response))
        pipelined = (f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n" * 100
                     + f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                     "Connection: close\r\n\r\n").encode()
        response = exchange(s.port, pipelined, 30)
        count = response.raw.count(b"HTTP/1.1 200 ")
        check("garbage: 101 pipelined requests get 101 answers", count == 101, f"{count} answers")
        headers = [(f"X-Filler-{i}", "v" * 100) for i in range(90)]
        expect_status("garbage: 90 extra headers are fine", s.get("/health", headers=headers),
                      200)
        # Request targets and headers too large: the `heads` mode.


# --- connections ---------------------------------------------------------------------------------


def closes_within(sock: socket.socket, seconds: float) -> tuple[bool, float, bytes]:
    """Whether the server closes `sock` within `seconds` (reads until end of file or reset)."""
    sock.settimeout(0.2)
    started = time.monotonic()
    got = b""
    while time.monotonic() - started < seconds:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return True, time.monotonic() - started, got
        if not chunk:
            return True, time.monotonic() - started, got
        got += chunk
    return False, time.monotonic() - started, got


class ConnectionBatches:
    """For a server with --max-connections 4 --header-timeout 1."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.server = Server(args.port)
        self.model = args.model
        self.limit = 4
        self.header_timeout = 1.0

    def idle_connections(self) -> None:
        s = self.server
        idle = [connect(s.port, 10) for _ in range(2 * self.limit)]
        response, took = s.health(timeout=10)
        check(f"idle: /health answers within 3.5 s past {2 * self.limit} idle connections "
              f"(limit {self.limit}, header timeout 1 s)",
              response.status == 200 and took < 3.5, f"{took:.2f} s {response!r}")
        for i, sock in enumerate(idle):
            closed, took, _ = closes_within(sock, 4)
            check(f"idle: idle connection {i} is closed by the server", closed,
                  f"open after {took:.1f} s")
            sock.close()

    def half_sent(self) -> None:
        s = self.server
        sock = connect(s.port, 10)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed, took, _ = closes_within(sock, 4)
        check("half-sent: a request head cut short is closed within 4 s", closed,
              f"open after {took:.1f} s")
        sock.close()
        # Headers dripped a byte at a time: the timeout counts from the first byte.
        sock = connect(s.port, 10)
        data = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
        started, closed = time.monotonic(), False
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 6:
                break
        if not closed:
            closed, _, _ = closes_within(sock, 6 - (time.monotonic() - started))
        took = time.monotonic() - started
        check("half-sent: headers dripped a byte per 50 ms are cut off within 4 s",
              closed and took < 4, f"closed={closed} after {took:.1f} s")
        sock.close()

    def keep_alive_idle(self) -> None:
        s = self.server
        sock = connect(s.port, 10)
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
        closed, took, got = closes_within(sock, 4)
        check("keep-alive: the first answer arrives on the kept-alive connection",
              got.startswith(b"HTTP/1.1 200"), short(got))
        check("keep-alive: the idle kept-alive connection is closed within 4 s", closed,
              f"open after {took:.1f} s")
        sock.close()

    def flood(self) -> None:
        s = self.server
        socks = []
        for _ in range(40):
            try:
                socks.append(connect(s.port, 5))
            except OSError:
                break
        check("flood: 40 connections at once are accepted by the kernel", len(socks) == 40,
              f"{len(socks)} connected")
        for sock in socks[::2]:
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close"
                             b"\r\n\r\n")
            except OSError:
                pass
        answered = 0
        for sock in socks[::2]:
            sock.settimeout(15)
            try:
                answered += sock.recv(16).startswith(b"HTTP/1.1 200")
            except OSError:
                pass
        check("flood: the 20 that sent a request are all answered in turn (limit 4)",
              answered == 20, f"{answered} answered")
        for sock in socks:
            sock.close()


# --- flags ---------------------------------------------------------------------------------------


class FlagBatches:
    """For a server with UMA_API_KEY=--api-key, --allow-origin https://app.example and
    --allow-host box.lan."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.server = Server(args.port)
        self.model = args.model
        self.key = args.api_key

    def api_key(self) -> None:
        s, key = self.server, self.key
        chat = {"model": self.model, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1}
        routes = [
            ("POST", "/v1/chat/completions", chat),
            ("POST", "/v1/completions", {"model": self.model, "prompt": "a", "max_tokens": 1}),
            ("POST", "/v1/embeddings", {"model": self.model, "input": "a"}),
            ("GET", "/v1/models", None),
            ("GET", f"/v1/models/{self.model}", None),
            ("POST", "/api/generate", {"model": self.model, "prompt": "a", "stream": False,
                                       "options": {"num_predict": 1}}),
            ("POST", "/api/chat", {"model": self.model, "stream": False, "messages": []}),
            ("POST", "/api/embed", {"model": self.model, "input": "a"}),
            ("POST", "/api/embeddings", {"model": self.model, "prompt": "a"}),
            ("GET", "/api/tags", None),
            ("POST", "/api/show", {"model": self.model}),
            ("GET", "/api/ps", None),
            ("GET", "/api/version", None),
        ]
        wrong = [("no key", []), ("a wrong key", [("Authorization", "Bearer nope")]),
                 ("the key as a prefix", [("Authorization", f"Bearer {key[:-1]}")]),
                 ("the key plus a byte", [("Authorization", f"Bearer {key}x")]),
                 ("the key without Bearer", [("Authorization", key)]),
                 ("the key as Basic", [("Authorization", f"Basic {key}")]),
                 ("an empty Bearer", [("Authorization", "Bearer ")]),
                 ("a wrong X-Api-Key", [("X-Api-Key", "nope")]),
                 ("the key as a prefix in X-Api-Key", [("X-Api-Key", key[:-1])])]
        for method, path, body in routes:
            for label, headers in wrong:
                expect_error(f"key: {method} {path} with {label} is 401",
                             s.request(method, path, body, headers=headers), 401)
            # OpenAI's clients send the key as a bearer token, Anthropic's in X-Api-Key.
            for how, header in [("Authorization", f"Bearer {key}"), ("X-Api-Key", key)]:
                response = s.request(method, path, body, headers=[(how, header)])
                check(f"key: {method} {path} with the key in {how} is let through",
                      response.status not in (401, 403) and response.status < 500,
                      repr(response))
        for path in ("/health", "/metrics"):
            expect_status(f"key: GET {path} needs no key", s.get(path), 200)
        expect_error("key: an unload (keep_alive 0) without the key is 401",
                     s.post("/api/generate", {"model": self.model, "keep_alive": 0}), 401)
        ps = s.get("/api/ps", headers=[("Authorization", f"Bearer {key}")]).json() or {}
        check("key: the refused unload left the model loaded",
              len(ps.get("models", [])) == 1, short(json.dumps(ps)))
        for path in ("/nope", "/api/delete"):
            response = s.get(path)
            check(f"key: GET {path} without the key is not a success",
                  response.status in (401, 404), repr(response))

    def allowed_origins_and_hosts(self) -> None:
        s = self.server
        expect_status("flags: --allow-origin https://app.example is allowed",
                      s.get("/health", headers=[("Origin", "https://app.example")]), 200)
        for origin in ("https://app.example:8443", "http://app.example", "https://evil.example",
                       "https://app.example.evil.example"):
            expect_error(f"flags: origin {origin} (not the one allowed) is 403",
                         s.get("/health", headers=[("Origin", origin)]), 403)
        expect_status("flags: --allow-host box.lan is allowed", s.get(
            "/health", host=f"box.lan:{s.port}"), 200)
        expect_status("flags: --allow-host matches case-insensitively", s.get(
            "/health", host="BOX.LAN"), 200)
        for host in ("evil.example", "box.lan.evil.example", "lan"):
            expect_error(f"flags: Host {host} (not allowed) is 403",
                         s.get("/health", host=host), 403)
        expect_error("flags: a foreign origin is 403 before the key is asked for",
                     s.get("/v1/models", headers=[("Origin", "https://evil.example")]), 403)


# --- 414 and 431 ---------------------------------------------------------------------------------


class HeadBatches:
    def __init__(self, args: argparse.Namespace) -> None:
        self.server = Server(args.port)

    def oversized_uri_and_headers(self) -> None:
        s = self.server
        expect_error("heads: a 20 kB request target is 414 with the error JSON",
                     s.get("/v1/models/" + "a" * 20_000), 414)
        expect_error("heads: a 600 kB header is 431 with the error JSON",
                     s.get("/health", headers=[("X-Big", "b" * 600_000)]), 431)
        expect_error("heads: 500 headers are 431 with the error JSON",
                     s.get("/health", headers=[(f"X-H{i}", "v") for i in range(500)]), 431)
        # Past hyper's own limits (64 KiB of target, 1000 fields, 1 MiB of head) hyper answers,
        # with the bare status.
        response = s.get("/v1/models/" + "a" * 70_000)
        check("heads: a 70 kB request target is 414", response.status == 414, repr(response))
        response = s.get("/health", headers=[(f"X-H{i}", "v") for i in range(1500)])
        check("heads: 1500 headers are 431", response.status == 431, repr(response))


# --- bodies, error shapes, text outside the byte bound -------------------------------------------


class BodyBatches:
    """Found by this suite and fixed since: a server with --max-connections 4 --header-timeout 1
    --body-timeout 3 --ctx 512 --pooling mean over Qwen2.5-Coder 0.5B."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.server = Server(args.port)
        self.model = args.model

    def error_shapes_outside_the_api(self) -> None:
        """Finding 10 where it is not fixed: 405 on /health and /metrics, and a path that the
        route's extractor rejects, answer without the error JSON."""
        s = self.server
        expect_error("bodies: POST /health is 405 with the error JSON",
                     s.request("POST", "/health", {}), 405)
        expect_error("bodies: DELETE /metrics is 405 with the error JSON",
                     s.request("DELETE", "/metrics"), 405)
        expect_error("bodies: GET /v1/models/%FF (not UTF-8) is a 4xx with the error JSON",
                     s.get("/v1/models/%FF"), (400, 404))

    def slow_bodies(self) -> None:
        s = self.server
        sock = connect(s.port, 10)
        sock.sendall(s.head("POST", "/v1/completions", [("Content-Type", "application/json")],
                            10 << 30) + b"{")
        closed, took, got = closes_within(sock, 4)
        check("bodies: a declared 10 GiB body is refused (413) within 2 s",
              got.startswith(b"HTTP/1.1 413") and took < 2, f"after {took:.1f} s: {short(got)}")
        sock.close()
        sock = connect(s.port, 10)
        sock.sendall(s.head("POST", "/v1/completions", [("Content-Type", "application/json")],
                            1000) + b'{"model": ')
        closed, took, _ = closes_within(sock, 6)
        check("bodies: a body that stops after 10 of 1000 bytes is closed within 6 s", closed,
              f"open after {took:.1f} s")
        sock.close()
        sock = connect(s.port, 10)
        sock.sendall(s.head("POST", "/v1/completions", [("Content-Type", "application/json")],
                            100_000))
        started, closed = time.monotonic(), False
        while time.monotonic() - started < 8 and not closed:
            try:
                sock.sendall(b" ")
            except OSError:
                closed = True
            time.sleep(0.2)
            if not closed:
                closed, _, _ = closes_within(sock, 0.01)
        check("bodies: a body dripped a byte per 200 ms is cut off within 8 s", closed,
              f"open after {time.monotonic() - started:.1f} s")
        sock.close()
        # What that costs: as many stalled bodies as --max-connections (4) lock everyone out.
        stalled = []
        for _ in range(4):
            sock = connect(s.port, 10)
            sock.sendall(s.head("POST", "/v1/completions",
                                [("Content-Type", "application/json")], 1000) + b'{"model": ')
            stalled.append(sock)
        time.sleep(0.5)
        response, took = s.health(timeout=5)
        check("bodies: /health answers within 3 s while 4 request bodies (the connection limit) "
              "are stalled", response.status == 200 and took < 3,
              f"{response.status} after {took:.1f} s")
        for sock in stalled:
            sock.close()

    def text_that_skips_the_byte_bound(self) -> None:
        s = self.server
        huge = "a" * HUGE_PROMPT_BYTES
        for label, route, body, param, ollama in [
            ("tool call arguments", "/v1/chat/completions", {
                "model": self.model, "max_tokens": 1, "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": None, "tool_calls": [{
                        "id": "c1", "type": "function",
                        "function": {"name": "f", "arguments": huge}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "x"}]}, "messages", False),
            ("/v1/embeddings input", "/v1/embeddings", {"model": self.model, "input": huge},
             "input", False),
            ("/api/embed without truncate", "/api/embed",
             {"model": self.model, "input": huge, "truncate": False}, None, True),
        ]:
            started = time.monotonic()
            response = s.post(route, body, timeout=300)
            took = time.monotonic() - started
            expect_error(f"bodies: 7.5 MB of {label} is refused before tokenizing", response, 400,
                         ollama=ollama, mentions="before tokenizing", param=param)
            check(f"bodies: 7.5 MB of {label} is answered within 2 s", took < 2, f"{took:.1f} s")
        # Routes that cut inputs to the context embed the first context's worth of tokens: 7.5 MB
        # costs what 40 kB (also more than the context) costs, not the tokenizing of it all.
        for label, route, key, extra in [
            ("/api/embed with truncate", "/api/embed", "input", {}),
            ("/api/embeddings", "/api/embeddings", "prompt", {}),
        ]:
            timings = {}
            for size in (40_000, HUGE_PROMPT_BYTES):
                started = time.monotonic()
                response = s.post(route, {"model": self.model, key: "a" * size, **extra},
                                  timeout=300)
                timings[size] = time.monotonic() - started
                check(f"bodies: {size} bytes to {label} are embedded (cut to the context)",
                      response.status == 200, repr(response))
            small, large = timings[40_000], timings[HUGE_PROMPT_BYTES]
            check(f"bodies: 7.5 MB to {label} takes about what 40 kB does ({large:.1f} s vs "
                  f"{small:.1f} s)", large < 1.5 * small + 1, f"{large:.1f} s vs {small:.1f} s")


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id (RSS)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--mode", default="requests",
                        choices=["requests", "connections", "flags", "heads", "bodies"])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--max-in-flight", type=int, default=16)
    parser.add_argument("--max-body-bytes", type=int, default=8 << 20)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--rss-margin-mib", type=int, default=256)
    args = parser.parse_args()
    server = Server(args.port)
    sampler = RssSampler(args.pid)
    started = time.monotonic()

    if args.mode == "requests":
        batches = RequestBatches(args)
        order = [batches.warm_up, batches.web_origins_and_hosts, batches.malformed_bodies,
                 batches.field_values, batches.unsupported_features, batches.error_shapes,
                 batches.caps, batches.keep_alive, batches.templates, batches.never_fits,
                 batches.huge_prompts, batches.queue_and_abandoned_streams,
                 batches.body_limits, batches.protocol_garbage, batches.repeated_rounds,
                 batches.unload_and_reload]
    elif args.mode == "connections":
        batches = ConnectionBatches(args)
        order = [batches.idle_connections, batches.half_sent, batches.keep_alive_idle,
                 batches.flood]
    elif args.mode == "flags":
        batches = FlagBatches(args)
        order = [batches.api_key, batches.allowed_origins_and_hosts]
    elif args.mode == "heads":
        batches = HeadBatches(args)
        order = [batches.oversized_uri_and_headers]
    else:
        batches = BodyBatches(args)
        order = [batches.error_shapes_outside_the_api, batches.slow_bodies,
                 batches.text_that_skips_the_byte_bound]

    baseline = bound = None
    peak_over_baseline = 0
    for batch in order:
        name = batch.__name__
        print(f"== {name}")
        batch_started = time.monotonic()
        try:
            batch()
        except Exception:  # noqa: BLE001 - reported as a failed check, the next batch runs
            check(f"{name}: ran to the end", False, traceback.format_exc())
        # After every batch: /health within 1 s, RSS within the bound, nothing left behind.
        response, took = server.health()
        check(f"after {name}: /health is 200 within 1 s ({took:.2f} s)",
              response.status == 200 and took < HEALTH_DEADLINE_S, repr(response))
        stats = wait_idle(server)
        if stats is not None:
            check(f"after {name}: no request in flight, no KV block held, none failed",
                  stats.get("num_in_flight") == 0 and stats.get("kv_num_used_blocks") == 0
                  and stats.get("num_failed_requests") == 0, short(json.dumps(stats)))
        now, peak = rss_bytes(args.pid), sampler.take_peak()
        if baseline is None:
            baseline, bound = now, now + (args.rss_margin_mib << 20)
            print(f"RSS baseline {mib(baseline)}; bound {mib(bound)} (baseline + "
                  f"{args.rss_margin_mib} MiB)")
        peak = max(peak, now)
        if name == "unload_and_reload":
            # Settled, within the bound; for a moment during each load, also the file's pages.
            transient = batches.load_transient_bytes()
            check(f"after {name}: RSS {mib(now)} now within {mib(bound)}, {mib(peak)} at peak "
                  f"within {mib(bound + transient)} (the bound + the file's "
                  f"{mib(transient)}, read while loading)",
                  now <= bound and peak <= bound + transient, f"now {mib(now)}, peak {mib(peak)}")
            continue
        peak_over_baseline = max(peak_over_baseline, peak - baseline)
        check(f"after {name}: RSS {mib(now)} now, {mib(peak)} at peak, within {mib(bound)} "
              f"({time.monotonic() - batch_started:.1f} s)", peak <= bound,
              f"peak {mib(peak)} over {mib(bound)}")
    sampler.stop()
    print(f"hostile_client.py --mode {args.mode}: RSS baseline {mib(baseline)}, peak "
          f"{mib(baseline + peak_over_baseline)} (+{mib(peak_over_baseline)}), bound "
          f"{mib(bound)}; {time.monotonic() - started:.1f} s")
    if R.failures:
        print(f"hostile_client.py --mode {args.mode}: {len(R.failures)} of {R.num_checks} checks "
              "failed:")
        for failure in R.failures:
            print(f"  - {short(failure, 600)}")
        return 1
    print(f"hostile_client.py --mode {args.mode}: all {R.num_checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
