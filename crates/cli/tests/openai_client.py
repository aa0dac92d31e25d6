#!/usr/bin/env python3
"""End-to-end checks of an OpenAI-compatible server with the official `openai` Python client.

Run by crates/cli/tests/serve_openai.rs against `uma serve` (with the venv of
scripts/setup-test-clients.sh); can be run by hand against any server serving the Qwen2.5-Coder
0.5B test model:

    ~/.cache/uma/venv-clients/bin/python crates/cli/tests/openai_client.py \
        --base-url http://127.0.0.1:8080 --model qwen2.5-coder-0.5b-instruct-q4_k_m \
        --context 1024 [--api-key KEY] [--peer-llama-server]

--base-url is the server root (a trailing /v1 is accepted too). --context is the context one
request may fill (uma's --ctx; llama-server's per-slot context, -c divided by -np). With
--peer-llama-server, the few checks where llama.cpp's llama-server legitimately differs from uma's
contract are relaxed (each says so in its line), so the script doubles as a cross-check of itself
against a server nobody here wrote.

Each check prints `ok  NAME` (details relaxed for llama-server are printed above it); the first
failure prints `FAIL NAME: why` and the script exits 1. Every generation is at most 32 tokens, so a
run takes seconds (check names for --only: Checks.ORDER).

The contract checked (uma's; llama-server differs where --peer-llama-server says): errors are
`{"error": {"message", "type", "param", "code"}}`, with 400 for invalid JSON or fields and for a
prompt longer than the context (naming both numbers), 404 for an unknown model, 401 for a missing
or wrong key on every route but /health; streams end with a `choices: []` usage chunk when
`stream_options.include_usage` is set; `usage.prompt_tokens_details.cached_tokens` counts reused
prompt tokens.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid

import httpx
import openai

from client_harness import CheckFailed, ChecksBase, check, expect_raise, parser, run

TIMEOUT_S = 60.0  # per request (--timeout); a 0.5B model answers these in seconds
# One prompt whose greedy answer is predictable on the test model: it counts "1, 2, 3, ...".
COUNT = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
FINISH_REASONS = {"stop", "length"}


class Checks(ChecksBase):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        root = self.root
        self.context = args.context
        self.peer = args.peer_llama_server
        self.timeout = args.timeout
        self.client = openai.OpenAI(
            base_url=f"{root}/v1",
            api_key=args.api_key or "no-key",
            timeout=self.timeout,
            max_retries=0,
        )
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        self.http = httpx.Client(base_url=root, timeout=self.timeout, headers=headers)
        self.notes: list[str] = []
        # Results shared between checks (filled by the earlier ones).
        self.greedy_text: str | None = None
        self.greedy_usage = None
        self.stop_text: str | None = None
        self.completion_text: str | None = None

    # --- helpers -------------------------------------------------------------------------------

    def chat(self, **kw):
        kw.setdefault("model", self.model)
        kw.setdefault("messages", COUNT)
        return self.client.chat.completions.create(**kw)

    def relaxed(self, what: str) -> None:
        """Records that a contract detail was not checked because the peer server differs."""
        self.notes.append(what)
        print(f"     (peer llama-server: {what})")

    def usage_consistent(self, usage, max_tokens: int | None, where: str) -> None:
        check(usage is not None, f"{where}: no usage")
        check(usage.prompt_tokens > 0, f"{where}: prompt_tokens {usage.prompt_tokens}")
        check(usage.completion_tokens >= 0, f"{where}: completion_tokens {usage.completion_tokens}")
        check(
            usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
            f"{where}: total_tokens {usage.total_tokens} != prompt {usage.prompt_tokens} "
            f"+ completion {usage.completion_tokens}",
        )
        if max_tokens is not None:
            check(
                usage.completion_tokens <= max_tokens,
                f"{where}: completion_tokens {usage.completion_tokens} > max_tokens {max_tokens}",
            )

    def error_shape(self, body, where: str, status: int) -> dict:
        """The OpenAI error JSON `{"error": {"message", "type", "param", "code"}}`."""
        check(isinstance(body, dict) and isinstance(body.get("error"), dict),
              f"{where}: HTTP {status} body is not an OpenAI error object: {body!r}")
        err = body["error"]
        check(isinstance(err.get("message"), str) and err["message"],
              f"{where}: error without a message: {body!r}")
        check(isinstance(err.get("type"), str) and err["type"],
              f"{where}: error without a type: {body!r}")
        missing = [k for k in ("param", "code") if k not in err]
        if missing:
            if self.peer:
                self.relaxed(f"{where}: error object lacks {missing}")
            else:
                raise CheckFailed(f"{where}: error object lacks {missing}: {body!r}")
        return err

    def expect_status_error(self, exc_type, status: int, call, where: str):
        e = expect_raise(exc_type, openai.APIStatusError, call, where,
                         want=f"{exc_type.__name__} ({status})")
        check(e.status_code == status, f"{where}: HTTP {e.status_code}, want {status}: {e}")
        raw = e.response.json()  # the whole body (the client keeps only its "error" member)
        self.error_shape(raw, where, e.status_code)
        return e

    # --- checks, in order ----------------------------------------------------------------------

    def health(self):
        r = httpx.get(f"{self.root}/health", timeout=self.timeout)  # never needs a key
        check(r.status_code == 200, f"/health: HTTP {r.status_code}: {r.text[:200]}")
        check(isinstance(r.json(), dict), f"/health is not a JSON object: {r.text[:200]}")

    def models_list(self):
        models = self.client.models.list()
        ids = [m.id for m in models.data]
        check(self.model in ids, f"model {self.model!r} not in /v1/models: {ids}")
        for m in models.data:
            check(m.object == "model", f"model entry object {m.object!r}")

    def chat_non_stream(self):
        r = self.chat(max_tokens=24, temperature=0)
        check(r.object == "chat.completion", f"object {r.object!r}")
        check(r.model == self.model, f"model {r.model!r}, want {self.model!r}")
        check(bool(r.id), "no id")
        check(len(r.choices) == 1, f"{len(r.choices)} choices")
        c = r.choices[0]
        check(c.index == 0, f"index {c.index}")
        check(c.message.role == "assistant", f"role {c.message.role!r}")
        check(bool(c.message.content and c.message.content.strip()), f"empty content {c.message.content!r}")
        check(c.finish_reason in FINISH_REASONS, f"finish_reason {c.finish_reason!r}")
        self.usage_consistent(r.usage, 24, "usage")
        check("1, 2, 3" in c.message.content, f"greedy answer does not count: {c.message.content!r}")
        self.greedy_text = c.message.content
        self.greedy_usage = r.usage

    def chat_max_tokens_length(self):
        self.need("greedy_text", "chat_non_stream")
        r = self.chat(max_tokens=5, temperature=0)
        c = r.choices[0]
        check(c.finish_reason == "length", f"finish_reason {c.finish_reason!r}, want 'length'")
        check(r.usage.completion_tokens == 5, f"completion_tokens {r.usage.completion_tokens}, want 5")
        self.usage_consistent(r.usage, 5, "usage")
        check(self.greedy_text.startswith(c.message.content),
              f"5-token greedy text {c.message.content!r} is not a prefix of {self.greedy_text!r}")

    def chat_max_completion_tokens(self):
        r = self.chat(max_completion_tokens=3, temperature=0)
        c = r.choices[0]
        check(c.finish_reason == "length", f"finish_reason {c.finish_reason!r}, want 'length'")
        check(r.usage.completion_tokens == 3, f"completion_tokens {r.usage.completion_tokens}, want 3")

    def greedy_deterministic(self):
        self.need("greedy_text", "chat_non_stream")
        again = self.chat(max_tokens=24, temperature=0).choices[0].message.content
        check(again == self.greedy_text, f"greedy differs: {self.greedy_text!r} vs {again!r}")

    def seed_reproducible(self):
        messages = [{"role": "user", "content": "Write a one-line poem about the sea."}]
        # Warm the prompt cache first, so both seeded requests find the same cache state: a
        # server's prefill of a whole prompt and its reuse of a cached one may differ in the last
        # bits of the logits (llama-server's do), which sampling can amplify.
        self.chat(messages=messages, max_tokens=1, temperature=0)

        def sample(seed: int) -> str:
            return self.chat(messages=messages, max_tokens=24, temperature=0.8,
                             seed=seed).choices[0].message.content

        texts = [sample(1234), sample(1234)]
        check(bool(texts[0]), "empty sampled text")
        check(texts[0] == texts[1], f"same seed, different text: {texts[0]!r} vs {texts[1]!r}")
        others = {sample(1), sample(2)}
        check(others != {texts[0]}, f"seeds 1, 2 and 1234 all give {texts[0]!r}: is it sampling?")

    def sampling_params_accepted(self):
        r = self.chat(max_tokens=8, temperature=0.7, top_p=0.9, frequency_penalty=0.5,
                      presence_penalty=0.5, seed=7)
        check(bool(r.choices[0].message.content), "empty content")
        self.usage_consistent(r.usage, 8, "usage")

    def chat_stream(self):
        self.need("greedy_text", "chat_non_stream")
        stream = self.chat(max_tokens=24, temperature=0, stream=True,
                           stream_options={"include_usage": True})
        chunks = list(stream)
        check(len(chunks) >= 3, f"only {len(chunks)} chunks")
        ids = {ch.id for ch in chunks}
        check(len(ids) == 1, f"chunks carry several ids: {ids}")
        for ch in chunks:
            check(ch.object == "chat.completion.chunk", f"chunk object {ch.object!r}")
            check(ch.model == self.model, f"chunk model {ch.model!r}")
        usage_chunk = chunks[-1]
        body = chunks[:-1]
        check(usage_chunk.choices == [], f"last chunk has choices: {usage_chunk.choices!r}")
        check(usage_chunk.usage is not None, "last chunk has no usage (include_usage)")
        for ch in body:
            check(ch.usage is None, f"usage before the final chunk: {ch!r:.200}")
            check(len(ch.choices) == 1 and ch.choices[0].index == 0, f"chunk choices {ch.choices!r}")
        check(body[0].choices[0].delta.role == "assistant",
              f"first delta has role {body[0].choices[0].delta.role!r}")
        for ch in body[1:]:
            check(ch.choices[0].delta.role in (None, "assistant"), f"odd role {ch!r:.200}")
        for ch in body[:-1]:
            check(ch.choices[0].finish_reason is None, f"finish_reason before the end: {ch!r:.200}")
        last = body[-1].choices[0]
        check(last.finish_reason in FINISH_REASONS, f"last choice chunk finish_reason {last.finish_reason!r}")
        text = "".join(ch.choices[0].delta.content or "" for ch in body)
        check(text == self.greedy_text, f"streamed {text!r} != non-stream {self.greedy_text!r}")
        check(last.finish_reason == "length" or self.greedy_usage.completion_tokens < 24,
              "finish_reason disagrees with the non-stream call")
        u = usage_chunk.usage
        self.usage_consistent(u, 24, "stream usage")
        check(u.completion_tokens == self.greedy_usage.completion_tokens,
              f"stream completion_tokens {u.completion_tokens} != {self.greedy_usage.completion_tokens}")
        check(u.prompt_tokens == self.greedy_usage.prompt_tokens,
              f"stream prompt_tokens {u.prompt_tokens} != {self.greedy_usage.prompt_tokens}")

    def chat_stream_without_usage(self):
        chunks = list(self.chat(max_tokens=4, temperature=0, stream=True))
        check(all(ch.usage is None for ch in chunks), "usage sent without stream_options.include_usage")
        check(all(len(ch.choices) == 1 for ch in chunks), "a chunk without its choice")
        check(chunks[-1].choices[0].finish_reason == "length",
              f"finish_reason {chunks[-1].choices[0].finish_reason!r}")

    def chat_n2(self):
        r = self.chat(max_tokens=16, temperature=0.8, seed=5, n=2)
        check(len(r.choices) == 2, f"{len(r.choices)} choices, want 2")
        check(sorted(c.index for c in r.choices) == [0, 1], f"indexes {[c.index for c in r.choices]}")
        for c in r.choices:
            check(bool(c.message.content), f"choice {c.index} is empty")
            check(c.finish_reason in FINISH_REASONS, f"choice {c.index} finish_reason {c.finish_reason!r}")
        self.usage_consistent(r.usage, None, "usage")
        check(r.usage.completion_tokens <= 32, f"completion_tokens {r.usage.completion_tokens} > 2 x 16")

    def stop_sequence(self):
        r = self.chat(max_tokens=32, temperature=0, stop=["5"])
        c = r.choices[0]
        text = c.message.content
        check(c.finish_reason == "stop", f"finish_reason {c.finish_reason!r}, want 'stop' ({text!r})")
        check("5" not in text, f"stop string in the text: {text!r}")
        check("4" in text, f"stopped too early: {text!r}")
        check(r.usage.completion_tokens < 32, f"completion_tokens {r.usage.completion_tokens}")
        self.stop_text = text

    def stop_sequence_stream(self):
        self.need("stop_text", "stop_sequence")
        # `stop` as a plain string this time (the API takes a string or a list).
        chunks = list(self.chat(max_tokens=32, temperature=0, stop="5", stream=True))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        check(text == self.stop_text, f"streamed {text!r} != non-stream {self.stop_text!r}")
        check(chunks[-1].choices[0].finish_reason == "stop",
              f"finish_reason {chunks[-1].choices[0].finish_reason!r}")

    def chat_logprobs(self):
        r = self.chat(max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
        c = r.choices[0]
        check(c.logprobs is not None and c.logprobs.content, f"no logprobs: {c.logprobs!r}")
        entries = c.logprobs.content
        check(len(entries) == r.usage.completion_tokens,
              f"{len(entries)} logprob entries for {r.usage.completion_tokens} tokens")
        check("".join(e.token for e in entries) == c.message.content,
              f"tokens {[e.token for e in entries]} do not spell {c.message.content!r}")
        for i, e in enumerate(entries):
            check(e.logprob <= 0, f"token {i} logprob {e.logprob} > 0")
            tops = e.top_logprobs
            check(len(tops) == 3, f"token {i}: {len(tops)} top_logprobs, want 3")
            lps = [t.logprob for t in tops]
            check(all(lp <= 0 for lp in lps), f"token {i}: positive top logprob {lps}")
            check(lps == sorted(lps, reverse=True), f"token {i}: top_logprobs not descending {lps}")
            # Greedy: the chosen token is the most probable one.
            check(abs(e.logprob - lps[0]) < 1e-3,
                  f"token {i} ({e.token!r}, {e.logprob}) is not the top one ({tops[0].token!r}, {lps[0]})")

    def completions(self):
        r = self.client.completions.create(model=self.model, prompt="def fibonacci(n):",
                                           max_tokens=16, temperature=0,
                                           extra_body={"ignore_eos": True})
        check(r.object == "text_completion", f"object {r.object!r}")
        check(r.model == self.model, f"model {r.model!r}")
        check(len(r.choices) == 1 and r.choices[0].index == 0, f"choices {r.choices!r}")
        c = r.choices[0]
        check(bool(c.text), "empty text")
        check(c.finish_reason == "length", f"finish_reason {c.finish_reason!r}, want 'length'")
        check(r.usage.completion_tokens == 16, f"completion_tokens {r.usage.completion_tokens}, want 16")
        self.usage_consistent(r.usage, 16, "usage")
        self.completion_text = c.text

    def completions_stream(self):
        self.need("completion_text", "completions")
        chunks = list(self.client.completions.create(
            model=self.model, prompt="def fibonacci(n):", max_tokens=16, temperature=0,
            stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
        check(len(chunks) >= 3, f"only {len(chunks)} chunks")
        usage_chunk, body = chunks[-1], chunks[:-1]
        if self.peer and usage_chunk.choices and usage_chunk.usage is not None:
            self.relaxed("/v1/completions stream: usage rides on the finish chunk, "
                         "no separate choices=[] chunk")
            body = chunks
        else:
            check(usage_chunk.choices == [], f"last chunk has choices: {usage_chunk.choices!r}")
        check(usage_chunk.usage is not None, "no usage chunk (include_usage)")
        for ch in chunks[:-1]:
            check(ch.usage is None, f"usage before the final chunk: {ch!r:.200}")
        for ch in body:
            check(ch.object == "text_completion", f"chunk object {ch.object!r}")
            check(len(ch.choices) == 1, f"chunk choices {ch.choices!r}")
        for ch in body[:-1]:
            check(ch.choices[0].finish_reason is None, f"finish_reason before the end: {ch!r:.200}")
        check(body[-1].choices[0].finish_reason == "length",
              f"finish_reason {body[-1].choices[0].finish_reason!r}")
        text = "".join(ch.choices[0].text or "" for ch in body)
        check(text == self.completion_text, f"streamed {text!r} != non-stream {self.completion_text!r}")
        check(usage_chunk.usage.completion_tokens == 16,
              f"completion_tokens {usage_chunk.usage.completion_tokens}, want 16")
        self.usage_consistent(usage_chunk.usage, 16, "stream usage")

    def cached_tokens(self):
        # A ~300-token system prompt, unique to this run so the first request cannot hit a cache.
        nonce = uuid.uuid4().hex
        rules = " ".join(f"Rule {i}: always answer politely and keep answers short." for i in range(30))
        messages = [{"role": "system", "content": f"Session {nonce}. {rules}"},
                    {"role": "user", "content": "Say OK."}]
        first = self.chat(messages=messages, max_tokens=2, temperature=0)
        second = self.chat(messages=messages, max_tokens=2, temperature=0)
        check(first.usage.prompt_tokens >= 300, f"system prompt only {first.usage.prompt_tokens} tokens")
        details = second.usage.prompt_tokens_details
        check(details is not None and details.cached_tokens is not None,
              f"no usage.prompt_tokens_details.cached_tokens: {second.usage!r}")
        d1 = first.usage.prompt_tokens_details
        c1 = (d1.cached_tokens or 0) if d1 else 0
        check(details.cached_tokens > 0, f"cached_tokens {details.cached_tokens} on the repeat")
        check(details.cached_tokens > c1,
              f"repeat cached {details.cached_tokens} tokens, first request {c1}")
        check(details.cached_tokens <= second.usage.prompt_tokens,
              f"cached {details.cached_tokens} > prompt {second.usage.prompt_tokens}")
        check(details.cached_tokens >= first.usage.prompt_tokens // 2,
              f"only {details.cached_tokens} of {first.usage.prompt_tokens} prompt tokens reused")

    def error_unknown_model(self):
        if self.peer:
            self.relaxed("serves any model name (no 404); not checked")
            return
        self.expect_status_error(openai.NotFoundError, 404,
                                 lambda: self.chat(model="no-such-model", max_tokens=2), "chat")
        self.expect_status_error(
            openai.NotFoundError, 404,
            lambda: self.client.completions.create(model="no-such-model", prompt="x", max_tokens=2),
            "completions")

    def error_prompt_too_long(self):
        words = " ".join(["word"] * (self.context + 200))
        e = self.expect_status_error(
            openai.BadRequestError, 400,
            lambda: self.chat(messages=[{"role": "user", "content": words}], max_tokens=2), "chat")
        msg = e.response.json()["error"]["message"]
        numbers = [int(n) for n in re.findall(r"\d+", msg)]
        check(self.context in numbers, f"message does not name the context {self.context}: {msg!r}")
        check(any(n > self.context for n in numbers),
              f"message does not name the prompt length: {msg!r}")
        self.expect_status_error(
            openai.BadRequestError, 400,
            lambda: self.client.completions.create(model=self.model, prompt=words, max_tokens=2),
            "completions")

    def error_invalid_fields(self):
        self.expect_status_error(openai.BadRequestError, 400,
                                 lambda: self.chat(max_tokens=2, extra_body={"n": 0}), "n=0")
        self.expect_status_error(openai.BadRequestError, 400,
                                 lambda: self.chat(max_tokens=2, extra_body={"max_tokens": "many"}),
                                 "max_tokens='many'")
        r = self.http.post("/v1/chat/completions", json={"model": self.model})
        check(r.status_code == 400, f"missing messages: HTTP {r.status_code}: {r.text[:200]}")
        self.error_shape(r.json(), "missing messages", r.status_code)
        if self.peer:
            self.relaxed("accepts temperature=-1 (treated as greedy); not checked")
        else:
            self.expect_status_error(openai.BadRequestError, 400,
                                     lambda: self.chat(max_tokens=2, temperature=-1), "temperature=-1")

    def error_malformed_json(self):
        for path in ("/v1/chat/completions", "/v1/completions"):
            r = self.http.post(path, content=b'{"model": "x", "messages": [',
                               headers={"Content-Type": "application/json"})
            if self.peer and r.status_code == 500:
                self.relaxed(f"{path}: malformed JSON is HTTP 500, not 400")
            else:
                check(r.status_code == 400, f"{path}: HTTP {r.status_code}, want 400: {r.text[:200]}")
            self.error_shape(r.json(), path, r.status_code)

    def auth(self):
        if not self.api_key:
            print("     (no --api-key: authentication not checked)")
            return
        bad = openai.OpenAI(base_url=f"{self.root}/v1", api_key=self.api_key + "-wrong",
                            timeout=self.timeout, max_retries=0)
        self.expect_status_error(openai.AuthenticationError, 401,
                                 lambda: bad.chat.completions.create(
                                     model=self.model, messages=COUNT, max_tokens=2), "wrong key, chat")
        self.expect_status_error(openai.AuthenticationError, 401,
                                 lambda: bad.models.list(), "wrong key, models")
        for path in ("/v1/models", "/v1/chat/completions", "/v1/completions"):
            method = "GET" if path == "/v1/models" else "POST"
            r = httpx.request(method, f"{self.root}{path}", timeout=self.timeout,
                              json=None if method == "GET" else {"model": self.model, "prompt": "x"})
            check(r.status_code == 401, f"{method} {path} without a key: HTTP {r.status_code}")
            self.error_shape(r.json(), f"{path} without a key", r.status_code)
        r = httpx.get(f"{self.root}/health", timeout=self.timeout)
        check(r.status_code == 200, f"/health without a key: HTTP {r.status_code}")

    ORDER = [
        "health", "models_list", "chat_non_stream", "chat_max_tokens_length",
        "chat_max_completion_tokens", "greedy_deterministic", "seed_reproducible",
        "sampling_params_accepted", "chat_stream", "chat_stream_without_usage", "chat_n2",
        "stop_sequence", "stop_sequence_stream", "chat_logprobs", "completions",
        "completions_stream", "cached_tokens", "error_unknown_model", "error_prompt_too_long",
        "error_invalid_fields", "error_malformed_json", "auth",
    ]


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--context", type=int, required=True, help="tokens one request may fill")
    p.add_argument("--peer-llama-server", action="store_true",
                   help="relax the checks where llama.cpp's llama-server differs from uma's contract")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per request")

    def banner(checks: Checks) -> str:
        return (f"openai {openai.__version__} against {checks.root} (model {checks.model}"
                f"{', peer llama-server' if checks.peer else ''})")

    def relaxed(checks: Checks) -> str:
        return f"; {len(checks.notes)} details relaxed for llama-server" if checks.notes else ""

    return run("openai_client.py", p, Checks, banner, note=relaxed)


if __name__ == "__main__":
    sys.exit(main())
