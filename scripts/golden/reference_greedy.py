"""Greedy continuations of the real models by llama.cpp (llama-server), per prompt.

Reads the prompts written by reference_prompts.py and writes crates/model/tests/golden/greedy/<stem>.json:
  {"model", "reference", "near_tie_margin", "near_tie_margin_why",
   "prompts": [{"name", "prompt_ids", "tokens", "stop", "top2_logit_gap",
                "llama_cpp_tokenization_matches", "transformers_agree_until"}]}

How: llama_greedy (scripts/golden/llama_greedy.cpp, a small program linked against the static
libraries of the peer llama.cpp build) loads the model with 2 threads and a 4096-token context,
decodes each prompt's ids in one batch (n_batch 2048, n_ubatch 512, as llama-server's defaults),
then decodes one token at a time, taking the argmax of the raw logits (what top_k 1 / temperature 0
does) and recording logit(top1) - logit(top2), which is ln(p1/p2) of the unmodified distribution.
llama-server itself is not used for this: with n_probs it does return raw-distribution
probabilities (post_sampling_probs false: tools/server/server-common.cpp get_token_probabilities),
but it leaves out the probabilities of every token whose text ends inside a UTF-8 character
(process_token only records complete text), which breaks the per-step alignment on Chinese text.

"tokens" are the generated ids; when generation stopped at an end-of-generation token, that token is
the last element ("stop": "eos"), else there are 64 ("stop": "limit").

Also checks llama.cpp's own tokenization of each rendered prompt (llama-server POST /tokenize,
special tokens parsed, BOS added only when the text does not start with it) against the HF ids, and compares the
greedy tokens with transformers' (from logits/<stem>.json) to report where they diverge.

Usage: python reference_greedy.py LLAMA_BIN_DIR LLAMA_GREEDY_BINARY [STEM ...]
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request

from reference_common import GOLDEN, MODELS, model_path, write_json

N_PREDICT = 64
NEAR_TIE_MARGIN = 0.5
NEAR_TIE_WHY = (
    "uma and llama.cpp quantize activations differently (and transformers runs float32 on "
    "dequantized weights); across these models the last-position logits of independent "
    "implementations differ by up to a few tenths, so a step whose top-2 logit gap is below 0.5 "
    "may legitimately flip. A test should require identical tokens up to the first step with "
    "gap < near_tie_margin and may stop comparing after it."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, route: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def get(port: int, route: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=10) as response:
        return json.loads(response.read())


class Server:
    def __init__(self, bin_dir: str, model: str):
        self.port = free_port()
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"llama-server-{self.port}.log"), "w")
        self.process = subprocess.Popen(
            [os.path.join(bin_dir, "llama-server"), "-m", model, "-t", "2", "-c", "4096", "-np", "1",
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 300
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"llama-server exited; see {self.log.name}")
            try:
                if get(self.port, "/health").get("status") == "ok":
                    break
            except Exception:
                pass
            if time.time() > deadline:
                self.close()
                raise SystemExit("llama-server did not become ready")
            time.sleep(0.5)
        self.props = get(self.port, "/props")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# `--q8-cache` as the first argument: llama.cpp with a Q8_0 K and V cache (and flash attention, which a
# quantized V cache needs there), written to greedy/q8_0/<stem>.json for uma's `--kv-cache-type q8_0`.
Q8_CACHE = len(sys.argv) > 1 and sys.argv[1] == "--q8-cache"
if Q8_CACHE:
    del sys.argv[1]


def greedy_all(greedy_bin: str, model: str, prompts: list[list[int]]) -> list[dict]:
    stdin = "".join(" ".join(map(str, ids)) + "\n" for ids in prompts)
    args = [greedy_bin, model, "2", str(N_PREDICT)] + (["--q8-cache"] if Q8_CACHE else [])
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=True)
    out = []
    for line in result.stdout.splitlines():
        r = json.loads(line)
        out.append({
            "tokens": r["tokens"],
            "top2_logit_gap": [round(g, 5) if math.isfinite(g) else None for g in r["gaps"]],
            "stop": "eos" if r["eog"] else "limit",
        })
    assert len(out) == len(prompts), result.stderr
    return out


def first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def build(bin_dir: str, greedy_bin: str, stem: str, version: str) -> tuple[dict, list[str]]:
    with open(os.path.join(GOLDEN, "prompts", f"{stem}.json"), encoding="utf-8") as f:
        prompts = json.load(f)["prompts"]
    transformers = {}
    logits_path = os.path.join(GOLDEN, "logits", f"{stem}.json")
    if os.path.exists(logits_path):
        with open(logits_path, encoding="utf-8") as f:
            transformers = {p["name"]: p.get("transformers_greedy") for p in json.load(f)["prompts"]}
    results = greedy_all(greedy_bin, model_path(stem), [p["token_ids"] for p in prompts])
    server = Server(bin_dir, model_path(stem))
    report = []
    out = []
    try:
        for prompt, result in zip(prompts, results):
            text = prompt["text"]
            starts_with_bos = text.startswith("<bos>")  # Gemma's BOS text; Qwen has no BOS
            native = post(server.port, "/tokenize", {"content": text, "add_special": not starts_with_bos,
                                                      "parse_special": True})["tokens"]
            entry = {
                "name": prompt["name"],
                "prompt_ids": prompt["token_ids"],
                "tokens": result["tokens"],
                "stop": result["stop"],
                "top2_logit_gap": result["top2_logit_gap"],
                "llama_cpp_tokenization_matches": native == prompt["token_ids"],
            }
            if native != prompt["token_ids"]:
                at = first_divergence(native, prompt["token_ids"])
                report.append(f"{stem} {prompt['name']}: llama.cpp tokenizes the rendered prompt differently "
                              f"from HF at index {at}: {native[at:at + 5]} vs {prompt['token_ids'][at:at + 5]}")
            hf = transformers.get(prompt["name"])
            if hf:
                at = first_divergence(result["tokens"], hf["tokens"])
                entry["transformers_agree_until"] = len(result["tokens"]) if at is None else at
                if at is not None and at < min(len(result["tokens"]), len(hf["tokens"])):
                    gap_l = result["top2_logit_gap"][at]
                    gap_t = hf["top2_logit_gap"][at]
                    report.append(f"{stem} {prompt['name']}: llama.cpp and transformers diverge at generated token "
                                  f"{at} (llama.cpp {result['tokens'][at]} gap {gap_l}, transformers "
                                  f"{hf['tokens'][at]} gap {gap_t})")
                elif at is not None:
                    report.append(f"{stem} {prompt['name']}: one stops earlier: llama.cpp {len(result['tokens'])} "
                                  f"tokens ({result['stop']}), transformers {len(hf['tokens'])}")
            near = [i for i, g in enumerate(result["top2_logit_gap"]) if g is not None and g < NEAR_TIE_MARGIN]
            print(f"  {stem} {prompt['name']}: {len(result['tokens'])} tokens ({result['stop']}), "
                  f"near ties at {near[:8]}, agrees with transformers for {entry.get('transformers_agree_until')}",
                  flush=True)
            out.append(entry)
    finally:
        server.close()
    return {
        "model": stem,
        "reference": f"llama.cpp as vendored by llama-cpp-python 0.3.36 (reports {version}), CPU, 2 threads, n_ctx 4096, "
                     "n_batch 2048, n_ubatch 512, "
                     + ("flash attention and Q8_0 K and V cache" if Q8_CACHE
                        else "default flash-attention and F16 KV cache")
                     + "; greedy = argmax of raw logits (scripts/golden/llama_greedy.cpp)",
        "near_tie_margin": NEAR_TIE_MARGIN,
        "near_tie_margin_why": NEAR_TIE_WHY,
        "prompts": out,
    }, report


def llama_version(bin_dir: str) -> str:
    try:
        text = subprocess.run([os.path.join(bin_dir, "llama-server"), "--version"], capture_output=True,
                              text=True, timeout=30)
        line = [l for l in (text.stdout + text.stderr).splitlines() if l.startswith("version")]
        return line[0].removeprefix("version: ").strip() if line else "unknown"
    except Exception:
        return "unknown"


def main(bin_dir: str, greedy_bin: str, stems: list[str]) -> None:
    version = llama_version(bin_dir)
    report = []
    for stem in stems or MODELS:
        golden, lines = build(bin_dir, greedy_bin, stem, version)
        folder = os.path.join(GOLDEN, "greedy", "q8_0") if Q8_CACHE else os.path.join(GOLDEN, "greedy")
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, f"{stem}.json"), golden)
        report += lines
    print("\nllama.cpp vs transformers:")
    print("\n".join(f"  {line}" for line in report) if report else "  no divergences")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
