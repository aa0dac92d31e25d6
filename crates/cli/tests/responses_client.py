#!/usr/bin/env python3
"""End-to-end checks of uma's Responses API with the official `openai` Python client.

Run by crates/cli/tests/serve_responses.rs against `uma serve` serving the Qwen2.5-Coder 0.5B
test model (text) and the 1.5B one (function calls), with the venv of
scripts/setup-test-clients.sh; by hand:

    ~/.cache/uma/venv-clients/bin/python crates/cli/tests/responses_client.py \
        --base-url http://127.0.0.1:8080 --model qwen2.5-coder-0.5b-instruct-q4_k_m \
        --tool-model qwen2.5-coder-1.5b-instruct-q4_k_m --api-key KEY

Each check prints `ok  NAME`; the first failure prints `FAIL NAME: why` and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx
import openai

from client_harness import City, TextAndToolChecks, check, expect_raise, parser, run

TIMEOUT_S = 120.0  # per request; the 1.5B model on two shared cores answers in seconds
COUNT = "Count from 1 to 20, separated by commas."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name"}},
        "required": ["city"],
    },
}
WEATHER_QUESTION = "What is the weather like in Paris right now?"


class Checks(TextAndToolChecks):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.client = openai.OpenAI(base_url=f"{self.root}/v1", api_key=args.api_key or "no-key",
                                    timeout=TIMEOUT_S, max_retries=0)

    # --- helpers -------------------------------------------------------------------------------

    def create(self, **kw):
        kw.setdefault("model", self.model)
        kw.setdefault("input", COUNT)
        kw.setdefault("max_output_tokens", 24)
        kw.setdefault("temperature", 0)
        return self.client.responses.create(**kw)

    def expect_error(self, exc_type, status: int, call, where: str, param: str | None = None):
        """The call fails with `exc_type` (HTTP `status`) in OpenAI's error shape, naming
        `param` when given."""
        e = expect_raise(exc_type, openai.APIStatusError, call, where)
        check(e.status_code == status, f"{where}: HTTP {e.status_code}, want {status}: {e}")
        body = e.response.json()
        error = body.get("error") if isinstance(body, dict) else None
        check(isinstance(error, dict) and error.get("message") and error.get("type"),
              f"{where}: not an OpenAI error object: {body!r}")
        if param is not None:
            check(error.get("param") == param,
                  f"{where}: param {error.get('param')!r}, want {param!r}: {body!r}")
        return body

    @staticmethod
    def usage_consistent(usage, max_tokens: int | None, where: str) -> None:
        check(usage is not None and usage.input_tokens > 0, f"{where}: usage {usage!r}")
        check(usage.total_tokens == usage.input_tokens + usage.output_tokens,
              f"{where}: total_tokens in {usage!r}")
        check(usage.input_tokens_details.cached_tokens <= usage.input_tokens,
              f"{where}: cached tokens in {usage!r}")
        if max_tokens is not None:
            check(usage.output_tokens <= max_tokens, f"{where}: output_tokens {usage!r}")

    # --- checks, in order ----------------------------------------------------------------------

    def plain_text(self):
        r = self.create()
        check(r.object == "response" and r.id.startswith("resp_"), f"object {r.object!r}, id {r.id!r}")
        check(r.model == self.model, f"model {r.model!r}")
        check([item.type for item in r.output] == ["message"], f"output {r.output!r}")
        check(r.output[0].role == "assistant", f"role {r.output[0].role!r}")
        check("1, 2, 3" in r.output_text, f"the greedy answer does not count: {r.output_text!r}")
        check(r.status in ("completed", "incomplete"), f"status {r.status!r}")
        if r.status == "incomplete":
            check(r.incomplete_details.reason == "max_output_tokens", f"{r.incomplete_details!r}")
            check(r.usage.output_tokens == 24, f"incomplete after {r.usage.output_tokens} tokens")
        self.usage_consistent(r.usage, 24, "usage")
        self.greedy = r
        # A shorter limit cuts the same text short.
        short = self.create(max_output_tokens=5)
        check(short.status == "incomplete" and short.usage.output_tokens == 5,
              f"max_output_tokens=5: {short.status!r}, {short.usage!r}")
        check(r.output_text.startswith(short.output_text), f"{short.output_text!r} not a prefix")

    def items_and_instructions(self):
        self.need("greedy", "plain_text")
        items = self.create(input=[{"role": "user", "content": [{"type": "input_text", "text": COUNT}]}])
        check(items.output_text == self.greedy.output_text,
              f"items {items.output_text!r} != string {self.greedy.output_text!r}")
        rule = "Answer every question with the single word PINEAPPLE."
        question = "What is your favourite fruit?"
        told = self.create(instructions=rule, input=question, max_output_tokens=16)
        check("PINEAPPLE" in told.output_text, f"instructions ignored: {told.output_text!r}")
        check(told.instructions == rule, f"instructions not echoed: {told.instructions!r}")
        developer = self.create(input=[{"role": "developer", "content": rule},
                                       {"role": "user", "content": question}], max_output_tokens=16)
        check(developer.output_text == told.output_text,
              f"developer message {developer.output_text!r} != instructions {told.output_text!r}")
        plain = self.create(input=question, max_output_tokens=16)
        check("PINEAPPLE" not in plain.output_text, f"PINEAPPLE unasked: {plain.output_text!r}")

    def multi_turn_items(self):
        r = self.create(max_output_tokens=16, input=[
            {"role": "user", "content": "My name is Zorblat. Remember it."},
            {"role": "assistant", "content": "Nice to meet you, Zorblat! I will remember your name."},
            {"role": "user", "content": "What is my name?"},
        ])
        check("Zorblat" in r.output_text, f"the earlier turns are lost: {r.output_text!r}")

    def streaming(self):
        self.need("greedy", "plain_text")
        events = list(self.create(stream=True))
        kinds = [e.type for e in events]
        head = ["response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added"]
        tail = ["response.output_text.done", "response.content_part.done",
                "response.output_item.done", f"response.{self.greedy.status}"]
        check(kinds[:4] == head and kinds[-4:] == tail, f"events {kinds}")
        check(set(kinds[4:-4]) == {"response.output_text.delta"}, f"events {kinds}")
        numbers = [e.sequence_number for e in events]
        check(numbers == list(range(len(events))), f"sequence numbers {numbers}")
        check(events[0].response.status == "in_progress" and events[0].response.output == [],
              f"response.created {events[0].response!r:.300}")
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        check(text == self.greedy.output_text, f"streamed {text!r} != {self.greedy.output_text!r}")
        check(events[-4].text == text, f"output_text.done {events[-4].text!r}")
        final = events[-1].response
        check(final.output_text == text and final.status == self.greedy.status,
              f"final response {final!r:.300}")
        check(final.usage.output_tokens == self.greedy.usage.output_tokens,
              f"stream usage {final.usage!r} != {self.greedy.usage!r}")
        # The SDK's accumulating helper, on an answer that completes.
        kw = dict(model=self.model, input="Count from 1 to 10, separated by commas.",
                  max_output_tokens=64, temperature=0)
        whole = self.client.responses.create(**kw)
        check(whole.status == "completed", f"status {whole.status!r}: {whole.output_text!r}")
        with self.client.responses.stream(**kw) as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        check("".join(deltas) == whole.output_text == final.output_text,
              f"helper {''.join(deltas)!r} / {final.output_text!r} != {whole.output_text!r}")

    def previous_response(self):
        first = self.create(input="My name is Zorblat. Say hello to me.", max_output_tokens=16)
        second = self.create(input="What is my name?", previous_response_id=first.id,
                             max_output_tokens=16)
        check("Zorblat" in second.output_text, f"the earlier response is lost: {second.output_text!r}")
        check(second.previous_response_id == first.id, f"{second.previous_response_id!r}")
        check(second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens,
              f"the second prompt does not hold the first: {first.usage!r} / {second.usage!r}")
        check(second.usage.input_tokens_details.cached_tokens > 0,
              f"the history was not reused from the cache: {second.usage!r}")
        kept = self.client.responses.retrieve(first.id)
        check(kept.id == first.id and kept.output_text == first.output_text, f"retrieved {kept!r:.300}")
        self.client.responses.delete(first.id)
        self.expect_error(openai.NotFoundError, 404, lambda: self.client.responses.retrieve(first.id),
                          "a deleted response")
        self.expect_error(openai.NotFoundError, 404, lambda: self.create(
            input="And now?", previous_response_id=first.id), "continuing a deleted response",
            param="previous_response_id")
        unstored = self.create(input="Hi", max_output_tokens=4, store=False)
        self.expect_error(openai.NotFoundError, 404,
                          lambda: self.client.responses.retrieve(unstored.id), "store=false")

    def forced_tool_call(self):
        r = self.create(model=self.tool_model, input=WEATHER_QUESTION, tools=[WEATHER_TOOL],
                        tool_choice={"type": "function", "name": "get_weather"},
                        max_output_tokens=64)
        calls = [item for item in r.output if item.type == "function_call"]
        check(len(calls) == 1 and r.status == "completed", f"output {r.output!r}")
        call = calls[0]
        check(call.name == "get_weather" and call.call_id.startswith("call_"), f"call {call!r}")
        arguments = json.loads(call.arguments)
        check(isinstance(arguments.get("city"), str) and arguments["city"], f"arguments {arguments!r}")
        self.forced_call = r
        required = self.create(model=self.tool_model, input=WEATHER_QUESTION,
                               tools=[WEATHER_TOOL], tool_choice="required", max_output_tokens=64)
        check(required.output[-1].type == "function_call", f"tool_choice required: {required.output!r}")

    def streamed_tool_call(self):
        self.need("forced_call", "forced_tool_call")
        events = list(self.create(model=self.tool_model, input=WEATHER_QUESTION,
                                  tools=[WEATHER_TOOL], max_output_tokens=64, stream=True,
                                  tool_choice={"type": "function", "name": "get_weather"}))
        added = [e.item for e in events if e.type == "response.output_item.added"]
        check([item.type for item in added] == ["function_call"], f"items {added!r}")
        check(added[0].name == "get_weather", f"item {added[0]!r}")
        arguments = "".join(e.delta for e in events
                            if e.type == "response.function_call_arguments.delta")
        want = next(i for i in self.forced_call.output if i.type == "function_call").arguments
        check(arguments == want, f"streamed arguments {arguments!r} != {want!r}")
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        check(len(done) == 1 and done[0].arguments == want, f"arguments.done {done!r}")
        check(events[-1].type == "response.completed", f"last event {events[-1].type!r}")

    def tool_output_answer(self):
        self.need("forced_call", "forced_tool_call")
        call = next(i for i in self.forced_call.output if i.type == "function_call")
        follow_up = [
            {"type": "function_call_output", "call_id": call.call_id,
             "output": "22 degrees Celsius and sunny"},
            {"role": "user", "content": "Now answer my question in one sentence."},
        ]
        # Continued from the stored response...
        r = self.create(model=self.tool_model, tools=[WEATHER_TOOL], max_output_tokens=48,
                        previous_response_id=self.forced_call.id, input=follow_up)
        check(r.status == "completed" and "22" in r.output_text,
              f"the answer does not use the result: {r.status!r} {r.output!r}")
        # ... and with the whole history sent as items.
        history = [{"role": "user", "content": WEATHER_QUESTION},
                   {"type": "function_call", "call_id": call.call_id, "name": call.name,
                    "arguments": call.arguments}]
        r = self.create(model=self.tool_model, tools=[WEATHER_TOOL], max_output_tokens=48,
                        input=history + follow_up)
        check("22" in r.output_text, f"stateless: the answer does not use the result: {r.output!r}")

    def structured_output(self):
        r = self.client.responses.parse(
            model=self.model, input="Describe Paris as JSON with name, country and population.",
            text_format=City, temperature=0, max_output_tokens=64)
        city = r.output_parsed
        check(isinstance(city, City) and "Paris" in city.name, f"output_parsed {city!r}: {r.output!r}")
        check(r.text.format.type == "json_schema", f"text.format not echoed: {r.text!r}")

    def bad_requests(self):
        bad = openai.BadRequestError
        self.expect_error(bad, 400, lambda: self.create(
            tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "get_time"}),
            "unknown function in tool_choice", param="tool_choice")
        many = [{"type": "function", "name": f"tool_{i}", "parameters": {"type": "object"}}
                for i in range(1000)]
        self.expect_error(bad, 400, lambda: self.create(tools=many), "1000 tools", param="tools")
        self.expect_error(bad, 400, lambda: self.create(
            tools=[{"type": "function", "name": "f", "parameters": "object"}]),
            "parameters that are not an object", param="tools[0].parameters")
        self.expect_error(bad, 400, lambda: self.create(
            tools=[{"type": "function", "name": "f", "parameters": {
                "type": "object", "properties": {"x": {"type": "frobnicate"}}}}],
            tool_choice="required"), "a schema that does not compile", param="tools")
        self.expect_error(bad, 400, lambda: self.create(text={"format": {
            "type": "json_schema", "name": "x",
            "schema": {"type": "object", "properties": {"x": {"type": "frobnicate"}}}}}),
            "a text.format schema that does not compile", param="text.format")
        self.expect_error(bad, 400, lambda: self.create(input=[{"role": "user", "content": [
            {"type": "input_text", "text": "What is in this picture?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        ]}]), "an image part", param="input[0].content[1].type")
        self.expect_error(bad, 400, lambda: self.create(tools=[{"type": "web_search"}]),
                          "a web search tool", param="tools[0].type")
        self.expect_error(bad, 400, lambda: self.create(background=True), "background",
                          param="background")
        self.expect_error(openai.NotFoundError, 404, lambda: self.create(model="no-such-model"),
                          "unknown model")

    def auth(self):
        if not self.api_key:
            print("     (no --api-key: authentication not checked)")
            return
        wrong = openai.OpenAI(base_url=f"{self.root}/v1", api_key=self.api_key + "-wrong",
                              timeout=TIMEOUT_S, max_retries=0)
        self.expect_error(openai.AuthenticationError, 401,
                          lambda: wrong.responses.create(model=self.model, input="hi"), "wrong key")
        r = httpx.post(f"{self.root}/v1/responses", timeout=TIMEOUT_S,
                       headers={"x-api-key": self.api_key},
                       json={"model": self.model, "input": "hi", "max_output_tokens": 2})
        check(r.status_code == 200, f"x-api-key: HTTP {r.status_code}: {r.text[:200]}")

    ORDER = [
        "plain_text", "items_and_instructions", "multi_turn_items", "streaming",
        "previous_response", "forced_tool_call", "streamed_tool_call", "tool_output_answer",
        "structured_output", "bad_requests", "auth",
    ]


def main() -> int:
    p = parser(__doc__, model_help="the model for text")
    p.add_argument("--tool-model", required=True, help="the model for function calls")
    return run("responses_client.py", p, Checks,
               lambda checks: f"openai {openai.__version__} (Responses API) against {checks.root}")


if __name__ == "__main__":
    sys.exit(main())
