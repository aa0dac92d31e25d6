"""llama.cpp's greedy tokens on the quantized tiny mixture-of-experts models.

The quantized tiny models (crates/test-models/src/tiny/quantized.rs) are written by uma's own
code, in Q8_0 and Q4_K_M (gpt-oss: MXFP4_MOE). This script first makes sure they are what llama.cpp's quantizer makes:
it runs `llama-quantize` on the F32 version of each (same weights, every tensor F32) and fails
unless every tensor of its output has the type and the bytes of the Rust-written file (and the
metadata the same values). Then llama.cpp decodes greedily on the Rust-written files.

Writes crates/model/tests/golden/tiny_greedy/<arch>-<quant>.json (quant: q8_0, q4_k_m, mxfp4_moe):
  {"arch", "quant", "gguf_sha256", "reference", "tensor_types": {type: count},
   "prompts": [{"prompt_ids", "tokens" (N_PREDICT greedy ids, or fewer ending with an
                end-of-generation id), "eog", "top2_logit_gap" (per generated token),
                "logits" (the whole vocabulary's raw logits after the prompt)}]}

llama_greedy runs with --no-repack (weights used as stored): on CPUs with AMX, llama.cpp's AMX
copies of quantized weights crash in ggml_backend_amx_mul_mat on any prompt of two or more
tokens (ggml-org/llama.cpp#20824; real Q4_K_M models too). The plain ggml kernels are also the
ones whose arithmetic uma follows.

Usage: python tiny_moe_greedy.py LLAMA_BIN_DIR LLAMA_GREEDY_BINARY DIR [ARCH ...]
  (DIR holds tiny-<arch>-<f32|q8_0|q4_k_m>.gguf, written by
   `cargo run -p uma-test-models --example write_tiny_models -- --quantized DIR`;
   ARCH ...: only these architectures, default all of ARCHS)
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from reference_common import GOLDEN, sig, write_json

ARCHS = ["qwen3moe", "qwen2moe", "mixtral", "olmoe", "gpt-oss", "deepseek2"]  # tiny.rs TINY_QUANTIZED_ARCHS
# What each family ships as (tiny.rs TinyQuant::of_arch, besides F32).
QUANTS = {"gpt-oss": ["MXFP4_MOE"]}
DEFAULT_QUANTS = ["Q8_0", "Q4_K_M"]
# Prompts of 1, 5 and 9 tokens whose continuations, on every file, run the full N_PREDICT tokens
# without an end-of-generation token (chosen by looking at llama.cpp's output).
PROMPTS = [
    [85],
    [69, 198, 21, 89, 55],
    [202, 136, 135, 93, 45, 234, 218, 257, 39],
]
# Architectures whose continuations of PROMPTS end early or pass near-tied routers use their own
# (as many prompts, of the same lengths).
ARCH_PROMPTS: dict[str, list[list[int]]] = {
    # deepseek2's sigmoid routing over groups with a selection bias is the most tie-prone (the
    # routers' margins fall below 0.005 of a score a few times in every continuation): on PROMPTS
    # its Q8_0 file ends two continuations early, and llama.cpp disagrees with itself beyond the
    # Rust test's bounds (flash attention off, or an F32 KV cache, moves the logits after the
    # 9-token prompt by 10.7 and flips two Q4_K_M steps with top-2 gaps above 3). These are, of
    # 120 random prompts (40 of each length), ones whose continuations run the full N_PREDICT
    # tokens on both files and pass the test's bounds when three other computations are fed
    # llama.cpp's tokens: llama.cpp without flash attention, llama.cpp with an F32 KV cache, and
    # transformers in float32 on the dequantized weights (load_deepseek2) — a choice made
    # without uma. The most steps agreeing first; [42] passed llama.cpp's two variants but not
    # transformers (a group choice 0.003 from a tie, Q4_K_M step 25).
    "deepseek2": [
        [35],
        [98, 176, 55, 80, 137],
        [36, 160, 116, 101, 177, 266, 194, 252, 26],
    ],
}
N_PREDICT = 32
THREADS = 2


def tiny_path(directory: str, arch: str, quant: str) -> str:
    return os.path.join(directory, f"tiny-{arch}-{quant.lower()}.gguf")


def check_same_as_llama_quantize(bin_dir: str, directory: str, arch: str, quant: str, scratch: str) -> dict:
    """Quantizes the F32 file with llama-quantize and fails unless the Rust-written file has the
    same tensors (type, shape, bytes) and metadata values. Returns the count of each tensor type."""
    from gguf import GGUFReader

    ours_path = tiny_path(directory, arch, quant)
    theirs_path = os.path.join(scratch, f"llama-quantize-{arch}-{quant}.gguf")
    run = subprocess.run([os.path.join(bin_dir, "llama-quantize"), tiny_path(directory, arch, "F32"), theirs_path,
                          quant, str(THREADS)], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"llama-quantize failed on {arch} {quant}:\n{run.stdout}\n{run.stderr}")
    ours, theirs = GGUFReader(ours_path), GGUFReader(theirs_path)
    ours_t = {t.name: t for t in ours.tensors}
    theirs_t = {t.name: t for t in theirs.tensors}
    problems = []
    if ours_t.keys() != theirs_t.keys():
        problems.append(f"tensor names differ: only ours {sorted(ours_t.keys() - theirs_t.keys())}, "
                        f"only llama-quantize's {sorted(theirs_t.keys() - ours_t.keys())}")
    for name in sorted(ours_t.keys() & theirs_t.keys()):
        a, b = ours_t[name], theirs_t[name]
        if a.tensor_type != b.tensor_type:
            problems.append(f"{name}: type {a.tensor_type.name}, llama-quantize {b.tensor_type.name}")
        elif list(a.shape) != list(b.shape):
            problems.append(f"{name}: shape {list(a.shape)}, llama-quantize {list(b.shape)}")
        elif a.data.tobytes() != b.data.tobytes():
            problems.append(f"{name} ({a.tensor_type.name}): different bytes")
    ours_kv = {k: f.contents() for k, f in ours.fields.items()}
    theirs_kv = {k: f.contents() for k, f in theirs.fields.items()}
    for key in sorted(ours_kv.keys() | theirs_kv.keys()):
        if ours_kv.get(key) != theirs_kv.get(key):
            problems.append(f"metadata {key}: {ours_kv.get(key)!r:.60}, llama-quantize {theirs_kv.get(key)!r:.60}")
    if problems:
        sys.exit(f"{os.path.basename(ours_path)} is not what llama-quantize writes:\n  " + "\n  ".join(problems))
    types = collections.Counter(t.tensor_type.name for t in ours.tensors)
    print(f"  {arch} {quant}: {len(ours_t)} tensors identical to llama-quantize's "
          f"({', '.join(f'{n} {t}' for t, n in sorted(types.items()))})", flush=True)
    return dict(sorted(types.items()))


def greedy(greedy_bin: str, path: str, prompts: list[list[int]]) -> list[dict]:
    stdin = "".join(" ".join(map(str, p)) + "\n" for p in prompts)
    run = subprocess.run([greedy_bin, path, str(THREADS), str(N_PREDICT), "--full", "--no-repack"],
                         input=stdin, capture_output=True, text=True)
    if run.returncode != 0:
        hint = (" (a crash: on an AMX CPU, a llama_greedy that ignores --no-repack crashes in "
                "ggml_backend_amx_mul_mat)" if run.returncode < 0 else "")
        sys.exit(f"llama_greedy failed on {path} (exit {run.returncode}){hint}:\n{run.stderr}")
    lines = run.stdout.splitlines()
    if len(lines) != len(prompts):
        sys.exit(f"llama_greedy answered {len(lines)} of {len(prompts)} prompts on {path}")
    out = []
    for prompt, line in zip(prompts, lines):
        result = json.loads(line)
        out.append({
            "prompt_ids": prompt,
            "tokens": result["tokens"],
            "eog": result["eog"],
            "top2_logit_gap": [sig(g, 6) for g in result["gaps"]],
            "logits": [sig(x) for x in result["logits"]],
        })
    return out


def main(bin_dir: str, greedy_bin: str, directory: str, archs: list[str]) -> None:
    unknown = sorted(set(archs) - set(ARCHS))
    if unknown:
        sys.exit(f"unknown architectures {unknown} (known: {ARCHS})")
    with tempfile.TemporaryDirectory() as scratch:
        for arch in archs:
            for quant in QUANTS.get(arch, DEFAULT_QUANTS):
                types = check_same_as_llama_quantize(bin_dir, directory, arch, quant, scratch)
                path = tiny_path(directory, arch, quant)
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                prompts = greedy(greedy_bin, path, ARCH_PROMPTS.get(arch, PROMPTS))
                for p in prompts:
                    gaps = p["top2_logit_gap"]
                    print(f"    len {len(p['prompt_ids'])}: {len(p['tokens'])} tokens"
                          f"{' (end of generation)' if p['eog'] else ''}, smallest top-2 gap {min(gaps):.4f} "
                          f"at step {gaps.index(min(gaps))}", flush=True)
                write_json(os.path.join(GOLDEN, "tiny_greedy", f"{arch}-{quant.lower()}.json"), {
                    "arch": arch,
                    "quant": quant,
                    "gguf_sha256": digest,
                    "reference": f"llama.cpp as vendored by llama-cpp-python 0.3.36, CPU, {THREADS} threads, "
                                 "--no-repack, F16 KV cache; greedy = argmax of raw logits "
                                 "(scripts/golden/llama_greedy.cpp); the file's tensors are byte-identical to "
                                 f"`llama-quantize tiny-{arch}-f32.gguf OUT {quant}`",
                    "tensor_types": types,
                    "prompts": prompts,
                })


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:] or ARCHS)
