"""Reference logits of the tiny random models (crates/test-models/src/tiny.rs), by transformers.

Usage: python tiny_logits.py DIR [ARCH ...]   (all architectures by default; DIR holds tiny-<arch>.gguf, written by
`cargo run -p uma-test-models --example write_tiny_models -- DIR`)

Writes crates/model/tests/golden/tiny/<arch>.json:
  {"arch", "reference", "gguf_sha256", "config": {hyper-parameters as transformers used them},
   "prompts": [{"token_ids", "logits": [[vocab floats] per position]}]}
Logits of every position, float32 forward, rounded to 8 significant digits.
The prompts are longer than gemma3's sliding window (4) so the window matters.
"""
from __future__ import annotations

import hashlib
import os
import sys

from reference_common import GOLDEN, load_model, reference_versions, sig, write_json

ARCHS = ["llama", "qwen2", "qwen3", "gemma3", "qwen3moe", "qwen2moe", "mixtral", "olmoe", "gpt-oss",
         "deepseek2"]
PROMPTS = [
    [7],
    [17, 42, 301, 99, 256, 3, 77],
    [1, 200, 13, 13, 64, 318, 5, 150, 288, 31, 9, 270],
]

# Mixture-of-experts models route each token to its top-k experts: where two router logits
# nearly tie at the k-th place, float rounding picks either (llama.cpp and transformers did
# differently on the third prompt), so their prompts are checked to route with a margin.
MOE_PROMPTS = {
    "qwen3moe": [PROMPTS[0], PROMPTS[1], [3, 201, 14, 14, 65, 317, 6, 151, 287, 30, 8, 271]],
    "qwen2moe": [PROMPTS[0], PROMPTS[1], [3, 201, 14, 14, 65, 317, 6, 151, 287, 30, 8, 271]],
    "mixtral": [PROMPTS[0], PROMPTS[1], [11, 21, 31, 31, 41, 51, 61, 71, 81, 91, 101, 111]],
    "olmoe": [PROMPTS[0], PROMPTS[1], [3, 201, 14, 14, 65, 317, 6, 151, 287, 30, 8, 271]],
    "gpt-oss": [PROMPTS[0], [165, 77, 202, 24, 37, 274, 48],
                [93, 2, 76, 88, 72, 242, 61, 284, 31, 166, 265, 271]],
    "deepseek2": [PROMPTS[0], [46, 275, 21, 202, 231, 80, 7],
                  [138, 172, 44, 159, 170, 7, 209, 60, 68, 126, 51, 5]],
}
MIN_ROUTING_MARGIN = 0.02  # logits; the references differ by about 1e-5, uma by up to 1e-3
# DeepSeek V3 chooses by sigmoid scores (plus a bias): a sigmoid's slope is at most 1/4, so a score
# margin of a quarter of the above is at least as far from a flip as that logit margin.
MIN_SCORE_MARGIN = MIN_ROUTING_MARGIN / 4

CONFIG_KEYS = [
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings",
    "tie_word_embeddings", "hidden_act", "hidden_activation", "sliding_window", "layer_types",
    "query_pre_attn_scalar", "rope_parameters", "attention_bias", "num_experts",
    "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob",
    # DeepSeek V3 (no other architecture's config has these)
    "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
    "first_k_dense_replace", "n_routed_experts", "n_shared_experts", "n_group", "topk_group",
    "routed_scaling_factor", "rope_interleave",
]


def config_dict(config) -> dict:
    out = {}
    for key in CONFIG_KEYS:
        value = getattr(config, key, None)
        if value is None:
            continue
        if isinstance(value, float):
            value = sig(value)
        out[key] = value
    if "head_dim" not in out:
        out["head_dim"] = config.hidden_size // config.num_attention_heads
    return out


def watch_routing(model):
    """For a mixture-of-experts model, a list that the next forward pass fills with each
    layer's smallest gap between the k-th and (k+1)-th router logits of a token, divided by the
    margin it must keep (so every entry must be at least 1); else None. DeepSeek V3's grouped
    routing records two gaps, both in its selection scores (sigmoid + bias): between the
    `topk_group`-th and next group scores (the sum of a group's top two), and between the k-th and
    (k+1)-th experts of the chosen groups."""
    import torch

    k = getattr(model.config, "num_experts_per_tok", None)
    if k is None:
        return None
    margins = []

    def gap(values, k):
        top = torch.topk(values, k + 1, dim=-1).values
        return float((top[:, k - 1] - top[:, k]).min())

    def record(module, inputs, output):
        logits = (output[0] if isinstance(output, tuple) else output).float()
        margins.append(gap(logits, k) / MIN_ROUTING_MARGIN)

    def record_router(module, inputs, output):  # gpt-oss: the router returns no logits
        record(module, inputs, torch.nn.functional.linear(inputs[0], module.weight, module.bias))

    def record_grouped(module, inputs, output):  # DeepSeek V3's DeepseekV3TopkRouter
        scores = output[0].float().sigmoid() + module.e_score_correction_bias
        groups = scores.view(-1, module.num_group, module.num_experts // module.num_group)
        group_scores = groups.topk(2, dim=-1).values.sum(dim=-1)
        chosen = group_scores.topk(module.topk_group, dim=-1).indices
        in_chosen = groups.gather(1, chosen[..., None].expand(-1, -1, groups.shape[-1]))
        margins.append(gap(group_scores, module.topk_group) / MIN_SCORE_MARGIN)
        margins.append(gap(in_chosen.flatten(1), k) / MIN_SCORE_MARGIN)

    for layer in model.model.layers:
        if hasattr(layer.mlp, "router"):
            router, hook = layer.mlp.router, record_router
        elif hasattr(getattr(layer.mlp, "gate", None), "e_score_correction_bias"):
            router, hook = layer.mlp.gate, record_grouped
        elif hasattr(layer.mlp, "gate"):
            router, hook = layer.mlp.gate, record
        else:
            continue  # a dense layer (DeepSeek's first)
        for handle in getattr(router, "_uma_hooks", []):
            handle.remove()
        router._uma_hooks = [router.register_forward_hook(hook)]
    return margins


def main(directory: str, archs: list[str]) -> None:
    import torch

    for arch in archs:
        path = os.path.join(directory, f"tiny-{arch}.gguf")
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        model = load_model(path)
        prompts = []
        with torch.no_grad():
            for ids in MOE_PROMPTS.get(arch, PROMPTS):
                margins = watch_routing(model)
                logits = model(torch.tensor([ids])).logits[0].float().numpy()
                if margins is not None and min(margins) < 1:
                    raise SystemExit(f"{arch} {ids}: a router margin at the top-k boundary of "
                                     f"{min(margins):.3f} of the least allowed: pick another prompt")
                prompts.append({"token_ids": ids, "logits": [[sig(x) for x in row] for row in logits]})
                print(f"  {arch} len {len(ids)}: last argmax {int(logits[-1].argmax())}, "
                      f"range [{logits.min():.3f}, {logits.max():.3f}]")
        write_json(os.path.join(GOLDEN, "tiny", f"{arch}.json"), {
            "arch": arch,
            "reference": reference_versions(),
            "gguf_sha256": digest,
            "config": config_dict(model.config),
            "prompts": prompts,
        })


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/tiny-models", sys.argv[2:] or ARCHS)
