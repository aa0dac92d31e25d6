"""Helpers shared by the transformers/llama.cpp reference generators (see make-reference.sh).

Loading rules, in one place so every generator sees the same model:

* Real models and tiny models are loaded by Hugging Face `transformers` straight from the GGUF file
  (`from_pretrained(dir, gguf_file=NAME, dtype=torch.float32)`): transformers dequantizes every
  tensor with gguf-py and runs its own float32 PyTorch implementation of the architecture.
* Two gaps in transformers' GGUF config mapping are closed here from the file's own metadata,
  because the tensors (and llama.cpp) say otherwise:
    - `qwen3`: transformers does not map `qwen3.attention.key_length` to `head_dim` (it keeps
      Qwen3Config's default 128); we set it from the file.
    - `gemma3`: transformers keeps Gemma3's default `query_pre_attn_scalar = 256`; llama.cpp scales
      attention by 1/sqrt(key_length) (every Gemma 3 size but 27B), so we set the scalar to
      `key_length`. For the real 270M file key_length is 256, so nothing changes there.
* Every load asserts that no weight was missing or unexpected (no silently random tensor).
* A `llama` file with experts (Mixtral) and an `olmoe` file are built as MixtralForCausalLM and
  OlmoeForCausalLM from their tensors (`load_from_tensors`): transformers' GGUF loader has no
  mapping for them.
* `gpt-oss` and `deepseek2` files are built from their tensors too (`load_gpt_oss`,
  `load_deepseek2`, whose docstrings say where they follow llama.cpp's reading of the file).
* Mixture-of-experts files: transformers does not map `expert_feed_forward_length` (nor
  `expert_shared_feed_forward_length`) to the experts' widths; `load_config` sets them.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "crates", "model", "tests", "golden")
GEMMA3_TEMPLATE = os.path.join(HERE, "gemma3_chat_template.jinja")
GEMMA3_TEMPLATE_REL = "scripts/golden/gemma3_chat_template.jinja"

MODELS = [
    "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "qwen2.5-coder-1.5b-instruct-q4_k_m",
    "gemma-3-270m-q4_k_m",
]

sys.path.insert(0, HERE)
from common import write_atomic  # noqa: E402  (shared with make-golden.sh's generators)


def models_dir() -> str:
    return os.environ.get("UMA_TEST_MODELS") or os.path.expanduser("~/.cache/uma/models")


def model_path(stem: str) -> str:
    path = os.path.join(models_dir(), stem + ".gguf")
    if not os.path.isfile(path):
        sys.exit(f"missing model {path}: fetch it with scripts/fetch-models.sh")
    return path


def reference_versions() -> str:
    import torch

    return (
        f"transformers {importlib.metadata.version('transformers')}, torch {torch.__version__}, "
        f"gguf {importlib.metadata.version('gguf')}, float32 on dequantized GGUF weights"
    )


def gguf_fields(path: str) -> dict:
    """Scalar metadata of a GGUF file (arrays left out), via gguf-py."""
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    reader = GGUFReader(path)
    out = {}
    for key, field in reader.fields.items():
        if not field.types or field.types[0] == GGUFValueType.ARRAY:
            continue
        if field.types[0] == GGUFValueType.STRING:
            out[key] = bytes(field.parts[field.data[0]]).decode("utf-8")
        else:
            out[key] = field.parts[field.data[0]].tolist()[0]
    return out


def load_config(path: str):
    from transformers import AutoConfig

    directory, name = os.path.split(path)
    config = AutoConfig.from_pretrained(directory, gguf_file=name)
    fields = gguf_fields(path)
    arch = fields["general.architecture"]
    key_length = fields.get(f"{arch}.attention.key_length")
    if arch in ("qwen3", "qwen3moe") and key_length is not None:
        config.head_dim = int(key_length)
    # transformers' GGUF mapping reads expert_count and expert_used_count but not the experts'
    # width (it keeps its default, 768): llama.cpp's converter writes it here.
    expert_width = fields.get(f"{arch}.expert_feed_forward_length")
    if arch in ("qwen3moe", "qwen2moe") and expert_width is not None:
        config.moe_intermediate_size = int(expert_width)
    shared_width = fields.get(f"{arch}.expert_shared_feed_forward_length")
    if arch == "qwen2moe" and shared_width is not None:
        config.shared_expert_intermediate_size = int(shared_width)
    if arch == "gemma3" and key_length is not None:
        config.query_pre_attn_scalar = int(key_length)
    return config


def file_tensors(path: str):
    """A GGUF file's architecture, its tensors dequantized by gguf-py (f32 numpy arrays in numpy
    order, the reverse of ggml's), and `f(suffix, default)` reading `<arch>.<suffix>`."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    fields = gguf_fields(path)
    arch = fields["general.architecture"]
    reader = GGUFReader(path)
    tensors = {t.name: dequantize(t.data, t.tensor_type).astype(np.float32)
               .reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}
    return arch, tensors, lambda suffix, default=None: fields.get(f"{arch}.{suffix}", default)


def with_weights(model, state: dict, path: str):
    """`model` (a freshly built transformers model) with every weight of `state` loaded, in eval
    mode; exits naming what did not load or was not the model's."""
    import numpy as np
    import torch

    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                                                 for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{path}: weights not loaded {missing}, unknown {unexpected}")
    model.eval()
    return model


def load_from_tensors(path: str):
    """A mixture-of-experts GGUF file that transformers' GGUF loader does not take (Mixtral, a
    `llama` file with experts; `olmoe`), built as transformers' MixtralForCausalLM or
    OlmoeForCausalLM from the file's dequantized tensors: Mixtral's q and k back in Hugging
    Face's order (llama.cpp's converter permutes them for its rope; not OLMoE's), each layer's
    gate and up experts side by side as `gate_up_proj`."""
    import numpy as np
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM

    arch, tensors, f = file_tensors(path)
    heads, kv_heads, hidden = f("attention.head_count"), f("attention.head_count_kv"), f("embedding_length")
    common = dict(
        vocab_size=tensors["token_embd.weight"].shape[0], hidden_size=hidden,
        num_hidden_layers=f("block_count"), num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=f("context_length"), rms_norm_eps=f("attention.layer_norm_rms_epsilon"),
        rope_theta=f("rope.freq_base", 10000.0), num_experts_per_tok=f("expert_used_count"),
        tie_word_embeddings="output.weight" not in tensors, dtype=torch.float32,
    )
    if arch == "llama":
        config = MixtralConfig(**common, intermediate_size=f("feed_forward_length"),
                               head_dim=f("attention.key_length", hidden // heads),
                               num_local_experts=f("expert_count"))
        model_class = MixtralForCausalLM
    else:
        config = OlmoeConfig(**common, intermediate_size=f("feed_forward_length"),
                             num_experts=f("expert_count"), norm_topk_prob=False)
        model_class = OlmoeForCausalLM

    def unpermute(w, n_head):  # inverse of convert_hf_to_gguf.py's LlamaModel.permute
        if arch != "llama":
            return w
        return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    state = {"model.embed_tokens.weight": tensors["token_embd.weight"],
             "model.norm.weight": tensors["output_norm.weight"],
             "lm_head.weight": tensors.get("output.weight", tensors["token_embd.weight"])}
    for i in range(config.num_hidden_layers):
        b, m = f"blk.{i}.", f"model.layers.{i}."
        state.update({
            m + "input_layernorm.weight": tensors[b + "attn_norm.weight"],
            m + "post_attention_layernorm.weight": tensors[b + "ffn_norm.weight"],
            m + "self_attn.q_proj.weight": unpermute(tensors[b + "attn_q.weight"], heads),
            m + "self_attn.k_proj.weight": unpermute(tensors[b + "attn_k.weight"], kv_heads),
            m + "self_attn.v_proj.weight": tensors[b + "attn_v.weight"],
            m + "self_attn.o_proj.weight": tensors[b + "attn_output.weight"],
            m + "mlp.gate.weight": tensors[b + "ffn_gate_inp.weight"],
            m + "mlp.experts.gate_up_proj": np.concatenate(
                [tensors[b + "ffn_gate_exps.weight"], tensors[b + "ffn_up_exps.weight"]], axis=1),
            m + "mlp.experts.down_proj": tensors[b + "ffn_down_exps.weight"],
        })
        if arch == "olmoe":
            state[m + "self_attn.q_norm.weight"] = tensors[b + "attn_q_norm.weight"]
            state[m + "self_attn.k_norm.weight"] = tensors[b + "attn_k_norm.weight"]
    return with_weights(model_class(config), state, path)


def load_gpt_oss(path: str):
    """A tiny `gpt-oss` GGUF file as transformers' GptOssForCausalLM, from the file's dequantized
    tensors (gguf-py dequantizes MXFP4): llama.cpp's converter splits Hugging Face's interleaved
    `gate_up_proj` ([experts, hidden, 2·width], gate at even columns) into `ffn_gate_exps` and
    `ffn_up_exps` and transposes every expert matrix; this puts them back. YaRN with
    `truncate: True`: GGUF does not carry gpt-oss's `truncate: False`, and llama.cpp always
    floors and ceils the correction range, so the file means the truncated form."""
    import numpy as np
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    arch, tensors, f = file_tensors(path)
    layers = f("block_count")
    config = GptOssConfig(
        vocab_size=tensors["token_embd.weight"].shape[0], hidden_size=f("embedding_length"),
        intermediate_size=f("expert_feed_forward_length"), num_hidden_layers=layers,
        num_attention_heads=f("attention.head_count"), num_key_value_heads=f("attention.head_count_kv"),
        head_dim=f("attention.key_length"), max_position_embeddings=f("context_length"),
        rms_norm_eps=f("attention.layer_norm_rms_epsilon"), sliding_window=f("attention.sliding_window"),
        num_local_experts=f("expert_count"), num_experts_per_tok=f("expert_used_count"),
        rope_parameters={
            "rope_type": "yarn", "rope_theta": f("rope.freq_base"), "factor": f("rope.scaling.factor"),
            "beta_fast": 32.0, "beta_slow": 1.0, "truncate": True,
            "original_max_position_embeddings": f("rope.scaling.original_context_length"),
        },
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
        tie_word_embeddings=False, dtype=torch.float32,
    )
    state = {"model.embed_tokens.weight": tensors["token_embd.weight"],
             "model.norm.weight": tensors["output_norm.weight"],
             "lm_head.weight": tensors["output.weight"]}
    for i in range(layers):
        b, m = f"blk.{i}.", f"model.layers.{i}."
        gate, up = tensors[b + "ffn_gate_exps.weight"], tensors[b + "ffn_up_exps.weight"]  # [n, f, h]
        gate_up = np.empty((gate.shape[0], gate.shape[2], 2 * gate.shape[1]), dtype=np.float32)
        gate_up[:, :, 0::2], gate_up[:, :, 1::2] = gate.transpose(0, 2, 1), up.transpose(0, 2, 1)
        gate_up_bias = np.empty((gate.shape[0], 2 * gate.shape[1]), dtype=np.float32)
        gate_up_bias[:, 0::2] = tensors[b + "ffn_gate_exps.bias"]
        gate_up_bias[:, 1::2] = tensors[b + "ffn_up_exps.bias"]
        state.update({
            m + "input_layernorm.weight": tensors[b + "attn_norm.weight"],
            m + "post_attention_layernorm.weight": tensors[b + "post_attention_norm.weight"],
            m + "self_attn.sinks": tensors[b + "attn_sinks.weight"],
            m + "mlp.router.weight": tensors[b + "ffn_gate_inp.weight"],
            m + "mlp.router.bias": tensors[b + "ffn_gate_inp.bias"],
            m + "mlp.experts.gate_up_proj": gate_up,
            m + "mlp.experts.gate_up_proj_bias": gate_up_bias,
            m + "mlp.experts.down_proj": tensors[b + "ffn_down_exps.weight"].transpose(0, 2, 1),
            m + "mlp.experts.down_proj_bias": tensors[b + "ffn_down_exps.bias"],
        })
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"),
                             ("attn_output", "o_proj")):
            state[m + f"self_attn.{theirs}.weight"] = tensors[b + ours + ".weight"]
            state[m + f"self_attn.{theirs}.bias"] = tensors[b + ours + ".bias"]
    return with_weights(GptOssForCausalLM(config), state, path)


def load_deepseek2(path: str):
    """A tiny `deepseek2` GGUF file (DeepSeek V3 in llama.cpp's MLA form) as transformers'
    DeepseekV3ForCausalLM, from the file's dequantized tensors. What the file means is what
    llama.cpp computes on it; where transformers' reading of DeepSeek V3 could differ, this
    follows llama.cpp (checked by tiny_crosscheck.py):

    * `kv_b_proj` is rebuilt per head from `attn_k_b` (stored transposed: [n_head, kv_lora,
      nope] in numpy order) and `attn_v_b` ([n_head, v_head_dim, kv_lora]), the no-rope key rows
      before the value rows, as the converter split it. The file's `head_count_kv` of 1 is the
      shared latent; transformers decompresses it to as many KV heads as query heads.
    * Rope: llama.cpp ropes deepseek2 in its NORM (adjacent-pair) style on the rope part of the
      query and on the shared rope key, with the converter's unpermuted weights: transformers'
      `rope_interleave=True` (pairs (0,1), (2,3)…; it writes the rotated pairs de-interleaved,
      the same permutation for q and k, so the scores are the same).
    * YaRN: the file's factor and original context; betas 32 and 1 (llama.cpp's deepseek2 does
      not read `rope.scaling.yarn_beta_*`); `mscale_all_dim` = yarn_log_multiplier / 0.1 (the
      converter wrote 0.1 × mscale_all_dim, llama.cpp divides it back), and `mscale` equal to it:
      llama.cpp assumes so (its rope magnitude is then 1, its attention scale
      (1 + 0.1·mscale_all_dim·ln factor)² / sqrt(qk_head_dim)), as transformers does for
      mscale == mscale_all_dim (DeepSeek V3's and Kimi K2's 1.0, DeepSeek V2's 0.707).
    * Routing: sigmoid scores, the `exp_probs_b` bias (transformers' `e_score_correction_bias`)
      added for the choice only, groups ranked by their top-2 sum; the chosen experts' unbiased
      scores renormalised and scaled by `expert_weights_scale` (llama.cpp's
      `build_moe_ffn` with `expert_weights_norm`).
    * The q_a and kv_a norms: transformers gives them eps 1e-6 whatever the config says,
      llama.cpp the file's epsilon; the tiny file's is 1e-6 (checked here).
    """
    import numpy as np
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    arch, tensors, f = file_tensors(path)
    heads, layers = f("attention.head_count"), f("block_count")
    rope = f("rope.dimension_count")
    nope, v_dim = f("attention.key_length_mla") - rope, f("attention.value_length_mla")
    kv_lora, eps = f("attention.kv_lora_rank"), f("attention.layer_norm_rms_epsilon")
    if abs(eps - 1e-6) > 1e-12:
        raise SystemExit(f"{path}: rms epsilon {eps}: transformers' q_a/kv_a norms use 1e-6")
    if f("expert_gating_func") != 2 or not f("expert_weights_norm", False):
        raise SystemExit(f"{path}: only sigmoid gating with renormalised weights is built here")
    rope_parameters = {"rope_type": "default", "rope_theta": f("rope.freq_base", 10000.0)}
    if f("rope.scaling.type") == "yarn":
        if f("rope.scaling.yarn_log_multiplier") is None:  # llama.cpp then scales differently
            raise SystemExit(f"{path}: YaRN without yarn_log_multiplier is not built here")
        # In float32, as llama.cpp divides (0.1f / 0.1f is exactly 1).
        mscale_all_dim = float(np.float32(f("rope.scaling.yarn_log_multiplier")) / np.float32(0.1))
        rope_parameters.update({
            "rope_type": "yarn", "factor": f("rope.scaling.factor"),
            "original_max_position_embeddings": f("rope.scaling.original_context_length"),
            "beta_fast": 32.0, "beta_slow": 1.0, "truncate": True,
            "mscale": mscale_all_dim, "mscale_all_dim": mscale_all_dim,
        })
    config = DeepseekV3Config(
        vocab_size=tensors["token_embd.weight"].shape[0], hidden_size=f("embedding_length"),
        intermediate_size=f("feed_forward_length"), moe_intermediate_size=f("expert_feed_forward_length"),
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        n_shared_experts=f("expert_shared_count"), n_routed_experts=f("expert_count"),
        routed_scaling_factor=f("expert_weights_scale", 1.0), kv_lora_rank=kv_lora,
        q_lora_rank=f("attention.q_lora_rank"), qk_rope_head_dim=rope, v_head_dim=v_dim,
        qk_nope_head_dim=nope, n_group=f("expert_group_count", 1), topk_group=f("expert_group_used_count", 1),
        num_experts_per_tok=f("expert_used_count"), first_k_dense_replace=f("leading_dense_block_count", 0),
        norm_topk_prob=True, hidden_act="silu", max_position_embeddings=f("context_length"),
        rms_norm_eps=eps, rope_parameters=rope_parameters, rope_interleave=True,
        attention_bias=False, tie_word_embeddings="output.weight" not in tensors,
        num_mtp_layers=0, dtype=torch.float32,
    )
    state = {"model.embed_tokens.weight": tensors["token_embd.weight"],
             "model.norm.weight": tensors["output_norm.weight"],
             "lm_head.weight": tensors.get("output.weight", tensors["token_embd.weight"])}
    for i in range(layers):
        b, m = f"blk.{i}.", f"model.layers.{i}."
        t = lambda name: tensors[b + name]  # noqa: E731
        k_b, v_b = t("attn_k_b.weight"), t("attn_v_b.weight")  # [n_head, kv_lora, nope], [n_head, v, kv_lora]
        kv_b = np.concatenate([k_b.transpose(0, 2, 1), v_b], axis=1).reshape(heads * (nope + v_dim), kv_lora)
        state.update({
            m + "input_layernorm.weight": t("attn_norm.weight"),
            m + "post_attention_layernorm.weight": t("ffn_norm.weight"),
            m + "self_attn.q_a_proj.weight": t("attn_q_a.weight"),
            m + "self_attn.q_a_layernorm.weight": t("attn_q_a_norm.weight"),
            m + "self_attn.q_b_proj.weight": t("attn_q_b.weight"),
            m + "self_attn.kv_a_proj_with_mqa.weight": t("attn_kv_a_mqa.weight"),
            m + "self_attn.kv_a_layernorm.weight": t("attn_kv_a_norm.weight"),
            m + "self_attn.kv_b_proj.weight": kv_b,
            m + "self_attn.o_proj.weight": t("attn_output.weight"),
        })
        if i < config.first_k_dense_replace:
            for ours, theirs in (("ffn_gate", "gate_proj"), ("ffn_up", "up_proj"), ("ffn_down", "down_proj")):
                state[m + f"mlp.{theirs}.weight"] = t(ours + ".weight")
            continue
        state.update({
            m + "mlp.gate.weight": t("ffn_gate_inp.weight"),
            m + "mlp.gate.e_score_correction_bias": t("exp_probs_b.bias"),
            m + "mlp.experts.gate_up_proj": np.concatenate(
                [t("ffn_gate_exps.weight"), t("ffn_up_exps.weight")], axis=1),
            m + "mlp.experts.down_proj": t("ffn_down_exps.weight"),
            m + "mlp.shared_experts.gate_proj.weight": t("ffn_gate_shexp.weight"),
            m + "mlp.shared_experts.up_proj.weight": t("ffn_up_shexp.weight"),
            m + "mlp.shared_experts.down_proj.weight": t("ffn_down_shexp.weight"),
        })
    return with_weights(DeepseekV3ForCausalLM(config), state, path)


def load_model(path: str):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(os.environ.get("UMA_REFERENCE_THREADS", "2")))
    fields = gguf_fields(path)
    arch = fields["general.architecture"]
    if (arch == "llama" and "llama.expert_count" in fields) or arch == "olmoe":
        return load_from_tensors(path)
    if arch == "gpt-oss":
        return load_gpt_oss(path)
    if arch == "deepseek2":
        return load_deepseek2(path)
    directory, name = os.path.split(path)
    config = load_config(path)
    model, info = AutoModelForCausalLM.from_pretrained(
        directory,
        gguf_file=name,
        config=config,
        dtype=torch.float32,
        output_loading_info=True,
    )
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if problems:
        raise SystemExit(f"{name}: transformers did not load every weight: {problems}")
    model.eval()
    return model


def load_tokenizer(path: str):
    """The HF tokenizer from the GGUF file; Gemma 3 gets the official template (the file has none)."""
    from transformers import AutoTokenizer

    directory, name = os.path.split(path)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    source = "file"
    if not tokenizer.chat_template:
        if gguf_fields(path).get("general.architecture") != "gemma3":
            raise SystemExit(f"{name} has no chat template and no official fallback is known")
        with open(GEMMA3_TEMPLATE, encoding="utf-8") as f:
            tokenizer.chat_template = f.read()
        source = GEMMA3_TEMPLATE_REL
    return tokenizer, source


def sig(x: float, digits: int = 8) -> float:
    """Round to `digits` significant digits (8 keeps an f32 within half an ulp of a few ulps)."""
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits - 1}e}")


def dumps(obj, indent: int = 0) -> str:
    """JSON with objects spread over lines but lists of scalars (and lists of such lists) on one
    line: small diffs, files that open in an editor."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k, ensure_ascii=False)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, dict) for v in obj):
        items = [f"{pad}  {dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    if isinstance(obj, list) and obj and all(isinstance(v, list) for v in obj) and len(obj) > 2 and any(len(v) > 8 for v in obj):
        items = [f"{pad}  {json.dumps(v, ensure_ascii=False, separators=(',', ':'))}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":") if isinstance(obj, list) else None)


def write_json(path: str, obj) -> None:
    write_atomic(path, dumps(obj) + "\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
