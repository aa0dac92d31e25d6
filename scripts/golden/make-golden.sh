#!/usr/bin/env bash
# Regenerate the golden reference data that uma's Rust tests compare against.
#
# The references come from an independent implementation: the `gguf` Python package (gguf-py,
# from llama.cpp) at a pinned version, see scripts/golden/requirements.txt. This script
#   1. creates (or reuses) a Python venv at ${UMA_GOLDEN_VENV:-$HOME/.cache/uma/venv-golden}
#      and installs the pinned requirements into it (skipped when already up to date);
#   2. runs, against the real test models in ${UMA_TEST_MODELS:-$HOME/.cache/uma/models}
#      (fetch them with scripts/fetch-models.sh):
#        dequant_digests.py -> crates/kernels/tests/golden/dequant/<model>.tsv
#                              (sha256 of every tensor dequantized to f32)
#        synthetic.py       -> crates/kernels/tests/golden/synthetic/  (seeded random blocks per
#                              type + digests of their dequantization)
#                              crates/kernels/tests/golden/quantize/   (seeded f32 input + gguf-py's
#                              quantized bytes, for the types gguf-py can quantize)
#        show_facts.py      -> crates/cli/tests/golden/show/<model>.json  (header/metadata facts)
#
# The outputs are committed to git. CI checks them from the Rust tests alone, without Python;
# run this script only when the references themselves need to change. It is idempotent: rerunning
# it with the same models and pinned versions rewrites byte-identical files.
#
#   scripts/golden/make-golden.sh
#
# Environment: UMA_GOLDEN_VENV (venv location), UMA_TEST_MODELS (model directory),
# PYTHON (interpreter used to create the venv; default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${UMA_GOLDEN_VENV:-$HOME/.cache/uma/venv-golden}"
models_dir="${UMA_TEST_MODELS:-$HOME/.cache/uma/models}"
req="$here/requirements.txt"

models=(
  qwen2.5-coder-0.5b-instruct-q4_k_m
  qwen2.5-coder-1.5b-instruct-q4_k_m
  gemma-3-270m-q4_k_m
)

start=$SECONDS

# --- venv ------------------------------------------------------------------------------------
# shellcheck source=venv.sh
source "$here/venv.sh"
ensure_venv "$venv" "$req" .uma-golden-requirements.sha256
"$py" -c 'import gguf, numpy, importlib.metadata as m; print("venv    gguf", m.version("gguf"), "numpy", numpy.__version__)' >&2

# --- models ----------------------------------------------------------------------------------
paths=()
for stem in "${models[@]}"; do
  p="$models_dir/$stem.gguf"
  if [[ ! -f "$p" ]]; then
    echo "error: missing model $p (run scripts/fetch-models.sh)" >&2
    exit 1
  fi
  paths+=("$p")
done

# --- generators ------------------------------------------------------------------------------
cd "$root"
"$py" "$here/synthetic.py" --out-root crates/kernels/tests/golden
"$py" "$here/show_facts.py" --out crates/cli/tests/golden/show "${paths[@]}"
"$py" "$here/dequant_digests.py" --out crates/kernels/tests/golden/dequant "${paths[@]}"

echo "done    in $((SECONDS - start)) s" >&2
