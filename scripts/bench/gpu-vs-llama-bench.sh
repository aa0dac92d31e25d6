#!/usr/bin/env bash
# Decode and prefill on the GPU, uma against llama.cpp, side by side on the same files, in both
# orders (uma first, then llama.cpp, then uma again), each as llama-bench reports it.
#
#   UMA_BIN=target/release/uma LLAMA_BENCH=/path/to/llama-bench \
#     scripts/bench/gpu-vs-llama-bench.sh MODEL.gguf...
#
# LLAMA_BENCH is llama.cpp built with its GPU backend (CUDA, Vulkan or Metal); without it only
# uma runs. Prints everything; the bandwidth share comes from `uma bench`'s own GPU probe.
set -uo pipefail
uma="${UMA_BIN:-target/release/uma}"
llama="${LLAMA_BENCH:-}"
p="${N_PROMPT:-512}"; n="${N_GEN:-128}"; r="${REPETITIONS:-3}"
run_uma() { echo "== uma $(basename "$1")"; "$uma" bench "$1" --device gpu -p "$p" -n "$n" -r "$r"; }
run_llama() {
  [ -x "$llama" ] || return 0
  echo "== llama.cpp $(basename "$1")"; "$llama" -m "$1" -ngl 99 -p "$p" -n "$n" -r "$r"
}
for model in "$@"; do run_uma "$model"; run_llama "$model"; run_uma "$model"; done
