"""Mean- and last-token-pooled embeddings of the real models, by Hugging Face transformers
(float32), for a few raw texts: what `uma serve --pooling mean|last` must reproduce.

The final hidden states are transformers' `hidden_states[-1]` (after the model's final norm, as
llama.cpp's embeddings use them), pooled over every token (mean) or taken at the last token, then
L2-normalized. The token ids are transformers' tokenization of each text without special tokens
plus, for models that add one (Gemma), the BOS token: the same ids uma's raw prompt gives, which
the Rust test checks before comparing.

Writes crates/model/tests/golden/embeddings/<stem>.json:
  {"model", "reference", "texts": [{"text", "token_ids", "mean": [..], "last": [..]}]}

Usage: python reference_embeddings.py [STEM ...]
"""
from __future__ import annotations

import os
import sys

from reference_common import GOLDEN, MODELS, load_model, load_tokenizer, model_path, reference_versions, sig, write_json

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b",
    "Memory bandwidth bounds decoding; compute bounds prefill.",
]


def build(stem: str) -> dict:
    import torch

    path = model_path(stem)
    model = load_model(path)
    tokenizer, _ = load_tokenizer(path)
    out = []
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if stem.startswith("gemma"):
            ids = [tokenizer.bos_token_id] + ids
        with torch.no_grad():
            result = model(torch.tensor([ids]), output_hidden_states=True)
        states = result.hidden_states[-1][0].double()  # [num_tokens, hidden_size]
        mean = states.mean(dim=0)
        last = states[-1]
        out.append({
            "text": text,
            "token_ids": ids,
            "mean": [sig(float(v), 7) for v in (mean / mean.norm())],
            "last": [sig(float(v), 7) for v in (last / last.norm())],
        })
    return {"model": stem, "reference": reference_versions(), "texts": out}


def main() -> None:
    import torch

    torch.set_num_threads(2)
    stems = sys.argv[1:] or MODELS
    for stem in stems:
        data = build(stem)
        write_json(os.path.join(GOLDEN, "embeddings", f"{stem}.json"), data)
        print(f"wrote embeddings/{stem}.json")


if __name__ == "__main__":
    main()
