"""Cross-check the tiny-model goldens (transformers) against llama.cpp on the same GGUF files.

Transformers is the reference of record for crates/model/tests/golden/tiny/; this check makes sure
transformers and llama.cpp read the tiny files the same way (same tensor layout, rope convention,
norms, head_dim, sliding window), i.e. that the goldens mean "what GGUF means". It writes nothing.

For each arch and prompt: llama_greedy (llama_greedy.cpp, llama.cpp's library) prints the raw
logits of the last position, compared with the golden's last row, twice:
  - on the tiny files as written: llama.cpp multiplies Q8_0/F16 matrices with 8-bit/F16
    activations, so logits agree to ~0.1 (and an argmax may flip where the top two are that close);
  - on F32 copies (every tensor dequantized by gguf-py and rewritten as F32, in a temporary
    folder): only llama.cpp's F16 KV cache separates the two, logits agree to ~0.01. This is the
    check that the semantics (layouts, rope, norms, head_dim, window) are the same. llama.cpp quantizes activations to 8 bits for its Q8_0/F16 matrix
products, so agreement is to a few hundredths, not to float32 rounding.

Usage: python tiny_crosscheck.py LLAMA_GREEDY_BINARY TINY_DIR
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from reference_common import GOLDEN

TOLERANCE = {"as written": 0.15, "F32 copies": 0.02}


def to_f32(src: str, dst: str) -> None:
    """Rewrite a GGUF file with every tensor dequantized to F32 (metadata unchanged)."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    reader = GGUFReader(src)
    writer = GGUFWriter(dst, reader.fields["general.architecture"].contents())
    adders = {GGUFValueType.STRING: writer.add_string, GGUFValueType.FLOAT32: writer.add_float32,
              GGUFValueType.UINT32: writer.add_uint32, GGUFValueType.BOOL: writer.add_bool,
              GGUFValueType.ARRAY: writer.add_array}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        adders[field.types[0]](key, field.contents())
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, values.reshape([int(d) for d in reversed(tensor.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# The tiny models of crates/test-models/src/tiny.rs (tiny_logits.py's list).
ARCHS = ["llama", "qwen2", "qwen3", "gemma3", "qwen3moe", "qwen2moe", "mixtral", "olmoe", "gpt-oss",
         "deepseek2"]


def main(greedy_bin: str, tiny_dir: str) -> None:
    failed = False
    with tempfile.TemporaryDirectory() as f32_dir:
        for arch in ARCHS:
            to_f32(os.path.join(tiny_dir, f"tiny-{arch}.gguf"), os.path.join(f32_dir, f"tiny-{arch}.gguf"))
        for label, directory in [("as written", tiny_dir), ("F32 copies", f32_dir)]:
            worst = check(greedy_bin, directory, label)
            ok = worst < TOLERANCE[label]
            failed |= not ok
            print(f"{label}: worst |logit diff| {worst:.5f} ({'ok' if ok else 'ABOVE'} < {TOLERANCE[label]})")
    if failed:
        sys.exit(1)


def check(greedy_bin: str, tiny_dir: str, label: str) -> float:
    worst_all = 0.0
    for arch in ARCHS:
        with open(os.path.join(GOLDEN, "tiny", f"{arch}.json"), encoding="utf-8") as f:
            golden = json.load(f)
        stdin = "".join(" ".join(map(str, p["token_ids"])) + "\n" for p in golden["prompts"])
        result = subprocess.run([greedy_bin, os.path.join(tiny_dir, f"tiny-{arch}.gguf"), "2", "0", "--full"],
                                input=stdin, capture_output=True, text=True, check=True)
        for prompt, line in zip(golden["prompts"], result.stdout.splitlines()):
            theirs = np.array(json.loads(line)["logits"], dtype=np.float64)
            ours = np.array(prompt["logits"][-1], dtype=np.float64)
            diff = float(np.max(np.abs(ours - theirs)))
            worst_all = max(worst_all, diff)
            same = int(np.argmax(ours)) == int(np.argmax(theirs))
            print(f"  {label} {arch} len {len(prompt['token_ids'])}: max |logit diff| {diff:.5f}, "
                  f"argmax {'same' if same else 'DIFFERENT'}", flush=True)
    return worst_all


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
