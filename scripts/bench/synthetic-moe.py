#!/usr/bin/env python3
"""Synthetic mixture-of-experts models for speed measurements, with random weights and the
Qwen tokenizer copied from a real Qwen file. Decode and prefill speed depend on shapes and
types, never on values; the output is meaningless.

  synthetic-moe.py QWEN_TOKENIZER.gguf OUT.gguf [--arch qwen3moe|gpt-oss|deepseek2] [--layers N]
                   [--hidden N] [--experts N] [--used N] [--expert-width N] [--heads N]
                   [--kv-heads N] [--head-dim N]

--arch qwen3moe (the default): Qwen3-30B-A3B shrunk to fit a small machine, in Q4_K_M's type
mix (Q4_K matrices, Q6_K value projections, expert down projections and output head, F32 norms
and routers). Default: 16 layers, 64 experts of 768 (8 per token), hidden 2048, 32 heads / 4 KV
of 128: 5.76 B parameters, 3.75 GB, about 1.2 B active per token.

--arch gpt-oss: gpt-oss-20b shrunk, typed as the released files and `llama-quantize MXFP4_MOE`
type it: MXFP4 experts, the other matrices Q8_0, F32 norms, biases, sinks and routers; q/k/v/
output biases, a sink logit per head, per-expert biases, `post_attention_norm` as the FFN norm,
even layers windowed to 128 positions, YaRN rope (factor 32 over 4096). Default: 4 layers,
hidden 2880, 64 heads / 8 KV of 64, 32 experts of 2880 (4 per token): about 2.7 GB, of which
the Q8_0 output head (Qwen's 151,936 tokens, not gpt-oss's 201,088) is 465 MB.

--arch deepseek2: DeepSeek-V2-Lite's shapes (hidden 2048, 16 heads, latent 512 + rope 64,
nope/value heads of 128, 64 experts of 1408 with 6 per token, 2 shared experts, the first layer
dense of 10944) with DeepSeek-V3's parts on top: a compressed query (q_lora_rank 768), sigmoid
routing with `exp_probs_b`, 8 groups of which 4 are used, renormalised weights scaled by 2.5,
YaRN (40x over 4096 with V3's log multiplier), in the form newer converters write (split
`attn_k_b`/`attn_v_b`, one cached latent head). Types as `llama-quantize Q4_K_M` gives them:
Q4_K matrices, Q6_K shared-expert down projections and output head, Q8_0 where rows are not
whole 256-blocks (`attn_k_b`: 128, expert `ffn_down_exps`: 1,408, dense `ffn_down`: 10,944).
Default: 8 layers: 3.44 GB, 707 MB read per decoded token.

Needs numpy and gguf (llama.cpp's gguf-py, on PyPI).
"""
import argparse

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import ExpertGatingFuncType, GGUFReader, GGUFValueType, GGUFWriter, RopeScalingType

# type -> (block bytes, block values, byte offsets of the block's f16 scales)
BLOCK = {Q.F32: (4, 1, None), Q.Q4_K: (144, 256, [0, 2]), Q.Q6_K: (210, 256, [208]),
         Q.Q8_0: (34, 32, [0]), Q.MXFP4: (17, 32, None)}
DEFAULTS = {
    "qwen3moe": dict(layers=16, hidden=2048, experts=64, used=8, expert_width=768, heads=32,
                     kv_heads=4, head_dim=128),
    "gpt-oss": dict(layers=4, hidden=2880, experts=32, used=4, expert_width=2880, heads=64,
                    kv_heads=8, head_dim=64),
    # kv_heads and head_dim are not used: one latent head of kv_lora + rope.
    "deepseek2": dict(layers=8, hidden=2048, experts=64, used=6, expert_width=1408, heads=16,
                      kv_heads=1, head_dim=192),
}
# DeepSeek's attention: latent, rope, per-head nope and value widths, query latent; shared
# experts and the leading dense layer's width.
MLA = dict(kv_lora=512, rope=64, nope=128, value=128, q_lora=768)
DEEPSEEK_SHARED, DEEPSEEK_DENSE_WIDTH = 2, 10944


def random_tensor(rng, ty, shape, low=0.9, high=1.1):
    """Random blocks of `ty` for a tensor of ggml shape `shape`: F32 values uniform in
    [low, high), quantized blocks with small finite scales (f16 0.002; MXFP4's E8M0 byte
    118-122, a scale of 2^-10..2^-6 on its values of at most 12)."""
    count = int(np.prod(shape))
    if ty == Q.F32:
        return rng.uniform(low, high, count).astype(np.float32).reshape(list(reversed(shape)))
    block_bytes, block_values, scales = BLOCK[ty]
    blocks = rng.integers(0, 256, (count // block_values, block_bytes), dtype=np.uint8)
    if ty == Q.MXFP4:
        blocks[:, 0] = rng.integers(118, 123, len(blocks), dtype=np.uint8)
    scale = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    for s in scales or []:
        blocks[:, s:s + 2] = scale
    # Byte shape, numpy order: the outer dimensions, then each row's bytes.
    return blocks.reshape(list(reversed(shape[1:])) + [-1])


def copy_tokenizer(w, path):
    """Copies the `tokenizer.*` metadata of the GGUF file `path`; returns its vocabulary size."""
    reader = GGUFReader(path)
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
    return len(reader.fields["tokenizer.ggml.tokens"].contents())


def qwen3moe_tensors(a, add, vocab):
    h, q, kv, e, f = a.hidden, a.heads * a.head_dim, a.kv_heads * a.head_dim, a.experts, a.expert_width
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


def gpt_oss_tensors(a, add, vocab):
    h, q, kv, e, f = a.hidden, a.heads * a.head_dim, a.kv_heads * a.head_dim, a.experts, a.expert_width

    def small(name, shape):  # biases, sinks, routers: around zero, so routing varies by token
        add(name, Q.F32, shape, -0.05, 0.05)

    add("token_embd.weight", Q.Q8_0, [h, vocab])
    for i in range(a.layers):
        b = f"blk.{i}."
        add(b + "attn_norm.weight", Q.F32, [h])
        for name, width in (("attn_q", q), ("attn_k", kv), ("attn_v", kv)):
            add(b + name + ".weight", Q.Q8_0, [h, width])
            small(b + name + ".bias", [width])
        add(b + "attn_output.weight", Q.Q8_0, [q, h])
        small(b + "attn_output.bias", [h])
        small(b + "attn_sinks.weight", [a.heads])
        add(b + "post_attention_norm.weight", Q.F32, [h])
        small(b + "ffn_gate_inp.weight", [h, e])
        small(b + "ffn_gate_inp.bias", [e])
        add(b + "ffn_gate_exps.weight", Q.MXFP4, [h, f, e])
        small(b + "ffn_gate_exps.bias", [f, e])
        add(b + "ffn_up_exps.weight", Q.MXFP4, [h, f, e])
        small(b + "ffn_up_exps.bias", [f, e])
        add(b + "ffn_down_exps.weight", Q.MXFP4, [f, h, e])
        small(b + "ffn_down_exps.bias", [h, e])
    add("output_norm.weight", Q.F32, [h])
    add("output.weight", Q.Q8_0, [h, vocab])


def deepseek2_tensors(a, add, vocab):
    h, e, f, heads = a.hidden, a.experts, a.expert_width, a.heads
    m = MLA

    def small(name, shape):  # routers and selection biases: around zero
        add(name, Q.F32, shape, -0.05, 0.05)

    add("token_embd.weight", Q.Q4_K, [h, vocab])
    for i in range(a.layers):
        b = f"blk.{i}."
        add(b + "attn_norm.weight", Q.F32, [h])
        add(b + "attn_q_a.weight", Q.Q4_K, [h, m["q_lora"]])
        add(b + "attn_q_a_norm.weight", Q.F32, [m["q_lora"]])
        add(b + "attn_q_b.weight", Q.Q4_K, [m["q_lora"], heads * (m["nope"] + m["rope"])])
        add(b + "attn_kv_a_mqa.weight", Q.Q4_K, [h, m["kv_lora"] + m["rope"]])
        add(b + "attn_kv_a_norm.weight", Q.F32, [m["kv_lora"]])
        add(b + "attn_k_b.weight", Q.Q8_0, [m["nope"], m["kv_lora"], heads])
        add(b + "attn_v_b.weight", Q.Q4_K, [m["kv_lora"], m["value"], heads])
        add(b + "attn_output.weight", Q.Q4_K, [heads * m["value"], h])
        add(b + "ffn_norm.weight", Q.F32, [h])
        if i == 0:
            add(b + "ffn_gate.weight", Q.Q4_K, [h, DEEPSEEK_DENSE_WIDTH])
            add(b + "ffn_up.weight", Q.Q4_K, [h, DEEPSEEK_DENSE_WIDTH])
            # Rows of 10,944 are not whole 256-blocks: llama-quantize falls back to Q8_0.
            add(b + "ffn_down.weight", Q.Q8_0, [DEEPSEEK_DENSE_WIDTH, h])
            continue
        small(b + "ffn_gate_inp.weight", [h, e])
        small(b + "exp_probs_b.bias", [e])
        add(b + "ffn_gate_exps.weight", Q.Q4_K, [h, f, e])
        add(b + "ffn_up_exps.weight", Q.Q4_K, [h, f, e])
        # Rows of 1,408: Q6_K falls back to Q8_0 as in llama-quantize.
        add(b + "ffn_down_exps.weight", Q.Q8_0 if f % 256 else Q.Q6_K, [f, h, e])
        shared = DEEPSEEK_SHARED * f
        add(b + "ffn_gate_shexp.weight", Q.Q4_K, [h, shared])
        add(b + "ffn_up_shexp.weight", Q.Q4_K, [h, shared])
        add(b + "ffn_down_shexp.weight", Q.Q6_K, [shared, h])
    add("output_norm.weight", Q.F32, [h])
    add("output.weight", Q.Q6_K, [h, vocab])


def deepseek2_metadata(w, a):
    m = MLA
    w.add_context_length(163840)
    w.add_feed_forward_length(DEEPSEEK_DENSE_WIDTH)
    w.add_head_count_kv(1)
    w.add_key_length(m["kv_lora"] + m["rope"])
    w.add_value_length(m["kv_lora"])
    w.add_key_length_mla(m["nope"] + m["rope"])
    w.add_value_length_mla(m["value"])
    w.add_rope_dimension_count(m["rope"])
    w.add_q_lora_rank(m["q_lora"])
    w.add_kv_lora_rank(m["kv_lora"])
    w.add_expert_shared_count(DEEPSEEK_SHARED)
    w.add_leading_dense_block_count(1)
    w.add_expert_group_count(8)
    w.add_expert_group_used_count(4)
    w.add_expert_weights_scale(2.5)
    w.add_expert_weights_norm(True)
    w.add_expert_gating_func(ExpertGatingFuncType.SIGMOID)
    w.add_rope_scaling_type(RopeScalingType.YARN)
    w.add_rope_scaling_factor(40.0)
    w.add_rope_scaling_orig_ctx_len(4096)
    w.add_rope_scaling_yarn_log_mul(0.1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tokenizer")
    p.add_argument("out")
    p.add_argument("--arch", choices=sorted(DEFAULTS), default="qwen3moe")
    for name in DEFAULTS["qwen3moe"]:
        p.add_argument("--" + name.replace("_", "-"), type=int)
    a = p.parse_args()
    for name, default in DEFAULTS[a.arch].items():
        if getattr(a, name) is None:
            setattr(a, name, default)
    rng = np.random.default_rng(0)
    w = GGUFWriter(a.out, a.arch)
    gpt_oss, deepseek = a.arch == "gpt-oss", a.arch == "deepseek2"
    w.add_name(f"uma synthetic {a.arch} {a.layers}x{a.experts}x{a.expert_width}")
    w.add_block_count(a.layers)
    w.add_embedding_length(a.hidden)
    w.add_expert_feed_forward_length(a.expert_width)
    w.add_head_count(a.heads)
    w.add_layer_norm_rms_eps(1e-5 if gpt_oss else 1e-6)
    w.add_expert_count(a.experts)
    w.add_expert_used_count(a.used)
    if deepseek:
        deepseek2_metadata(w, a)
        w.add_rope_freq_base(10_000.0)
    else:
        w.add_context_length(131072 if gpt_oss else 40960)
        w.add_feed_forward_length(a.expert_width if gpt_oss else 6144)
        w.add_head_count_kv(a.kv_heads)
        w.add_key_length(a.head_dim)
        w.add_value_length(a.head_dim)
        w.add_rope_freq_base(150_000.0 if gpt_oss else 1_000_000.0)
    if gpt_oss:  # gpt-oss-20b's windows and rope scaling
        w.add_rope_dimension_count(a.head_dim)
        w.add_sliding_window(128)
        w.add_rope_scaling_type(RopeScalingType.YARN)
        w.add_rope_scaling_factor(32.0)
        w.add_rope_scaling_orig_ctx_len(4096)
    w.add_file_type(38 if gpt_oss else 15)  # MOSTLY_MXFP4_MOE, Q4_K_M
    vocab = copy_tokenizer(w, a.tokenizer)
    sizes = {"total": 0, "per_token": 0}

    def add(name, ty, shape, low=0.9, high=1.1):
        data = random_tensor(rng, ty, shape, low, high)
        w.add_tensor(name, data, raw_dtype=None if ty == Q.F32 else ty)
        sizes["total"] += data.nbytes
        if name != "token_embd.weight":  # decode reads one row of it
            sizes["per_token"] += data.nbytes * (a.used / a.experts if "_exps." in name else 1)

    tensors = {"gpt-oss": gpt_oss_tensors, "deepseek2": deepseek2_tensors}
    tensors.get(a.arch, qwen3moe_tensors)(a, add, vocab)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{a.out}: {sizes['total'] / 1e9:.2f} GB of tensors, "
          f"{sizes['per_token'] / 1e6:.0f} MB read per decoded token")


if __name__ == "__main__":
    main()
