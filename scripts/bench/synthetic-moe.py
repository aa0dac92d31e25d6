#!/usr/bin/env python3
"""A synthetic mixture-of-experts model for speed measurements: a `qwen3moe` GGUF file shaped
like Qwen3-30B-A3B shrunk to fit a small machine (random weights, Q4_K_M's type mix: Q4_K
matrices, Q6_K value projections, expert down projections and output head, F32 norms and
routers), with the Qwen tokenizer copied from a real Qwen file. Decode and prefill speed depend on
shapes and types, never on values; the output is meaningless.

  synthetic-moe.py QWEN_TOKENIZER.gguf OUT.gguf [--layers 16] [--hidden 2048] [--experts 64]
                   [--used 8] [--expert-width 768] [--heads 32] [--kv-heads 4] [--head-dim 128]

Default: 16 layers, 64 experts of 768 (8 per token), hidden 2048: 4.8 B parameters, about 2.8 GB,
about 1.2 B active per token. Needs numpy and gguf (llama.cpp's gguf-py, on PyPI).
"""
import argparse

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter

BLOCK = {Q.F32: (4, 1, None), Q.Q4_K: (144, 256, [0, 2]), Q.Q6_K: (210, 256, [208])}


def random_tensor(rng, ty, shape):
    """Random blocks of `ty` for a tensor of ggml shape `shape`, scales small finite f16."""
    count = int(np.prod(shape))
    if ty == Q.F32:
        return rng.uniform(0.9, 1.1, count).astype(np.float32).reshape(list(reversed(shape)))
    block_bytes, block_values, scales = BLOCK[ty]
    blocks = rng.integers(0, 256, (count // block_values, block_bytes), dtype=np.uint8)
    scale = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    for s in scales:
        blocks[:, s:s + 2] = scale
    # Byte shape, numpy order: the outer dimensions, then each row's bytes.
    return blocks.reshape(list(reversed(shape[1:])) + [-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tokenizer")
    p.add_argument("out")
    for name, default in [("layers", 16), ("hidden", 2048), ("experts", 64), ("used", 8),
                          ("expert-width", 768), ("heads", 32), ("kv-heads", 4), ("head-dim", 128)]:
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    w = GGUFWriter(a.out, "qwen3moe")
    w.add_name(f"uma synthetic qwen3moe {a.layers}x{a.experts}x{a.expert_width}")
    w.add_block_count(a.layers)
    w.add_context_length(40960)
    w.add_embedding_length(a.hidden)
    w.add_feed_forward_length(6144)
    w.add_expert_feed_forward_length(a.expert_width)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_key_length(a.head_dim)
    w.add_value_length(a.head_dim)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(a.experts)
    w.add_expert_used_count(a.used)
    w.add_file_type(15)  # Q4_K_M
    reader = GGUFReader(a.tokenizer)
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            if field.types[0] == GGUFValueType.ARRAY:
                w.add_array(key, field.contents())
            elif field.types[0] == GGUFValueType.STRING:
                w.add_string(key, field.contents())
            elif field.types[0] == GGUFValueType.BOOL:
                w.add_bool(key, field.contents())
            else:
                w.add_uint32(key, int(field.contents()))
    vocab = len(reader.fields["tokenizer.ggml.tokens"].contents())
    h, q, kv, e, f = a.hidden, a.heads * a.head_dim, a.kv_heads * a.head_dim, a.experts, a.expert_width

    def add(name, ty, shape):
        data = random_tensor(rng, ty, shape)
        w.add_tensor(name, data, raw_dtype=None if ty == Q.F32 else ty)

    add("token_embd.weight", Q.Q4_K, [h, vocab])
    for i in range(a.layers):
        b = f"blk.{i}."
        add(b + "attn_norm.weight", Q.F32, [h])
        add(b + "attn_q.weight", Q.Q4_K, [h, q])
        add(b + "attn_k.weight", Q.Q4_K, [h, kv])
        add(b + "attn_v.weight", Q.Q6_K, [h, kv])
        add(b + "attn_q_norm.weight", Q.F32, [a.head_dim])
        add(b + "attn_k_norm.weight", Q.F32, [a.head_dim])
        add(b + "attn_output.weight", Q.Q4_K, [q, h])
        add(b + "ffn_norm.weight", Q.F32, [h])
        add(b + "ffn_gate_inp.weight", Q.F32, [h, e])
        add(b + "ffn_gate_exps.weight", Q.Q4_K, [h, f, e])
        add(b + "ffn_up_exps.weight", Q.Q4_K, [h, f, e])
        add(b + "ffn_down_exps.weight", Q.Q6_K, [f, h, e])
    add("output_norm.weight", Q.F32, [h])
    add("output.weight", Q.Q6_K, [h, vocab])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
