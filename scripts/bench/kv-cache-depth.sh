#!/usr/bin/env bash
# The KV cache types at a long context, uma against llama.cpp on the same GGUF file and thread
# count, one after the other in one run: prefill and decode after DEPTH tokens of context with
# an f16 and a Q8_0 cache (llama.cpp with flash attention, which its Q8_0 V cache needs):
#   llama-bench  -p 512 -n 128 -d DEPTH -fa on -ctk T -ctv T -r REPS
#   uma bench    -p 512 -n 128 -d DEPTH --kv-cache-type T -r REPS
# and prints tokens/s and the ratios uma / llama.cpp.
#
#   scripts/bench/kv-cache-depth.sh MODEL.gguf [THREADS=2] [DEPTH=4096] [REPS=3]
set -euo pipefail
model="$1"; threads="${2:-2}"; depth="${3:-4096}"; reps="${4:-3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${LLAMA_BIN:-$(ls -d "$HOME"/.cache/uma-peers/*/build/bin 2>/dev/null | head -1)}"
[ -x "$bin/llama-bench" ] || { echo "llama-bench not found: set LLAMA_BIN" >&2; exit 1; }
uma="$root/target/release/uma"
(cd "$root" && cargo build --release -q -p uma-cli)
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT

for t in f16 q8_0; do
  "$bin/llama-bench" -m "$model" -t "$threads" -p 512 -n 128 -d "$depth" -fa on -ctk "$t" -ctv "$t" \
    -r "$reps" -o json 2>/dev/null >"$out/llama-$t.json"
  "$uma" bench "$model" -p 512 -n 128 -d "$depth" -r "$reps" --threads "$threads" \
    --kv-cache-type "$t" --bandwidth 1 --json >"$out/uma-$t.json"
done

python3 - "$out" "$model" "$threads" "$depth" <<'PY'
import json, sys, os
out, model, threads, depth = sys.argv[1], os.path.basename(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"{model}, {threads} threads, after {depth} tokens of context")
print("| cache | test | llama.cpp tok/s | uma tok/s | uma / llama.cpp |")
print("|---|---|---|---|---|")
for t in ("f16", "q8_0"):
    llama = {("pp" if r["n_prompt"] else "tg"): r for r in json.load(open(f"{out}/llama-{t}.json"))}
    uma = {("pp" if r["n_prompt"] else "tg"): r for r in json.load(open(f"{out}/uma-{t}.json"))["results"]}
    for kind, name in (("pp", f"pp512 @ d{depth}"), ("tg", f"tg128 @ d{depth}")):
        l, u = llama[kind], uma[kind]
        print(f"| {t} | {name} | {l['avg_ts']:.1f} ± {l['stddev_ts']:.1f} | "
              f"{u['mean']:.1f} ± {u['sd']:.1f} | {u['mean'] / l['avg_ts']:.2f} |")
PY
