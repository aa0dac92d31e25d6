#!/usr/bin/env bash
# Regenerate the tokenizer golden files that crates/tokenizer/tests/ compare against.
#
# The reference is Hugging Face `transformers` building its own tokenizer from each GGUF file
# (AutoTokenizer.from_pretrained(dir, gguf_file=...)), at the pinned versions below. This script
#   1. creates (or reuses) a venv at ${UMA_TOKENIZER_VENV:-$HOME/.cache/uma/venv-tokenizer} and
#      installs the pinned packages into it (skipped when already up to date). No torch: the
#      tokenizer does not need it (see import_transformers() in tokenizer_corpus.py);
#   2. runs scripts/golden/tokenizer_corpus.py against the models in
#      ${UMA_TEST_MODELS:-$HOME/.cache/uma/models} (fetch them with scripts/fetch-models.sh), writing
#        crates/tokenizer/tests/golden/<stem>.json       token ids of the corpus (>= 300 strings)
#        crates/tokenizer/tests/golden/chat_<stem>.json  apply_chat_template renderings
#      for Qwen2.5-Coder 0.5B and Gemma 3 270M. The 1.5B Qwen file is checked to carry identical
#      tokenizer metadata, and the 0.5B golden records that it also applies to it.
#
# The outputs are committed. The Rust tests read them without Python. Rerunning with the same
# models and pins rewrites byte-identical files.
#
#   scripts/golden/make-tokenizer-golden.sh
#
# Environment: UMA_TOKENIZER_VENV, UMA_TEST_MODELS, PYTHON (interpreter for the venv; python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${UMA_TOKENIZER_VENV:-$HOME/.cache/uma/venv-tokenizer}"
models_dir="${UMA_TEST_MODELS:-$HOME/.cache/uma/models}"
out="$root/crates/tokenizer/tests/golden"
gemma_template="$here/gemma3_chat_template.jinja"

# Full lock of the venv (CPython 3.11.7 produced the committed goldens).
requirements="transformers==5.23.0
tokenizers==0.23.3
gguf==0.19.0
sentencepiece==0.2.3
protobuf==7.36.2
numpy==2.4.6
Jinja2==3.1.6
MarkupSafe==3.0.4
huggingface_hub==2.4.0
safetensors==0.8.0
regex==2026.11.15
PyYAML==6.0.3
packaging==26.3
filelock==4.2.11
fsspec==2026.9.0
tqdm==4.70.1
requests==2.34.2
certifi==2026.10.18
charset-normalizer==3.5.2
idna==3.20
urllib3==2.8.0
hf-xet==1.8.0
httpx2==2.16.2
httpcore2==2.16.2
h11==0.16.0
anyio==4.16.0
typer==0.29.2
click==8.5.1
rich==15.0.0
markdown-it-py==4.3.0
mdurl==0.1.2
Pygments==2.21.0
shellingham==1.5.4
annotated-doc==0.0.7
annotated-types==0.8.0
pydantic==2.14.3
pydantic_core==2.50.4
typing-inspection==0.4.5
typing_extensions==4.16.0
truststore==0.10.5"

start=$SECONDS

# --- venv ------------------------------------------------------------------------------------
req_file="$(mktemp)"
trap 'rm -f "$req_file"' EXIT
printf '%s\n' "$requirements" >"$req_file"
# shellcheck source=venv.sh
source "$here/venv.sh"
ensure_venv "$venv" "$req_file" .uma-tokenizer-requirements.sha256

# --- models ----------------------------------------------------------------------------------
golden_models=(qwen2.5-coder-0.5b-instruct-q4_k_m gemma-3-270m-q4_k_m)
for stem in "${golden_models[@]}" qwen2.5-coder-1.5b-instruct-q4_k_m; do
  if [[ ! -f "$models_dir/$stem.gguf" ]]; then
    echo "error: missing model $models_dir/$stem.gguf (run scripts/fetch-models.sh)" >&2
    exit 1
  fi
done
if [[ ! -f "$gemma_template" ]]; then
  echo "error: missing $gemma_template (the official Gemma 3 chat template)" >&2
  exit 1
fi

# --- generate --------------------------------------------------------------------------------
mkdir -p "$out"
"$py" "$here/tokenizer_corpus.py" \
  --models-dir "$models_dir" \
  --out "$out" \
  --gemma-template "$gemma_template" \
  --same-tokenizer-as qwen2.5-coder-0.5b-instruct-q4_k_m=qwen2.5-coder-1.5b-instruct-q4_k_m \
  "${golden_models[@]}"

echo "done    in $((SECONDS - start)) s" >&2
