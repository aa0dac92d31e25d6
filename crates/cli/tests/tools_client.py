#!/usr/bin/env python3
"""End-to-end checks of tool calling and structured output through the official `openai` client
and a published agent framework (`openai-agents`).

Run by crates/cli/tests/serve_tools.rs against `uma serve` (with the venv of
scripts/setup-test-clients.sh); can be run by hand against a server serving the model named:

    ~/.cache/uma/venv-clients/bin/python crates/cli/tests/tools_client.py \
        --base-url http://127.0.0.1:8080 --model qwen2.5-coder-1.5b-instruct-q4_k_m \
        [--api-key KEY] [--only CHECK ...]

Checks (names for --only; Checks.ORDER):

- required_calls, streamed_calls, named_call, tool_results_answer, parse_pydantic: `tools` with
  `tool_choice` "required" and a named function give `tool_calls` whose arguments parse as JSON
  and validate (jsonschema) against the tool's parameters, with `finish_reason: "tool_calls"`;
  the same request streamed, its deltas reassembled by `index`, gives the same calls; the calls
  fed back with `tool` messages give a text answer that uses the results; `.parse()` with a
  Pydantic `response_format` and a `pydantic_function_tool` gives instances. Greedy (temperature
  0), so the model's choices are repeatable.
- structured_output: 50 prompts x 3 JSON schemas (nested objects, enums, bounded arrays and
  integers) at temperature 1.0, --concurrency requests in flight: every answer parses and
  validates, and none is cut at max_tokens (which is above the longest text the schemas allow).
- agent_two_tools: an `openai-agents` agent over the chat-completions model class must call
  get_weather, then convert_temperature with the temperature it got, and answer with the result.
- bad_requests: an invalid or unsatisfiable schema in `response_format`, an unknown function in
  `tool_choice`, 1,000 tools, a tool whose parameters do not compile: each a 400 whose
  `error.param` names the field, all sent while a normal streamed request runs, which completes.
  (A schema that compiles but that no token of the vocabulary can start cannot be written in JSON
  Schema for a byte-level vocabulary, so that case is not here.)

Each check prints `ok  NAME (seconds)` with what it measured; the first failure prints
`FAIL NAME: why` and the script exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import statistics
import sys
import threading
import time
from typing import Literal

import jsonschema
import openai
from pydantic import BaseModel, Field

from client_harness import CheckFailed, check, parser, run

TIMEOUT_S = 240.0  # per request; a 1.5B model on 2 busy cores answers these in under a minute

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]
TWO_QUESTIONS = [
    {"role": "user", "content": "What's the weather in Paris and what time is it in Tokyo?"}]
# What the tools "return" when the calls are fed back: values the model cannot guess.
TOOL_RESULTS = {
    "get_weather": {"city": "Paris", "temperature": 23, "unit": "celsius",
                    "conditions": "light rain"},
    "get_time": {"city": "Tokyo", "local_time": "21:47"},
}
CALL_MAX_TOKENS = 200

# --- structured output ---------------------------------------------------------------------------

CUSTOMER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age", "address"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "address": {
            "type": "object",
            "additionalProperties": False,
            "required": ["city", "country"],
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 24},
                "country": {"enum": ["France", "Japan", "Brazil", "Canada", "Kenya"]},
            },
        },
    },
}
ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lines", "priority"],
    "properties": {
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sku", "quantity"],
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$", "maxLength": 7},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                },
            },
        },
        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
    },
}
REVIEW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rating", "sentiment", "tags", "recommended"],
    "properties": {
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "tags": {
            "type": "array",
            "minItems": 2,
            "maxItems": 3,
            "items": {"type": "string", "minLength": 1, "maxLength": 16},
        },
        "recommended": {"type": "boolean"},
    },
}
CITIES = ["Lyon", "Osaka", "Recife", "Calgary", "Mombasa", "Nice", "Kyoto", "Manaus", "Quebec",
          "Nakuru"]
GOODS = ["screws", "hinges", "paint", "cable", "nails", "glue", "tape", "bolts", "pipes", "hooks"]
GADGETS = ["garlic press", "egg timer", "salad spinner", "zester", "mandoline", "ladle", "whisk",
           "peeler", "can opener", "sieve"]
STRUCTURED_MAX_TOKENS = 512


def structured_jobs(prompts: int) -> list[tuple[str, dict, str]]:
    """`prompts` distinct prompts for each schema: (schema name, schema, prompt)."""
    jobs = []
    for i in range(prompts):
        jobs.append(("customer", CUSTOMER,
                     f"Invent customer #{i + 1}, who lives in or near {CITIES[i % 10]}. "
                     "Answer in JSON."))
        jobs.append(("order", ORDER,
                     f"Write purchase order #{i + 1} for a hardware shop, mostly {GOODS[i % 10]}. "
                     "Answer in JSON."))
        jobs.append(("review", REVIEW,
                     f"Review the {GADGETS[i % 10]} you bought (review #{i + 1}). Answer in JSON."))
    return jobs


def max_json_bytes(schema: dict) -> int:
    """An upper bound on the bytes of compact JSON (`", "` and `": "` separators, as uma writes
    it) valid against `schema`: every string character at most 6 bytes (a `\\u00XX` escape).
    Each token is at least one byte, so this bounds the tokens of an answer too."""
    if "enum" in schema:
        return max(len(json.dumps(v).encode()) for v in schema["enum"])
    kind = schema["type"]
    if kind == "boolean":
        return 5
    if kind == "integer":
        return max(len(str(schema["minimum"])), len(str(schema["maximum"])))
    if kind == "string":
        return 2 + 6 * schema["maxLength"]
    if kind == "array":
        n = schema["maxItems"]
        return 2 + n * max_json_bytes(schema["items"]) + 2 * max(n - 1, 0)
    if kind == "object":
        assert schema.get("additionalProperties") is False, "a bound needs closed objects"
        props = schema["properties"]
        inner = sum(len(json.dumps(k)) + 2 + max_json_bytes(v) for k, v in props.items())
        return 2 + inner + 2 * max(len(props) - 1, 0)
    raise ValueError(f"no bound for {schema}")


# --- parse() -------------------------------------------------------------------------------------

class Landmark(BaseModel):
    name: str = Field(max_length=40)
    kind: Literal["museum", "monument", "park", "church", "other"]


class CityGuide(BaseModel):
    city: str = Field(max_length=30)
    country: str = Field(max_length=30)
    population_millions: float = Field(ge=0, le=40)
    landmarks: list[Landmark] = Field(min_length=2, max_length=3)


class GetWeather(BaseModel):
    """Current weather of a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"]


def tool_schema(name: str) -> dict:
    for tool in TOOLS:
        if tool["function"]["name"] == name:
            return tool["function"]["parameters"]
    raise CheckFailed(f"the model called {name!r}, which is not among the tools")


def valid_calls(calls, where: str) -> list[tuple[str, dict]]:
    """Each call's (name, arguments): a function among the tools, with an id, whose arguments
    parse as JSON and validate against its parameters."""
    check(calls, f"{where}: no tool_calls")
    out = []
    ids = set()
    for call in calls:
        check(call.type == "function", f"{where}: call type {call.type!r}")
        check(bool(call.id) and call.id not in ids, f"{where}: missing or repeated id {call.id!r}")
        ids.add(call.id)
        name = call.function.name
        try:
            arguments = json.loads(call.function.arguments)
        except json.JSONDecodeError as e:
            raise CheckFailed(f"{where}: {name} arguments are not JSON ({e}): "
                              f"{call.function.arguments!r}") from e
        try:
            jsonschema.validate(arguments, tool_schema(name))
        except jsonschema.ValidationError as e:
            raise CheckFailed(f"{where}: {name} arguments {arguments} do not validate: "
                              f"{e.message}") from e
        out.append((name, arguments))
    return out


class Checks:
    ORDER = [
        "required_calls",
        "streamed_calls",
        "named_call",
        "tool_results_answer",
        "parse_pydantic",
        "structured_output",
        "agent_two_tools",
        "bad_requests",
    ]

    def __init__(self, args: argparse.Namespace) -> None:
        root = args.base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.base_url = f"{root}/v1"
        self.model = args.model
        self.api_key = args.api_key or "no-key"
        self.timeout = args.timeout
        self.concurrency = args.concurrency
        self.prompts = args.prompts
        self.client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key,
                                    timeout=self.timeout, max_retries=0)
        self.required = None  # the non-streamed answer of required_calls

    def need_required(self) -> None:
        if self.required is None:
            self.required_calls()

    def required_request(self, **kw):
        return self.client.chat.completions.create(
            model=self.model, messages=TWO_QUESTIONS, tools=TOOLS, tool_choice="required",
            temperature=0, max_tokens=CALL_MAX_TOKENS, **kw)

    # --- tool calls ------------------------------------------------------------------------------

    def required_calls(self) -> None:
        response = self.required_request()
        choice = response.choices[0]
        message = choice.message
        where = "tool_choice=required"
        check(choice.finish_reason == "tool_calls",
              f"{where}: finish_reason {choice.finish_reason!r}: {message}")
        check(not (message.content or "").strip(), f"{where}: content besides the calls: "
              f"{message.content!r}")
        calls = valid_calls(message.tool_calls, where)
        check(calls[0][0] == "get_weather" and "paris" in calls[0][1]["city"].lower(),
              f"{where}: the first call is not get_weather for Paris: {calls}")
        check(response.usage.completion_tokens <= CALL_MAX_TOKENS, f"{where}: {response.usage}")
        self.required = response
        print(f"     calls: {calls}")

    def streamed_calls(self) -> None:
        self.need_required()
        stream = self.required_request(stream=True)
        calls: dict[int, dict] = {}
        finishes = []
        for chunk in stream:
            for choice in chunk.choices:
                delta = choice.delta
                check(not delta.content,
                      f"stream: content in a call-only answer: {delta.content!r}")
                if choice.finish_reason is not None:
                    finishes.append(choice.finish_reason)
                for piece in delta.tool_calls or []:
                    if piece.index not in calls:
                        # A call's first delta: id, type and name; arguments follow in pieces.
                        check(piece.index == len(calls),
                              f"stream: call index {piece.index} after {sorted(calls)}")
                        check(bool(piece.id) and piece.type == "function" and piece.function
                              and piece.function.name,
                              f"stream: a call's first delta lacks id, type or name: {piece}")
                        calls[piece.index] = {"id": piece.id, "name": piece.function.name,
                                              "arguments": piece.function.arguments or ""}
                    else:
                        check(piece.id is None and (piece.function is None or
                                                    piece.function.name is None),
                              f"stream: id or name repeated in a later delta: {piece}")
                        if piece.function and piece.function.arguments:
                            calls[piece.index]["arguments"] += piece.function.arguments
        check(finishes == ["tool_calls"], f"stream: finish reasons {finishes}")
        streamed = [(c["name"], json.loads(c["arguments"])) for c in calls.values()]
        whole = [(c.function.name, json.loads(c.function.arguments))
                 for c in self.required.choices[0].message.tool_calls]
        check(streamed == whole, f"stream: reassembled calls {streamed} != non-streamed {whole}")
        check(len({c["id"] for c in calls.values()}) == len(calls), f"stream: ids {calls}")
        print(f"     {len(calls)} calls reassembled from the deltas")

    def named_call(self) -> None:
        # The question asks for both tools; the named choice must give exactly one get_time call.
        where = "tool_choice=get_time, parallel_tool_calls=false"
        response = self.client.chat.completions.create(
            model=self.model, messages=TWO_QUESTIONS, tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            parallel_tool_calls=False, temperature=0, max_tokens=CALL_MAX_TOKENS)
        choice = response.choices[0]
        check(choice.finish_reason == "tool_calls",
              f"{where}: finish_reason {choice.finish_reason!r}: {choice.message}")
        calls = valid_calls(choice.message.tool_calls, where)
        check([name for name, _ in calls] == ["get_time"], f"{where}: calls {calls}")
        print(f"     calls: {calls}")

    def tool_results_answer(self) -> None:
        self.need_required()
        message = self.required.choices[0].message
        history = list(TWO_QUESTIONS)
        history.append(message.model_dump(include={"role", "content", "tool_calls"}))
        for call in message.tool_calls:
            history.append({"role": "tool", "tool_call_id": call.id,
                            "content": json.dumps(TOOL_RESULTS[call.function.name])})
        # The follow-up without `tools`, as OpenAI's own function-calling guide sends it. (With
        # the tools still declared, the 1.5B model calls get_weather again instead of answering.)
        response = self.client.chat.completions.create(
            model=self.model, messages=history, temperature=0, max_tokens=100)
        choice = response.choices[0]
        answer = choice.message.content or ""
        check(choice.finish_reason == "stop" and not choice.message.tool_calls,
              f"the answer after the tool results: {choice.finish_reason!r}, {choice.message}")
        names = {call.function.name for call in message.tool_calls}
        if "get_weather" in names:
            check("23" in answer or "rain" in answer,
                  f"the answer does not use the weather result: {answer!r}")
        if "get_time" in names:
            check("21:47" in answer, f"the answer does not use the time result: {answer!r}")
        print(f"     answer: {answer!r}")

    def parse_pydantic(self) -> None:
        response = self.client.chat.completions.parse(
            model=self.model,
            messages=[{"role": "user", "content": "Give a short guide to Paris."}],
            response_format=CityGuide, temperature=0, max_tokens=300)
        choice = response.choices[0]
        check(choice.finish_reason == "stop", f"parse: finish_reason {choice.finish_reason!r}: "
              f"{choice.message.content!r}")
        check(isinstance(choice.message.parsed, CityGuide),
              f"parse: parsed is {choice.message.parsed!r}; content {choice.message.content!r}")
        guide = choice.message.parsed
        response = self.client.chat.completions.parse(
            model=self.model,
            messages=[{"role": "user", "content": "What's the weather in Lyon, in celsius?"}],
            tools=[openai.pydantic_function_tool(GetWeather)], tool_choice="required",
            temperature=0, max_tokens=100)
        choice = response.choices[0]
        check(choice.finish_reason == "tool_calls", f"parse with a tool: {choice}")
        arguments = choice.message.tool_calls[0].function.parsed_arguments
        check(isinstance(arguments, GetWeather),
              f"parse with a tool: parsed_arguments {arguments!r}")
        print(f"     parsed: {guide!r}; {arguments!r}")

    # --- structured output -----------------------------------------------------------------------

    def structured_output(self) -> None:
        schemas = {"customer": CUSTOMER, "order": ORDER, "review": REVIEW}
        for name, schema in schemas.items():
            jsonschema.Draft202012Validator.check_schema(schema)
            bound = max_json_bytes(schema) + 1  # + the end-of-text token
            check(bound <= STRUCTURED_MAX_TOKENS,
                  f"max_tokens {STRUCTURED_MAX_TOKENS} is below the {bound} tokens {name} allows")
        jobs = structured_jobs(self.prompts)

        def one(job):
            name, schema, prompt = job
            response = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}],
                response_format={"type": "json_schema",
                                 "json_schema": {"name": name, "schema": schema, "strict": True}},
                temperature=1.0, max_tokens=STRUCTURED_MAX_TOKENS)
            choice = response.choices[0]
            text = choice.message.content or ""
            try:
                jsonschema.validate(json.loads(text), schema)
                problem = None
            except (json.JSONDecodeError, jsonschema.ValidationError) as e:
                problem = f"{type(e).__name__}: {getattr(e, 'message', e)}"
            return name, choice.finish_reason, problem, response.usage.completion_tokens, text

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as pool:
            results = list(pool.map(one, jobs))
        wall = time.monotonic() - start
        tokens = [r[3] for r in results]
        finishes = {f: sum(1 for r in results if r[1] == f) for f in {r[1] for r in results}}
        bad = [r for r in results if r[1] != "stop" or r[2] is not None]
        print(f"     {len(results)} answers ({self.prompts} prompts x {len(schemas)} schemas, "
              f"temperature 1.0, {self.concurrency} in flight) in {wall:.1f} s; finish reasons "
              f"{finishes}; completion tokens mean {statistics.mean(tokens):.1f}, max {max(tokens)}"
              f" (max_tokens {STRUCTURED_MAX_TOKENS})")
        for name in schemas:
            sample = next(r[4] for r in results if r[0] == name)
            print(f"     e.g. {name}: {sample}")
        for name, finish, problem, n, text in bad[:5]:
            print(f"     BAD {name}: finish {finish}, {n} tokens, {problem}: {text!r}")
        check(not bad, f"{len(bad)} of {len(results)} answers were cut short or invalid")

    # --- agent -----------------------------------------------------------------------------------

    def agent_two_tools(self) -> None:
        # Imported here: only this check needs the framework.
        from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, Runner,
                            function_tool, set_tracing_disabled)

        set_tracing_disabled(True)
        called: list[tuple[str, object]] = []

        @function_tool
        def get_weather(city: str) -> str:
            """Get the current temperature of a city, in degrees Celsius."""
            called.append(("get_weather", city))
            return json.dumps({"city": city, "temperature_celsius": 17.5})

        @function_tool
        def convert_temperature(celsius: float) -> str:
            """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
            called.append(("convert_temperature", celsius))
            return json.dumps({"fahrenheit": round(celsius * 9 / 5 + 32, 1)})

        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key,
                                    timeout=self.timeout, max_retries=0)
        agent = Agent(
            name="weather",
            instructions="You are a helpful assistant. Use the tools, then answer the user's "
                         "question with their results.",
            model=OpenAIChatCompletionsModel(model=self.model, openai_client=client),
            tools=[get_weather, convert_temperature],
            model_settings=ModelSettings(temperature=0, max_tokens=200),
        )
        question = "Find the current temperature in Paris and convert it to Fahrenheit."

        async def run():
            try:
                return await Runner.run(agent, question, max_turns=6)
            finally:
                await client.close()

        result = asyncio.run(run())
        final = str(result.final_output)
        story = f"tools called {called}; final output {final!r}; model turns " + "; ".join(
            str(item.raw_item)[:300] for item in result.new_items)
        weather = [i for i, (name, arg) in enumerate(called)
                   if name == "get_weather" and "paris" in str(arg).lower()]
        convert = [i for i, (name, arg) in enumerate(called)
                   if name == "convert_temperature" and arg == 17.5]
        check(weather, f"get_weather was not called for Paris: {story}")
        check(convert and convert[-1] > weather[0],
              f"convert_temperature was not called with get_weather's 17.5 after it: {story}")
        check("63.5" in final, f"the answer does not give the converted 63.5: {story}")
        print(f"     tools called {called}; answer {final!r}")

    # --- bad requests ----------------------------------------------------------------------------

    def bad_requests(self) -> None:
        weather = WEATHER_TOOL
        broken_tool = {"type": "function", "function": {
            "name": "broken",
            "parameters": {"type": "object", "properties": {"a": {"type": "nonsense"}}}}}
        good_format = {"type": "json_schema", "json_schema": {"name": "greeting", "schema": {
            "type": "object", "properties": {"greeting": {"type": "string"}},
            "required": ["greeting"]}}}

        def schema_format(schema):
            return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}

        cases = [
            ("an invalid type in the response_format schema", "response_format",
             {"response_format": schema_format({"type": "objekt"})}),
            ("an unsatisfiable response_format schema (minimum > maximum)", "response_format",
             {"response_format": schema_format({"type": "integer", "minimum": 5, "maximum": 2})}),
            ("a dangling $ref in the response_format schema", "response_format",
             {"response_format": schema_format({"$ref": "#/$defs/nowhere"})}),
            ("json_schema without a schema", "response_format",
             {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            ("a tool_choice naming an unknown function", "tool_choice",
             {"tools": [weather],
              "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            ("1,000 tools", "tools",
             {"tools": [{"type": "function", "function": {
                 "name": f"tool_{i}", "parameters": {"type": "object", "properties": {}}}}
                 for i in range(1000)]}),
            ("a tool whose parameters do not compile", "tools",
             {"tools": [broken_tool], "tool_choice": "required"}),
            ("a tool whose parameters do not compile, with a valid response_format", "tools",
             {"tools": [broken_tool], "tool_choice": "required", "response_format": good_format}),
            ("an invalid response_format schema next to valid tools (tool_choice auto)",
             "response_format",
             {"tools": [weather], "response_format": schema_format({"type": "objekt"})}),
        ]

        # A normal request runs the whole time.
        normal: dict = {}
        first_token = threading.Event()

        def run_normal():
            try:
                stream = self.client.chat.completions.create(
                    model=self.model, stream=True, temperature=0, max_tokens=128,
                    messages=[{"role": "user",
                               "content": "Count from 1 to 100, separated by commas."}])
                text = []
                for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            text.append(choice.delta.content)
                            first_token.set()
                        if choice.finish_reason:
                            normal["finish"] = choice.finish_reason
                normal["text"] = "".join(text)
            except Exception as e:  # noqa: BLE001 - reported below
                normal["error"] = repr(e)
            finally:
                normal["end"] = time.monotonic()
                first_token.set()

        worker = threading.Thread(target=run_normal)
        worker.start()
        first_token.wait(self.timeout)
        check("end" not in normal, f"the normal request ended before the bad ones: {normal}")
        failures = []
        for what, field, fields in cases:
            body = {"model": self.model, "messages": [{"role": "user", "content": "Say hello."}],
                    "max_tokens": 8, **fields}
            try:
                response = self.client.chat.completions.create(**body)
                failures.append(f"{what}: HTTP 200, answered {response.choices[0].message}")
                continue
            except openai.BadRequestError as e:
                param = e.param or ""
                if not (param == field or param.startswith((field + ".", field + "["))):
                    failures.append(f"{what}: 400 with param {e.param!r}, not {field!r}: {e.body}")
                else:
                    print(f"     400 {param}: {what}")
            except openai.APIStatusError as e:
                failures.append(f"{what}: HTTP {e.status_code}, not 400: {e.body}")
        bad_done = time.monotonic()
        worker.join(self.timeout)
        check(not worker.is_alive(), "the normal request did not finish")
        check("error" not in normal, f"the normal request failed: {normal.get('error')}")
        check(normal.get("end", 0) > bad_done,
              "the normal request finished before the bad ones were all answered; make it longer")
        check(normal.get("finish") in ("stop", "length") and "1, 2, 3" in normal.get("text", ""),
              f"the normal request: {normal}")
        # The server still constrains output after the refusals.
        response = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=64,
            temperature=0, response_format=good_format)
        jsonschema.validate(json.loads(response.choices[0].message.content),
                            good_format["json_schema"]["schema"])
        check(not failures,
              "bad requests not refused as they should be:\n  " + "\n  ".join(failures))
        print(f"     {len(cases)} refusals while a streamed request ran "
              f"({len(normal['text'])} characters, finish {normal['finish']})")


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per request")
    p.add_argument("--concurrency", type=int, default=16,
                   help="structured_output: requests in flight")
    p.add_argument("--prompts", type=int, default=50, help="structured_output: prompts per schema")
    return run("tools_client.py", p, Checks,
               lambda checks: f"openai {openai.__version__} against {checks.base_url} "
                              f"(model {checks.model})")


if __name__ == "__main__":
    sys.exit(main())
