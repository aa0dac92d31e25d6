"""The published measurements (crates/planner/data/published_measurements.csv) as the speed model
sees them: which rows it can predict, the model and machine of each, the test as a decode position
or a prefill of N tokens at a depth, and the speed model's formula (the same as
crates/planner/src/speed_estimate.rs with the parameters of speed_model.rs; `validate-published.py`
checks that both agree).

Shared by `fit-speed-model.py` and `validate-published.py`; not a command.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "crates", "planner", "data")
MEASUREMENTS = os.path.join(DATA, "published_measurements.csv")
CATALOGUE = os.path.join(DATA, "machines.toml")
REFERENCE = os.path.join(DATA, "reference_machines.toml")
SPEED_MODEL = os.path.join(DATA, "speed_model.toml")

# --- Models ------------------------------------------------------------------------------------
# Hyper-parameters from each model's published config.json (Hugging Face); `params` is the total
# parameter count of the language model. `bpw` overrides the quantization's bits per weight where
# one average cannot describe the file (see gpt-oss).

LLAMA_7B = dict(params="6.74B", layers=32, hidden=4096, heads=32, kv_heads=32, vocab=32000, ffn=11008)
LLAMA_13B = dict(params="13.02B", layers=40, hidden=5120, heads=40, kv_heads=40, vocab=32000, ffn=13824)
LLAMA_30B = dict(params="32.53B", layers=60, hidden=6656, heads=52, kv_heads=52, vocab=32000, ffn=17920)
LLAMA_65B = dict(params="65.29B", layers=80, hidden=8192, heads=64, kv_heads=64, vocab=32000, ffn=22016)
LLAMA2_70B = dict(params="68.98B", layers=80, hidden=8192, heads=64, kv_heads=8, vocab=32000, ffn=28672)
LLAMA3_8B = dict(params="8.03B", layers=32, hidden=4096, heads=32, kv_heads=8, vocab=128256, ffn=14336)
LLAMA3_70B = dict(params="70.55B", layers=80, hidden=8192, heads=64, kv_heads=8, vocab=128256, ffn=28672)
LLAMA32_3B = dict(params="3.21B", layers=28, hidden=3072, heads=24, kv_heads=8, head_dim=128, vocab=128256,
                  ffn=8192, tied=True)
LLAMA32_1B = dict(params="1.24B", layers=16, hidden=2048, heads=32, kv_heads=8, head_dim=64, vocab=128256,
                  ffn=8192, tied=True)
LLAMA31_405B = dict(params="405.85B", layers=126, hidden=16384, heads=128, kv_heads=8, vocab=128256, ffn=53248)
TINYLLAMA = dict(params="1.10B", layers=22, hidden=2048, heads=32, kv_heads=4, vocab=32000, ffn=5632)
MISTRAL_7B = dict(params="7.24B", layers=32, hidden=4096, heads=32, kv_heads=8, vocab=32000, ffn=14336)
MISTRAL_LARGE = dict(params="122.61B", layers=88, hidden=12288, heads=96, kv_heads=8, head_dim=128, vocab=32768,
                     ffn=28672)
QWEN25_1_5B = dict(params="1.54B", layers=28, hidden=1536, heads=12, kv_heads=2, vocab=151936, ffn=8960, tied=True)
QWEN25_7B = dict(params="7.62B", layers=28, hidden=3584, heads=28, kv_heads=4, vocab=152064, ffn=18944)
QWEN25_14B = dict(params="14.77B", layers=48, hidden=5120, heads=40, kv_heads=8, vocab=152064, ffn=13824)
QWEN25_32B = dict(params="32.76B", layers=64, hidden=5120, heads=40, kv_heads=8, vocab=152064, ffn=27648)
QWEN25_72B = dict(params="72.71B", layers=80, hidden=8192, heads=64, kv_heads=8, vocab=152064, ffn=29568)
QWEN3_0_6B = dict(params="0.60B", layers=28, hidden=1024, heads=16, kv_heads=8, head_dim=128, vocab=151936,
                  ffn=3072, tied=True)
QWEN3_4B = dict(params="4.02B", layers=36, hidden=2560, heads=32, kv_heads=8, head_dim=128, vocab=151936,
                ffn=9728, tied=True)
QWEN3_8B = dict(params="8.19B", layers=36, hidden=4096, heads=32, kv_heads=8, head_dim=128, vocab=151936,
                ffn=12288)
QWEN3_30B_A3B = dict(params="30.53B", layers=48, hidden=2048, heads=32, kv_heads=4, head_dim=128, vocab=151936,
                     ffn=768, experts=128, active_experts=8)
# Gemma 3: five local layers (sliding window) to one global, the 6th, 12th, ... global.
GEMMA3_1B = dict(params="1.00B", layers=26, hidden=1152, heads=4, kv_heads=1, head_dim=256, vocab=262144,
                 ffn=6912, tied=True, sliding_window=512, sliding_layers=22)
GEMMA3_4B = dict(params="3.88B", layers=34, hidden=2560, heads=8, kv_heads=4, head_dim=256, vocab=262208,
                 ffn=10240, tied=True, sliding_window=1024, sliding_layers=29)
PHI4_MINI = dict(params="3.84B", layers=32, hidden=3072, heads=24, kv_heads=8, head_dim=128, vocab=200064,
                 ffn=8192, tied=True)
# gpt-oss: the experts are MXFP4 (4.25 bits per weight), everything else 8-bit (Q8_0 in the GGUF,
# 8-bit affine in MLX: 8.5 bits); one average cannot hold both, so `bpw` is the average of what a
# token reads: 20b: 2.389 G expert weights at 4.25 + 1.218 G others at 8.5 = 5.68 bits per active
# weight; 120b: 3.583 G at 4.25 + 1.537 G at 8.5 = 5.53. The planner's memory for these
# descriptions is therefore too high (every weight at that average); the speed is what is tested.
# Every other layer attends to a 128-token window.
GPT_OSS_20B = dict(params="20.91B", layers=24, hidden=2880, heads=64, kv_heads=8, head_dim=64, vocab=201088,
                   ffn=2880, experts=32, active_experts=4, bpw=5.68, file_bpw=4.63, sliding_window=128,
                   sliding_layers=12)
GPT_OSS_120B = dict(params="116.83B", layers=36, hidden=2880, heads=64, kv_heads=8, head_dim=64, vocab=201088,
                    ffn=2880, experts=128, active_experts=4, bpw=5.53, file_bpw=4.34, sliding_window=128,
                    sliding_layers=18)

MODELS = {
    "LLaMA 7B": LLAMA_7B, "LLaMA 7B (v2)": LLAMA_7B, "Llama 2 7B": LLAMA_7B,
    "LLaMA 13B": LLAMA_13B, "Llama 2 13B": LLAMA_13B,
    "LLaMA 30B": LLAMA_30B, "LLaMA 65B": LLAMA_65B, "Llama 2 70B": LLAMA2_70B,
    "Llama 3 8B": LLAMA3_8B, "Llama 3.1 8B": LLAMA3_8B, "Llama-3.1-8B-Instruct": LLAMA3_8B,
    "Llama 3 70B": LLAMA3_70B, "Llama 3.3 70B Instruct": LLAMA3_70B, "DeepSeek-R1 70B (distill)": LLAMA3_70B,
    "Llama 3.2 3B Instruct": LLAMA32_3B, "Llama-3.2-3B-Instruct": LLAMA32_3B,
    "Llama-3.2-1B-Instruct": LLAMA32_1B, "Hermes 3 405B": LLAMA31_405B,
    "TinyLlama 1.1B (1t-openorca)": TINYLLAMA, "Mistral 7B": MISTRAL_7B, "mistral-large 123B": MISTRAL_LARGE,
    "Qwen2.5-1.5B-Instruct": QWEN25_1_5B,
    "Qwen2.5 7B": QWEN25_7B, "Qwen2.5-7B-Instruct": QWEN25_7B, "Qwen2.5-Coder-7B": QWEN25_7B,
    "Qwen2.5 14B": QWEN25_14B, "Qwen2.5-14B-Instruct": QWEN25_14B, "DeepSeek-R1 14B (distill)": QWEN25_14B,
    "Qwen2.5 32B": QWEN25_32B, "Qwen2.5-32B-Instruct": QWEN25_32B, "DeepSeek-R1 32B (distill)": QWEN25_32B,
    "Qwen2.5 72B": QWEN25_72B, "Qwen2.5 70B": QWEN25_72B, "Qwen2.5-72B-Instruct": QWEN25_72B,
    "Qwen3-0.6B": QWEN3_0_6B, "Qwen3-4B-Instruct-2507": QWEN3_4B, "Qwen3-8B": QWEN3_8B,
    "Qwen3-30B-A3B": QWEN3_30B_A3B, "Qwen3-Coder-30B-A3B-Instruct": QWEN3_30B_A3B,
    "gemma-3-1b-it": GEMMA3_1B, "gemma-3-4b-it-qat": GEMMA3_4B, "Phi-4-mini": PHI4_MINI,
    "gpt-oss-20b": GPT_OSS_20B, "gpt-oss-120b": GPT_OSS_120B,
}

# Quantization as the source names it -> (`uma plan --quant` name, or bits per weight). MLX's
# affine quantization stores an f16 scale and bias per group of 64: 4 + 32/64 = 4.5 bits.
QUANTS = {
    "F16": "f16", "Q8_0": "q8_0", "Q4_0": "q4_0", "Q4_K_M": "q4_k_m",
    "4bit (GGUF)": "q4_k_m",  # Ollama's and LM Studio's default 4-bit GGUF
    "4bit": 4.5, "8bit": 8.5, "6bit": 6.5,
    "MXFP4": None, "MXFP4-Q8": None,  # gpt-oss: the model's own `bpw`
}

# --- Engines -----------------------------------------------------------------------------------


def engine_of(row: dict) -> str | None:
    engine, backend = row["engine"], row["backend"]
    if engine in ("llama.cpp", "Ollama", "LM Studio") and backend == "metal":
        return "llama.cpp-metal"  # Ollama and LM Studio's GGUF runtime are llama.cpp
    if engine == "llama.cpp" and backend in ("cuda", "vulkan"):
        return f"llama.cpp-{backend}"
    if engine in ("mlx-lm", "rapid-mlx") or (engine == "LM Studio" and backend == "mlx"):
        return "mlx"  # rapid-mlx and LM Studio's MLX runtime are built on mlx-lm
    return None


# --- Machines ----------------------------------------------------------------------------------

# Apple chip and GPU cores -> machine (catalogue or reference file).
APPLE = {
    ("M1", 7): "apple-m1-7c", ("M1", 8): "apple-m1-8c",
    ("M1 Pro", 14): "apple-m1-pro-14c", ("M1 Pro", 16): "apple-m1-pro-16c",
    ("M1 Max", 24): "apple-m1-max-24c", ("M1 Max", 32): "apple-m1-max-32c",
    ("M1 Ultra", 48): "apple-m1-ultra-48c", ("M1 Ultra", 64): "apple-m1-ultra-64c",
    ("M2", 8): "apple-m2-8c", ("M2", 10): "apple-m2-10c",
    ("M2 Pro", 16): "apple-m2-pro-16c", ("M2 Pro", 19): "apple-m2-pro-19c",
    ("M2 Max", 30): "apple-m2-max-30c", ("M2 Max", 38): "apple-m2-max-38c",
    ("M2 Ultra", 60): "apple-m2-ultra-60c", ("M2 Ultra", 76): "apple-m2-ultra-76c",
    ("M3", 10): "apple-m3-10c",
    ("M3 Pro", 14): "apple-m3-pro-14c", ("M3 Pro", 18): "apple-m3-pro-18c",
    ("M3 Max", 30): "apple-m3-max-30c", ("M3 Max", 40): "apple-m3-max-40c",
    ("M3 Ultra", 60): "mac-studio-m3-ultra-96gb", ("M3 Ultra", 80): "mac-studio-m3-ultra-512gb",
    ("M4", 10): "mac-mini-m4-16gb",
    ("M4 Pro", 16): "apple-m4-pro-16c", ("M4 Pro", 20): "mac-mini-m4-pro-24gb",
    ("M4 Max", 32): "mac-studio-m4-max-36gb", ("M4 Max", 40): "mac-studio-m4-max-128gb",
    ("M5 Max", 40): "macbook-pro-m5-max-128gb",
}
# Chips whose variants differ only in GPU cores (same bandwidth): a row that does not give the
# cores is kept for decode (bandwidth bound) with the smaller variant, dropped for prefill.
SAME_BANDWIDTH = {"M1": 7, "M1 Pro": 14, "M1 Max": 24, "M1 Ultra": 48, "M2": 8, "M2 Pro": 16, "M2 Max": 30,
                  "M2 Ultra": 60, "M3 Pro": 14, "M3 Ultra": 60, "M4 Pro": 16}
# Cores a source does not state but its configuration implies (a memory size sold with one GPU).
IMPLIED_CORES = [
    (r"M4 Max 36GB", 32),       # 36 GB only with the 32-core GPU
    (r"M4 Max 128GB", 40),      # 128 GB only with the 40-core GPU
    (r"M3 Ultra 512GB", 80),    # 512 GB only with the 80-core GPU
    (r"M3 Ultra 256GB", None),  # both
]

NVIDIA = [  # (pattern on the machine column, machine); first match wins
    (r"^RTX 3060", "rtx-3060"), (r"^RTX 3070", "rtx-3070"), (r"^RTX 3080 Ti", "rtx-3080-ti"),
    (r"^RTX 3080", "rtx-3080"), (r"^RTX 3090", "rtx-3090"), (r"^RTX A6000", "rtx-a6000"),
    (r"^A100 80GB", "a100-80gb"),  # PCIe (1,935 GB/s) or SXM (2,039) not stated: the catalogue's SXM
    (r"^H100 PCIe", "h100-pcie-80gb"),
    (r"^RTX 4070 Ti", "rtx-4070-ti"), (r"^RTX 4080 SUPER", "rtx-4080-super"), (r"^RTX 4080", "rtx-4080"),
    (r"^RTX 4090", "rtx-4090"), (r"^RTX 4000 Ada", "rtx-4000-ada"), (r"^RTX 5000 Ada", "rtx-5000-ada"),
    (r"^RTX 6000 Ada", "rtx-6000-ada"), (r"^RTX 5060 Ti", "rtx-5060-ti"), (r"^RTX 5070 Ti", "rtx-5070-ti"),
    (r"^RTX 5080", "rtx-5080"), (r"^RTX 5090", "rtx-5090"), (r"^RTX PRO 6000 Max-Q", "rtx-pro-6000-max-q"),
    (r"^RTX PRO 6000", "rtx-pro-6000"), (r"DGX Spark", "dgx-spark"),
    (r"^RX 7900 XTX", "rx-7900-xtx"), (r"^RX 9070 XT", "rx-9070-xt"), (r"^RX 9070", "rx-9070"),
    (r"^Radeon AI PRO R9700", "radeon-ai-pro-r9700"), (r"^Arc A770", "arc-a770"), (r"^Arc B580", "arc-b580"),
]


def machine_of(row: dict, kind: str) -> tuple[str | None, str]:
    """The machine of a row, or None and why not."""
    name = row["machine"]
    if re.match(r"^\d+x ", name):
        return None, "several GPUs or machines"
    if name.startswith("H100 80GB"):
        return None, "H100 variant (PCIe or SXM) not stated"
    for pattern, machine in NVIDIA:
        if re.search(pattern, name):
            return machine, ""
    chip = row["chip"]
    if not chip.startswith("M"):
        return None, f"no machine profile for {name}"
    cores = int(float(row["gpu_cores"])) if row["gpu_cores"] else None
    if cores is None:
        for pattern, implied in IMPLIED_CORES:
            if re.search(pattern, name):
                cores = implied
                break
    if cores is None and "gg-studio" in name:
        # The llama.cpp maintainers' bench machine: the M2 Ultra 76-core 192 GB its owner uses in
        # ggml-org/llama.cpp discussion #4167 (not stated in this source).
        cores = 76
    if cores is None:
        if chip in SAME_BANDWIDTH and kind == "decode":
            cores = SAME_BANDWIDTH[chip]
        else:
            return None, "GPU cores not stated (they set the compute, or the bandwidth)"
    machine = APPLE.get((chip, cores))
    if machine is None:
        return None, f"no machine profile for {chip} {cores}-core"
    return machine, ""


def load_machines() -> dict:
    machines = {}
    for path in (CATALOGUE, REFERENCE):
        with open(path, "rb") as f:
            for m in tomllib.load(f)["machine"]:
                machines[m["name"]] = m
    return machines


# --- Tests -------------------------------------------------------------------------------------


def tokens(text: str) -> int:
    """`21K` -> 21000, `4096` -> 4096."""
    text = text.strip()
    return int(float(text[:-1]) * 1000) if text.upper().endswith("K") else int(float(text))


@dataclass
class Test:
    kind: str          # "decode" or "prefill"
    position: int = 0  # decode: position of the average generated token
    prompt: int = 0    # prefill: tokens
    depth: int = 0     # prefill: tokens already in the context
    ubatch: int = 512  # prefill: tokens per step


def test_of(row: dict, engine: str) -> tuple[Test | None, str]:
    """The test of a row as a decode position or a prefill, or None and why not."""
    test, note = row["test"], row["source_note"]
    context = tokens(row["context"]) if row["context"] else None
    ubatch = 2048 if ("n_ubatch 2048" in note or engine == "mlx") else 512
    if m := re.fullmatch(r"tg(\d+)(?: @ d(\d+))?", test):
        generated, depth = int(m[1]), int(m[2] or 0)
        return Test("decode", position=depth + generated // 2), ""
    if m := re.fullmatch(r"pp(\d+)(?: @ d(\d+))?", test):
        return Test("prefill", prompt=int(m[1]), depth=int(m[2] or 0), ubatch=ubatch), ""
    if "+" in test:
        return None, "prefill and decode timed together"
    if "'Pre'" in note:
        return None, "the source's before-the-change run (its after-run is kept)"
    if m := re.fullmatch(r"(?:pp|prefill \()?(\d+)(?:-token chunk\))? ?\(?pp TPS\)?", test):
        return Test("prefill", prompt=int(m[1]), ubatch=ubatch), ""
    if m := re.fullmatch(r"tg(\d+) after pp(\d+) \(tg TPS\)", test):
        return Test("decode", position=int(m[2]) + int(m[1]) // 2), ""
    if test.startswith("decode (short"):
        return Test("decode", position=512 + 64), ""   # prompt 512, 128 generated
    if test.startswith("decode (long"):
        return Test("decode", position=2048 + 256), ""  # prompt 2048, 512 generated
    if test == "prefill (short)":
        return Test("prefill", prompt=512, ubatch=ubatch), ""
    if test == "prefill (long)":
        return Test("prefill", prompt=2048, ubatch=ubatch), ""
    if m := re.fullmatch(r"generation \((\d+) output tokens\)", test):
        return Test("decode", position=int(m[1]) // 2), ""
    if test == "prompt":
        if context is None:
            # XiongjieDai's LLaMA / LLaMA 2 tables give no prompt length: taken as llama-bench's
            # default pp512, which their values match (see docs/planner.md).
            return Test("prefill", prompt=512, ubatch=ubatch), ""
        if context < 256:
            return None, "prompt under 256 tokens (latency, not throughput)"
        return Test("prefill", prompt=context, ubatch=ubatch), ""
    if test == "generation":
        if "mlx_lm.benchmark -p 2048 -g 128" in note:
            return Test("decode", position=2048 + 64), ""
        if context is not None and "generated tokens" in note:
            return Test("decode", position=context // 2), ""
        if context is not None:
            return Test("decode", position=context + 128), ""  # after the prompt
        # No context given: a short prompt and a few hundred tokens (XiongjieDai: tg128-like).
        return Test("decode", position=64 if "XiongjieDai" in row["source_url"] else 256), ""
    return None, f"test {test!r} not understood"


# --- Rows --------------------------------------------------------------------------------------


@dataclass
class Row:
    line: int          # line in the CSV (the header is line 1)
    data: dict
    engine: str
    machine: str
    family: str
    machine_kind: str
    model: str
    quant: str
    test: Test
    measured: float
    era: str           # "current", or the year of an older engine build (see `era_of`)
    spec: dict = field(default_factory=dict)  # the planner's model (from `uma plan --json`)


def load_rows(machines: dict) -> tuple[list[Row], list[tuple[int, dict, str]]]:
    """Rows the speed model predicts, and (line, row, reason) for the others."""
    kept, dropped = [], []
    with open(MEASUREMENTS, encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            def drop(reason):
                dropped.append((line, row, reason))
            engine = engine_of(row)
            if engine is None:
                drop(f"engine {row['engine']} ({row['backend']}) not modelled")
                continue
            if row["model"] not in MODELS:
                drop(f"model {row['model']} not described")
                continue
            quant = row["quantization"]
            if quant not in QUANTS:
                drop(f"quantization {quant!r} not described")
                continue
            test, why = test_of(row, engine)
            if test is None:
                drop(why)
                continue
            machine, why = machine_of(row, test.kind)
            if machine is None:
                drop(why)
                continue
            profile = machines[machine]
            kept.append(Row(line, row, engine, machine, profile["family"], profile["kind"], row["model"], quant,
                            test, float(row["tokens_per_s"]), era_of(row)))
    return kept, dropped


def era_of(row: dict) -> str:
    """Engines get faster: llama.cpp's prompt processing on CUDA doubled between the end of 2023
    and 2025 (RTX 4090, LLaMA 2 7B Q4_0 pp512: 5,531 tok/s in XiongjieDai's December 2023 table,
    11,993 on the 2025 CUDA scoreboard). The fit gives older builds their own factors, and `uma plan`
    predicts the current one. Sources older than 2025: XiongjieDai's LLaMA / LLaMA 2 tables (2023)
    and LLaMA 3 tables (May 2024); llama.cpp's Apple Silicon table (reference build of November
    2023, most rows of 2023-2024)."""
    url, note = row["source_url"], row["source_note"]
    if "XiongjieDai" in url:
        return "2024" if note.startswith("LLaMA 3") else "2023"
    if note.startswith("section 1a"):
        return "2023"
    return "current"


# Share of the GPU's memory weights and KV cache may take for a row to count: close to the limit,
# engines fall back to the CPU or the system swaps (LLaMA 65B Q4_0, 37 GB, on a 48 GB M3 Max runs
# at 3.1 tok/s where a model of its size reads at 8).
GPU_MEMORY_SHARE = 0.9


def fits_gpu(row: Row, machines: dict) -> bool:
    """Whether the weights and the KV cache fit 90% of the memory the GPU may use (a card's
    memory, Apple's working set), with the memory the source states where it does: past it the
    engine runs from the CPU or swaps, which no speed model of the GPU describes."""
    profile = machines[row.machine]
    memory = float(row.data["memory_gb"]) if row.data["memory_gb"] else profile["memory_gib"]
    if profile.get("gpu_working_set_fraction"):
        memory *= profile["gpu_working_set_fraction"]
    elif not profile["unified_memory"]:
        memory -= profile["os_reserve_gib"]
    d = MODELS[row.model]
    # gpt-oss: the file (MXFP4 experts), not the description's average
    bits = d.get("file_bpw") or 8 * row.spec["file_weight_bytes"] / row.spec["num_parameters"]
    tokens = max(row.test.position, row.test.depth + row.test.prompt)
    kv = kv_bytes_per_layer_position(row.spec) * attended(row.spec, tokens)
    return row.spec["num_parameters"] * bits / 8 + kv <= GPU_MEMORY_SHARE * memory * 2**30


def describe_args(model: str, quant: str) -> list[str]:
    """`uma plan` options describing `model` at `quant`."""
    d = MODELS[model]
    args = ["--params", d["params"], "--layers", str(d["layers"]), "--hidden", str(d["hidden"]),
            "--heads", str(d["heads"]), "--kv-heads", str(d["kv_heads"]), "--vocab", str(d["vocab"]),
            "--ffn", str(d["ffn"])]
    if "head_dim" in d:
        args += ["--head-dim", str(d["head_dim"])]
    if d.get("tied"):
        args += ["--tied-embeddings"]
    if "experts" in d:
        args += ["--experts", str(d["experts"]), "--active-experts", str(d["active_experts"])]
    if "sliding_window" in d:
        args += ["--sliding-window", str(d["sliding_window"]), "--sliding-layers", str(d["sliding_layers"])]
    q = QUANTS[quant]
    if "bpw" in d:
        args += ["--bpw", str(d["bpw"])]
    elif isinstance(q, str):
        args += ["--quant", q]
    else:
        args += ["--bpw", str(q)]
    return args


def uma_binary(path: str | None = None) -> str:
    """`path`, else target/release/uma, else target/debug/uma; it must know `plan --engine`."""
    if not path:
        release = os.path.join(ROOT, "target", "release", "uma")
        path = release if os.path.exists(release) else os.path.join(ROOT, "target", "debug", "uma")
    help_text = subprocess.run([path, "plan", "--help"], capture_output=True, text=True).stdout
    if "--engine" not in help_text or "--sliding-window" not in help_text:
        raise SystemExit(f"{path} predates `uma plan --engine`: build this tree "
                         "(cargo build --release -p uma-cli) or pass --uma target/debug/uma")
    return path


def attach_specs(rows: list[Row], uma: str) -> None:
    """The planner's view of each row's model (one `uma plan --json` per model and quantization):
    `row.spec`."""
    specs = {}
    for row in rows:
        key = (row.model, row.quant)
        if key not in specs:
            out = subprocess.run([uma, "plan", *describe_args(*key), "--hw", "h100-sxm-80gb", "--json"],
                                 check=True, capture_output=True, text=True).stdout
            specs[key] = json.loads(out)["plans"][0]["model"]
        row.spec = specs[key]


# --- The speed model ---------------------------------------------------------------------------
# Must match crates/planner/src/speed_estimate.rs and speed_model.rs.

QUANT_CLASSES = ("f16", "q8", "q4", "k")


def quant_class(spec: dict) -> str:
    """`k` for llama.cpp's k-quants and i-quants (the largest type of the mix, or the described
    type), else by bits per weight: `f16` (12 or more), `q8` (7 to 12), `q4` (below 7: Q4_0, Q5_0,
    MXFP4, MLX's 4- and 6-bit)."""
    first = spec["quantization"].split(" ")[0].split(",")[0].upper()
    if first.startswith("IQ") or "_K" in first:
        return "k"
    bits = 8 * spec["file_weight_bytes"] / spec["num_parameters"]
    return "f16" if bits >= 12 else "q8" if bits >= 7 else "q4"


def kv_bytes_per_layer_position(spec: dict) -> int:
    """f16 K and V rows of one layer (llama.cpp's and MLX's default cache)."""
    return 2 * spec["num_key_value_heads"] * (spec["head_dim"] + spec["value_head_dim"])


def attention_flops_per_layer_position(spec: dict) -> int:
    return 2 * spec["num_attention_heads"] * (spec["head_dim"] + spec["value_head_dim"])


def attended(spec: dict, position: float) -> float:
    """Layer-positions a token at `position` attends to: every earlier one on full-attention
    layers, at most the window on sliding-window ones."""
    window = spec["sliding_window"] or 0
    sliding = spec["num_sliding_window_layers"]
    full = spec["num_hidden_layers"] - sliding
    return full * position + sliding * (min(position, window) if sliding else 0)


def attended_prompt(spec: dict, tokens: float) -> float:
    """Layer-positions all tokens of a `tokens`-token prompt attend to together (the sum of
    `attended` over positions 0 to tokens - 1, as a continuous integral)."""
    window = spec["sliding_window"] or 0
    sliding = spec["num_sliding_window_layers"]
    full = spec["num_hidden_layers"] - sliding
    local = tokens * tokens / 2 if tokens <= window else window * window / 2 + (tokens - window) * window
    return full * tokens * tokens / 2 + (sliding * local if sliding else 0)


@dataclass
class Resolved:
    """An engine's parameters on one machine: efficiencies and the fixed time per layer of decode
    already multiplied by the machine kind's factors."""
    bandwidth: float           # bytes/s, peak
    compute: float             # ops/s, peak (the engine's figure: int8 or f16)
    weight_efficiency: dict    # quant class -> share of the peak bandwidth
    kv_efficiency: float
    layer_seconds: float       # decode: fixed time per layer and step (with the kind's factor)
    compute_efficiency: dict   # quant class -> share of the peak compute (large matrices)
    attention_efficiency: float
    prefill_layer_seconds: float  # prefill: fixed time per layer and step
    matrix_half_width: float   # hidden size at which matrix products reach half their efficiency
    matrix_half_rows: float    # rows (tokens per expert) at which they reach half


def resolve(params: dict, engine: str, machine: dict, era: str = "current") -> Resolved:
    """The engine's parameters on `machine`, for the current build or an older one (`era`: the
    factors of speed_model.toml's [build] tables, where the model has them)."""
    e = params["engine"][engine]
    k = params.get("kind", {}).get(machine["kind"], {})
    b = params.get("build", {}).get(engine, {}).get(era, {})
    fb, fc = k.get("bandwidth_factor", 1.0), k.get("compute_factor", 1.0)
    peak = machine.get("int8_tops") if e["compute"] == "int8" else machine.get("f16_tflops")
    peak = peak or machine.get("f16_tflops") or machine.get("int8_tops")
    return Resolved(
        bandwidth=machine["bandwidth_gb_per_s"] * 1e9,
        compute=peak * 1e12,
        weight_efficiency={q: min(1.0, e["weight_efficiency"][q] * fb) for q in QUANT_CLASSES},
        kv_efficiency=min(1.0, e["kv_efficiency"] * fb * b.get("kv_efficiency", 1.0)),
        layer_seconds=e["layer_seconds"] * k.get("layer_seconds_factor", 1.0) * b.get("layer_seconds", 1.0),
        compute_efficiency={q: min(1.0, e["compute_efficiency"][q] * fc * b.get("compute_efficiency", 1.0))
                            for q in QUANT_CLASSES},
        attention_efficiency=min(1.0, e["attention_efficiency"] * fc * b.get("attention_efficiency", 1.0)),
        prefill_layer_seconds=e["prefill_layer_seconds"] * b.get("prefill_layer_seconds", 1.0),
        matrix_half_width=e["matrix_half_width"],
        matrix_half_rows=e["matrix_half_rows"],
    )


def matrix_rows(spec: dict, tokens: float) -> float:
    """Rows of the matrix products of a step of `tokens` tokens: each expert of a mixture of
    experts multiplies only the tokens routed to it."""
    if spec["num_experts"]:
        return tokens * spec["num_experts_per_token"] / spec["num_experts"]
    return tokens


def matrix_efficiency(r: Resolved, spec: dict, rows: float | None = None) -> float:
    """Share of the peak compute of a prefill step's matrix products: the quantization class's,
    less for narrow models (hidden size) and short steps (rows). Decode (`rows` None) multiplies
    vectors: its matrix products wait on memory, which the bandwidth term counts."""
    hidden = spec["hidden_size"]
    share = r.compute_efficiency[quant_class(spec)] * hidden / (hidden + r.matrix_half_width)
    return share if rows is None else share * rows / (rows + r.matrix_half_rows)


def decode_seconds(r: Resolved, spec: dict, position: int, sequences: int = 1) -> float:
    q = quant_class(spec)
    memory = (spec["weight_bytes_per_token"] / (r.bandwidth * r.weight_efficiency[q])
              + sequences * kv_bytes_per_layer_position(spec) * attended(spec, position)
              / (r.bandwidth * r.kv_efficiency))
    compute = sequences * (
        2 * spec["num_active_parameters"] / (r.compute * matrix_efficiency(r, spec))
        + attention_flops_per_layer_position(spec) * attended(spec, position) / (r.compute * r.attention_efficiency))
    return max(memory, compute) + spec["num_hidden_layers"] * r.layer_seconds


def prefill_seconds(r: Resolved, spec: dict, prompt: int, ubatch: int) -> float:
    """A prompt of `prompt` tokens from an empty context, in steps of `ubatch` tokens."""
    q = quant_class(spec)
    steps = math.ceil(prompt / ubatch)
    rows = matrix_rows(spec, min(prompt, ubatch))
    memory = steps * spec["weight_bytes_per_token"] / (r.bandwidth * r.weight_efficiency[q])
    compute = (prompt * 2 * spec["num_active_parameters"] / (r.compute * matrix_efficiency(r, spec, rows))
               + attention_flops_per_layer_position(spec) * attended_prompt(spec, prompt)
               / (r.compute * r.attention_efficiency))
    return max(memory, compute) + steps * spec["num_hidden_layers"] * r.prefill_layer_seconds


def predict(params: dict, row: Row, machines: dict) -> float:
    """Predicted tokens/s of a row, for the row's engine build (`params` without [build] tables:
    the current build, what `uma plan` predicts)."""
    r = resolve(params, row.engine, machines[row.machine], row.era)
    t = row.test
    if t.kind == "decode":
        return 1.0 / decode_seconds(r, row.spec, t.position)
    # A prompt at a depth: the time of depth + prompt tokens less the time of the depth.
    seconds = prefill_seconds(r, row.spec, t.depth + t.prompt, t.ubatch)
    if t.depth:
        seconds -= prefill_seconds(r, row.spec, t.depth, t.ubatch)
    return t.prompt / seconds


def load_speed_model(path: str = SPEED_MODEL) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)
