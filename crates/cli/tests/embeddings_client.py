#!/usr/bin/env python3
"""Embeddings of `uma serve --pooling mean` through the official `openai` and `ollama` clients.

Run by crates/cli/tests/serve_embeddings.rs. The openai client asks for base64 by default and
decodes it; the ollama client reads float arrays from /api/embed and /api/embeddings: every route
must give the same unit vectors. Prints `embeddings_client.py: ok` or fails with an assertion.
"""
import argparse
import math

import ollama
import openai

parser = argparse.ArgumentParser()
parser.add_argument("--host", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()
texts = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b"]

client = openai.OpenAI(base_url=f"{args.host}/v1", api_key="unused", max_retries=0)
response = client.embeddings.create(model=args.model, input=texts)
via_openai = [item.embedding for item in response.data]
assert [item.index for item in response.data] == [0, 1], response.data
assert response.usage.prompt_tokens > 10, response.usage
floats = client.embeddings.create(model=args.model, input=texts[0], encoding_format="float")
assert floats.data[0].embedding == via_openai[0], "base64 and float encodings differ"

ollama_client = ollama.Client(host=args.host)
via_ollama = ollama_client.embed(model=args.model, input=texts).embeddings
legacy = ollama_client.embeddings(model=args.model, prompt=texts[1]).embedding
for a, b in zip(via_openai, via_ollama):
    assert len(a) == len(b) == 896, (len(a), len(b))
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-6, "openai and ollama routes differ"
    assert abs(math.sqrt(sum(x * x for x in a)) - 1) < 1e-5, "not unit length"
assert max(abs(x - y) for x, y in zip(legacy, via_ollama[1])) < 1e-6, "/api/embeddings differs"
cosine = sum(x * y for x, y in zip(*via_openai))
assert cosine < 0.9, f"two different texts embed alike ({cosine})"
print("embeddings_client.py: ok")
