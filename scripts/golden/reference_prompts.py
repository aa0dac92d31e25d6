"""Chat prompts rendered and tokenized by Hugging Face transformers, per real model.

Writes crates/model/tests/golden/prompts/<stem>.json:
  {"model", "template_source", "tokenization", "prompts": [{"name", "messages", "text", "token_ids"}]}
plus one raw (non-chat) prompt, named "raw_text", with "messages": null.

Rendering: `tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)`
with the template stored in the GGUF file (Qwen: ChatML; with no system message it inserts Qwen's
default system prompt) or, for Gemma 3 270M whose file has none, Google's official Gemma 3 template
(scripts/golden/gemma3_chat_template.jinja; it renders `<bos>` itself).

Tokenization "as a chat server would": the rendered text is tokenized with special tokens parsed
(`<|im_start|>`, `<start_of_turn>` become single ids) and with exactly one BOS where the model wants
one: when the rendered text already starts with the BOS text (Gemma: `<bos>`), we tokenize with
`add_special_tokens=False` so no second BOS is added; otherwise with the tokenizer's default (Qwen
adds nothing). The raw prompt is tokenized with the default (`<bos>` first for Gemma, nothing for
Qwen), like llama.cpp's completion endpoint on plain text.

Usage: python reference_prompts.py [STEM ...]
"""
from __future__ import annotations

import os
import sys

from reference_common import GOLDEN, MODELS, load_tokenizer, model_path, write_json

LONG_CODE = '''use std::collections::HashMap;

/// A least-recently-used cache with a fixed capacity.
pub struct LruCache<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<K: std::hash::Hash + Eq + Clone, V> LruCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        Self { capacity, tick: 0, entries: HashMap::new() }
    }

    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(key) {
            Some(entry) => {
                entry.1 = tick;
                Some(&entry.0)
            }
            None => None,
        }
    }

    pub fn put(&mut self, key: K, value: V) {
        self.tick += 1;
        if self.entries.len() == self.capacity && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
                .expect("the cache is full, so it is not empty");
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (value, self.tick));
    }
}'''

PROMPTS = [
    {
        "name": "coding",
        "messages": [
            {"role": "user", "content": "Write a Python function that checks whether a string is a palindrome, ignoring case and spaces."}
        ],
    },
    {
        "name": "factual",
        "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
    },
    {
        "name": "multi_turn",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
            {"role": "user", "content": "I have 3 apples and buy 5 more. How many apples do I have?"},
            {"role": "assistant", "content": "You have 8 apples."},
            {"role": "user", "content": "And if I eat two of them, how many are left?"},
        ],
    },
    {
        "name": "french",
        "messages": [{"role": "user", "content": "Explique-moi en deux phrases ce qu'est la photosynthèse."}],
    },
    {
        "name": "chinese",
        "messages": [{"role": "user", "content": "请用一句话介绍一下长城。"}],
    },
    {
        "name": "one_word",
        "messages": [{"role": "user", "content": "Hello"}],
    },
    {
        "name": "long_code",
        "messages": [
            {
                "role": "user",
                "content": "Explain what this Rust code does, point out its time complexity, and suggest one improvement.\n\n```rust\n"
                + LONG_CODE
                + "\n```",
            }
        ],
    },
]

RAW_TEXT = "The quick brown fox jumps over the lazy dog. In the beginning"


def encode(tokenizer, text: str, default_special: bool = True) -> tuple[list[int], bool]:
    """Token ids of `text` with special tokens parsed and at most one BOS; returns the ids and
    whether the tokenizer's own special tokens (BOS) were added."""
    bos = tokenizer.bos_token
    add_special = default_special and not (bos and text.startswith(bos))
    ids = tokenizer(text, add_special_tokens=add_special).input_ids
    if tokenizer.bos_token_id is not None and len(ids) > 1:
        assert not (ids[0] == ids[1] == tokenizer.bos_token_id), "double BOS"
    return list(ids), add_special


def build(stem: str) -> dict:
    tokenizer, source = load_tokenizer(model_path(stem))
    out = []
    for prompt in PROMPTS:
        text = tokenizer.apply_chat_template(prompt["messages"], add_generation_prompt=True, tokenize=False)
        ids, added = encode(tokenizer, text)
        out.append({"name": prompt["name"], "messages": prompt["messages"], "text": text, "token_ids": ids})
        print(f"  {stem} {prompt['name']}: {len(ids)} tokens (add_special_tokens={added})")
    ids, added = encode(tokenizer, RAW_TEXT)
    out.append({"name": "raw_text", "messages": None, "text": RAW_TEXT, "token_ids": ids})
    print(f"  {stem} raw_text: {len(ids)} tokens (add_special_tokens={added})")
    bos = tokenizer.bos_token if tokenizer.bos_token_id is not None else None
    return {
        "model": stem,
        "template_source": source,
        "tokenization": (
            "HF tokenizer from the GGUF file, special tokens parsed; add_special_tokens=False when the "
            f"rendered text already starts with the BOS text ({bos!r}), else the tokenizer default "
            "(Qwen: adds nothing; Gemma: adds <bos>). Exactly one BOS for Gemma, none for Qwen."
        ),
        "prompts": out,
    }


def main(stems: list[str]) -> None:
    for stem in stems or MODELS:
        write_json(os.path.join(GOLDEN, "prompts", f"{stem}.json"), build(stem))


if __name__ == "__main__":
    main(sys.argv[1:])
