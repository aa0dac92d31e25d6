#!/usr/bin/env python3
"""`uma plan --nodes` against the published cluster measurements
(crates/planner/data/published_measurements.csv): one line per row (measured, predicted, ratio)
and the share within ±25%.

Rows: every published run on several machines or GPUs that one of the two splits describes:
  - exo (MLX) on Mac clusters, tensor parallel over RDMA (`tb5-rdma`) or pipeline over TCP
    (`tb5-tcp`), as each source says;
  - llama.cpp on several GPUs of one machine in XiongjieDai's LLaMA 3 tables (May 2024): layers
    split over the GPUs (`--split-mode layer`, llama.cpp's default since January 2024) over `pcie`.
Left out, and listed: the multi-GPU rows of 2023 (llama.cpp then split every matrix by rows and
gathered the result on the main GPU after each matrix product: neither split modelled here).

Calibration: each engine's synchronisation time per transfer (crates/planner/data/cluster.toml,
[sync]) is fitted on its CALIBRATION rows only, and the error is reported on the others. A row's
implied time is (its time per token − computing − link) ÷ transfers, from `uma plan --json`; where
the source measured the same test on one machine, the cluster row is first rescaled by that
machine's predicted / measured time, so that the calibration sees only what the split adds. The
calibrated value is the median over the rows; the script fails when cluster.toml disagrees by more
than 2% (write the printed value there).

`uma plan` predicts the current engine build; XiongjieDai's multi-GPU rows are of May 2024, whose
llama.cpp decoded and prefilled more slowly on one GPU too. The held-out rows are therefore also
compared with a prediction for their own build: the split as planned × (the same test on one
machine predicted with the build's factors, speed_model.toml [build], ÷ the same for the current
build), as the single-machine validation does.

  python3 scripts/planner/validate-clusters.py [--uma PATH] [--markdown]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tomllib
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import published as pub  # noqa: E402

CLUSTER_DATA = os.path.join(pub.DATA, "cluster.toml")

# Models only cluster rows use (published configs). GLM-5's attention is DeepSeek-style MLA: MLX
# caches one 512-wide latent and a 64-wide rope key per layer and position (1,152 bytes in f16),
# described as one KV head of 288 for K and for V; its attention FLOPs come out at about half the
# latent attention's, and the sparse indexer's 128-wide key cache is not counted. The routed
# experts (75 layers × 256 × 3 × 6,144 × 2,048) are spread over all 78 layers (ffn 1,969); the
# shared experts and the 3 dense layers are in the always-active rest: 42 B active (40 B
# published).
CLUSTER_MODELS = {
    "GLM-5": dict(params="744B", layers=78, hidden=6144, heads=64, kv_heads=1, head_dim=288, vocab=154880,
                  ffn=1969, experts=256, active_experts=8),
    "Qwen3-235B": dict(params="235B", layers=94, hidden=4096, heads=64, kv_heads=4, head_dim=128, vocab=151936,
                       ffn=1536, experts=128, active_experts=8),
}
# MXFP8: 8-bit values and one 8-bit scale per 32. gpt-oss rows that name no quantization run its
# only published format (MXFP4 experts): the model's own `bpw`.
CLUSTER_QUANTS = {"8bit MXFP8": 8.25, "": None}

# The Mac machines of the exo rows: (chip, memory per node as the source writes it) -> profile.
# Geerling's mixed cluster (2 × 512 GB + 2 × 256 GB) is planned as four of the smaller.
MAC_NODES = {("M3 Ultra", "512"): "mac-studio-m3-ultra-512gb", ("M3 Ultra", ""): "mac-studio-m3-ultra-256gb",
             ("M5 Max", "128"): "macbook-pro-m5-max-128gb"}

# Rows each engine's synchronisation time is fitted on (everything else is held out).
CALIBRATION = {
    "mlx": lambda row: row.model == "GLM-5" and row.nodes == 2 and row.test.kind == "decode"
    and row.test.position < 1000,
    "llama.cpp-cuda": lambda row: row.machine == "rtx-3090" and row.test.kind == "decode"
    and row.baseline is not None,
}

# exo's harness: `max_tokens=256` after a prompt of the row's context (decode: the middle of the
# answer); MLX prefills in steps of 2,048 tokens.
EXO_GENERATED = 256
MLX_STEP = 2048


@dataclass
class ClusterRow:
    line: int
    data: dict
    engine: str
    machine: str
    nodes: int
    link: str
    split: str          # "pipeline" or "tensor"
    model: str
    quant: str
    test: pub.Test
    measured: float
    baseline: float | None = None  # the same source's test on one machine
    predicted: float = 0.0
    predicted_one: float = 0.0     # the same test planned on one machine
    plan: dict | None = None       # the split's rate from `uma plan --json`
    same_build: float = 1.0        # one machine, the row's engine build ÷ the current build

    @property
    def role(self) -> str:
        return "calibration" if CALIBRATION[self.engine](self) else "held out"


def exo_row(line: int, row: dict) -> tuple[ClusterRow | None, str]:
    m = re.match(r"^(\d+)x ", row["machine"])
    nodes = int(m[1]) if m else 1
    machine = MAC_NODES.get((row["chip"], row["memory_gb"]))
    if machine is None:
        return None, f"no machine profile for {row['chip']} {row['memory_gb']}"
    tensor = "tensor" in row["source_note"] or "Tensor Parallel" in row["source_note"] or "tensor parallel" in row["machine"]
    split, link = ("tensor", "tb5-rdma") if tensor else ("pipeline", "tb5-tcp")
    context = pub.tokens(row["context"]) if row["context"] else 0
    if row["test"] in ("decode", "generation"):
        test = pub.Test("decode", position=context + EXO_GENERATED // 2)
    elif row["test"] == "prefill":
        test = pub.Test("prefill", prompt=context, ubatch=MLX_STEP)
    else:
        return None, f"test {row['test']!r} not understood"
    return ClusterRow(line, row, "mlx", machine, nodes, link, split, row["model"], row["quantization"], test,
                      float(row["tokens_per_s"])), ""


def multi_gpu_row(line: int, row: dict, machines: dict) -> tuple[ClusterRow | None, str]:
    m = re.match(r"^(\d+)x (.*)", row["machine"])
    if pub.era_of(row) != "2024":
        return None, "llama.cpp of 2023 split every matrix by rows over the GPUs: neither split modelled"
    if row["model"] not in pub.MODELS or row["quantization"] not in pub.QUANTS:
        return None, f"model {row['model']} {row['quantization']} not described"
    test, why = pub.test_of(row, "llama.cpp-cuda")
    if test is None:
        return None, why
    machine, why = pub.machine_of({**row, "machine": m[2]}, test.kind)
    if machine is None:
        return None, why
    return ClusterRow(line, row, "llama.cpp-cuda", machine, int(m[1]), "pcie", "pipeline", row["model"],
                      row["quantization"], test, float(row["tokens_per_s"])), ""


def baseline_key(row: dict, machine: str) -> tuple:
    """What a cluster row and its one-machine run share: source, engine, the machine without the
    source's remarks in brackets, model, quantization and test."""
    return (row["source_url"], row["engine"], machine.split(" (")[0], row["model"], row["quantization"],
            row["test"], row["context"])


def load_rows(machines: dict) -> tuple[list[ClusterRow], list[tuple[int, str, str]]]:
    """Cluster rows with their one-machine baselines, and (line, machine, reason) left out."""
    kept, dropped, singles = [], [], {}
    with open(pub.MEASUREMENTS, encoding="utf-8") as f:
        rows = list(enumerate(csv.DictReader(f), start=2))
    for line, row in rows:
        several = re.match(r"^(\d+)x ", row["machine"])
        if not several:
            singles[baseline_key(row, row["machine"])] = float(row["tokens_per_s"])
            continue
        if row["engine"] == "exo":
            cluster, why = exo_row(line, row)
        elif row["engine"] == "llama.cpp":
            cluster, why = multi_gpu_row(line, row, machines)
        else:
            cluster, why = None, f"engine {row['engine']} not modelled"
        if cluster is None:
            dropped.append((line, row["machine"], why))
        else:
            kept.append(cluster)
    for row in kept:
        row.baseline = singles.get(baseline_key(row.data, re.match(r"^\d+x (.*)", row.data["machine"])[1]))
    return kept, dropped


def plan(uma: str, row: ClusterRow, nodes: int, context: int) -> dict:
    """The row's split from `uma plan --json` on `nodes` machines with a context of `context`."""
    args = [uma, "plan", *pub.describe_args(row.model, row.quant), "--hw", row.machine, "--hw-file", pub.REFERENCE,
            "--engine", row.engine, "--nodes", str(nodes), "--link", row.link, "--split", row.split,
            "--ctx", str(context), "--batch-tokens", str(row.test.ubatch), "--json"]
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=dict(os.environ, UMA_HOME=os.devnull))
    cluster = json.loads(out.stdout)["plans"][0]["cluster"]
    return cluster["tensor_parallel" if row.split == "tensor" else "pipeline"]


def predict(uma: str, row: ClusterRow, nodes: int) -> tuple[float, dict]:
    """Tokens per second `uma plan` predicts for the row's test on `nodes` machines, and the rate."""
    t = row.test
    if t.kind == "decode":
        rate = plan(uma, row, nodes, max(t.position, 1))["decode_empty_context" if t.position == 0 else
                                                          "decode_full_context"]
        return rate["tokens_per_second"], rate
    rate = plan(uma, row, nodes, t.depth + t.prompt)["prefill"]
    seconds = (t.depth + t.prompt) / rate["tokens_per_second"]
    if t.depth:
        seconds -= t.depth / plan(uma, row, nodes, t.depth)["prefill"]["tokens_per_second"]
    return t.prompt / seconds, rate


def implied_sync(row: ClusterRow) -> float:
    """The synchronisation time per transfer that makes the row's prediction exact."""
    rate = row.plan
    tokens = rate["tokens"]
    measured_seconds = tokens / row.measured
    if row.baseline:
        measured_seconds *= (tokens / row.predicted_one) / (tokens / row.baseline)
    return (measured_seconds - rate["compute_seconds"] - rate["link_seconds"]) / rate["transfers"]


def same_build_factors(rows: list[ClusterRow], machines: dict, uma: str) -> None:
    """`row.same_build`: the row's test on one of its machines predicted for the row's engine
    build (the fitted factors of speed_model.toml [build]) ÷ predicted for the current build; 1
    for rows of the current build."""
    params = pub.load_speed_model()
    current = {**params, "build": {}}
    singles = []
    for row in rows:
        profile = machines[row.machine]
        singles.append(pub.Row(row.line, row.data, row.engine, row.machine, profile["family"], profile["kind"],
                               row.model, row.quant, row.test, row.measured, pub.era_of(row.data)))
    pub.attach_specs(singles, uma)
    for row, single in zip(rows, singles):
        row.same_build = pub.predict(params, single, machines) / pub.predict(current, single, machines)


def load_sync() -> dict:
    with open(CLUSTER_DATA, "rb") as f:
        return {name: entry["seconds"] for name, entry in tomllib.load(f)["sync"]["engine"].items()}


def summary(title: str, groups: dict, markdown: bool) -> str:
    header = ["", "rows", "median abs error", "within ±25%", "measured / predicted"]
    lines = [title]
    if markdown:
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, ratios in groups.items():
        errors = [abs(1 / r - 1) for r in ratios]
        cells = [key, str(len(ratios)), f"{statistics.median(errors):.1%}",
                 f"{sum(e <= 0.25 for e in errors) / len(errors):.0%}", f"{min(ratios):.2f}–{max(ratios):.2f}"]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"  {cells[0]:44} {cells[1]:>4} rows  median |error| {cells[2]:>6}  ±25%: {cells[3]:>4}  "
                         f"range {cells[4]}")
    return "\n".join(lines) + "\n"


def row_table(rows: list[ClusterRow], markdown: bool) -> str:
    header = ["line", "engine", "machine", "nodes", "link", "split", "model", "test", "measured", "predicted",
              "ratio", "1 node: measured / predicted", "speed-up: measured / predicted", "implied sync", "role"]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        one = f"{row.baseline:.1f} / {row.predicted_one:.1f}" if row.baseline else "-"
        speedup = (f"{row.measured / row.baseline:.2f} / {row.predicted / row.predicted_one:.2f}"
                   if row.baseline else "-")
        test = row.data["test"] + (f" @ {row.data['context']}" if row.data["context"] else "")
        implied = f"{implied_sync(row) * 1e6:.0f} µs" if row.test.kind == "decode" else "-"
        cells = [str(row.line), row.engine, row.machine, str(row.nodes), row.link, row.split,
                 f"{row.model} {row.quant}".strip(), test, f"{row.measured:.1f}", f"{row.predicted:.1f}",
                 f"{row.measured / row.predicted:.2f}", one, speedup, implied, row.role]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"{cells[0]:>5} {cells[1]:15} {cells[2]:26} {cells[3]:>2} {cells[4]:9} {cells[5]:8} "
                         f"{cells[6][:22]:22} {cells[7][:14]:14} {cells[8]:>7} {cells[9]:>7} {cells[10]:>5}  "
                         f"{cells[11]:>15} {cells[12]:>12} {cells[13]:>9}  {cells[14]}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uma", help="the uma binary (default: target/release/uma, else debug)")
    parser.add_argument("--markdown", action="store_true", help="tables in Markdown")
    args = parser.parse_args()
    uma = pub.uma_binary(args.uma)
    pub.MODELS.update(CLUSTER_MODELS)
    pub.QUANTS.update(CLUSTER_QUANTS)
    machines = pub.load_machines()
    rows, dropped = load_rows(machines)
    for row in rows:
        row.predicted, row.plan = predict(uma, row, row.nodes)
        if row.baseline:
            row.predicted_one, _ = predict(uma, row, 1)
    same_build_factors(rows, machines, uma)

    written, failed = load_sync(), []
    print("Synchronisation time per transfer, calibrated (median of the calibration rows' implied times):")
    for engine in CALIBRATION:
        implied = [implied_sync(row) for row in rows if row.engine == engine and row.role == "calibration"]
        value = statistics.median(implied)
        print(f"  {engine:16} {value * 1e6:7.1f} µs from {len(implied)} rows "
              f"({min(implied) * 1e6:.1f}–{max(implied) * 1e6:.1f}); cluster.toml: {written[engine] * 1e6:.1f} µs")
        if abs(value / written[engine] - 1) > 0.02:
            failed.append(f'[sync.engine."{engine}"] seconds = {value:.3e}')
    print()
    print(row_table(rows, args.markdown))
    groups = {}
    for row in rows:
        if row.role != "held out":
            continue
        kind = f"{row.engine} {row.split} over {row.link}, {row.test.kind}"
        groups.setdefault(kind, []).append(row.measured / row.predicted)
        groups.setdefault(f"all held out, {row.test.kind}", []).append(row.measured / row.predicted)
    print(summary("Held out (not calibrated on): measured / predicted", groups, args.markdown))
    same = {}
    for row in rows:
        if row.role == "held out":
            ratio = row.measured / (row.predicted * row.same_build)
            same.setdefault(f"{row.engine} {row.split} over {row.link}, {row.test.kind}", []).append(ratio)
            same.setdefault(f"all held out, {row.test.kind}", []).append(ratio)
    print(summary("Held out, against a prediction for the row's engine build: measured / (predicted × "
                  "one machine's build ÷ current build)", same, args.markdown))
    by_cluster = {}
    for row in rows:
        key = f"{row.nodes} × {row.machine}, {row.engine} {row.split}, {row.test.kind}"
        by_cluster.setdefault(key, []).append(row.measured / row.predicted)
    print(summary("Per cluster, every row (calibration rows included): measured / predicted",
                  dict(sorted(by_cluster.items())), args.markdown))
    scaling = {}
    for row in rows:
        if row.baseline and row.role == "held out":
            ratio = (row.measured / row.baseline) / (row.predicted / row.predicted_one)
            scaling.setdefault(f"{row.engine} {row.split}, {row.test.kind}", []).append(ratio)
    print(summary("Speed-up over one machine, held out: (measured N / 1) / (predicted N / 1)", scaling, args.markdown))
    print(f"{len(dropped)} rows on several machines or GPUs left out:")
    for reason in sorted({why for _, _, why in dropped}):
        print(f"  {sum(why == reason for _, _, why in dropped):4}  {reason}")
    if failed:
        sys.exit("crates/planner/data/cluster.toml disagrees with the calibration; write:\n  " + "\n  ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
