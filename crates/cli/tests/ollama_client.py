#!/usr/bin/env python3
"""End-to-end checks of uma's Ollama API with the official `ollama` Python client.

Run by crates/cli/tests/serve_ollama.rs against `uma serve` (venv of
scripts/setup-test-clients.sh); by hand against a server serving the Gemma 3 270M test model:

    ~/.cache/uma/venv-clients/bin/python crates/cli/tests/ollama_client.py \
        --host http://127.0.0.1:8080 --model gemma

Each check prints `ok  NAME`; the first failure prints `FAIL NAME: why` and exits 1. Generations
are greedy or seeded and at most 8 tokens, so a run takes seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
import urllib.request

import ollama


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    client = ollama.Client(host=args.host, timeout=60)
    model = args.model
    greedy = {"num_predict": 6, "temperature": 0}
    prompt = "The three primary colours are"
    state = {}

    def version():
        with urllib.request.urlopen(f"{args.host}/api/version", timeout=10) as response:
            body = json.load(response)
        assert isinstance(body["version"], str) and body["version"], body

    def tags():
        listed = client.list()
        names = [m.model for m in listed.models]
        assert model in names, names
        entry = listed.models[names.index(model)]
        assert entry.size and entry.size > 100_000_000, entry.size
        assert entry.details.format == "gguf", entry.details
        assert entry.details.family == "gemma3", entry.details
        assert entry.details.quantization_level == "Q4_K_M", entry.details
        assert isinstance(entry.modified_at, datetime.datetime), entry.modified_at

    def show():
        shown = client.show(model)
        assert shown.details.family == "gemma3", shown.details
        assert shown.modelinfo["general.architecture"] == "gemma3", shown.modelinfo
        assert shown.modelinfo["general.parameter_count"] > 200_000_000, shown.modelinfo
        assert "completion" in shown.capabilities, shown.capabilities

    def generate_whole():
        reply = client.generate(model=model, prompt=prompt, raw=True, options=greedy)
        assert reply.done and reply.done_reason == "length", reply
        assert reply.eval_count == 6, reply.eval_count
        assert reply.response, reply
        assert reply.prompt_eval_count and reply.prompt_eval_count > 3, reply.prompt_eval_count
        assert reply.total_duration >= reply.eval_duration > 0, reply
        assert len(reply.context) == reply.prompt_eval_count + 6, reply.context
        state["text"], state["context"] = reply.response, reply.context

    def generate_streamed():
        parts = list(client.generate(model=model, prompt=prompt, raw=True, options=greedy, stream=True))
        assert all(not p.done for p in parts[:-1]) and parts[-1].done, [p.done for p in parts]
        text = "".join(p.response or "" for p in parts)
        assert text == state["text"], (text, state["text"])
        assert parts[-1].eval_count == 6 and parts[-1].context == state["context"], parts[-1]

    def generate_continues_a_context():
        reply = client.generate(
            model=model, prompt=" and", raw=True, context=state["context"], options=greedy
        )
        assert reply.done and reply.response, reply
        assert reply.prompt_eval_count > len(state["context"]), reply.prompt_eval_count
        assert reply.context[: len(state["context"])] == state["context"]

    def chat_whole_and_streamed():
        messages = [{"role": "user", "content": "Name a colour."}]
        whole = client.chat(model=model, messages=messages, options=greedy)
        assert whole.message.role == "assistant" and whole.message.content, whole
        assert whole.done and whole.eval_count == 6, whole
        parts = list(client.chat(model=model, messages=messages, options=greedy, stream=True))
        text = "".join(p.message.content or "" for p in parts)
        assert text == whole.message.content, (text, whole.message.content)
        assert parts[-1].done and parts[-1].done_reason == "length", parts[-1]

    def seeded_sampling_repeats():
        options = {"num_predict": 8, "temperature": 0.9, "seed": 1234}
        first = client.generate(model=model, prompt=prompt, raw=True, options=options).response
        second = client.generate(model=model, prompt=prompt, raw=True, options=options).response
        assert first == second, (first, second)

    def stop_option():
        reply = client.generate(
            model=model, prompt="1, 2, 3, 4,", raw=True,
            options={"num_predict": 8, "temperature": 0, "stop": [","]},
        )
        assert "," not in reply.response and reply.done_reason == "stop", reply

    def ps_and_keep_alive():
        running = client.ps()
        names = [m.model for m in running.models]
        assert model in names, names
        entry = running.models[names.index(model)]
        assert entry.size and entry.size > 100_000_000, entry
        assert entry.expires_at > datetime.datetime.now(datetime.timezone.utc), entry.expires_at
        unloaded = client.generate(model=model, prompt="", keep_alive=0)
        assert unloaded.done and unloaded.done_reason == "unload", unloaded
        deadline = time.time() + 20
        while model in [m.model for m in client.ps().models]:
            assert time.time() < deadline, "the model stayed loaded"
            time.sleep(0.1)
        loaded = client.generate(model=model, prompt="", keep_alive="5m")
        assert loaded.done_reason == "load", loaded
        assert model in [m.model for m in client.ps().models]

    def errors():
        for call, status, words in [
            (lambda: client.generate(model="no-such-model", prompt="x"), 404, "no-such-model"),
            (lambda: client.chat(model=model, messages=[{"role": "user", "content": "x"}], format="json"),
             400, "format"),
            (lambda: client.generate(model=model, prompt="x", options={"num_predict": 0}),
             400, "num_predict"),
            (lambda: client.generate(model=model, prompt="x", keep_alive="soon"), 400, "duration"),
        ]:
            try:
                call()
            except ollama.ResponseError as error:
                assert error.status_code == status, (error.status_code, error.error)
                assert words in error.error, error.error
            else:
                raise AssertionError(f"no error for a {status} case")

    checks = [
        version, tags, show, generate_whole, generate_streamed, generate_continues_a_context,
        chat_whole_and_streamed, seeded_sampling_repeats, stop_option, ps_and_keep_alive, errors,
    ]
    for check in checks:
        try:
            check()
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            traceback.print_exc()
            print(f"FAIL {check.__name__}: {error!r}")
            return 1
        print(f"ok  {check.__name__}")
    print(f"ollama_client.py: all {len(checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
