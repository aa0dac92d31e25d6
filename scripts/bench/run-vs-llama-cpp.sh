#!/usr/bin/env bash
# Side-by-side baseline until `uma bench` exists: llama.cpp's llama-bench and `uma run` on the same
# GGUF file with the same thread count, one after the other in one run.
#
#   scripts/bench/run-vs-llama-cpp.sh MODEL.gguf [THREADS=2] [REPS=3]
#
# llama-bench: pp128 and tg64 (mean of REPS). uma: a raw prompt of ~128 tokens then 64 greedy
# tokens, REPS times; prints each summary line (prefill and decode tok/s). Needs the peer build
# from ../shared/peers/llama-cpp.sh (its bin folder in $LLAMA_BIN, or found in ~/.cache/uma-peers).
set -euo pipefail
model="$1"; threads="${2:-2}"; reps="${3:-3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${LLAMA_BIN:-$(ls -d "$HOME"/.cache/uma-peers/*/build/bin 2>/dev/null | head -1)}"
[ -x "$bin/llama-bench" ] || { echo "llama-bench not found: set LLAMA_BIN" >&2; exit 1; }
uma="$root/target/release/uma"
[ -x "$uma" ] || (cd "$root" && cargo build --release -p uma-cli >&2)

echo "== llama.cpp ($(basename "$model"), $threads threads)"
"$bin/llama-bench" -m "$model" -t "$threads" -p 128 -n 64 -r "$reps" -o md 2>/dev/null

# About 128 tokens of plain English for both tokenizers.
prompt="The history of computing is a story of people and machines. $(printf 'Early mechanical calculators led to programmable computers, then to transistors, integrated circuits and the personal computer. %.0s' 1 2 3 4 5)Today"
echo "== uma ($(basename "$model"), $threads threads)"
for _ in $(seq "$reps"); do
  "$uma" run "$model" "$prompt" --raw --temperature 0 -n 64 --threads "$threads" 2>&1 >/dev/null | tail -1
done
