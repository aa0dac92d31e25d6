#!/usr/bin/env python3
"""One speculative-decoding workload against an OpenAI-compatible server (uma serve or
llama-server), one request at a time, greedy, streaming; prints JSON with each request's decode
speed (completion tokens after the first / time from the first to the last content chunk) and
the workload's mean.

Workloads, the same as uma's own (crates/engine/src/speculative_workload.rs, which this mirrors:
keep them equal):
  edit  a Python file of FUNCTIONS small functions and the request to rename them (the answer
        copies the file: prompt lookup's case);
  chat  three ordinary questions (a draft model's case).

  speculative_client.py URL MODEL edit|chat [--functions 24] [--max-tokens 512] [--repeat 2]

Standard library only; refuses non-loopback URLs.
"""
import argparse
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request

CHAT_PROMPTS = [
    "Explain how a hash map handles collisions, in two short paragraphs.",
    "Write a Python function that merges two sorted lists, with a docstring and an example.",
    "What are three differences between TCP and UDP?",
]


def edit_file(num_functions: int) -> str:
    return "".join(
        f"def compute_total_{i}(values):\n    total = 0\n    for value in values:\n        "
        f"if value > {i}:\n            total += value * {i % 7 + 1}\n        else:\n            "
        f"total -= {i}\n    return total\n\n\n"
        for i in range(num_functions)
    )


def edit_prompt(num_functions: int) -> str:
    return (f"Here is a Python file:\n\n```python\n{edit_file(num_functions)}```\n\nRename every "
            "function `compute_total_N` to `sum_above_N` (same N) and change nothing else. Reply "
            "with the whole updated file in one code block.")


def one(url: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = json.dumps({
        "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
    }).encode()
    request = urllib.request.Request(f"{url}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
    first = last = None
    tokens = chunks = 0
    with urllib.request.urlopen(request, timeout=600) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    chunks += 1
    tokens = tokens or chunks
    seconds = (last - first) if first and last else 0.0
    return {"tokens": tokens, "decode_s": seconds,
            "decode_tok_s": (tokens - 1) / seconds if seconds > 0 and tokens > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("workload", choices=["edit", "chat"])
    ap.add_argument("--functions", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    host = urllib.parse.urlparse(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing a non-loopback server: {host}")
    prompts = [edit_prompt(args.functions)] if args.workload == "edit" else CHAT_PROMPTS
    one(args.url, args.model, prompts[0], 8)  # warm-up, untimed
    runs = [one(args.url, args.model, p, args.max_tokens) for _ in range(args.repeat) for p in prompts]
    total_tokens = sum(r["tokens"] - 1 for r in runs)
    total_s = sum(r["decode_s"] for r in runs)
    print(json.dumps({
        "workload": args.workload, "runs": runs,
        "decode_tok_s": total_tokens / total_s if total_s else 0.0,
        "per_request_median": statistics.median(r["decode_tok_s"] for r in runs),
    }))


if __name__ == "__main__":
    main()
