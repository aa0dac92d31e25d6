"""Reference renderings of conversations WITH tools, from Hugging Face `transformers`' own
`apply_chat_template(..., tools=..., tokenize=False)`, for uma's test
crates/tokenizer/tests/golden_tool_templates.rs.

Writes, under crates/tokenizer/tests/golden/tool_templates/:
  inputs.json         the inputs every golden shares (system message, tool schemas, conversations)
  <name>.json         per template: the special tokens, clock and kwargs it was rendered with and,
                      per case, the text transformers renders (or the exception the template
                      raises); the Rust test renders the same inputs with uma's ChatTemplate and
                      asserts byte equality
  python_compat.json  COMPAT_PROBES rendered by transformers' template environment
See the README there.

Templates
  gguf_<stem>     the chat template of a test GGUF file (~/.cache/uma/models, fetched by
                  scripts/fetch-models.sh). The tokenizer is transformers' own, built from the
                  file (AutoTokenizer.from_pretrained(dir, gguf_file=...)), so the template sees
                  exactly the special tokens transformers gives it (bos_token, eos_token,
                  pad_token, ...). Gemma 3 270M's file has no template: uma and this script use
                  the official Gemma 3 template (scripts/golden/gemma3_chat_template.jinja),
                  which has no tool support; its golden checks that tools are ignored the way
                  transformers ignores them.
  <llama.cpp name>  a template from llama.cpp's models/templates, committed under
                  crates/tokenizer/tests/golden/tool_templates/templates/ (see the README there).
                  transformers renders it through a tokenizer whose special tokens are those of
                  the model's own tokenizer_config.json (SPECIAL_TOKENS below), which is what
                  apply_chat_template passes to the template for that model.

Special context (recorded in each golden):
  * a message's `reasoning_content` is also given as `thinking` (gpt-oss's name for it), as uma's
    ChatTemplate gives it.
  * special tokens: as above; transformers passes every named special token it has (the
    golden's "special_tokens"), absent ones stay undefined.
  * strftime_now: transformers formats `datetime.now()`. So that goldens do not change every
    day, the clock transformers reads is frozen at NOW (the golden's "now", Unix seconds, UTC);
    the Rust test sets uma's template clock to the same instant. No other part of rendering is
    touched.
  * template kwargs (apply_chat_template(**kwargs)): a case's "kwargs", e.g. enable_thinking=False
    for the templates that read it. Every other case passes none, like a plain call.

Run it with scripts/golden/requirements-templates.txt installed (no torch):

  python3 -m venv ~/.cache/uma/venv-templates
  ~/.cache/uma/venv-templates/bin/pip install -r scripts/golden/requirements-templates.txt
  ~/.cache/uma/venv-templates/bin/python scripts/golden/tool_templates.py
  # refresh the committed llama.cpp templates first (optional):
  ... tool_templates.py --import-llama-cpp ~/.cache/uma-peers/llama.cpp-0.3.36/src

Reruns with the same pins and models write byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as _datetime
import hashlib
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "crates/tokenizer/tests/golden/tool_templates"
TEMPLATES = OUT / "templates"
GEMMA3_TEMPLATE = HERE / "gemma3_chat_template.jinja"

# 2026-03-14 09:26:53 UTC: the instant strftime_now reports (see the module docstring).
NOW = 1773480413

GGUF_MODELS = [
    "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "qwen2.5-coder-1.5b-instruct-q4_k_m",
    "gemma-3-270m-q4_k_m",
]

# llama.cpp template file (without .jinja) -> the named special tokens of the model's tokenizer
# (tokenizer_config.json of the Hugging Face repository the template comes from).
LLAMA3 = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
QWEN = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
MISTRAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
DEEPSEEK = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}
SPECIAL_TOKENS: dict[str, dict[str, str]] = {
    "Qwen-Qwen3-0.6B": QWEN,
    "Qwen3-Coder": QWEN,
    "Qwen3.5-4B": QWEN,
    "Qwen-Qwen2.5-7B-Instruct": QWEN,
    "Qwen-QwQ-32B": QWEN,
    # Identical to NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja (see the README).
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>"},
    # Identical to meta-llama-Llama-3.3-70B-Instruct.jinja (see the README).
    "meta-llama-Llama-3.1-8B-Instruct": LLAMA3,
    "meta-llama-Llama-3.2-3B-Instruct": LLAMA3,
    "mistralai-Mistral-Nemo-Instruct-2407": MISTRAL,
    "Mistral-Small-3.2-24B-Instruct-2506": MISTRAL,
    "unsloth-mistral-Devstral-Small-2507": MISTRAL,
    "mistralai-Ministral-3-14B-Reasoning-2512": MISTRAL,
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": DEEPSEEK,
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": DEEPSEEK,
    "deepseek-ai-DeepSeek-V3.1": DEEPSEEK,
    "openai-gpt-oss-120b": {"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>"},
    "google-gemma-4-31B-it": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"},
    "meetkai-functionary-medium-v3.1": LLAMA3,
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use": {"bos_token": "<BOS_TOKEN>", "eos_token": "<|END_OF_TURN_TOKEN|>", "pad_token": "<PAD>", "unk_token": "<UNK>"},
    "GLM-4.6": {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
    "moonshotai-Kimi-K2": {"bos_token": "[BOS]", "eos_token": "[EOS]", "pad_token": "[PAD]", "unk_token": "[UNK]"},
    "HuggingFaceTB-SmolLM3-3B": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"},
    "ibm-granite-granite-3.3-2B-Instruct": {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "<|end_of_text|>", "unk_token": "<|end_of_text|>"},
    "MiniMax-M2": {"bos_token": "]~!b[", "eos_token": "[e~[", "unk_token": "]!d~["},
    "NVIDIA-Nemotron-Nano-v2": {"bos_token": "<SPECIAL_12>", "eos_token": "<SPECIAL_11>"},
    # Uses transformers' {% generation %} block.
    "LFM2.5-8B-A1B": {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"},
}
# Templates that read `enable_thinking` get one more case with enable_thinking=False.
THINKING_KWARGS = {"enable_thinking": False}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City, e.g. Zürich"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_files",
            "description": "Search files for a pattern.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "paths": {"type": "array", "items": {"type": "string"}},
                    "depth": {"type": "number"},
                    "recursive": {"type": "boolean"},
                    "options": {
                        "type": "object",
                        "properties": {
                            "case_sensitive": {"type": "boolean", "default": False},
                            "max_results": {"type": "integer", "minimum": 1, "maximum": 100},
                            "exclude": {
                                "type": "array",
                                "items": {"type": "object", "properties": {"glob": {"type": "string"}}},
                            },
                        },
                    },
                },
                "required": ["query"],
            },
        },
    },
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant with tools."}
USER_WEATHER = {"role": "user", "content": "What's the weather in Paris? Use celsius."}
USER_TWO = {"role": "user", "content": "Find TODOs in src/ and docs/, and check the weather in Zürich."}

# Tool call ids are 9 alphanumerics: Mistral's templates reject any other id.
CALL_WEATHER = {
    "id": "call0001a",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}},
}
CALL_SEARCH = {
    "id": "call0002b",
    "type": "function",
    "function": {
        "name": "search_files",
        "arguments": {
            "query": "TODO",
            "paths": ["src/", "docs/"],
            "depth": 2.5,
            "recursive": True,
            "options": {"case_sensitive": False, "max_results": 10, "exclude": [{"glob": "*.lock"}]},
        },
    },
}
CALL_WEATHER_ZURICH = {
    "id": "call0003c",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius"}},
}

SINGLE_CALL = [
    USER_WEATHER,
    {"role": "assistant", "tool_calls": [CALL_WEATHER]},
    {"role": "tool", "content": '{"temperature": 18.5, "condition": "cloudy"}', "tool_call_id": "call0001a", "name": "get_weather"},
    {"role": "assistant", "content": "It is 18.5 °C and cloudy in Paris."},
]
TWO_RESULTS = [
    USER_TWO,
    {"role": "assistant", "content": "Let me search and check.", "tool_calls": [CALL_SEARCH, CALL_WEATHER_ZURICH]},
    {"role": "tool", "content": '["src/main.rs:12", "docs/plan.md:3"]', "tool_call_id": "call0002b", "name": "search_files"},
    {"role": "tool", "content": '{"temperature": 7, "condition": "snow"}', "tool_call_id": "call0003c", "name": "get_weather"},
]
TWO_CALLS = TWO_RESULTS + [{"role": "assistant", "content": "Two TODOs found; Zürich has 7 °C and snow."}]

# A client giving back the reasoning that led to a call (`reasoning_content`), mid tool chain:
# gpt-oss shows it again before the call, Qwen3 after the last user message.
REASONING_RESULTS = [
    USER_WEATHER,
    {"role": "assistant", "content": "", "reasoning_content": "The user wants Paris in celsius: call get_weather.", "tool_calls": [CALL_WEATHER]},
    {"role": "tool", "content": '{"temperature": 18.5, "condition": "cloudy"}', "tool_call_id": "call0001a", "name": "get_weather"},
]

CONVERSATIONS = {
    "first_turn": [USER_WEATHER],
    "single_call": SINGLE_CALL,
    "two_calls": TWO_CALLS,
    "two_results": TWO_RESULTS,
    "reasoning_results": REASONING_RESULTS,
}


def cases(reads_enable_thinking: bool) -> list[dict]:
    """(conversation, system message, tools, add_generation_prompt, kwargs) of each case."""
    plan = [
        ("first_turn", False, True, True),
        ("single_call", True, True, False),
        ("two_calls", False, True, False),
        ("two_results", True, True, True),
        # A tool-call history without tool schemas (a client that stopped sending them).
        ("two_calls", True, False, False),
        ("reasoning_results", False, True, True),
    ]
    out = [
        {"conversation": c, "system": s, "tools": t, "add_generation_prompt": g, "kwargs": {}}
        for c, s, t, g in plan
    ]
    if reads_enable_thinking:
        out.append({"conversation": "two_results", "system": False, "tools": True, "add_generation_prompt": True, "kwargs": THINKING_KWARGS})
    return out


# Python behaviours templates rely on, each rendered alone by transformers' template environment
# (python_compat.json): how Jinja2 prints values (Python's str/repr), its filters and tests, the
# string methods templates call, the globals transformers adds. Jinja2 behaviours uma does not
# reproduce are left out and listed in the README (`~` with a dict or list operand prints it
# JSON-style; tuples print as lists; the `%` operator on strings; `lipsum`; `wordcount`).
COMPAT_CONTEXT = {
    "s": "hello",
    "d": {"a": 1, "b": "two", "c": [1, 2.5, None, True]},
    "l": [3, 1, 2],
    "u": {"k": "Zürich <&>", "del": "\x7f"},
    "reprs": ["it's", 'say "hi"', "both ' \"", "tab\there", "nl\n", "\x01", "é", "\u00a0", "\u200b", "\\"],
    "floats": [1e16, 1e-5, 0.0001, -0.0, 1.5e300, 2.5, 100.0],
    "msgs": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "again"}],
}
COMPAT_PROBES = [
    "{{ true }}|{{ false }}|{{ none }}|{{ 1.0 }}|{{ 1.5e20 }}|{{ 3 / 2 }}|{{ 4 / 2 }}|{{ 7 // 2 }}",
    "{{ d }}|{{ d | string }}|{{ l }}|{{ 'x' + d | string }}|{{ msgs[0] }}",
    "{{ reprs }}|{{ floats }}|{{ floats[0] }}|{{ floats[1] }}|{{ floats[3] }}",
    "{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.get('a') }}|{{ d.get('zz') }}|{{ d.get('zz', 5) }}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{{ s[1:3] }}|{{ s[::-1] }}|{{ s[-2:] }}|{{ l[1:] }}|{{ l[-1] }}",
    "{{ s.startswith('he') }}|{{ s.endswith(('lo', 'x')) }}|{{ s.split('l') }}|{{ 'a b  c '.rsplit() }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ ' x y '.rsplit(None, 1) }}",
    "{{ '  '.rsplit() }}|{{ ' a b '.rsplit(None, 0) }}|{{ 'a,b,c'.rsplit(',', 0) }}|{{ 'a,,b'.rsplit(',') }}|{{ 'a\tb\n c'.rsplit() }}|{{ 'x--y--z'.rsplit('--', 1) }}",
    "{{ s.removeprefix('he') }}|{{ s.removesuffix('lo') }}|{{ s.partition('l') | join('/') }}|{{ s.rpartition('l') | join('/') }}|{{ s.partition('z') | join('/') }}|{{ s.rpartition('z') | join('/') }}",
    "{{ s.strip('ho') }}|{{ s.lstrip('h') }}|{{ s.rstrip('o') }}|{{ s.upper() }}|{{ s.title() }}|{{ s.capitalize() }}|{{ s.replace('l', 'L') }}",
    "{{ '  a b  '.split() }}|{{ 'a\nb'.splitlines() }}|{{ s.find('l') }}|{{ s.count('l') }}|{{ '{} and {}'.format('x', 1) }}",
    "{{ l | join(', ') }}|{{ l | length }}|{{ l | first }}|{{ l | last }}|{{ l | reverse | list }}|{{ l | sum }}|{{ l | max }}",
    "{{ u | tojson }}|{{ u | tojson(ensure_ascii=True) }}|{{ d | tojson(indent=2) }}|{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(sort_keys=True) }}|{{ d | tojson(indent=1, separators=(',', ': ')) }}",
    "{{ x is defined }}|{{ none is none }}|{{ d is mapping }}|{{ l is sequence }}|{{ s is sequence }}|{{ d is sequence }}|{{ x is sequence }}|{{ none is sequence }}|{{ 1 is sequence }}",
    "{{ 1 is number }}|{{ true is number }}|{{ 1.5 is number }}|{{ 's' is number }}|{{ l is iterable }}|{{ d is iterable }}|{{ 1 is iterable }}|{{ none is iterable }}|{{ x is iterable }}",
    "{{ x | length }}|{{ '' | length }}|{{ d | length }}|{{ x | count }}",
    "{{ none | length }}",
    "{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}|{{ msgs | map(attribute='role') | join(',') }}|{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }}",
    "{{ 'y' if (msgs | selectattr('role', 'equalto', 'tool')) else 'n' }}|{{ 'y' if ([] | select) else 'n' }}|{{ 'y' if ([] | map('upper')) else 'n' }}|{{ msgs | selectattr('role', 'equalto', 'user') | first }}",
    "{{ msgs | selectattr('role', 'equalto', 'user') | length }}",
    "{{ msgs | map(attribute='role') | tojson }}",
    "{{ x | tojson }}",
    "{% set ns = namespace(a=1, b=[]) %}{% set ns.a = ns.a + 1 %}{{ ns.a }}",
    "{% for m in msgs %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{% if loop.previtem is defined %}<{{ loop.previtem.role }}>{% endif %}{% if loop.nextitem is defined %}>{{ loop.nextitem.role }}{% endif %};{% endfor %}",
    "{{ s | trim }}|{{ '  x ' | trim }}|{{ s | upper }}|{{ s | replace('l', 'L') }}|{{ s | capitalize }}|{{ s | title }}",
    "{{ x | default('dflt') }}|{{ none | default('d2') }}|{{ none | default('d3', true) }}|{{ '' | default('d4', true) }}",
    "{{ 3.7 | int }}|{{ '5' | int }}|{{ 2 | float }}|{{ 2.567 | round(1) }}|{{ -3 | abs }}",
    "{{ s * 2 }}|{{ 'a' in s }}|{{ 'zz' not in s }}|{{ 'a' in d }}|{{ l + [9] }}|{{ s | list }}|{{ d | list }}",
    "{{ x }}|{% for i in x %}no{% endfor %}|{{ x is none }}|{{ x == none }}|{{ not x }}",
    "{{ msgs[0] == msgs[0] }}|{{ msgs[0] == msgs[1] }}|{{ d.a }}|{{ d['a'] }}|{{ d.zz is defined }}",
    "{{ [3, 1, 2] | sort }}|{{ msgs | sort(attribute='role') | map(attribute='role') | list }}|{{ l | unique | list }}",
    "{{ 10 ** 2 }}|{{ 7 % 3 }}|{{ -7 // 2 }}|{{ 1 + 2.0 }}|{{ 0.1 + 0.2 }}",
    "{{ {'b': 1, 'a': [1, 2]} }}|{{ [none, true, 'x'] }}|{{ dict(a=1) }}|{{ dict(a=1) | tojson }}",
    "{{ s.isdigit() }}|{{ '12'.isdigit() }}|{{ s.isalpha() }}|{{ ' '.isspace() }}|{{ s.islower() }}|{{ s.isupper() }}",
    "{{ range(3) | list }}|{{ range(1, 4) | list }}|{% for i in range(2) %}{{ i }}{% endfor %}",
    "{{ 'x' if none else 'y' }}|{{ d and 'yes' }}|{{ l or 'no' }}|{{ '' or 'empty' }}",
    "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}|{% set j = joiner(', ') %}{% for i in l %}{{ j() }}{{ i }}{% endfor %}",
    "{{ {'x': none} | tojson }}|{{ 1.0 | tojson }}|{{ 100000000000000000000.0 | tojson }}|{{ 1e-7 | tojson }}|{{ [1, [2, 3]] | tojson(indent=2) }}|{{ [] | tojson(indent=2) }}",
    "{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 12 | string + 'x' }}|{{ true | string }}|{{ none | string }}|{{ 2.5 | string }}",
    "{{ '%.2f' | format(3.14159) }}|{{ '%s=%s' | format('a', 1) }}",
    "{%- for m in msgs if m.role != 'user' %}{{ m.role }}{{ loop.index }}{% endfor %}|{{ msgs | map(attribute='missing', default='z') | list }}",
    "{% set a = 1 %}{% for i in [1, 2] %}{%- generation -%} {{ i }}{% set a = 2 %} {%- endgeneration -%}{% endfor %}|{{ a }}",
    "{{ x ~ 'a' }}|{{ d.zz ~ 'b' }}|{{ x | string }}|{{ x | lower }}",
    "{{ x.y }}",
    "{{ d.zz.yy }}",
    "{{ x + 1 }}",
    "{{ raise_exception('stop here') }}",
    "{{ strftime_now('%Y-%m-%d %H:%M %A %B %d %b') }}",
]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def freeze_clock() -> None:
    """Make transformers' `strftime_now` read NOW instead of the wall clock."""
    import transformers.utils.chat_template_utils as ctu

    frozen = _datetime.datetime.fromtimestamp(NOW, tz=_datetime.timezone.utc).replace(tzinfo=None)

    class FrozenDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    assert ctu.datetime is _datetime.datetime, "transformers no longer imports datetime the expected way"
    ctu.datetime = FrozenDatetime


def plain_tokenizer(special_tokens: dict[str, str]):
    """A tokenizer that only carries the special tokens a template sees: apply_chat_template passes
    its special_tokens_map to the template (vocabulary and model play no part in rendering)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(dict.fromkeys(special_tokens.values()))}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab)), **special_tokens)
    assert tokenizer.special_tokens_map == special_tokens, tokenizer.special_tokens_map
    return tokenizer


def render_case(tokenizer, template: str, case: dict) -> dict:
    messages = ([SYSTEM] if case["system"] else []) + CONVERSATIONS[case["conversation"]]
    # uma gives a message's reasoning to templates under both names they read it by.
    messages = [{**m, "thinking": m["reasoning_content"]} if "reasoning_content" in m else m for m in messages]
    try:
        text = tokenizer.apply_chat_template(
            messages,
            tools=TOOLS if case["tools"] else None,
            add_generation_prompt=case["add_generation_prompt"],
            chat_template=template,
            tokenize=False,
            **case["kwargs"],
        )
    except Exception as e:  # noqa: BLE001  (the template's own exception is the expected result)
        import jinja2

        # raise_exception() raises a bare TemplateError; anything else is an error in rendering.
        kind = "raised" if type(e) is jinja2.exceptions.TemplateError else "error"
        return {**case, "error": {"kind": kind, "type": type(e).__name__, "message": str(e)}}
    return {**case, "text": text}


def write_inputs() -> str:
    """Writes the inputs every golden shares (inputs.json) and returns its sha256."""
    inputs = {"system": SYSTEM, "tools": TOOLS, "conversations": CONVERSATIONS}
    text = json.dumps(inputs, ensure_ascii=False, indent=1) + "\n"
    (OUT / "inputs.json").write_bytes(text.encode("utf-8"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_golden(name: str, source: dict, special_tokens: dict[str, str], template: str, tokenizer, inputs_sha256: str) -> None:
    reads_thinking = "enable_thinking" in template
    rendered = [render_case(tokenizer, template, case) for case in cases(reads_thinking)]
    header = {
        "name": name,
        "source": source,
        "template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        "reference": f"transformers {importlib.metadata.version('transformers')}, Jinja2 {importlib.metadata.version('Jinja2')}: tokenizer.apply_chat_template(messages, tools=..., add_generation_prompt=..., tokenize=False, **kwargs)",
        "special_tokens": special_tokens,
        "now": NOW,
        "inputs": "inputs.json",
        "inputs_sha256": inputs_sha256,
    }
    lines = ["{"]
    for key, value in header.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append('  "cases": [')
    for i, case in enumerate(rendered):
        comma = "," if i + 1 < len(rendered) else ""
        lines.append("    " + json.dumps(case, ensure_ascii=False) + comma)
    lines.append("  ]")
    lines.append("}")
    path = OUT / f"{name}.json"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    errors = sum("error" in c for c in rendered)
    print(f"golden  {path} ({len(rendered)} cases, {errors} fail)", file=sys.stderr)


def write_python_compat() -> None:
    """python_compat.json: each COMPAT_PROBES template rendered alone with COMPAT_CONTEXT."""
    import jinja2
    from transformers.utils.chat_template_utils import _compile_jinja_template

    probes = []
    for template in COMPAT_PROBES:
        try:
            probes.append({"template": template, "text": _compile_jinja_template(template).render(**COMPAT_CONTEXT)})
        except Exception as e:  # noqa: BLE001
            kind = "raised" if type(e) is jinja2.exceptions.TemplateError else "error"
            probes.append({"template": template, "error": {"kind": kind, "type": type(e).__name__, "message": str(e)}})
    header = {
        "reference": f"transformers {importlib.metadata.version('transformers')}, Jinja2 {importlib.metadata.version('Jinja2')}: the chat template environment (chat_template_utils._compile_jinja_template(template).render(**context))",
        "now": NOW,
        "context": COMPAT_CONTEXT,
    }
    lines = ["{"]
    for key, value in header.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append('  "probes": [')
    for i, probe in enumerate(probes):
        comma = "," if i + 1 < len(probes) else ""
        lines.append("    " + json.dumps(probe, ensure_ascii=False) + comma)
    lines.append("  ]")
    lines.append("}")
    path = OUT / "python_compat.json"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    errors = sum("error" in p for p in probes)
    print(f"golden  {path} ({len(probes)} probes, {errors} fail)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/uma/models")
    parser.add_argument("--import-llama-cpp", type=Path, metavar="SRC",
                        help="first copy the selected templates from SRC/models/templates into the test data")
    parser.add_argument("names", nargs="*", help="only these goldens (default: all)")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    from tokenizer_corpus import import_transformers  # the torch-free GGUF tokenizer loader

    AutoTokenizer = import_transformers()
    freeze_clock()
    OUT.mkdir(parents=True, exist_ok=True)
    inputs_sha256 = write_inputs()
    if not args.names or "python_compat" in args.names:
        write_python_compat()

    if args.import_llama_cpp:
        TEMPLATES.mkdir(parents=True, exist_ok=True)
        for name in SPECIAL_TOKENS:
            shutil.copyfile(args.import_llama_cpp / "models/templates" / f"{name}.jinja", TEMPLATES / f"{name}.jinja")
        print(f"copied  {len(SPECIAL_TOKENS)} templates from {args.import_llama_cpp}", file=sys.stderr)

    wanted = set(args.names)
    for stem in GGUF_MODELS:
        name = f"gguf_{stem}"
        if wanted and name not in wanted:
            continue
        path = args.models_dir / f"{stem}.gguf"
        if not path.is_file():
            sys.exit(f"error: missing model {path} (run scripts/fetch-models.sh)")
        tokenizer = AutoTokenizer.from_pretrained(str(args.models_dir), gguf_file=path.name)
        if tokenizer.chat_template:
            template, source = tokenizer.chat_template, {"gguf": stem}
        else:
            template = GEMMA3_TEMPLATE.read_bytes().decode("utf-8")
            source = {"gguf": stem, "builtin": "scripts/golden/gemma3_chat_template.jinja"}
        write_golden(name, source, tokenizer.special_tokens_map, template, tokenizer, inputs_sha256)

    for name, special_tokens in SPECIAL_TOKENS.items():
        if wanted and name not in wanted:
            continue
        template = (TEMPLATES / f"{name}.jinja").read_bytes().decode("utf-8")  # keeps any \r
        source = {"file": f"templates/{name}.jinja"}
        write_golden(name, source, special_tokens, template, plain_tokenizer(special_tokens), inputs_sha256)


if __name__ == "__main__":
    main()
