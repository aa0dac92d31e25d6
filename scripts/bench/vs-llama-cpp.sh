#!/usr/bin/env bash
# uma against llama.cpp on the same GGUF file and thread count, one after the other in one run:
#   llama-bench          -p 512 -n 128 -r REPS                 (prefill, decode)
#   llama-batched-bench  -npp 8 -ntg 128 -npl 16               (16 sequences decoding: S_TG)
#   uma bench            -p 512 -n 128 -r REPS --batch 1,16    (the same three, plus bandwidth)
# and prints the ratios uma / llama.cpp. UMA_FIRST=1 runs uma first (measure in both orders: the
# VM's bandwidth drifts within a run). On Linux it also prints how busy the machine was: the load
# average, and the cores that other processes (and the hypervisor's steal) used while each engine
# ran, from /proc/stat less this script's own children: 0.0 is a quiet machine.
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

# "busy ticks of the whole machine, CPU ticks of this shell's waited-for children, seconds"
cpu_mark() {
  [ -r /proc/stat ] || { echo "0 0 0"; return; }
  local _cpu u n s idle w irq sirq steal rest
  read -r _cpu u n s idle w irq sirq steal rest </proc/stat
  echo "$((u + n + s + irq + sirq + steal)) $(cut -d' ' -f16,17 /proc/$$/stat | tr ' ' +) $(date +%s.%N)"
}
# Cores that other processes used between two marks: cpu_mark >FILE before, cpu_mark >>FILE after.
foreign_cores() {
  python3 - "$1" "$(getconf CLK_TCK)" <<'PY'
import sys
(b0, c0, t0), (b1, c1, t1) = [[eval(x) for x in l.split()] for l in open(sys.argv[1])]
print(f"{max(0, (b1 - b0) - (c1 - c0)) / int(sys.argv[2]) / max(t1 - t0, 1e-9):.2f}")
PY
}
run_llama() {
  cpu_mark >"$out/llama.cpu"
  "$bin/llama-bench" -m "$model" -t "$threads" -p 512 -n 128 -r "$reps" -o json 2>/dev/null >"$out/llama.json"
  "$bin/llama-batched-bench" -m "$model" -t "$threads" -c 4096 -b 2048 -ub 512 \
    -npp 8 -ntg 128 -npl 16 2>/dev/null | grep -E '^\|' >"$out/batched.md" || true
  cpu_mark >>"$out/llama.cpu"
}
run_uma() {
  cpu_mark >"$out/uma.cpu"
  "$uma" bench "$model" -p 512 -n 128 -r "$reps" --batch 1,16 --threads "$threads" --json >"$out/uma.json"
  cpu_mark >>"$out/uma.cpu"
}
load_start="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
if [ "${UMA_FIRST:-0}" = 1 ]; then run_uma; run_llama; else run_llama; run_uma; fi
load_end="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
foreign="other processes' cores: llama.cpp $(foreign_cores "$out/llama.cpu"), uma $(foreign_cores "$out/uma.cpu")"

python3 - "$out" "$model" "$threads" "$load_start" "$load_end" "$foreign" <<'PY'
import json, sys, os
out, model, threads = sys.argv[1], os.path.basename(sys.argv[2]), sys.argv[3]
load_start, load_end, foreign = sys.argv[4:7]
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
print(f"load average {load_start} before, {load_end} after; {foreign}")
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
