#!/usr/bin/env bash
# uma serve against llama-server on the same GGUF file and thread count, one after the other in one
# run, driven by the neutral load generator ../shared/bench/loadgen.py:
#   - throughput sweep: streaming chat, ~105-token distinct prompts, exactly 128 output tokens
#     (ignore_eos), temperature 0, 64 requests per concurrency level 1, 4, 8, 16;
#   - prefix test: 8 sequential requests sharing a ~1,450-token code prompt.
# UMA_FIRST=1 runs uma first. Both servers get 16 sequences of 2,048 positions (llama-server: -np 16 -c 32768). Prints both
# tables and the ratios uma / llama-server.
#
#   scripts/bench/serve-vs-llama-server.sh MODEL.gguf [THREADS=2] [LEVELS=1,4,8,16] [REQUESTS=64]
#
# Needs the peer build of ../shared/peers/llama-cpp.sh (its bin folder in $LLAMA_BIN, or found in
# ~/.cache/uma-peers) and python3. Servers bind 127.0.0.1 on free ports and are always stopped.
set -euo pipefail
model="$1"; threads="${2:-2}"; levels="${3:-1,4,8,16}"; requests="${4:-64}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
loadgen="${LOADGEN:-$root/../shared/bench/loadgen.py}"
[ -f "$loadgen" ] || { echo "loadgen.py not found: set LOADGEN" >&2; exit 1; }
# UMA_BIN: another build of uma to measure (e.g. the commit before a change); else this checkout's.
# shellcheck source=servers.sh
source "$root/scripts/bench/servers.sh"
measure() { # label port
  python3 "$loadgen" --url "http://127.0.0.1:$2" --model "$name" --concurrency "$levels" \
    --requests "$requests" --max-tokens 128 --ignore-eos --level-timeout 600 --json "$out/$1-sweep.json"
  python3 "$loadgen" --url "http://127.0.0.1:$2" --model "$name" --prefix-test --json "$out/$1-prefix.json"
}

run_llama() {
  port="$(free_port)"
  echo "== llama-server ($threads threads)"
  "$bin/llama-server" -m "$model" -t "$threads" -np 16 -c 32768 --host 127.0.0.1 --port "$port" \
    --alias "$name" --no-webui >"$out/llama.log" 2>&1 & server=$!
  wait_ready "$port"; measure llama "$port"
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=""
}
run_uma() {
  port="$(free_port)"
  echo "== uma serve ($threads threads)"
  "$uma" serve "$model" --threads "$threads" --parallel 16 --ctx 2048 --port "$port" \
    >"$out/uma.out" 2>"$out/uma.log" & server=$!
  wait_ready "$port"; measure uma "$port"
  curl -s "http://127.0.0.1:$port/health" >"$out/uma-health.json"
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=""
}
# The machine drifts over minutes: UMA_FIRST=1 swaps the order to check that it does not decide
# the ratios.
if [ -n "${UMA_FIRST:-}" ]; then run_uma; run_llama; else run_llama; run_uma; fi

python3 - "$out" "$name" "$threads" <<'PY'
import json, statistics, sys
out, name, threads = sys.argv[1:]
load = lambda f: json.load(open(f"{out}/{f}"))
sweep = {k: {lv["concurrency"]: lv for lv in load(f"{k}-sweep.json")["levels"]} for k in ("llama", "uma")}
print(f"\n{name}, {threads} threads, 128 output tokens per request")
print("| concurrency | llama-server tok/s | uma tok/s | ratio | llama-server TTFT med ms | uma TTFT med ms | ratio |")
print("|---|---|---|---|---|---|---|")
for c in sorted(sweep["uma"]):
    l, u = sweep["llama"].get(c), sweep["uma"][c]
    if not l or not l.get("agg_tok_s") or not u.get("agg_tok_s"):
        print(f"| {c} | - | - | - | - | - | - |"); continue
    print(f"| {c} | {l['agg_tok_s']:.1f} | {u['agg_tok_s']:.1f} | {u['agg_tok_s']/l['agg_tok_s']:.2f} "
          f"| {l['ttft_med_ms']:.0f} | {u['ttft_med_ms']:.0f} | {u['ttft_med_ms']/l['ttft_med_ms']:.2f} |")
prefix = {k: load(f"{k}-prefix.json")["prefix"] for k in ("llama", "uma")}
later = {k: statistics.median(x["ttft_ms"] for x in v[1:]) for k, v in prefix.items()}
first = {k: v[0]["ttft_ms"] for k, v in prefix.items()}
print(f"\nprefix test: first TTFT llama-server {first['llama']:.0f} ms, uma {first['uma']:.0f} ms; "
      f"later requests median llama-server {later['llama']:.0f} ms, uma {later['uma']:.0f} ms, "
      f"ratio {later['uma']/later['llama']:.2f}")
print("uma later TTFTs (ms):", ", ".join(f"{x['ttft_ms']:.0f}" for x in prefix["uma"][1:]))
print("llama-server later TTFTs (ms):", ", ".join(f"{x['ttft_ms']:.0f}" for x in prefix["llama"][1:]))
stats = load("uma-health.json")["models"][0]["stats"]
print(f"uma /health after the run: {stats['kv_num_used_blocks']} KV blocks in use, "
      f"{stats['prefix_cache_hit_tokens']} of {stats['prefix_cache_queried_tokens']} prompt tokens "
      f"from the prefix cache, {stats['num_preemptions']} preemptions")
PY
