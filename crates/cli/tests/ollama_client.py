#!/usr/bin/env python3
"""End-to-end checks of uma's Ollama API with the official `ollama` Python client.

Run by crates/cli/tests/serve_ollama.rs against `uma serve` (venv of
scripts/setup-test-clients.sh); by hand against a server serving the Gemma 3 270M test model as
`gemma` and Qwen2.5-Coder 1.5B Instruct as `qwen`:

    ~/.cache/uma/venv-clients/bin/python crates/cli/tests/ollama_client.py \
        --host http://127.0.0.1:8080 --model gemma --tools-model qwen

Each check prints `ok  NAME`; the first failure prints `FAIL NAME: why` and exits 1. Generations
are greedy or seeded; those of the small model are at most 8 tokens. The tools model answers the
structured-output and tool-call checks (`format`, `tools`, tool results in the history), whose
answers must parse: JSON that validates, calls whose arguments are objects.
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
import pydantic


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tools-model", required=True)
    args = parser.parse_args()
    client = ollama.Client(host=args.host, timeout=120)
    model = args.model
    tools_model = args.tools_model
    # Enough tokens for every answer below to end by itself (done_reason "stop").
    structured = {"temperature": 0, "num_predict": 160}
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

    class Country(pydantic.BaseModel):
        name: str = pydantic.Field(max_length=40)
        capital: str = pydantic.Field(max_length=40)
        continent: str = pydantic.Field(max_length=20)

    country_question = [{
        "role": "user",
        "content": "Describe France: its name, its capital and its continent, as JSON.",
    }]

    def format_json():
        reply = client.chat(model=tools_model, messages=country_question, format="json",
                            options=structured)
        assert reply.done_reason == "stop", reply
        answer = json.loads(reply.message.content)
        assert isinstance(answer, dict) and answer, reply.message.content
        generated = client.generate(
            model=tools_model, prompt="Describe France as a JSON object.", format="json",
            options=structured,
        )
        assert generated.done_reason == "stop", generated
        assert isinstance(json.loads(generated.response), dict), generated.response

    def format_schema():
        schema = Country.model_json_schema()
        reply = client.chat(model=tools_model, messages=country_question, format=schema,
                            options=structured)
        country = Country.model_validate_json(reply.message.content)
        assert "paris" in country.capital.lower(), country
        parts = list(client.chat(model=tools_model, messages=country_question, format=schema,
                                 options=structured, stream=True))
        streamed = "".join(p.message.content or "" for p in parts)
        assert streamed == reply.message.content, (streamed, reply.message.content)
        generated = client.generate(model=tools_model, prompt="Describe France.", format=schema,
                                    options=structured)
        Country.model_validate_json(generated.response)

    def get_current_weather(city: str) -> str:
        """Get the current weather in a city.

        Args:
            city: The name of the city, e.g. Paris
        """
        return "22 degrees Celsius and sunny"

    weather_tool = {"type": "function", "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "required": ["city"],
                       "properties": {"city": {"type": "string",
                                               "description": "The name of the city"}}},
    }}
    weather_question = [
        {"role": "system", "content": "Call a tool when you need data, then answer the user in "
                                      "one sentence from the tool result."},
        {"role": "user", "content": "What is the weather in Paris right now?"},
    ]

    def assert_weather_call(calls):
        assert calls and len(calls) == 1, calls
        call = calls[0]
        assert call.function.name == "get_current_weather", call
        assert isinstance(call.function.arguments, dict), call.function.arguments
        assert "paris" in str(call.function.arguments.get("city", "")).lower(), call

    def tools_call():
        for tool in [get_current_weather, weather_tool]:
            reply = client.chat(model=tools_model, messages=weather_question, tools=[tool],
                                options=structured)
            assert_weather_call(reply.message.tool_calls)
            assert reply.done and reply.done_reason == "stop", reply
            assert "tool_call" not in (reply.message.content or ""), reply.message.content
        state["weather_call"] = reply.message.tool_calls[0]
        state["weather_message"] = reply.message

    def tools_streamed():
        parts = list(client.chat(model=tools_model, messages=weather_question,
                                 tools=[weather_tool], options=structured, stream=True))
        with_calls = [p for p in parts if p.message.tool_calls]
        # Each call comes whole, in one line of its own, before the last line.
        assert len(with_calls) == 1 and not with_calls[0].done, parts
        calls = [c for p in parts for c in (p.message.tool_calls or [])]
        assert_weather_call(calls)
        assert calls[0].function.arguments == state["weather_call"].function.arguments, calls
        assert all("tool_call" not in (p.message.content or "") for p in parts), parts
        assert parts[-1].done and parts[-1].done_reason == "stop", parts[-1]

    def tool_result_in_the_history():
        # As Ollama's own example does: the assistant's message as it came, then the tool's.
        call = state["weather_call"]
        messages = weather_question + [
            state["weather_message"],
            {"role": "tool", "tool_name": call.function.name,
             "content": get_current_weather(**call.function.arguments)},
        ]
        reply = client.chat(model=tools_model, messages=messages, tools=[weather_tool],
                            options=structured)
        assert not reply.message.tool_calls, reply.message
        assert "22" in reply.message.content, reply.message.content
        assert reply.done_reason == "stop", reply

    def think():
        # The test models do not reason: `think` true is refused as Ollama refuses it, false
        # changes nothing.
        for call in [
            lambda: client.chat(model=model, messages=[{"role": "user", "content": "x"}],
                                think=True),
            lambda: client.generate(model=model, prompt="x", think=True),
        ]:
            try:
                call()
            except ollama.ResponseError as error:
                assert error.status_code == 400, (error.status_code, error.error)
                assert "does not support thinking" in error.error, error.error
            else:
                raise AssertionError("think: true was accepted for a model that does not reason")
        reply = client.chat(model=model, messages=[{"role": "user", "content": "Hi"}],
                            think=False, options=greedy)
        assert reply.message.content and not reply.message.thinking, reply.message

    def errors():
        many_tools = [
            {"type": "function", "function": {"name": f"tool_{i}", "parameters": {"type": "object"}}}
            for i in range(1000)
        ]
        question = [{"role": "user", "content": "x"}]
        for call, status, words in [
            (lambda: client.generate(model="no-such-model", prompt="x"), 404, "no-such-model"),
            (lambda: client.chat(model=tools_model, messages=question,
                                 format={"type": "no-such-type"}), 400, "format"),
            (lambda: client.generate(model=tools_model, prompt="x",
                                     format={"type": "no-such-type"}), 400, "format"),
            (lambda: client.chat(model=tools_model, messages=question, tools=many_tools),
             400, "tools"),
            (lambda: client.chat(model=tools_model, messages=question,
                                 tools=[weather_tool, weather_tool]), 400, "tools[1].name"),
            (lambda: client.chat(model=model, messages=[
                {"role": "user", "content": "x", "images": ["aGk="]}]), 400, "images"),
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
        chat_whole_and_streamed, seeded_sampling_repeats, stop_option, ps_and_keep_alive,
        format_json, format_schema, tools_call, tools_streamed, tool_result_in_the_history, think,
        errors,
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
