#!/usr/bin/env bash
# Time to first token of `uma serve` for a model that is (1) resident, (2) re-loaded while its file
# is still in the page cache, and (3) loaded cold from disk (page cache dropped: needs root, Linux).
#
#   scripts/bench/model-load-ttft.sh MODEL.gguf [THREADS=2] [REPEATS=3]
#
# One server; the model is unloaded between measurements by a request with "keep_alive": 0.
# Each TTFT is one streaming chat request (short prompt, never the same twice, 8 tokens), timed by the client from
# sending to the first content chunk. Prints a table and the medians.
set -euo pipefail
model="$1"; threads="${2:-2}"; repeats="${3:-3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
uma="$root/target/release/uma"
(cd "$root" && cargo build --release -q -p uma-cli)
[ -w /proc/sys/vm/drop_caches ] || { echo "cannot drop the page cache (needs root)" >&2; exit 1; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$(mktemp)"
"$uma" serve "m=$model" --threads "$threads" --parallel 1 --ctx 1024 --keep-alive -1 \
  --port "$port" >/dev/null 2>"$log" & server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done

python3 - "$port" "$repeats" <<'EOF'
import json, statistics, subprocess, sys, time, urllib.request

port, repeats = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}"

requests_sent = 0

def ttft(keep_alive=None):
    # A different prompt each time: no answer starts from the prefix cache.
    global requests_sent
    requests_sent += 1
    body = {"model": "m", "stream": True, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user",
                          "content": f"Write haiku number {requests_sent} about memory."}]}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    request = urllib.request.Request(f"{base}/v1/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    start = time.perf_counter()
    first = None
    with urllib.request.urlopen(request, timeout=600) as response:
        for line in response:
            if first is None and line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - start
    return first * 1000

def status():
    return json.load(urllib.request.urlopen(f"{base}/v1/models"))["data"][0]["status"]

def unload():
    ttft(keep_alive=0)
    while status() != "available":
        time.sleep(0.05)
    time.sleep(0.3)  # the engine thread exits and the memory is released

rows = {"resident": [], "page cache": [], "cold": []}
for _ in range(repeats):
    unload()
    subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], check=True)
    rows["cold"].append(ttft())
    rows["resident"].append(ttft())
    unload()
    rows["page cache"].append(ttft())
print("| state | TTFT ms (each run) | median ms |")
print("|---|---|---|")
for name, values in rows.items():
    runs = ", ".join(f"{v:.0f}" for v in values)
    print(f"| {name} | {runs} | {statistics.median(values):.0f} |")
EOF
grep -E "loaded model" "$log" | tail -3 >&2 || true
