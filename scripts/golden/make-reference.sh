#!/usr/bin/env bash
# Regenerate the model-level reference goldens: what uma's forward pass, tokenizer and chat
# templates must reproduce, produced by implementations nobody here wrote.
#
#   Hugging Face transformers (float32 PyTorch, reading the GGUF files itself)
#     reference_prompts.py -> crates/model/tests/golden/prompts/<stem>.json  (chat prompts rendered
#                             with the model's template + token ids)
#     reference_embeddings.py -> crates/model/tests/golden/embeddings/<stem>.json (final hidden
#                             states of three texts, mean- and last-token-pooled, normalized)
#     reference_logits.py  -> crates/model/tests/golden/logits/<stem>.json   (last-position logits:
#                             top 64 + 1024 fixed ids, and transformers' own greedy tokens)
#     tiny_logits.py       -> crates/model/tests/golden/tiny/<arch>.json     (all-position logits of
#                             the tiny random models of crates/test-models/src/tiny.rs)
#   llama.cpp (built from source by /work/shared/peers/llama-cpp.sh; llama_greedy.cpp is compiled
#   against its static libraries into target/reference/llama_greedy)
#     reference_greedy.py  -> crates/model/tests/golden/greedy/<stem>.json   (64 greedy tokens and
#                             the top-2 logit gap of every step; also checks llama.cpp's tokenization
#                             of the prompts and prints where transformers' greedy text diverges)
#     reference_greedy.py --q8-cache -> crates/model/tests/golden/greedy/q8_0/<stem>.json (the same
#                             with llama.cpp's Q8_0 K and V cache, for uma's q8_0 KV cache)
#     tiny_crosscheck.py   -> nothing; fails when llama.cpp's logits on the tiny models disagree
#                             with the tiny goldens (same GGUF semantics in both references)
#     tiny_moe_greedy.py   -> crates/model/tests/golden/tiny_greedy/<arch>-<q8_0|q4_k_m|mxfp4_moe>.json
#                             (the quantized tiny MoE models of crates/test-models/src/tiny/
#                             quantized.rs: fails unless llama-quantize turns their F32 version
#                             into the same tensors; then llama.cpp's greedy tokens on them)
#
# The outputs are committed to git. CI checks them from the Rust tests alone, with the real models
# and without Python or llama.cpp; run this script only when the references must change. It is
# idempotent: the venv and the llama.cpp build are reused when present, and reruns rewrite the
# same files (transformers is deterministic on CPU at a fixed thread count; the llama.cpp greedy
# tokens are deterministic for a given build and machine).
#
#   scripts/golden/make-reference.sh [prompts|logits|tiny|greedy|greedy-q8|crosscheck|tiny-greedy ...]   (default: all, in order)
#
# Environment: UMA_REFERENCE_VENV (default ~/.cache/uma/venv-reference; torch from PyPI brings several
# GB of CUDA libraries, so it lives outside the repository and never in CI), UMA_TEST_MODELS (model
# folder, default ~/.cache/uma/models; fetch with scripts/fetch-models.sh), UMA_PEERS (llama.cpp
# build cache), LLAMA_CPP_SCRIPT (default /work/shared/peers/llama-cpp.sh or ../shared/peers/...),
# PYTHON (interpreter that creates the venv; default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${UMA_REFERENCE_VENV:-$HOME/.cache/uma/venv-reference}"
req="$here/requirements-reference.txt"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(prompts logits embeddings tiny greedy greedy-q8 crosscheck tiny-greedy)
start=$SECONDS

# 1. The venv, installed from the exact pins (skipped when the pins have not changed; several GB
#    the first time).
# shellcheck source=venv.sh
source "$here/venv.sh"
ensure_venv "$venv" "$req" .requirements-reference.sha256
export PYTHONHASHSEED=0 UMA_REFERENCE_THREADS="${UMA_REFERENCE_THREADS:-2}"

tiny_dir="$root/target/tiny-models"
llama_bin=""
greedy_bin="$root/target/reference/llama_greedy"
build_llama() {
  [ -z "$llama_bin" ] || return 0
  peers="${LLAMA_CPP_SCRIPT:-}"
  if [ -z "$peers" ]; then
    for candidate in /work/shared/peers/llama-cpp.sh "$root/../shared/peers/llama-cpp.sh"; do
      [ -f "$candidate" ] && peers="$candidate" && break
    done
  fi
  [ -n "$peers" ] || { echo "llama-cpp.sh not found: set LLAMA_CPP_SCRIPT" >&2; exit 1; }
  llama_bin="$(bash "$peers" | tail -n 1)"
  local src="$llama_bin/../../src" build="$llama_bin/.."
  if [ ! -x "$greedy_bin" ] || [ "$here/llama_greedy.cpp" -nt "$greedy_bin" ]; then
    mkdir -p "$(dirname "$greedy_bin")"
    "${CXX:-g++}" -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/llama_greedy.cpp" \
      -o "$greedy_bin" "$build/src/libllama.a" "$build/ggml/src/libggml.a" \
      "$build/ggml/src/libggml-cpu.a" "$build/ggml/src/libggml-base.a" -fopenmp -lpthread -ldl
  fi
}

run_step() {
  case "$1" in
    prompts)
      echo "== prompts (transformers tokenizer + chat templates)"
      "$py" "$here/reference_prompts.py" ;;
    logits)
      echo "== logits (transformers float32 forward)"
      "$py" "$here/reference_logits.py" ;;
    embeddings)
      echo "== embeddings (transformers float32 final hidden states, mean and last pooled)"
      "$py" "$here/reference_embeddings.py" ;;
    tiny)
      echo "== tiny models (cargo run -p uma-test-models --example write_tiny_models) + logits"
      (cd "$root" && cargo run -q -p uma-test-models --example write_tiny_models -- "$tiny_dir")
      "$py" "$here/tiny_logits.py" "$tiny_dir" ;;
    greedy)
      echo "== greedy (llama.cpp: llama_greedy + llama-server /tokenize)"
      build_llama
      "$py" "$here/reference_greedy.py" "$llama_bin" "$greedy_bin" | tee "$root/target/reference-greedy.log" ;;
    greedy-q8)
      echo "== greedy with a Q8_0 KV cache (llama.cpp -ctk q8_0 -ctv q8_0 -fa on)"
      build_llama
      "$py" "$here/reference_greedy.py" --q8-cache "$llama_bin" "$greedy_bin" ;;
    crosscheck)
      echo "== tiny goldens vs llama.cpp"
      build_llama
      [ -f "$tiny_dir/tiny-llama.gguf" ] || (cd "$root" && cargo run -q -p uma-test-models --example write_tiny_models -- "$tiny_dir")
      "$py" "$here/tiny_crosscheck.py" "$greedy_bin" "$tiny_dir" ;;
    tiny-greedy)
      echo "== quantized tiny MoE models: the same as llama-quantize's, and llama.cpp's greedy tokens"
      build_llama
      (cd "$root" && cargo run -q -p uma-test-models --example write_tiny_models -- --quantized "$tiny_dir/quantized")
      "$py" "$here/tiny_moe_greedy.py" "$llama_bin" "$greedy_bin" "$tiny_dir/quantized" ;;
    *)
      echo "unknown step $1 (prompts, logits, embeddings, tiny, greedy, greedy-q8, crosscheck, tiny-greedy)" >&2; exit 2 ;;
  esac
}

mkdir -p "$root/target"
for step in "${steps[@]}"; do run_step "$step"; done

if [ -f "$root/target/reference-greedy.log" ]; then
  echo
  echo "== llama.cpp vs transformers greedy divergences (from the last greedy run)"
  sed -n '/^llama.cpp vs transformers:/,$p' "$root/target/reference-greedy.log" | tail -n +2
fi
echo "done in $((SECONDS - start)) s"
