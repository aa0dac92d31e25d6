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


def load_model(path: str):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(os.environ.get("UMA_REFERENCE_THREADS", "2")))
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
