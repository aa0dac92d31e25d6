#!/usr/bin/env bash
# On the lent device machine (NVIDIA, Vulkan driver present, no loader, no network), after
# scripts/bench/pack-for-device.sh here: installs the Vulkan loader, expands the synthetic
# models, builds llama.cpp with CUDA in the background, then runs uma's kernel tests on the real
# GPU, `uma bench` (uma first), the matrix-vector shape sweep, a profile (device time by kernel),
# and llama-bench followed by uma again (both orders). Every result lands in $OUT as it comes, so a
# run cut short still reports.
set -x
B=/tmp/pack; M=/tmp/m; OUT="${OUT:-/tmp/out}"; mkdir -p "$B" "$M" "$OUT"
tar -C "$B" -xJf .devpack/pack.tar.xz
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
[ -e /usr/share/vulkan/icd.d/nvidia_icd.json ] || [ -e /etc/vulkan/icd.d/nvidia_icd.json ] \
  || export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
{ nvidia-smi --query-gpu=name,memory.total,clocks.max.mem --format=csv; lscpu | head -20; } > "$OUT/machine.txt"
# SKIP_PEER=1: uma alone (a short run; the peer's figures then come from an earlier run).
[ -n "${SKIP_PEER:-}" ] || ( cd "$B/llama.cpp" && cmake -B /tmp/lb -DGGML_CUDA=ON -DGGML_CUDA_FA=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF > "$OUT/lb-build.log" 2>&1 \
  && cmake --build /tmp/lb --target llama-bench -j 14 >> "$OUT/lb-build.log" 2>&1
  echo "build rc $?" >> "$OUT/lb-build.log" ) &
for s in "$B"/*.skeleton; do python3 scripts/bench/synthetic-gguf.py expand "$s" "$M/$(basename "$s" .skeleton).gguf"; done
export UMA_REQUIRE_GPU=1
timeout 60 "$B/uma_gpu_tests" > "$OUT/gpu-tests.log" 2>&1
UMA_BIN="$B/uma" REPETITIONS=3 scripts/bench/gpu-vs-llama-bench.sh "$M"/*.gguf > "$OUT/uma-first.log" 2>&1
# Device time by kernel (timestamps around every dispatch; no overlap, so not a speed figure).
for m in "$M"/qwen*.gguf; do
  UMA_GPU_PROFILE=1 timeout 60 "$B/uma" bench "$m" --device gpu -p 512 -n 32 -r 1 >> "$OUT/profile.log" 2>&1
done
timeout "${SWEEP_SECONDS:-240}" "$B/uma_gpu_tests" --ignored throughput --nocapture > "$OUT/throughput.log" 2>&1
# Each format's fastest one-token shape on Llama 8B's matrix (against the defaults in matmul.rs).
for f in Q4_0 Q8_0 Q4_K Q5_K Q6_K F16; do
  grep -a "$f \[14336, 4096\] × 1 tokens" "$OUT/throughput.log" \
    | sed -E 's/.* ([0-9]+) GB\/s, UMA_GPU_MATVEC=(.*)/\1 GB\/s \2/' | sort -n | tail -1 \
    | sed "s/^/best $f: /"
done >> "$OUT/profile.log"
[ -n "${SKIP_PEER:-}" ] && { echo done; exit 0; }
for _ in $(seq 1 60); do grep -q "build rc" "$OUT/lb-build.log" 2>/dev/null && break; sleep 5; done
UMA_BIN="$B/uma" LLAMA_BENCH=/tmp/lb/bin/llama-bench REPETITIONS=3 \
  scripts/bench/gpu-vs-llama-bench.sh "$M"/*.gguf > "$OUT/both.log" 2>&1
echo done
