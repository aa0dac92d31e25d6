#!/usr/bin/env bash
# uma against llama.cpp on the same GGUF file and thread count, one after the other in one run:
#   llama-bench          -p 512 -n 128 -r REPS                 (prefill, decode)
#   llama-batched-bench  -npp 8 -ntg 128 -npl 16               (16 sequences decoding: S_TG)
#   uma bench            -p 512 -n 128 -r REPS --batch 1,16    (the same three, plus bandwidth)
# and prints the ratios uma / llama.cpp. UMA_FIRST=1 runs uma first (measure in both orders: the
# VM's bandwidth drifts within a run).
#
#   scripts/bench/vs-llama-cpp.sh MODEL.gguf [THREADS=2] [REPS=3]
#
# Needs the peer build of ../shared/peers/llama-cpp.sh (its bin folder in $LLAMA_BIN, or found in
# ~/.cache/uma-peers) and python3.
set -euo pipefail
model="$1"; threads="${2:-2}"; reps="${3:-3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${LLAMA_BIN:-$(ls -d "$HOME"/.cache/uma-peers/*/build/bin 2>/dev/null | head -1)}"
[ -x "$bin/llama-bench" ] || { echo "llama-bench not found: set LLAMA_BIN" >&2; exit 1; }
# UMA_BIN: another build of uma to measure (e.g. the commit before a change); else this checkout's.
uma="${UMA_BIN:-$root/target/release/uma}"
[ -n "${UMA_BIN:-}" ] || (cd "$root" && cargo build --release -q -p uma-cli)
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT

run_llama() {
  "$bin/llama-bench" -m "$model" -t "$threads" -p 512 -n 128 -r "$reps" -o json 2>/dev/null >"$out/llama.json"
  "$bin/llama-batched-bench" -m "$model" -t "$threads" -c 4096 -b 2048 -ub 512 \
    -npp 8 -ntg 128 -npl 16 2>/dev/null | grep -E '^\|' >"$out/batched.md" || true
}
run_uma() {
  "$uma" bench "$model" -p 512 -n 128 -r "$reps" --batch 1,16 --threads "$threads" --json >"$out/uma.json"
}
if [ "${UMA_FIRST:-0}" = 1 ]; then run_uma; run_llama; else run_llama; run_uma; fi

python3 - "$out" "$model" "$threads" <<'PY'
import json, sys, os
out, model, threads = sys.argv[1], os.path.basename(sys.argv[2]), sys.argv[3]
llama_runs = json.load(open(f"{out}/llama.json"))
llama = {("pp" if r["n_prompt"] else "tg"): (r["avg_ts"], r["stddev_ts"]) for r in llama_runs}
s_tg = None
for line in open(f"{out}/batched.md"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if cells and cells[0].isdigit() and cells[2] == "16":
        s_tg = (float(cells[7]), None)
uma = json.load(open(f"{out}/uma.json"))
res = {r["test"]: r for r in uma["results"]}
bw = uma["bandwidth"]["gb_per_s"]
rows = [("prefill pp512", llama.get("pp"), res["pp512"]),
        ("decode tg128", llama.get("tg"), res["tg128"]),
        ("16 sequences decoding (S_TG)", s_tg, res["tg128 x16"])]
print(f"{model}, {threads} threads, read bandwidth {bw:.1f} GB/s ({uma['bandwidth']['source']})")
print("| test | llama.cpp tok/s | uma tok/s | uma / llama.cpp |")
print("|---|---|---|---|")
for name, ref, r in rows:
    if ref is None:
        ref_s, ratio = "n/a", "n/a"
    else:
        ref_s = f"{ref[0]:.1f}" + (f" ± {ref[1]:.1f}" if ref[1] is not None else "")
        ratio = f"{r['mean'] / ref[0]:.2f}"
    print(f"| {name} | {ref_s} | {r['mean']:.1f} ± {r['sd']:.1f} | {ratio} |")
w = uma["model"]["weight_bytes_per_token"] / 1e9
for name, tps in (("uma", res["tg128"]["mean"]), ("llama.cpp", llama.get("tg", (None,))[0])):
    if tps:
        print(f"decode weight bandwidth, {name}: {w * tps:.1f} GB/s = {100 * w * tps / bw:.0f}% of {bw:.1f} GB/s")
PY
