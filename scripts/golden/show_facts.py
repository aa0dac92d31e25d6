#!/usr/bin/env python3
"""Facts about a GGUF model read straight from the file with gguf-py's GGUFReader.

Writes <out>/<stem>.json, the reference for the `uma show` tests; independent of the Rust code.
Keys (see the field comments in facts()):
  architecture, name, file_size, tensor_count, parameter_count, quantization{TYPE: {tensors, bytes}},
  block_count, embedding_length, feed_forward_length, head_count, head_count_kv, head_dim, value_dim,
  context_length, rope_freq_base, rope_dimension_count, rope_scaling_type, sliding_window,
  tokenizer_model, tokenizer_pre, vocab_size, bos_token_id, eos_token_id, chat_template_present,
  alignment, gguf_version, metadata_count, kv_cache_bytes_per_token, weight_bytes_per_token
Run via scripts/golden/make-golden.sh.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from gguf import GGUFReader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_atomic  # noqa: E402


def facts(path: str) -> dict:
    r = GGUFReader(path)

    def get(key: str, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = get("general.architecture")
    assert isinstance(arch, str), "general.architecture missing"

    def a(key: str, default=None):
        return get(f"{arch}.{key}", default)

    quant: dict[str, dict[str, int]] = {}
    total_bytes = 0
    params = 0
    by_name = {}
    for t in r.tensors:
        q = quant.setdefault(t.tensor_type.name, {"tensors": 0, "bytes": 0})
        q["tensors"] += 1
        q["bytes"] += int(t.n_bytes)
        total_bytes += int(t.n_bytes)
        params += int(t.n_elements)
        by_name[t.name] = t

    embd_len = int(a("embedding_length"))
    n_head = int(a("attention.head_count"))
    n_head_kv = int(a("attention.head_count_kv", n_head))
    head_dim = int(a("attention.key_length", embd_len // n_head))
    value_dim = int(a("attention.value_length", head_dim))
    n_layer = int(a("block_count"))

    # Bytes of weights read to produce one token: every tensor once, except that with a separate
    # output.weight the token embedding table is only gathered (one row per token). Without
    # output.weight the embedding matrix doubles as the output head and is read in full.
    weight_bytes = total_bytes
    if "output.weight" in by_name:
        te = by_name["token_embd.weight"]
        rows = int(te.n_elements) // int(te.shape[0])  # ggml shape: ne0 = row length
        assert int(te.n_bytes) % rows == 0
        weight_bytes = weight_bytes - int(te.n_bytes) + int(te.n_bytes) // rows

    rope_base = a("rope.freq_base")
    tokens = r.fields.get("tokenizer.ggml.tokens")
    header_kv = int(get("GGUF.kv_count"))  # header count; r.fields also holds 3 synthetic GGUF.* entries
    assert header_kv == len(r.fields) - 3

    return {
        "architecture": arch,
        "name": get("general.name"),
        "file_size": os.path.getsize(path),
        "tensor_count": len(r.tensors),
        "parameter_count": params,
        "quantization": {k: quant[k] for k in sorted(quant)},
        "block_count": n_layer,
        "embedding_length": embd_len,
        "feed_forward_length": int(a("feed_forward_length")),
        "head_count": n_head,
        "head_count_kv": n_head_kv,
        "head_dim": head_dim,
        "value_dim": value_dim,
        "context_length": int(a("context_length")),
        "rope_freq_base": None if rope_base is None else float(rope_base),
        "rope_dimension_count": a("rope.dimension_count"),
        "rope_scaling_type": a("rope.scaling.type"),
        "sliding_window": a("attention.sliding_window"),
        "tokenizer_model": get("tokenizer.ggml.model"),
        "tokenizer_pre": get("tokenizer.ggml.pre"),
        "vocab_size": None if tokens is None else len(tokens.data),
        "bos_token_id": get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": get("tokenizer.ggml.eos_token_id"),
        "chat_template_present": "tokenizer.chat_template" in r.fields,
        "alignment": int(get("general.alignment", 32)),
        "gguf_version": int(get("GGUF.version")),
        "metadata_count": header_kv,
        # f16 K and V cache: per layer, head_count_kv heads of head_dim (K) + value_dim (V), 2 bytes each
        "kv_cache_bytes_per_token": n_layer * n_head_kv * (head_dim + value_dim) * 2,
        "weight_bytes_per_token": weight_bytes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("models", nargs="+", help="GGUF files")
    args = ap.parse_args()
    for path in args.models:
        stem = os.path.basename(path).removesuffix(".gguf")
        f = facts(path)
        out = os.path.join(args.out, f"{stem}.json")
        write_atomic(out, json.dumps(f, indent=2) + "\n")
        print(f"show    {out}", file=sys.stderr)
        print(f"  {stem}: arch={f['architecture']} params={f['parameter_count']:,} tensors={f['tensor_count']} "
              f"file={f['file_size']:,} B\n"
              f"    weight_bytes_per_token={f['weight_bytes_per_token']:,} B ({f['weight_bytes_per_token'] / 1e6:.1f} MB)"
              f"  kv_cache_bytes_per_token={f['kv_cache_bytes_per_token']:,} B\n"
              f"    quantization={json.dumps(f['quantization'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
