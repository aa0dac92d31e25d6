#!/usr/bin/env bash
# Packs what a GPU benchmark on the lent device machine needs into .devpack/ (ignored by git):
# the release `uma` and the uma-gpu kernel test binary (stripped), skeletons of the three test
# models and of a Qwen2.5 7B (scripts/bench/synthetic-gguf.py: shapes and types, no weights), llama.cpp's source
# pruned to its CPU and CUDA backends and the tools it benchmarks with, and in .gl/ the Debian
# Vulkan loader and libglvnd libraries NVIDIA's Vulkan driver needs. The device gets the working
# tree (64 MiB at most) and no network, so everything travels compressed.
#
#   scripts/bench/pack-for-device.sh          # then, on the device: bash scripts/bench/device-run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
models="${UMA_MODELS_DIR:-$HOME/.cache/uma/models}"
llama_src="$(../shared/peers/llama-cpp.sh | tail -1)/../../src"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

cargo build --release -p uma-cli
test_binary="$(cargo test --release -p uma-gpu --lib --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "uma_gpu":
        print(m["executable"])' | tail -1)"
cp target/release/uma "$work/uma"; cp "$test_binary" "$work/uma_gpu_tests"
strip "$work/uma" "$work/uma_gpu_tests"

# The skeletons read the real files with the `gguf` package (llama.cpp's gguf-py, from PyPI).
venv="${UMA_BENCH_VENV:-$HOME/.cache/uma/venv-bench}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import gguf' 2>/dev/null || "$venv/bin/pip" install -q gguf
python_bin="$venv/bin/python"
for model in gemma-3-270m-q4_k_m qwen2.5-coder-0.5b-instruct-q4_k_m qwen2.5-coder-1.5b-instruct-q4_k_m; do
  "$python_bin" scripts/bench/synthetic-gguf.py skeleton "$models/$model.gguf" "$work/$model.skeleton"
done
# A 7B of the users' size: Qwen2.5 7B's shapes (its 1.5B sibling's tokenizer and types).
"$python_bin" scripts/bench/synthetic-gguf.py scaled \
  "$models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" "$work/qwen2.5-7b-shaped-q4_k_m.skeleton" \
  qwen2.embedding_length=3584 qwen2.feed_forward_length=18944 \
  qwen2.attention.head_count=28 qwen2.attention.head_count_kv=4

# llama.cpp: the build files, the library, ggml with only its CPU and CUDA backends, the tools.
mkdir -p "$work/llama.cpp"
for part in CMakeLists.txt LICENSE cmake common ggml include licenses src tools vendor; do
  cp -a "$llama_src/$part" "$work/llama.cpp/"
done
find "$work/llama.cpp/ggml/src" -maxdepth 1 -type d -name 'ggml-*' \
  ! -name ggml-cpu ! -name ggml-cuda -exec rm -rf {} +

mkdir -p .devpack .gl
tar -C "$work" -cJf .devpack/pack.tar.xz .
(cd .gl && apt-get download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0 >/dev/null)
du -sh .devpack/pack.tar.xz .gl
