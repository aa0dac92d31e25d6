"""Last-position logits of the real models, by Hugging Face transformers (float32), per prompt.

Reads the prompts written by reference_prompts.py (same token ids) and writes
crates/model/tests/golden/logits/<stem>.json:
  {"model", "reference", "vocab_size", "sample_rule",
   "prompts": [{"name", "token_ids", "argmax", "min", "max", "logsumexp",
                "top": [[id, logit] x 64, highest first],
                "sample": [[id, logit] x 1024 fixed ids, sorted by id],
                "transformers_greedy": {"tokens": [..], "top2_logit_gap": [..]}}]}

The forward pass: AutoModelForCausalLM from the GGUF file, dtype float32, eval, no_grad,
torch.set_num_threads(2), the whole prompt in one call, logits of the last position. The sample ids
are drawn once per model with numpy default_rng(seed=0).choice(vocab_size, 1024, replace=False).
"transformers_greedy" is transformers' own greedy continuation (64 tokens, stops after an
end-of-generation token), kept to compare with llama.cpp's in greedy/<stem>.json.

Usage: python reference_logits.py [STEM ...]
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from reference_common import GOLDEN, MODELS, load_model, load_tokenizer, model_path, reference_versions, sig, write_json

NUM_TOP = 64
NUM_SAMPLE = 1024
GREEDY_TOKENS = 64

# End-of-generation ids (as llama.cpp's vocabulary marks them for these files; checked against
# llama-server's stop reason by reference_greedy.py).
EOG = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m": [151643, 151645, 151662, 151663, 151664],
    "qwen2.5-coder-1.5b-instruct-q4_k_m": [151643, 151645, 151662, 151663, 151664],
    "gemma-3-270m-q4_k_m": [1, 106],
}


def greedy(model, ids: list[int], eog: list[int]) -> dict:
    import torch

    out = model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=GREEDY_TOKENS,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        repetition_penalty=None,
        eos_token_id=eog,
        pad_token_id=eog[0],
        output_logits=True,
        return_dict_in_generate=True,
    )
    tokens = out.sequences[0, len(ids):].tolist()
    gaps = []
    for step in out.logits:
        top2 = torch.topk(step[0].float(), 2).values
        gaps.append(sig(float(top2[0] - top2[1]), 6))
    tokens = tokens[: len(gaps)]
    return {"tokens": tokens, "top2_logit_gap": gaps}


def build(stem: str) -> dict:
    import torch

    with open(os.path.join(GOLDEN, "prompts", f"{stem}.json"), encoding="utf-8") as f:
        prompts = json.load(f)["prompts"]
    path = model_path(stem)
    model = load_model(path)
    tokenizer, _ = load_tokenizer(path)
    vocab_size = model.config.vocab_size
    sample_ids = np.sort(np.random.default_rng(seed=0).choice(vocab_size, NUM_SAMPLE, replace=False))
    out = []
    for prompt in prompts:
        ids = prompt["token_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].float()
        assert logits.shape[0] == vocab_size, (logits.shape, vocab_size)
        values = logits.numpy().astype(np.float64)
        order = np.argsort(-values, kind="stable")[:NUM_TOP]
        lse = float(np.log(np.sum(np.exp(values - values.max()))) + values.max())
        with torch.no_grad():
            continuation = greedy(model, ids, EOG[stem])
        entry = {
            "name": prompt["name"],
            "token_ids": ids,
            "argmax": int(order[0]),
            "min": sig(values.min()),
            "max": sig(values.max()),
            "logsumexp": sig(lse),
            "top": [[int(i), sig(values[i])] for i in order],
            "sample": [[int(i), sig(values[i])] for i in sample_ids],
            "transformers_greedy": continuation,
        }
        out.append(entry)
        text = tokenizer.decode(continuation["tokens"][:16])
        print(f"  {stem} {prompt['name']} ({len(ids)} tokens): argmax {entry['argmax']} "
              f"range [{entry['min']:.2f}, {entry['max']:.2f}] top2 gap {values[order[0]] - values[order[1]]:.3f}; "
              f"greedy: {text!r}", flush=True)
    return {
        "model": stem,
        "reference": reference_versions(),
        "vocab_size": vocab_size,
        "sample_rule": f"numpy default_rng(seed=0).choice({vocab_size}, {NUM_SAMPLE}, replace=False), sorted",
        "prompts": out,
    }


def main(stems: list[str]) -> None:
    for stem in stems or MODELS:
        write_json(os.path.join(GOLDEN, "logits", f"{stem}.json"), build(stem))


if __name__ == "__main__":
    main(sys.argv[1:])
