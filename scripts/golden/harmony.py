"""Reference prompts and parsed outputs of OpenAI's harmony format (gpt-oss), from the
`openai-harmony` package (OpenAI's own renderer and parser), for uma's tests:

  crates/tokenizer/tests/golden/harmony/prompts.json
      conversations rendered for completion by openai-harmony
      (`HarmonyEncoding.render_conversation_for_completion(conversation, Role.ASSISTANT)`,
      decoded to text) and, for the same conversation in the OpenAI/transformers shape, by
      transformers' `apply_chat_template(..., add_generation_prompt=True)` with gpt-oss's chat
      template (crates/tokenizer/tests/golden/tool_templates/templates/openai-gpt-oss-120b.jinja,
      llama.cpp's copy of the template in the gpt-oss GGUF files). Checked by
      crates/tokenizer/tests/golden_harmony_prompts.rs: uma's renderer must write the
      template's text exactly, and that text must be harmony's but for the differences the test
      lists (the template's own).
  crates/chat-output/tests/golden/harmony/outputs.json
      model outputs (what follows the prompt's `<|start|>assistant`) parsed by openai-harmony
      (`parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)`, and token by token with
      `StreamableParser`, which must agree): each message's channel, recipient, content type
      and text. `text` is the output as uma's engine hands it to the parser: the format tokens
      kept, the stop token that ended the generation (`<|return|>`, `<|call|>`; `stop`) left
      out. Checked by crates/chat-output/tests/harmony_golden.rs: uma's `OutputParser` must
      split it into the same reasoning, content and tool calls, at every streaming split.

The clock: the template prints today's date (`strftime_now`); transformers' clock is frozen at
NOW (the golden's "now", as in tool_templates.py) and harmony is given the same date.

Run it (no torch; the pins of requirements-templates.txt plus openai-harmony):

  python3 -m venv ~/.cache/uma/venv-harmony
  ~/.cache/uma/venv-harmony/bin/pip install -r scripts/golden/requirements-harmony.txt
  TIKTOKEN_ENCODINGS_BASE=DIR ~/.cache/uma/venv-harmony/bin/python scripts/golden/harmony.py

openai-harmony needs the o200k_base vocabulary (`o200k_base.tiktoken`, sha256
446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d) and downloads it unless
TIKTOKEN_ENCODINGS_BASE names a folder holding it. Offline, write that file from the npm package
js-tiktoken (1.0.21 ships the same ranks in dist/ranks/o200k_base.js; `npm pack js-tiktoken`
and untar it), checked against the sha256 above:

  ... harmony.py --o200k-from-js-tiktoken PACKAGE_DIR --o200k-dir DIR   (then run as above)

Reruns with the same pins write byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as _datetime
import hashlib
import importlib.metadata
import json
import re
import sys
from pathlib import Path

from tool_templates import NOW, freeze_clock  # the same frozen "now" as the tool-call goldens

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROMPTS_OUT = ROOT / "crates/tokenizer/tests/golden/harmony/prompts.json"
OUTPUTS_OUT = ROOT / "crates/chat-output/tests/golden/harmony/outputs.json"
TEMPLATE = ROOT / "crates/tokenizer/tests/golden/tool_templates/templates/openai-gpt-oss-120b.jinja"
# gpt-oss's tokenizer_config.json.
SPECIAL_TOKENS = {"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>"}
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# 2026-03-14 09:26:53 UTC, the instant of tool_templates.py.
TODAY = _datetime.datetime.fromtimestamp(NOW, tz=_datetime.timezone.utc).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------------------------
# Prompts: conversations in the OpenAI/transformers shape
# --------------------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["location"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_files",
        "description": "Search files for a pattern.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "paths": {"type": "array", "items": {"type": "string"}},
                "recursive": {"type": "boolean", "default": False},
            },
            "required": ["query"],
        },
    },
}
# The object parameter of tool_templates.py's search_files: rendered differently (see the test).
NESTED = {
    "type": "function",
    "function": {
        "name": "configure",
        "description": "Set options.",
        "parameters": {
            "type": "object",
            "properties": {
                "options": {
                    "type": "object",
                    "properties": {"verbose": {"type": "boolean"}, "level": {"type": "number"}},
                },
            },
        },
    },
}
TOOLS = [WEATHER, SEARCH]

SYSTEM = {"role": "system", "content": "You are a terse assistant.\nAnswer in English."}
USER_WEATHER = {"role": "user", "content": "What's the weather in Paris? Use celsius."}
CALL_WEATHER = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}},
}
RESULT_WEATHER = {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 18.5, "condition": "cloudy"}'}

# name -> (messages, tools, template kwargs)
PROMPTS = {
    "chat": ([{"role": "user", "content": "Hi! Wie geht's? 😀"}], None, {}),
    "system_and_history": (
        [
            SYSTEM,
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "7."},
            {"role": "user", "content": "Another one?"},
        ],
        None,
        {},
    ),
    "developer_role": ([{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}], None, {}),
    "reasoning_effort_high": ([{"role": "user", "content": "Prove it."}], None, {"reasoning_effort": "high"}),
    "tools": ([SYSTEM, USER_WEATHER], TOOLS, {}),
    "tools_without_system": ([USER_WEATHER], [WEATHER], {}),
    "tool_call_history": (
        [USER_WEATHER, {"role": "assistant", "tool_calls": [CALL_WEATHER]}, RESULT_WEATHER],
        TOOLS,
        {},
    ),
    "tool_call_with_thinking": (
        [
            SYSTEM,
            USER_WEATHER,
            {"role": "assistant", "content": "I need the weather tool.", "tool_calls": [CALL_WEATHER]},
            RESULT_WEATHER,
        ],
        TOOLS,
        {},
    ),
    "tool_call_then_answer": (
        [
            USER_WEATHER,
            {"role": "assistant", "content": "I need the weather tool.", "tool_calls": [CALL_WEATHER]},
            RESULT_WEATHER,
            {"role": "assistant", "content": "18.5 °C and cloudy."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        TOOLS,
        {},
    ),
    "nested_object_parameter": ([{"role": "user", "content": "Be verbose."}], [NESTED], {}),
}


def harmony_conversation(messages: list[dict], tools: list[dict] | None, kwargs: dict):
    """The same conversation as openai-harmony's types, written as gpt-oss's template reads the
    OpenAI shape: a first system or developer message gives the developer instructions; a call
    is a commentary message to functions.NAME (its analysis kept unless a final answer follows,
    as harmony's auto_drop_analysis does); a tool result comes from functions.NAME."""
    from openai_harmony import (
        Author,
        Conversation,
        DeveloperContent,
        Message,
        ReasoningEffort,
        Role,
        SystemContent,
        ToolDescription,
    )

    system = SystemContent.new().with_conversation_start_date(TODAY)
    if "reasoning_effort" in kwargs:
        system = system.with_reasoning_effort(ReasoningEffort(kwargs["reasoning_effort"].capitalize()))
    out = [Message.from_role_and_content(Role.SYSTEM, system)]
    rest = messages
    developer = DeveloperContent.new()
    has_developer = False
    if rest and rest[0]["role"] in ("system", "developer"):
        developer = developer.with_instructions(rest[0]["content"])
        has_developer = True
        rest = rest[1:]
    if tools:
        developer = developer.with_function_tools(
            [ToolDescription.new(t["function"]["name"], t["function"]["description"], parameters=t["function"]["parameters"]) for t in tools]
        )
        has_developer = True
    if has_developer:
        out.append(Message.from_role_and_content(Role.DEVELOPER, developer))
    last_call = None
    for message in rest:
        role = message["role"]
        if role == "user":
            out.append(Message.from_role_and_content(Role.USER, message["content"]))
        elif role == "assistant" and "tool_calls" in message:
            call = message["tool_calls"][0]["function"]
            if message.get("content"):
                out.append(Message.from_role_and_content(Role.ASSISTANT, message["content"]).with_channel("analysis"))
            arguments = json.dumps(call["arguments"], ensure_ascii=False)
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, arguments)
                .with_channel("commentary")
                .with_recipient(f"functions.{call['name']}")
                .with_content_type("<|constrain|>json")
            )
            last_call = call["name"]
        elif role == "assistant":
            out.append(Message.from_role_and_content(Role.ASSISTANT, message["content"]).with_channel("final"))
        elif role == "tool":
            author = Author.new(Role.TOOL, f"functions.{last_call}")
            out.append(Message.from_author_and_content(author, message["content"]).with_channel("commentary").with_recipient("assistant"))
        else:
            raise ValueError(role)
    return Conversation.from_messages(out)


def write_prompts(encoding) -> None:
    from openai_harmony import Role

    sys.path.insert(0, str(HERE))
    from tool_templates import plain_tokenizer

    freeze_clock()
    template = TEMPLATE.read_bytes().decode("utf-8")
    tokenizer = plain_tokenizer(SPECIAL_TOKENS)
    cases = []
    for name, (messages, tools, kwargs) in PROMPTS.items():
        tokens = encoding.render_conversation_for_completion(harmony_conversation(messages, tools, kwargs), Role.ASSISTANT)
        rendered = tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, chat_template=template, tokenize=False, **kwargs
        )
        cases.append({
            "name": name,
            "messages": messages,
            "tools": tools,
            "kwargs": kwargs,
            "harmony": encoding.decode_utf8(tokens),
            "template": rendered,
        })
    header = {
        "reference": reference(),
        "template": "../tool_templates/templates/openai-gpt-oss-120b.jinja",
        "template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        "special_tokens": SPECIAL_TOKENS,
        "now": NOW,
    }
    write_json(PROMPTS_OUT, header, "cases", cases)


# --------------------------------------------------------------------------------------------
# Outputs: what a gpt-oss model writes after `<|start|>assistant`
# --------------------------------------------------------------------------------------------

ANALYSIS = "<|channel|>analysis<|message|>"
FINAL = "<|end|><|start|>assistant<|channel|>final<|message|>"
NEXT = "<|end|><|start|>assistant"

# name -> (text, stop token or None when the generation hit its length limit)
OUTPUTS = {
    "analysis_then_final": (
        ANALYSIS + "The user greets me. I should respond politely." + FINAL + "Hello! How can I help you today?",
        "<|return|>",
    ),
    "final_only": ("<|channel|>final<|message|>Paris is the capital of France.", "<|return|>"),
    "multiline_markdown": (
        ANALYSIS + "Need a table.\n\nAlso code: `a < b`, to=x is text here.\n" + FINAL
        + "| City | °C |\n|---|---|\n| Zürich | 7 |\n\n```rust\nfn main() { println!(\"<|x|>\"); }\n```\n",
        "<|return|>",
    ),
    "two_analysis_messages": (
        ANALYSIS + "First thought." + NEXT + "<|channel|>analysis<|message|>  Second thought.  " + FINAL + "Done.",
        "<|return|>",
    ),
    "call_channel_first": (
        ANALYSIS + "Need the weather; call get_weather." + NEXT
        + '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Paris","unit":"celsius"}',
        "<|call|>",
    ),
    "call_recipient_first": (
        ' to=functions.get_weather<|channel|>commentary json<|message|>{"location": "東京", "days": 3}',
        "<|call|>",
    ),
    "call_after_preamble": (
        ANALYSIS + "Search first." + NEXT + "<|channel|>commentary<|message|>I'll search the repository." + NEXT
        + '<|channel|>commentary to=functions.search_files <|constrain|>json<|message|>{\n  "query": "TODO",\n  "paths": ["src/", "docs/"],\n  "recursive": true\n}',
        "<|call|>",
    ),
    "call_constrain_without_space": (
        '<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"location": "Oslo", "note": "a\\"b\\\\c\\u00e9"}',
        "<|call|>",
    ),
    "call_without_content_type": (
        ANALYSIS + "Quick." + NEXT + '<|channel|>commentary to=functions.get_weather<|message|>{}',
        "<|call|>",
    ),
    "stopped_in_analysis": (ANALYSIS + "Let me think about the primes below 10: 2, 3,", None),
}


def parse(encoding, text: str, stop: str | None) -> list[dict]:
    from openai_harmony import Role, StreamableParser

    tokens = encoding.encode(text + (stop or ""), allowed_special="all")
    messages = [message_json(m) for m in encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)]
    stream = StreamableParser(encoding, Role.ASSISTANT)
    for token in tokens:
        stream.process(token)
    stream.process_eos()
    streamed = [message_json(m) for m in stream.messages]
    assert streamed == messages, (text, streamed, messages)
    return messages


def message_json(message) -> dict:
    d = message.to_dict()
    assert d["role"] == "assistant", d
    [content] = d["content"]
    return {
        "channel": d.get("channel"),
        "recipient": d.get("recipient"),
        "content_type": d.get("content_type"),
        "text": content["text"],
    }


def write_outputs(encoding) -> None:
    cases = []
    for name, (text, stop) in OUTPUTS.items():
        cases.append({"name": name, "text": text, "stop": stop, "messages": parse(encoding, text, stop)})
    write_json(OUTPUTS_OUT, {"reference": reference()}, "cases", cases)


# --------------------------------------------------------------------------------------------


def reference() -> str:
    return (
        f"openai-harmony {importlib.metadata.version('openai-harmony')} (HarmonyEncodingName.HARMONY_GPT_OSS), "
        f"transformers {importlib.metadata.version('transformers')}, Jinja2 {importlib.metadata.version('Jinja2')}"
    )


def write_json(path: Path, header: dict, key: str, items: list[dict]) -> None:
    lines = ["{"]
    for name, value in header.items():
        lines.append(f"  {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append(f'  "{key}": [')
    for i, item in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        lines.append("    " + json.dumps(item, ensure_ascii=False) + comma)
    lines.append("  ]")
    lines.append("}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"golden  {path} ({len(items)} {key})", file=sys.stderr)


def o200k_from_js_tiktoken(package: Path, out_dir: Path) -> None:
    """Writes o200k_base.tiktoken (`base64 rank` lines, by rank) from js-tiktoken's compressed
    ranks (`! offset token token ...` lines: consecutive ranks from offset)."""
    source = (package / "dist/ranks/o200k_base.js").read_text(encoding="utf-8")
    ranks = json.loads(re.fullmatch(r"\s*export default (\{.*\});?\s*", source, re.S).group(1))["bpe_ranks"]
    by_rank = {}
    for line in ranks.split("\n"):
        if not line:
            continue
        _, offset, *tokens = line.split(" ")
        for i, token in enumerate(tokens):
            by_rank[int(offset) + i] = token
    text = "".join(f"{by_rank[rank]} {rank}\n" for rank in sorted(by_rank))
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    if digest != O200K_SHA256:
        sys.exit(f"error: the converted vocabulary has sha256 {digest}, not {O200K_SHA256}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "o200k_base.tiktoken").write_text(text, encoding="ascii")
    print(f"wrote   {out_dir / 'o200k_base.tiktoken'} (sha256 ok)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--o200k-from-js-tiktoken", type=Path, metavar="PACKAGE_DIR",
                        help="only write o200k_base.tiktoken (into --o200k-dir) from an unpacked js-tiktoken package")
    parser.add_argument("--o200k-dir", type=Path, help="where --o200k-from-js-tiktoken writes")
    args = parser.parse_args()
    if args.o200k_from_js_tiktoken:
        if not args.o200k_dir:
            sys.exit("error: --o200k-from-js-tiktoken needs --o200k-dir")
        o200k_from_js_tiktoken(args.o200k_from_js_tiktoken, args.o200k_dir)
        return

    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    write_prompts(encoding)
    write_outputs(encoding)


if __name__ == "__main__":
    main()
