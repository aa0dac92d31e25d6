#!/usr/bin/env python3
"""Soak and KV-pressure tests for a running `uma serve` (any OpenAI-compatible server with
uma's /health statistics).

Standard library only (threads + http.client). Talks only to the --url you give it, and only
to a loopback address (127.x.x.x, localhost, ::1).

Soak: many streaming chat requests, a fraction of them abandoned mid-stream (the socket is
reset after k content chunks), then checks that the server is clean again: no request in
flight, no KV block in use, and (with --pid) its memory back near the baseline.

    target/release/uma serve ~/.cache/uma/models/gemma-3-270m-q4_k_m.gguf \\
        --port 8080 --threads 2 --parallel 32 &
    python3 scripts/bench/soak.py --soak --url http://127.0.0.1:8080 \\
        --model gemma-3-270m-q4_k_m --pid $! --requests 1000 --concurrency 32 \\
        --max-tokens 64 --cancel-fraction 0.2 --json soak.json

Pressure: R long-prompt streaming requests at once against a server whose KV pool is far
smaller than they need together, so the scheduler must queue and preempt; every request must
still complete in full.

    target/release/uma serve ~/.cache/uma/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        --port 8080 --threads 2 --ctx 2048 --kv-cache-tokens 8192 --parallel 32 &
    python3 scripts/bench/soak.py --pressure --url http://127.0.0.1:8080 \\
        --model qwen2.5-coder-0.5b-instruct-q4_k_m --requests 32 --prompt-tokens 1500 \\
        --max-tokens 128

Every generation request sends temperature 0, ignore_eos and stream_options.include_usage, so
a request that is not abandoned must end with `data: [DONE]` and report exactly --max-tokens
completion tokens in its usage chunk. "agg tok/s" is the completion tokens the clients received
(the usage of complete streams plus the content chunks read from abandoned ones) over the wall
time from the first request sent to the last response ended. The exit status is 0 only if
every check passed; the results are printed as a markdown table (and saved with --json FILE).
"""
import argparse
import http.client
import json
import queue
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

# Prompt material (as in shared/bench/loadgen.py): distinct ~100-token prompts for request i.
TOPICS = [
    "a thread-safe LRU cache", "a JSON pretty printer", "a rate limiter using a token bucket",
    "a trie for prefix search", "an interval tree", "a CSV parser that handles quoted fields",
    "a binary heap priority queue", "Dijkstra's shortest path", "a bloom filter",
    "a ring buffer", "a simple regex matcher supporting . and *", "an LZ77 compressor",
    "a union-find structure with path compression", "a topological sort",
    "an HTTP request line parser", "a matrix multiplication with blocking",
    "a skip list", "a base64 encoder", "a rolling hash (Rabin-Karp) substring search",
    "a consistent hashing ring", "a markdown table formatter", "a command line argument parser",
    "a retry decorator with exponential backoff", "an event emitter", "a sparse vector dot product",
    "a k-means clustering step", "a min-stack", "a sudoku validator", "a URL shortener core",
    "a producer-consumer queue", "a merge of k sorted lists", "a date range iterator",
]
LANGS = ["Python", "Rust", "Go", "C", "TypeScript", "Java", "C++", "Kotlin"]
STYLES = [
    "Keep the public API small and document every function.",
    "Prefer clarity over cleverness and explain the complexity.",
    "Include unit tests that cover the edge cases.",
    "Avoid external dependencies and handle errors explicitly.",
]
FILLER = ("The implementation will be reviewed for correctness, naming, performance on "
          "large inputs, memory use, and readability by a team that maintains it for years. "
          "State any assumptions about the input, describe the data layout, and give a short "
          "example of calling it. Then write the full code with comments.").split()
# Words for the long pressure prompts: common English words, about 1.15 tokens each (Qwen 2.5).
WORDS = ("system request buffer value thread memory cache index table record client server "
         "stream token batch block queue worker signal error result output input string number "
         "window layer model weight vector matrix kernel shape format header packet socket "
         "channel handle state event timer clock limit budget policy random seed order "
         "sorted merge split parse print write read open close start finish cancel retry "
         "green orange river mountain garden window letter market travel winter summer "
         "quiet rapid gentle bright narrow simple careful honest modern ancient").split()



def server_failures(out, settled, waited, after_stats):
    """What the server's own counters say went wrong: failed requests, and requests or KV
    blocks still held once the load is over."""
    failures = []
    if out["server_failed"]:
        failures.append(f"server counted {out['server_failed']} failed requests")
    if not settled:
        failures.append(f"after {waited:.0f} s: {after_stats['num_in_flight']} in flight, "
                        f"{after_stats['kv_num_used_blocks']} KV blocks used")
    return failures

def chat_prompt(i, target_words=60):
    """Distinct ~100-token chat prompt for request i (loadgen's recipe)."""
    rnd = random.Random(1000 + i)
    out = f"Request #{i}: write {TOPICS[i % len(TOPICS)]} in " \
          f"{LANGS[(i // len(TOPICS)) % len(LANGS)]}. {rnd.choice(STYLES)}".split()
    k = 0
    while len(out) < target_words:
        out.append(FILLER[k % len(FILLER)])
        k += 1
    return " ".join(out)


def long_prompt(i, approx_tokens):
    """Distinct text of roughly approx_tokens tokens: a unique head, then seeded random words."""
    rnd = random.Random(50_000 + i)
    n_words = max(8, int(approx_tokens / 1.15))
    words = [f"Document {i}:"]
    while len(words) < n_words:
        sentence = [rnd.choice(WORDS) for _ in range(rnd.randint(6, 14))]
        sentence[0] = sentence[0].capitalize()
        words.extend(sentence)
        words[-1] += "."
    return " ".join(words[:n_words]) + "\n\nSummarise the document above."


class Target:
    def __init__(self, url, timeout):
        parts = urllib.parse.urlparse(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.timeout = timeout

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def get_json(self, path):
        conn = self.connect()
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()


def check_loopback(url):
    parts = urllib.parse.urlparse(url)
    host = parts.hostname or ""
    if parts.scheme != "http":
        sys.exit(f"soak.py: only http:// URLs are supported, not {url!r}")
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        sys.exit(f"soak.py: refusing non-loopback host {host!r}: this tool only loads a local server")


def model_stats(target, model):
    """The /health `stats` of `model` (or of the first model)."""
    health = target.get_json("/health")
    models = health.get("models") or []
    for m in models:
        if m.get("model") == model:
            return m["stats"]
    if models:
        return models[0]["stats"]
    raise RuntimeError(f"/health lists no model: {health}")


def rss_bytes(pid):
    """VmRSS of process pid, in bytes (None without a pid)."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def stream_chat(target, model, prompt, max_tokens, cancel_after=None, extra=None):
    """One streaming chat request. With cancel_after=k, resets the connection (SO_LINGER 0)
    after the k-th content chunk. Returns a dict describing what happened."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(extra or {})
    r = {"status": None, "done": False, "cancelled": False, "usage": None, "chunks": 0,
         "finish_reason": None, "err": None, "ttft": None}
    r["t_start"] = time.perf_counter()
    conn = target.connect()
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json",
                              "Accept": "text/event-stream", "Connection": "close"})
        sock = conn.sock
        resp = conn.getresponse()
        r["status"] = resp.status
        if resp.status != 200:
            r["err"] = f"HTTP {resp.status}: {resp.read()[:300]!r}"
            return r
        while True:
            raw = resp.readline()
            if not raw:
                break  # the server closed the stream
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators and ": keep-alive" comments
            data = line[5:].strip()
            if data == b"[DONE]":
                r["done"] = True
                break
            obj = json.loads(data)
            if obj.get("usage"):
                r["usage"] = obj["usage"]
            for choice in obj.get("choices") or []:
                if choice.get("finish_reason"):
                    r["finish_reason"] = choice["finish_reason"]
                if (choice.get("delta") or {}).get("content"):
                    r["chunks"] += 1
                    if r["ttft"] is None:
                        r["ttft"] = time.perf_counter() - r["t_start"]
            if cancel_after is not None and r["chunks"] >= cancel_after:
                # Abrupt close: linger 0 makes the kernel send RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                resp.close()
                sock.close()
                r["cancelled"] = True
                break
    except Exception as e:  # noqa: BLE001 (every failure is a result)
        r["err"] = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
        r["t_end"] = time.perf_counter()
    return r


def run_pool(jobs, concurrency, work):
    """Runs work(job) for every job on `concurrency` threads; returns the results in job order."""
    todo = queue.Queue()
    for index, job in enumerate(jobs):
        todo.put((index, job))
    results = [None] * len(jobs)

    def worker():
        while True:
            try:
                index, job = todo.get_nowait()
            except queue.Empty:
                return
            results[index] = work(job)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def wait_idle(target, model, timeout):
    """Polls /health until nothing is in flight and no KV block is used, up to timeout s.
    Returns (stats, seconds waited, settled)."""
    t0 = time.perf_counter()
    while True:
        stats = model_stats(target, model)
        settled = stats["num_in_flight"] == 0 and stats["kv_num_used_blocks"] == 0
        waited = time.perf_counter() - t0
        if settled or waited >= timeout:
            return stats, waited, settled
        time.sleep(0.2)


def delta(after, before, key):
    return after.get(key, 0) - before.get(key, 0)


def check_stream(r, max_tokens):
    """Why a request that was not abandoned is incomplete (None if it is complete)."""
    got = (r["usage"] or {}).get("completion_tokens")
    if not r["done"]:
        return "no [DONE]"
    if got != max_tokens:
        return f"completion_tokens {got} != {max_tokens}"
    return None


def summarise(results, max_tokens):
    """Shared tallies of one run's requests."""
    http_errors = {}
    transport_errors = []
    incomplete = []
    for r in results:
        if r["status"] is not None and r["status"] != 200:
            http_errors[str(r["status"])] = http_errors.get(str(r["status"]), 0) + 1
        elif r["status"] is None or (r["err"] and not r["cancelled"]):
            transport_errors.append(r["err"])
        elif not r["cancelled"]:
            why = check_stream(r, max_tokens)
            if why:
                incomplete.append(why)
    t0 = min(r["t_start"] for r in results)
    t1 = max(r["t_end"] for r in results)
    wall = t1 - t0
    tokens = sum((r["usage"] or {}).get("completion_tokens", 0) for r in results
                 if not r["cancelled"]) + sum(r["chunks"] for r in results if r["cancelled"])
    return {
        "http_errors": http_errors,
        "transport_errors": len(transport_errors),
        "first_transport_error": transport_errors[0] if transport_errors else None,
        "incomplete_streams": len(incomplete),
        "first_incomplete": incomplete[0] if incomplete else None,
        "wall_s": round(wall, 2),
        "completion_tokens_received": tokens,
        "agg_tok_s": round(tokens / wall, 1) if wall > 0 else 0.0,
    }


def soak(args, target):
    rng = random.Random(args.seed)
    m = args.max_tokens
    plan = []
    for i in range(args.requests):
        cancel = rng.random() < args.cancel_fraction
        k = rng.randint(1, max(1, m // 2)) if cancel else None
        plan.append((i, k))

    # Warm-up: one round at full concurrency, so the baseline RSS already holds the buffers a
    # full batch needs (they are kept for reuse, which is not a leak).
    warm = run_pool(list(range(args.warmup)), max(1, min(args.concurrency, args.warmup)),
                    lambda i: stream_chat(target, args.model, f"Warm-up {i}: say hi.", 4))
    if any(r["status"] != 200 or not r["done"] for r in warm):
        bad = next(r for r in warm if r["status"] != 200 or not r["done"])
        sys.exit(f"soak.py: warm-up failed: {bad['err']}")
    before_stats, _, _ = wait_idle(target, args.model, args.idle_timeout)
    rss_before = rss_bytes(args.pid)

    def work(job):
        i, k = job
        prompt = chat_prompt(args.prompt_offset + i, args.prompt_words)
        return stream_chat(target, args.model, prompt, m, cancel_after=k)

    results = run_pool(plan, args.concurrency, work)
    rss_right_after = rss_bytes(args.pid)
    after_stats, waited, settled = wait_idle(target, args.model, args.idle_timeout)
    time.sleep(args.idle_wait)
    rss_idle = rss_bytes(args.pid)

    out = summarise(results, m)
    cancelled = sum(1 for r in results if r["cancelled"])
    planned = sum(1 for _, k in plan if k is not None)
    out.update({
        "mode": "soak",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "max_tokens": m,
        "cancel_fraction": args.cancel_fraction,
        "seed": args.seed,
        "cancels_planned": planned,
        "cancelled_by_client": cancelled,
        "completed_ok": sum(1 for r in results if not r["cancelled"] and r["status"] == 200
                            and check_stream(r, m) is None and not r["err"]),
        "mean_prompt_tokens": mean([(r["usage"] or {}).get("prompt_tokens") for r in results]),
        "ttft_med_ms": median_ms([r["ttft"] for r in results if not r["cancelled"]]),
        "idle_wait_s": round(waited, 2),
        "settled": settled,
        "num_in_flight_after": after_stats["num_in_flight"],
        "kv_num_used_blocks_after": after_stats["kv_num_used_blocks"],
        "kv_num_blocks": after_stats["kv_num_blocks"],
        "server_cancelled": delta(after_stats, before_stats, "num_cancelled_requests"),
        "server_finished": delta(after_stats, before_stats, "num_finished_requests"),
        "server_failed": delta(after_stats, before_stats, "num_failed_requests"),
        "server_preemptions": delta(after_stats, before_stats, "num_preemptions"),
    })
    failures = []
    if out["http_errors"]:
        failures.append(f"HTTP errors {out['http_errors']}")
    if out["transport_errors"]:
        failures.append(f"{out['transport_errors']} transport errors "
                        f"(first: {out['first_transport_error']})")
    if out["incomplete_streams"]:
        failures.append(f"{out['incomplete_streams']} incomplete streams "
                        f"(first: {out['first_incomplete']})")
    failures += server_failures(out, settled, waited, after_stats)
    if args.pid is not None:
        limit = rss_before * 1.1 + 50 * 2**20
        out.update({
            "rss_before_mib": mib(rss_before),
            "rss_right_after_mib": mib(rss_right_after),
            "rss_after_idle_mib": mib(rss_idle),
            "rss_limit_mib": mib(limit),
            "memory_back_to_baseline": rss_idle <= limit,
        })
        if rss_idle > limit:
            failures.append(f"RSS after idle {mib(rss_idle)} MiB > limit {mib(limit)} MiB")
    out["failures"] = failures
    rows = [
        ("requests (cancelled by client / planned)",
         f"{args.requests} ({cancelled} / {planned})"),
        ("concurrency", args.concurrency),
        ("max_tokens (ignore_eos)", m),
        ("mean prompt tokens", fmt(out["mean_prompt_tokens"])),
        ("completed in full (200 + [DONE] + max_tokens)", out["completed_ok"]),
        ("HTTP errors by status", out["http_errors"] or "none"),
        ("transport errors", out["transport_errors"]),
        ("incomplete non-cancelled streams", out["incomplete_streams"]),
        ("wall s", out["wall_s"]),
        ("completion tokens received", out["completion_tokens_received"]),
        ("agg tok/s", out["agg_tok_s"]),
        ("TTFT median ms (completed)", fmt(out["ttft_med_ms"])),
        ("server: finished / cancelled / failed (delta)",
         f"{out['server_finished']} / {out['server_cancelled']} / {out['server_failed']}"),
        ("server: preemptions (delta)", out["server_preemptions"]),
        (f"after load (waited {out['idle_wait_s']} s): num_in_flight", out["num_in_flight_after"]),
        ("after load: kv_num_used_blocks",
         f"{out['kv_num_used_blocks_after']} of {out['kv_num_blocks']}"),
    ]
    if args.pid is not None:
        rows += [
            ("RSS before load (after warm-up) MiB", out["rss_before_mib"]),
            ("RSS right after load MiB", out["rss_right_after_mib"]),
            (f"RSS after idle ({args.idle_wait:g} s past settling) MiB", out["rss_after_idle_mib"]),
            ("memory back to baseline: RSS after idle <= RSS before × 1.1 + 50 MiB",
             f"{out['memory_back_to_baseline']} ({out['rss_after_idle_mib']} <= "
             f"{out['rss_limit_mib']})"),
        ]
    return out, rows


def pressure(args, target):
    before_stats, _, _ = wait_idle(target, args.model, args.idle_timeout)

    def work(i):
        prompt = long_prompt(args.prompt_offset + i, args.prompt_tokens)
        return stream_chat(target, args.model, prompt, args.max_tokens)

    # Every request at once: one thread each.
    results = run_pool(list(range(args.requests)), args.requests, work)
    after_stats, waited, settled = wait_idle(target, args.model, args.idle_timeout)
    out = summarise(results, args.max_tokens)
    ok = sum(1 for r in results if r["status"] == 200 and not r["err"]
             and check_stream(r, args.max_tokens) is None)
    prompt_tokens = [(r["usage"] or {}).get("prompt_tokens") for r in results]
    out.update({
        "mode": "pressure",
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "prompt_tokens_target": args.prompt_tokens,
        "mean_prompt_tokens": mean(prompt_tokens),
        "min_prompt_tokens": min((p for p in prompt_tokens if p), default=None),
        "max_prompt_tokens": max((p for p in prompt_tokens if p), default=None),
        "completed_ok": ok,
        "failures_count": args.requests - ok,
        "ttft_med_ms": median_ms([r["ttft"] for r in results]),
        "ttft_max_ms": max_ms([r["ttft"] for r in results]),
        "kv_num_blocks": after_stats["kv_num_blocks"],
        "kv_block_size": after_stats["kv_block_size"],
        "server_preemptions": delta(after_stats, before_stats, "num_preemptions"),
        "server_failed": delta(after_stats, before_stats, "num_failed_requests"),
        "server_finished": delta(after_stats, before_stats, "num_finished_requests"),
        "server_prompt_tokens": delta(after_stats, before_stats, "num_prompt_tokens"),
        "server_prefix_cache_hit_tokens": delta(after_stats, before_stats,
                                                "prefix_cache_hit_tokens"),
        "settled": settled,
        "num_in_flight_after": after_stats["num_in_flight"],
        "kv_num_used_blocks_after": after_stats["kv_num_used_blocks"],
    })
    failures = []
    if out["failures_count"]:
        failures.append(f"{out['failures_count']} of {args.requests} requests failed or were "
                        f"incomplete (HTTP {out['http_errors'] or '-'}, transport "
                        f"{out['first_transport_error']}, stream {out['first_incomplete']})")
    failures += server_failures(out, settled, waited, after_stats)
    out["failures"] = failures
    pool = after_stats["kv_num_blocks"] * after_stats["kv_block_size"]
    rows = [
        ("requests at once", args.requests),
        ("prompt tokens mean (min-max)",
         f"{fmt(out['mean_prompt_tokens'])} ({out['min_prompt_tokens']}-{out['max_prompt_tokens']})"),
        ("max_tokens (ignore_eos)", args.max_tokens),
        ("KV pool tokens (needed by all at once)",
         f"{pool} ({int((out['mean_prompt_tokens'] or 0) + args.max_tokens) * args.requests})"),
        ("completed in full (200 + [DONE] + max_tokens)", f"{ok} / {args.requests}"),
        ("failures", out["failures_count"]),
        ("server: preemptions (num_preemptions delta)", out["server_preemptions"]),
        ("server: failed requests (delta)", out["server_failed"]),
        ("server: prompt tokens submitted (num_prompt_tokens delta)", out["server_prompt_tokens"]),
        ("wall s", out["wall_s"]),
        ("agg tok/s (completion)", out["agg_tok_s"]),
        ("TTFT median / max ms", f"{fmt(out['ttft_med_ms'])} / {fmt(out['ttft_max_ms'])}"),
        ("after load: num_in_flight / kv_num_used_blocks",
         f"{out['num_in_flight_after']} / {out['kv_num_used_blocks_after']}"),
    ]
    return out, rows


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def median_ms(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return 1000 * (xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2)


def max_ms(xs):
    xs = [x for x in xs if x is not None]
    return 1000 * max(xs) if xs else None


def mib(n):
    return None if n is None else round(n / 2**20, 1)


def fmt(x):
    return "-" if x is None else f"{x:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--soak", action="store_true", help="many requests, some abandoned")
    mode.add_argument("--pressure", action="store_true", help="long prompts on a small KV pool")
    ap.add_argument("--url", required=True, help="server base URL, loopback only (no /v1)")
    ap.add_argument("--model", required=True, help="model name sent in the request body")
    ap.add_argument("--requests", type=int,
                    help="requests (default: 1000 with --soak, 32 with --pressure)")
    ap.add_argument("--concurrency", type=int, default=32, help="--soak: requests at once")
    ap.add_argument("--max-tokens", type=int,
                    help="completion tokens per request (default: 64 soak, 128 pressure)")
    ap.add_argument("--cancel-fraction", type=float, default=0.2,
                    help="--soak: fraction of requests abandoned mid-stream")
    ap.add_argument("--seed", type=int, default=1, help="--soak: RNG seed of the cancel plan")
    ap.add_argument("--prompt-words", type=int, default=60,
                    help="--soak: words per prompt (60: ~100 tokens)")
    ap.add_argument("--prompt-tokens", type=int, default=1500,
                    help="--pressure: approximate prompt length in tokens")
    ap.add_argument("--prompt-offset", type=int, default=0,
                    help="shift prompt ids, so a repeated run against one server misses the "
                         "prefix cache")
    ap.add_argument("--warmup", type=int, default=None,
                    help="--soak: short requests before the baseline (default: --concurrency)")
    ap.add_argument("--pid", type=int, help="server process id: compare its RSS (--soak)")
    ap.add_argument("--idle-timeout", type=float, default=30,
                    help="seconds to wait for /health to show no request and no used block")
    ap.add_argument("--idle-wait", type=float, default=5,
                    help="--soak: further seconds idle before the last RSS reading")
    ap.add_argument("--request-timeout", type=float, default=1800,
                    help="socket timeout per request, s")
    ap.add_argument("--json", help="save the results here")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    check_loopback(args.url)
    if args.requests is None:
        args.requests = 1000 if args.soak else 32
    if args.max_tokens is None:
        args.max_tokens = 64 if args.soak else 128
    if args.warmup is None:
        args.warmup = args.concurrency
    if args.requests < 1 or args.max_tokens < 1 or args.concurrency < 1:
        sys.exit("soak.py: --requests, --max-tokens and --concurrency must be positive")
    target = Target(args.url, args.request_timeout)
    try:
        model_stats(target, args.model)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"soak.py: cannot read {args.url}/health: {e}")

    out, rows = soak(args, target) if args.soak else pressure(args, target)
    out.update({"url": args.url, "model": args.model,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"## {out['mode']}: {args.model} at {args.url}\n")
    print("| metric | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"| result | {'PASS' if not out['failures'] else 'FAIL'} |")
    for failure in out["failures"]:
        print(f"FAIL: {failure}", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    sys.exit(1 if out["failures"] else 0)


if __name__ == "__main__":
    main()
