"""Reference token ids and chat renderings from Hugging Face `transformers`, for uma's tokenizer tests.

For each GGUF model this writes (see make-tokenizer-golden.sh, which runs it in a pinned venv):

  crates/tokenizer/tests/golden/<stem>.json       token ids for the corpus below
  crates/tokenizer/tests/golden/chat_<stem>.json  chat templates rendered by apply_chat_template

The tokenizer is `AutoTokenizer.from_pretrained(dir, gguf_file=name)`: transformers reads the
GGUF metadata and builds its own tokenizer from it, independently of uma. Each case records:

  ids                   tokenizer(text, add_special_tokens=False)   (special tokens in the text ARE parsed)
  ids_with_special      tokenizer(text, add_special_tokens=True)    (BOS for Gemma)
  ids_split_special     tokenizer(text, add_special_tokens=False, split_special_tokens=True)
                        (special-token spellings stay text: uma's parse_special=false)
  decoded               tokenizer.decode(ids)
  decoded_skip_special  tokenizer.decode(ids, skip_special_tokens=True)

The corpus is deterministic (no randomness, no clock) so reruns write byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sys
import types
from pathlib import Path


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------

CODE = [
    # Python
    'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n',
    "import os\nimport sys\n\nfor root, dirs, files in os.walk('.'):\n\tprint(root, len(files))\n",
    "class Point:\n    __slots__ = ('x', 'y')\n\n    def __init__(self, x=0.0, y=0.0):\n        self.x, self.y = x, y\n",
    "x = [i ** 2 for i in range(10) if i % 2 == 0]  # squares of evens",
    "with open('data.json', encoding='utf-8') as f:\n    data = json.load(f)\n",
    "async def main():\n    await asyncio.gather(*(fetch(u) for u in urls))\n\nasyncio.run(main())",
    "lambda x, *args, **kwargs: {**kwargs, 'x': x}",
    "print(f\"{name!r:>10} = {value:08.3f}\")",
    "@dataclass(frozen=True)\nclass Config:\n    path: Path\n    retries: int = 3\n",
    "try:\n    pass\nexcept (ValueError, KeyError) as e:\n    raise RuntimeError('bad') from e\nfinally:\n    cleanup()",
    # Rust
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "impl<'a, T: Clone + Send + 'a> Iterator for Iter<'a, T> {\n    type Item = &'a T;\n}",
    "#[derive(Debug, Clone, PartialEq)]\npub struct TokenId(pub u32);",
    "match result {\n    Ok(value) => value,\n    Err(e) => return Err(e.into()),\n}",
    "let s = String::from(\"héllo\"); let r = &s[..]; unsafe { std::ptr::null::<u8>() };",
    "pub async fn handler(State(app): State<Arc<App>>) -> impl IntoResponse { todo!() }",
    "macro_rules! square { ($x:expr) => { $x * $x }; }",
    # C / C++
    "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    printf(\"Hello, %s!\\n\", argv[0]);\n    return 0;\n}\n",
    "for (size_t i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "template <typename T>\nstd::vector<T> reverse(const std::vector<T>& v) { return {v.rbegin(), v.rend()}; }",
    "#define MAX(a, b) ((a) > (b) ? (a) : (b))\nstatic inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }",
    "struct node { struct node *next; void *data; };\ntypedef struct node node_t;",
    # JavaScript / TypeScript
    "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);",
    "export default function App() {\n  const [count, setCount] = useState(0);\n  return <button onClick={() => setCount(count + 1)}>{count}</button>;\n}",
    "fetch('/api/v1/items?limit=10&offset=20').then(r => r.json()).catch(console.error);",
    "interface User { id: number; name?: string; tags: readonly string[] }",
    "if (x === null || typeof x === 'undefined') { x ??= {}; }",
    # Go
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tch := make(chan int, 10)\n\tgo func() { ch <- 42 }()\n\tfmt.Println(<-ch)\n}\n",
    "func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {\n\tif err != nil {\n\t\treturn\n\t}\n}",
    "type Stack[T any] struct{ items []T }",
    # SQL
    "SELECT u.id, u.name, COUNT(o.id) AS orders\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\nWHERE u.created_at >= '2024-01-01'\nGROUP BY u.id, u.name\nHAVING COUNT(o.id) > 5\nORDER BY orders DESC;",
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT '');",
    "INSERT INTO logs(level, msg) VALUES ('WARN', 'disk 95% full'), ('ERROR', 'oom');",
    # Shell
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}'\ndone\n",
    "find . -name '*.rs' -print0 | xargs -0 grep -n 'unwrap()' 2>/dev/null || true",
    "export PATH=\"$HOME/.cargo/bin:$PATH\" && cargo build --release -j$(nproc)",
    "cat <<'EOF' > /tmp/x\nline 1\nEOF",
    # HTML / CSS / XML / JSON / YAML / Markdown
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Test</title></head>\n<body><p class=\"x\">Hello &amp; goodbye</p></body>\n</html>",
    "<div id=\"main\" style=\"display:flex;gap:8px\">\n  <img src=\"a.png\" alt=\"\"/>\n</div>",
    ".btn:hover { color: #ff0000; margin: 0 auto !important; }",
    "<?xml version=\"1.0\"?><root><item key=\"a\">1</item></root>",
    "{\"name\": \"uma\", \"version\": \"0.1.0\", \"deps\": [\"tokenizers\", \"minijinja\"], \"ok\": true, \"n\": null}",
    "server:\n  host: 127.0.0.1\n  port: 8080\n  tls:\n    enabled: false\n",
    "# Title\n\n## Section\n\n- item one\n- item **two**\n\n```python\nprint('hi')\n```\n",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    # Others
    "public static void main(String[] args) { System.out.println(\"Hello\"); }",
    "SELECT * FROM t WHERE name LIKE '%o''brien%';",
    "(defun square (x) (* x x))",
    "main :: IO ()\nmain = putStrLn \"hello\"",
    "$x = @{ Name = 'a'; Value = 1 }; Write-Host $x.Name",
    "diff --git a/src/lib.rs b/src/lib.rs\n@@ -1,3 +1,4 @@\n-old line\n+new line\n context",
    "Traceback (most recent call last):\n  File \"<stdin>\", line 1, in <module>\nZeroDivisionError: division by zero",
    "regex: ^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@[a-z0-9-]+\\.[a-z]{2,}$",
]

WHITESPACE = [
    "", " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", " \n ", "\t \t",
    "a b", "a  b", "a   b", "a    b", "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\r\nb", "a \nb", "a\n b", "a \n b",
    " leading space", "  two leading spaces", "trailing space ", "trailing spaces   ", "  both  ",
    "\tleading tab", "trailing tab\t", "\nleading newline", "trailing newline\n", "trailing newlines\n\n\n",
    "line1\nline2\nline3", "line1\r\nline2\r\nline3\r\n", "mixed \t\n\r\n  whitespace \t ",
    "        eight spaces indent", "    x = 1\n        y = 2\n            z = 3",
    "word\u00a0nbsp", "ideographic\u3000space", "em\u2003space", "thin\u2009space", "line\u2028separator", "para\u2029separator",
    "\u000bvertical tab\u000c form feed", "  \n  \n  ", "\n \n \n", " " * 33, "\t" * 9, "\n" * 17, "x" + " " * 20 + "y",
]

NUMBERS = [
    "0", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
    "3.14159265358979323846", "-42", "+7", "1e10", "6.022e23", "0x1F", "0xDEADBEEF", "0b1010", "0o755",
    "1,234,567", "1.234.567,89", "$1,000.00", "€99.99", "50%", "3/4", "1:30", "2024-11-21", "13:45:07.123",
    "v1.2.3", "192.168.0.1", "::1", "+1 (555) 123-4567", "ISBN 978-3-16-148410-0", "phone: 020 7946 0958",
    "12345678901234567890123456789012345678901234567890", "000000000", "007", "1st 2nd 3rd 4th",
    "The year 1999 and 2000.", "pi≈3.14", "x²+y²=z²", "½ ¼ ¾", "Ⅻ Ⅳ", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "１２３４５",
]

PROSE = [
    "Hello world", "Hello, world!", "hello world", "HELLO WORLD", "Hello World.", "The quick brown fox jumps over the lazy dog.",
    "It's a dog's life, isn't it? We've been there; they'll see. I'm sure you'd agree.",
    "IT'S LOUD. DON'T SHOUT. WE'VE HEARD.", "rock 'n' roll", "'quoted' and \"double quoted\"",
    "O'Reilly's book", "y'all'd've", "can't won't shan't", "Hello...world!!! ?!?", "a-b_c.d/e\\f",
    "e.g. i.e. etc. Mr. Dr. St.", "C++ C# F# .NET Node.js", "user@example.com", "https://example.com/path?q=1&r=two#frag",
    "@mention #hashtag $cashtag", "CamelCaseWord snake_case_word kebab-case-word SCREAMING_CASE",
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
    "A.B.C. a.b.c. ...", "(parenthetical) [bracketed] {braced} <angled>", "***bold*** __under__ ~~strike~~",
    "--flag=value -v -abc", "<<<>>> ==> <== != === !==", "~`!@#$%^&*()_+-={}[]|\\:;\"'<>,.?/",
]

UNICODE = [
    "café naïve résumé façade coöperate", "Crème brûlée à la française", "Ångström Øresund Æsir",
    "Straße groß ÄÖÜ äöü", "ñandú pingüino ¿Qué? ¡Hola!", "Zażółć gęślą jaźń", "Příliš žluťoučký kůň",
    "Türkçe: ığüşöç İĞÜŞÖÇ", "Ελληνικά: Καλημέρα κόσμε", "Русский: Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Українська: Ґанок їжак є", "Српски: Ђурђевдан љубав њива", "ქართული ენა", "Հայերեն լեզու",
    "العربية: مرحبا بالعالم", "فارسی: سلام دنیا", "עברית: שלום עולם", "اردو: ہیلو دنیا",
    "हिन्दी: नमस्ते दुनिया", "বাংলা: ওহে বিশ্ব", "தமிழ்: வணக்கம் உலகம்", "తెలుగు: హలో ప్రపంచం", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ",
    "ไทย: สวัสดีชาวโลก", "ລາວ", "ភាសាខ្មែរ", "မြန်မာဘာသာ", "Tiếng Việt: Xin chào thế giới", "አማርኛ", "ᐃᓄᒃᑎᑐᑦ", "ᚠᚢᚦᚨᚱᚲ",
    # combining marks and normalization forms (NFD vs NFC must not be merged)
    "e\u0301 vs \u00e9", "A\u030a vs \u00c5", "n\u0303 and \u00f1", "Z\u0351\u0353\u0354a\u0352\u0350l\u0337g\u0334o\u0338",
    "\u1100\u1161\u11a8 vs \uac01", "ﬁ ﬂ ﬀ ligatures", "Ｆｕｌｌｗｉｄｔｈ", "ℌ𝔢𝔩𝔩𝔬 𝕎𝕠𝕣𝕝𝕕 𝐁𝐨𝐥𝐝", "Ⓐⓑⓒ ①②③",
    # zero-width and bidi controls
    "zero\u200bwidth\u200bspace", "zero\u200cnon\u200djoiner", "word\u2060joiner", "\ufeffBOM at start",
    "soft\u00adhyphen", "rtl \u202eoverride\u202c end", "\u200e\u200fmarks", "a\u034fb",
    # rare scripts that force SentencePiece byte fallback
    "𐀀𐀁𐀂 Linear B", "𒀀𒀁 cuneiform", "𓀀𓀁 hieroglyphs", "𠜎𠜱𠝹𠱓 CJK extension B", "𝄞 musical", "\U0001f9ff\U0001fae0",
    "\ue000 private use \U000f0000", "\ufffd replacement char", "\u0000 nul \u0001 soh \u007f del",
]

CJK = [
    "中文", "你好，世界！", "我爱自然语言处理。", "人工智能正在改变世界，大型语言模型是其中的关键技术之一。",
    "日本語のテキスト：こんにちは世界", "カタカナとひらがなと漢字", "ｶﾀｶﾅ半角", "한국어: 안녕하세요 세계",
    "繁體中文：臺灣的傳統字", "中英混合 mixed text 和数字123", "「引用」『二重』【括弧】", "全角，标点。符号！？",
    "数学：∑∫∂√∞≠≤≥", "一二三四五六七八九十百千万亿", "龘靐齉齾", "中" * 40,
    "def 函数(参数):\n    return 参数 * 2  # 注释", "東京都渋谷区", "北京市海淀区中关村大街1号",
]

EMOJI = [
    "😀", "😀😃😄😁", "Hello 👋 world 🌍!", "👍🏽 👍🏿", "❤️ ♥ ❤", "👨‍👩‍👧‍👦 family", "👩🏽‍💻 technologist",
    "🏳️‍🌈 flag", "🏴‍☠️ pirate", "🇺🇸🇬🇧🇯🇵🇩🇪🇫🇷", "🇺🇳", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 scotland", "1️⃣ 2️⃣ #️⃣", "☺︎ ☺️",
    "🧑‍🤝‍🧑", "🫠🫨🪿", "emoji at end 🚀", "🚀 emoji at start", "🔥" * 10, "✅ done ❌ failed ⚠️ warn",
    "(╯°□°)╯︵ ┻━┻", "¯\\_(ツ)_/¯", "ಠ_ಠ", "♔♕♖♗♘♙ ♠♣♥♦", "→ ← ↑ ↓ ⇒ ⇔", "• · … – — ‘ ’ “ ” «»",
]

# Spellings of special tokens in plain text. With special parsing (HF's default) a real special
# token becomes its id; without it, the text must stay text.
SPECIAL_LOOKALIKES = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>", "text<|endoftext|>more text", "<|im_start|><|im_end|>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>", "<|repo_name|>uma<|file_sep|>src/lib.rs",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "<|object_ref_start|>x<|object_ref_end|>", "<|vision_start|><|image_pad|><|vision_end|>",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<start_of_turn>", "<end_of_turn>",
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<bos>Hello", "Hello<eos>", "<bos><bos>", "a<bos>b<eos>c",
    "<start_of_image>", "<unused0>", "<unused99>", "[multimodal]",
    "<0x41>", "<0x0A>", "<0xE4><0xB8><0xAD>", "<0x>", "<s>", "</s>", "[PAD151665]", "[INST] hi [/INST]",
    "<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>user<|end_header_id|>",
    "< |im_start| >", "<|im_start", "im_start|>", "<|IM_START|>", "<<|im_start|>>", "<|im_start|><|im_start|>",
    " <|im_start|> ", "\n<|im_end|>\n", "<start_of_turn >", "<start_of_turn><end_of_turn>", "<bos >", " <bos>",
    "<|endoftext|><|endoftext|><|endoftext|>", "▁", "▁▁hello", "▁ ▁", "Ġhello", "Ċ", "ĠĠ",
]


def generated() -> list[str]:
    """Systematic cases: digit runs of every length, repeated punctuation, long words."""
    out = []
    out += ["".join(str((i * 7 + 3) % 10) for i in range(n)) for n in range(1, 25)]
    out += [" " + "9" * n for n in (1, 2, 3, 4, 5, 6, 7)]
    out += ["a" * n for n in (1, 2, 3, 5, 8, 16, 64)]
    out += ["=" * 80, "-" * 40, "#" * 20, "." * 30, "_" * 25, "*" * 12, "/" * 10, "!" * 7, "?!" * 9]
    out += ["ab" * 100, "abc " * 50, "Hello world! " * 20]
    out += ["x" * 1000, "antidisestablishmentarianism" * 20, "very" + "long" * 200 + "word"]
    out += ["\n".join(f"{i}: item {i * i}" for i in range(30))]
    out += [" ".join(PROSE[i % len(PROSE)] for i in range(12))]
    return out


def corpus() -> list[str]:
    cases = CODE + WHITESPACE + NUMBERS + PROSE + UNICODE + CJK + EMOJI + SPECIAL_LOOKALIKES + generated()
    seen, unique = set(), []
    for text in cases:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


# --------------------------------------------------------------------------------------------
# Chat conversations
# --------------------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_code",
        "description": "Search the repository <root> for a pattern & return matches.",
        "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "max_results": {"type": "integer", "default": 10}}, "required": ["pattern"]},
    },
}


def qwen_chats() -> list[dict]:
    system = {"role": "system", "content": "You are a careful coding assistant."}
    user = {"role": "user", "content": "Write a function that reverses a string in Rust."}
    assistant = {"role": "assistant", "content": "```rust\nfn reverse(s: &str) -> String {\n    s.chars().rev().collect()\n}\n```"}
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}],
    }
    two_calls = {
        "role": "assistant",
        "content": "Let me check both.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call_2", "type": "function", "function": {"name": "search_code", "arguments": {"pattern": "fn main", "max_results": 3}}},
        ],
    }
    result = {"role": "tool", "content": "{\"temperature\": 21, \"condition\": \"sunny\"}", "tool_call_id": "call_1", "name": "get_weather"}
    result2 = {"role": "tool", "content": "src/main.rs:1: fn main() {", "tool_call_id": "call_2", "name": "search_code"}
    return [
        {"messages": [user], "tools": None, "add_generation_prompt": True},
        {"messages": [user], "tools": None, "add_generation_prompt": False},
        {"messages": [system, user], "tools": None, "add_generation_prompt": True},
        {"messages": [system, user, assistant], "tools": None, "add_generation_prompt": False},
        {"messages": [system, user, assistant, {"role": "user", "content": "Now in Python, please. 谢谢 🙏"}], "tools": None, "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "  spaces and\n\nnewlines  "}], "tools": None, "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "What's the weather in Zürich?"}], "tools": [WEATHER_TOOL], "add_generation_prompt": True},
        {"messages": [system, {"role": "user", "content": "Weather in Zürich?"}], "tools": [WEATHER_TOOL, SEARCH_TOOL], "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "Weather in Zürich?"}, call, {"role": "tool", "content": "21 degrees, sunny", "tool_call_id": "call_0", "name": "get_weather"}], "tools": [WEATHER_TOOL], "add_generation_prompt": True},
        {"messages": [system, {"role": "user", "content": "Paris weather and find main"}, two_calls, result, result2, {"role": "assistant", "content": "It is 21 degrees and sunny; main is in src/main.rs."}], "tools": [WEATHER_TOOL, SEARCH_TOOL], "add_generation_prompt": False},
        {"messages": [{"role": "user", "content": "hi"}, two_calls, result, result2], "tools": None, "add_generation_prompt": True},
    ]


def gemma_chats() -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": "Hello!"}], "tools": None, "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "Hello!"}], "tools": None, "add_generation_prompt": False},
        {"messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "What is the capital of Italy?"}], "tools": None, "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "  Tell me a joke.  \n"}, {"role": "assistant", "content": " Why did the chicken cross the road? "}, {"role": "user", "content": "Why? 🐔"}], "tools": None, "add_generation_prompt": True},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}], "tools": None, "add_generation_prompt": False},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": " part one "}, {"type": "text", "text": "part two"}]}], "tools": None, "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "中文问题：今天天气怎么样？"}], "tools": None, "add_generation_prompt": True},
    ]


# --------------------------------------------------------------------------------------------
# Reference generation
# --------------------------------------------------------------------------------------------

def import_transformers():
    """Import transformers for tokenizer-only use.

    transformers 5.x reads GGUF metadata with a module that does `import torch` at the top (for
    tensor dtypes it never uses when only the tokenizer is loaded), and gates GGUF loading on
    `is_torch_available()`. Installing torch (gigabytes of CUDA wheels) only for that is not
    worth it, so a placeholder `torch` module is registered and the gate is opened. The tokenizer
    is still built entirely by transformers' own code; nothing here touches tokenization.
    """
    import transformers  # noqa: F401  (must be imported before the placeholder exists)

    class _TorchPlaceholder(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})

    sys.modules.setdefault("torch", _TorchPlaceholder("torch"))
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_utils.is_torch_available = lambda: True
    from transformers import AutoTokenizer

    return AutoTokenizer


def tokenizer_fingerprint(path: Path) -> str:
    """sha256 over the vocabulary metadata (everything under `tokenizer.` but the chat template),
    to tell whether two files share a tokenizer."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    digest = hashlib.sha256()
    for key in sorted(k for k in reader.fields if k.startswith("tokenizer.") and k != "tokenizer.chat_template"):
        digest.update(key.encode())
        digest.update(repr(reader.fields[key].contents()).encode())
    return digest.hexdigest()


def write_json(path: Path, header: dict, cases: list[dict]) -> None:
    """One case per line: diffs of regenerated files stay readable."""
    lines = ["{"]
    for key, value in header.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append('  "cases": [')
    for i, case in enumerate(cases):
        comma = "," if i + 1 < len(cases) else ""
        lines.append("    " + json.dumps(case, ensure_ascii=False) + comma)
    lines.append("  ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gemma-template", type=Path, required=True, help="the official Gemma 3 chat template")
    parser.add_argument("models", nargs="+", help="GGUF file stems: first the models to write goldens for")
    parser.add_argument("--same-tokenizer-as", action="append", default=[], metavar="STEM=OTHER",
                        help="check that OTHER's tokenizer metadata is identical to STEM's and record it")
    args = parser.parse_args()

    AutoTokenizer = import_transformers()
    reference = (
        f"transformers {importlib.metadata.version('transformers')}, "
        f"tokenizers {importlib.metadata.version('tokenizers')}, gguf {importlib.metadata.version('gguf')}"
    )
    texts = corpus()
    print(f"corpus  {len(texts)} strings", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    gemma_template = args.gemma_template.read_text(encoding="utf-8")

    same = {}
    for spec in args.same_tokenizer_as:
        stem, other = spec.split("=", 1)
        a = tokenizer_fingerprint(args.models_dir / f"{stem}.gguf")
        b = tokenizer_fingerprint(args.models_dir / f"{other}.gguf")
        if a != b:
            sys.exit(f"error: {other} does not share {stem}'s tokenizer metadata")
        print(f"same    {other} has the tokenizer of {stem} (sha256 {a[:16]})", file=sys.stderr)
        same.setdefault(stem, []).append(other)

    for stem in args.models:
        tokenizer = AutoTokenizer.from_pretrained(str(args.models_dir), gguf_file=f"{stem}.gguf")
        write_token_golden(args.out, stem, tokenizer, texts, reference, same.get(stem, []))
        write_chat_golden(args.out, stem, tokenizer, reference, gemma_template)
        for other in same.get(stem, []):
            # Same vocabulary, but the chat template may differ: render the other file's own.
            other_tokenizer = AutoTokenizer.from_pretrained(str(args.models_dir), gguf_file=f"{other}.gguf")
            write_chat_golden(args.out, other, other_tokenizer, reference, gemma_template)


def write_token_golden(out: Path, stem: str, tokenizer, texts: list[str], reference: str, same: list[str]) -> None:
    cases = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": text,
                "ids": ids,
                "ids_with_special": tokenizer(text, add_special_tokens=True)["input_ids"],
                "ids_split_special": tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"],
                "decoded": tokenizer.decode(ids),
                "decoded_skip_special": tokenizer.decode(ids, skip_special_tokens=True),
            }
        )
    header = {
        "model": stem,
        "reference": reference,
        "tokenizer_class": type(tokenizer).__name__,
        "same_tokenizer": same,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    write_json(out / f"{stem}.json", header, cases)
    print(f"golden  {out / f'{stem}.json'} ({len(cases)} cases)", file=sys.stderr)


def write_chat_golden(out: Path, stem: str, tokenizer, reference: str, gemma_template: str) -> None:
    is_gemma = "gemma" in stem
    template = gemma_template if is_gemma else None
    chats = gemma_chats() if is_gemma else qwen_chats()
    chat_cases = []
    for chat in chats:
        text = tokenizer.apply_chat_template(
            chat["messages"],
            tools=chat["tools"],
            add_generation_prompt=chat["add_generation_prompt"],
            chat_template=template,
            tokenize=False,
        )
        chat_cases.append({**chat, "text": text})
    chat_header = {
        "model": stem,
        "reference": reference,
        "template": "official Gemma 3 template (scripts/golden/gemma3_chat_template.jinja)" if is_gemma else "tokenizer.chat_template of the GGUF file",
    }
    write_json(out / f"chat_{stem}.json", chat_header, chat_cases)
    print(f"golden  {out / f'chat_{stem}.json'} ({len(chat_cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
