#!/usr/bin/env python3
"""End-to-end checks of uma's Anthropic Messages API with the official `anthropic` Python client.

Run by crates/cli/tests/serve_anthropic.rs against `uma serve` serving the Qwen2.5-Coder 0.5B
test model (plain messages) and the 1.5B one (tool calls), with the venv of
scripts/setup-test-clients.sh; by hand:

    ~/.cache/uma/venv-clients/bin/python crates/cli/tests/anthropic_client.py \
        --base-url http://127.0.0.1:8080 --model qwen2.5-coder-0.5b-instruct-q4_k_m \
        --tool-model qwen2.5-coder-1.5b-instruct-q4_k_m --api-key KEY

The client sends the key as `x-api-key`. Sampling fields that this client version no longer has
as arguments (`temperature`) go in `extra_body`, as a client of an older API version sends them.

Each check prints `ok  NAME`; the first failure prints `FAIL NAME: why` and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anthropic
import httpx

from client_harness import City, TextAndToolChecks, check, expect_raise, parser, run

TIMEOUT_S = 120.0  # per request; the 1.5B model on two shared cores answers in seconds
GREEDY = {"temperature": 0}
COUNT = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name"}},
        "required": ["city"],
    },
}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather like in Paris right now?"}]


class Checks(TextAndToolChecks):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.client = anthropic.Anthropic(
            base_url=self.root, api_key=args.api_key or "no-key", timeout=TIMEOUT_S, max_retries=0
        )
        headers = {"x-api-key": args.api_key} if args.api_key else {}
        self.http = httpx.Client(base_url=self.root, timeout=TIMEOUT_S, headers=headers)

    # --- helpers -------------------------------------------------------------------------------

    def create(self, **kw):
        kw.setdefault("model", self.model)
        kw.setdefault("messages", COUNT)
        kw.setdefault("max_tokens", 24)
        kw.setdefault("extra_body", GREEDY)
        return self.client.messages.create(**kw)

    @staticmethod
    def text(message) -> str:
        return "".join(block.text for block in message.content if block.type == "text")

    def expect_error(self, exc_type, status: int, call, where: str, names: str | None = None):
        """The call fails with `exc_type` (HTTP `status`) in Anthropic's error shape, and the
        message names `names` when given."""
        e = expect_raise(exc_type, anthropic.APIStatusError, call, where)
        check(e.status_code == status, f"{where}: HTTP {e.status_code}, want {status}: {e}")
        body = e.response.json()
        self.error_shape(body, where)
        if names is not None:
            message = body["error"]["message"]
            check(names in message, f"{where}: the message does not name {names!r}: {message!r}")
        return body

    @staticmethod
    def error_shape(body, where: str) -> None:
        check(isinstance(body, dict) and body.get("type") == "error",
              f"{where}: not an Anthropic error object: {body!r}")
        error = body.get("error")
        check(isinstance(error, dict) and isinstance(error.get("type"), str)
              and isinstance(error.get("message"), str) and error["message"],
              f"{where}: error without type or message: {body!r}")

    # --- checks, in order ----------------------------------------------------------------------

    def plain_message(self):
        r = self.create()
        check(r.type == "message" and r.role == "assistant", f"type {r.type!r}, role {r.role!r}")
        check(r.id.startswith("msg_"), f"id {r.id!r}")
        check(r.model == self.model, f"model {r.model!r}")
        check([b.type for b in r.content] == ["text"], f"content {r.content!r}")
        check("1, 2, 3" in self.text(r), f"the greedy answer does not count: {self.text(r)!r}")
        check(r.stop_reason in ("end_turn", "max_tokens"), f"stop_reason {r.stop_reason!r}")
        check(r.stop_sequence is None, f"stop_sequence {r.stop_sequence!r}")
        u = r.usage
        check(u.input_tokens + (u.cache_read_input_tokens or 0) > 10, f"usage {u!r}")
        check(0 < u.output_tokens <= 24, f"output_tokens {u.output_tokens}")
        self.greedy = r

    def max_tokens(self):
        self.need("greedy", "plain_message")
        r = self.create(max_tokens=5)
        check(r.stop_reason == "max_tokens", f"stop_reason {r.stop_reason!r}, want max_tokens")
        check(r.usage.output_tokens == 5, f"output_tokens {r.usage.output_tokens}, want 5")
        check(self.text(self.greedy).startswith(self.text(r)),
              f"{self.text(r)!r} is not a prefix of {self.text(self.greedy)!r}")

    def stop_sequences(self):
        r = self.create(max_tokens=32, stop_sequences=["5"])
        text = self.text(r)
        check(r.stop_reason == "stop_sequence", f"stop_reason {r.stop_reason!r} ({text!r})")
        check(r.stop_sequence == "5", f"stop_sequence {r.stop_sequence!r}")
        check("4" in text and "5" not in text, f"text {text!r}")
        # A sequence that never comes: the turn ends or runs out of tokens, no sequence named.
        r = self.create(max_tokens=8, stop_sequences=["never-seen"])
        check(r.stop_reason == "max_tokens" and r.stop_sequence is None,
              f"stop_reason {r.stop_reason!r}, stop_sequence {r.stop_sequence!r}")

    def system_prompt(self):
        question = [{"role": "user", "content": "What is your favourite fruit?"}]
        rule = "Answer every question with the single word PINEAPPLE."
        as_string = self.create(system=rule, messages=question, max_tokens=16)
        check("PINEAPPLE" in self.text(as_string), f"system ignored: {self.text(as_string)!r}")
        as_blocks = self.create(system=[{"type": "text", "text": rule}], messages=question,
                                max_tokens=16)
        check(self.text(as_blocks) == self.text(as_string),
              f"system as blocks {self.text(as_blocks)!r} != as a string {self.text(as_string)!r}")
        plain = self.create(messages=question, max_tokens=16)
        check("PINEAPPLE" not in self.text(plain),
              f"PINEAPPLE without the system prompt too: {self.text(plain)!r}")

    def multi_turn(self):
        r = self.create(max_tokens=16, messages=[
            {"role": "user", "content": "My name is Zorblat. Remember it."},
            {"role": "assistant", "content": "Nice to meet you, Zorblat! I will remember your name."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ])
        check("Zorblat" in self.text(r), f"the earlier turns are lost: {self.text(r)!r}")

    def prefill(self):
        r = self.create(max_tokens=8, messages=COUNT + [{"role": "assistant", "content": "1, 2, 3,"}])
        text = self.text(r)
        check(text.lstrip().startswith("4"), f"the answer does not continue the prefill: {text!r}")

    def streaming(self):
        self.need("greedy", "plain_message")
        events = list(self.create(stream=True))
        kinds = [e.type for e in events]
        check(kinds[0] == "message_start", f"first event {kinds[0]!r}: {kinds}")
        check(kinds[-2:] == ["message_delta", "message_stop"], f"last events: {kinds}")
        body = [k for k in kinds[1:-2]]
        check(body[0] == "content_block_start" and body[-1] == "content_block_stop",
              f"one text block expected: {kinds}")
        check(set(body[1:-1]) == {"content_block_delta"}, f"events inside the block: {kinds}")
        start = events[0].message
        check(start.id.startswith("msg_") and start.content == [] and start.stop_reason is None,
              f"message_start {start!r}")
        check(start.usage.input_tokens > 10, f"message_start usage {start.usage!r}")
        block = events[1]
        check(block.index == 0 and block.content_block.type == "text", f"block start {block!r}")
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
        check(text == self.text(self.greedy), f"streamed {text!r} != {self.text(self.greedy)!r}")
        delta = events[-2]
        check(delta.delta.stop_reason == self.greedy.stop_reason,
              f"stop_reason {delta.delta.stop_reason!r} != {self.greedy.stop_reason!r}")
        check(delta.usage.output_tokens == self.greedy.usage.output_tokens,
              f"output_tokens {delta.usage.output_tokens} != {self.greedy.usage.output_tokens}")
        # The SDK's accumulating helper rebuilds the same message.
        with self.client.messages.stream(model=self.model, max_tokens=24, messages=COUNT,
                                         extra_body=GREEDY) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        check("".join(pieces) == self.text(self.greedy), f"text_stream {pieces!r}")
        check(self.text(final) == self.text(self.greedy), f"final message {final!r}")
        check(final.stop_reason == self.greedy.stop_reason, f"final stop_reason {final.stop_reason!r}")

    def cached_tokens(self):
        rules = " ".join(f"Rule {i}: answer politely and briefly." for i in range(30))
        messages = [{"role": "user", "content": f"{time.time_ns()} {rules} Say OK."}]
        first = self.create(messages=messages, max_tokens=2)
        second = self.create(messages=messages, max_tokens=2)
        total = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0)
        check(total > 200, f"prompt only {total} tokens")
        check((second.usage.cache_read_input_tokens or 0) >= total // 2,
              f"repeat read {second.usage.cache_read_input_tokens} of {total} tokens from cache")
        check(second.usage.input_tokens + second.usage.cache_read_input_tokens == total,
              f"repeat usage {second.usage!r} does not add up to {total}")

    def count_tokens(self):
        self.need("greedy", "plain_message")
        counted = self.client.messages.count_tokens(model=self.model, messages=COUNT)
        u = self.greedy.usage
        check(counted.input_tokens == u.input_tokens + (u.cache_read_input_tokens or 0),
              f"count_tokens {counted.input_tokens}, the message used {u!r}")
        with_tools = self.client.messages.count_tokens(model=self.model, messages=COUNT,
                                                       tools=[WEATHER_TOOL])
        check(with_tools.input_tokens > counted.input_tokens, "tools add no tokens")

    def forced_tool_call(self):
        r = self.create(model=self.tool_model, max_tokens=64, messages=WEATHER_QUESTION,
                        tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"})
        check(r.stop_reason == "tool_use", f"stop_reason {r.stop_reason!r}: {r.content!r}")
        calls = [b for b in r.content if b.type == "tool_use"]
        check(len(calls) == 1, f"one tool_use block expected: {r.content!r}")
        call = calls[0]
        check(call.id.startswith("toolu_") and call.name == "get_weather", f"call {call!r}")
        check(isinstance(call.input, dict) and isinstance(call.input.get("city"), str)
              and call.input["city"], f"input {call.input!r}")
        self.forced_call = r
        # `any` forces a call too.
        r = self.create(model=self.tool_model, max_tokens=64, messages=WEATHER_QUESTION,
                        tools=[WEATHER_TOOL], tool_choice={"type": "any"})
        check(r.stop_reason == "tool_use" and r.content[-1].type == "tool_use",
              f"tool_choice any: {r.stop_reason!r} {r.content!r}")

    def streamed_tool_call(self):
        self.need("forced_call", "forced_tool_call")
        events = list(self.create(model=self.tool_model, max_tokens=64, messages=WEATHER_QUESTION,
                                  tools=[WEATHER_TOOL], stream=True,
                                  tool_choice={"type": "tool", "name": "get_weather"}))
        starts = [e for e in events if e.type == "content_block_start"]
        check([s.content_block.type for s in starts] == ["tool_use"], f"blocks {starts!r}")
        check(starts[0].content_block.name == "get_weather", f"block {starts[0]!r}")
        partial = "".join(e.delta.partial_json for e in events
                          if e.type == "content_block_delta" and e.delta.type == "input_json_delta")
        want = next(b for b in self.forced_call.content if b.type == "tool_use").input
        check(json.loads(partial) == want, f"streamed input {partial!r} != {want!r}")
        check(events[-2].delta.stop_reason == "tool_use", f"stop_reason {events[-2]!r}")

    def tool_result_answer(self):
        self.need("forced_call", "forced_tool_call")
        call = next(b for b in self.forced_call.content if b.type == "tool_use")
        r = self.create(model=self.tool_model, max_tokens=48, tools=[WEATHER_TOOL], messages=[
            *WEATHER_QUESTION,
            {"role": "assistant", "content": self.forced_call.content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call.id,
                 "content": "22 degrees Celsius and sunny"},
                {"type": "text", "text": "Now answer my question in one sentence."},
            ]},
        ])
        text = self.text(r)
        check(r.stop_reason == "end_turn", f"stop_reason {r.stop_reason!r}: {r.content!r}")
        check("22" in text, f"the answer does not use the tool's result: {text!r}")

    def structured_output(self):
        r = self.client.messages.parse(
            model=self.model, max_tokens=64, extra_body=GREEDY, output_format=City,
            messages=[{"role": "user",
                       "content": "Describe Paris as JSON with name, country and population."}])
        city = r.parsed_output
        check(isinstance(city, City), f"parsed_output {city!r}: {r.content!r}")
        check("Paris" in city.name, f"city {city!r}")

    def bad_requests(self):
        bad = anthropic.BadRequestError
        self.expect_error(bad, 400, lambda: self.create(
            tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_time"}),
            "unknown tool in tool_choice", names="tool_choice")
        many = [{"name": f"tool_{i}", "input_schema": {"type": "object"}} for i in range(1000)]
        self.expect_error(bad, 400, lambda: self.create(tools=many), "1000 tools", names="tools")
        self.expect_error(bad, 400, lambda: self.create(
            tools=[{"name": "f", "input_schema": "object"}]),
            "a schema that is not an object", names="tools[0].input_schema")
        self.expect_error(bad, 400, lambda: self.create(
            tools=[{"name": "f", "input_schema": {"type": "object",
                                                  "properties": {"x": {"type": "frobnicate"}}}}],
            tool_choice={"type": "any"}), "a schema that does not compile", names="tools")
        self.expect_error(bad, 400, lambda: self.create(messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}},
        ]}]), "an image block", names="messages[0].content[1].type")
        self.expect_error(anthropic.NotFoundError, 404, lambda: self.create(model="no-such-model"),
                          "unknown model")
        r = self.http.post("/v1/messages", json={"model": self.model, "messages": COUNT})
        check(r.status_code == 400, f"no max_tokens: HTTP {r.status_code}: {r.text[:200]}")
        self.error_shape(r.json(), "no max_tokens")
        check("max_tokens" in r.json()["error"]["message"], f"no max_tokens: {r.text[:200]}")
        r = self.http.post("/v1/messages", content=b'{"model": "x", "messages": [',
                           headers={"Content-Type": "application/json"})
        check(r.status_code == 400, f"malformed JSON: HTTP {r.status_code}")
        self.error_shape(r.json(), "malformed JSON")

    def auth(self):
        if not self.api_key:
            print("     (no --api-key: authentication not checked)")
            return
        wrong = anthropic.Anthropic(base_url=self.root, api_key=self.api_key + "-wrong",
                                    timeout=TIMEOUT_S, max_retries=0)
        self.expect_error(anthropic.AuthenticationError, 401,
                          lambda: wrong.messages.create(model=self.model, max_tokens=2,
                                                        messages=COUNT), "wrong x-api-key")
        r = httpx.post(f"{self.root}/v1/messages", timeout=TIMEOUT_S,
                       json={"model": self.model, "max_tokens": 2, "messages": COUNT})
        check(r.status_code == 401, f"no key: HTTP {r.status_code}")
        self.error_shape(r.json(), "no key")
        # The key as a bearer token (the client's `auth_token`) is accepted too.
        bearer = anthropic.Anthropic(base_url=self.root, auth_token=self.api_key,
                                     timeout=TIMEOUT_S, max_retries=0)
        r = bearer.messages.create(model=self.model, max_tokens=2, messages=COUNT)
        check(r.usage.output_tokens == 2, f"bearer: {r!r}")

    ORDER = [
        "plain_message", "max_tokens", "stop_sequences", "system_prompt", "multi_turn", "prefill",
        "streaming", "cached_tokens", "count_tokens", "forced_tool_call", "streamed_tool_call",
        "tool_result_answer", "structured_output", "bad_requests", "auth",
    ]


def main() -> int:
    p = parser(__doc__, model_help="the model for plain messages")
    p.add_argument("--tool-model", required=True, help="the model for tool calls")
    return run("anthropic_client.py", p, Checks,
               lambda checks: f"anthropic {anthropic.__version__} against {checks.root}")


if __name__ == "__main__":
    sys.exit(main())
