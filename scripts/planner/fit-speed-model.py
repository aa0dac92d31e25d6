#!/usr/bin/env python3
"""Fits the speed model of `uma plan` (crates/planner/data/speed_model.toml) to the published
measurements (crates/planner/data/published_measurements.csv), and measures its error on machine
families it was not fitted on.

1. Held out by machine family: for each family (apple-m1 ... apple-m5, nvidia-ampere, -ada,
   -hopper, -blackwell, amd-rdna3, ...), fit every parameter on the rows of all other families and
   predict that family's rows. Every row is predicted once, by parameters that never saw its
   family; the errors of these predictions are the held-out errors the report gives.
2. The uncertainty range of each engine and test (decode, prefill) is the 10th and 90th percentile
   of its held-out ratios measured / predicted: 80% of held-out rows fell inside it.
3. The parameters written are fitted on all rows (what `uma plan` uses for a new machine), with
   the factors of older engine builds ([build] tables: the validation scripts read them, `uma plan`
   predicts the current build).

Needs the planner's view of each model: runs `uma plan --json` (target/release/uma unless --uma).
Writes speed_model.toml unless --dry-run; prints the held-out summary either way. Deterministic.

  python3 -m venv /tmp/planner-venv && /tmp/planner-venv/bin/pip install -r scripts/planner/requirements.txt
  /tmp/planner-venv/bin/python scripts/planner/fit-speed-model.py [--uma PATH] [--dry-run]
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
from collections import defaultdict

import numpy as np
from scipy.optimize import least_squares

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import published as pub  # noqa: E402

# The engines fitted: what each is, the machine kinds it runs on (the first engine listed for a
# kind is that kind's default), and which peak compute its matrix products are measured against.
ENGINES = {
    "llama.cpp-metal": dict(
        description="llama.cpp, Metal backend (also Ollama and LM Studio's GGUF runtime)",
        runs_on=["apple", "apple-ultra"], compute="f16"),
    "mlx": dict(
        description="MLX / mlx-lm (also LM Studio's MLX runtime, rapid-mlx)",
        runs_on=["apple", "apple-ultra"], compute="f16"),
    "llama.cpp-cuda": dict(
        description="llama.cpp, CUDA backend",
        runs_on=["nvidia", "nvidia-datacenter", "nvidia-gb10"], compute="int8"),
    "llama.cpp-vulkan": dict(
        description="llama.cpp, Vulkan backend",
        runs_on=["nvidia", "nvidia-datacenter", "nvidia-gb10", "amd", "intel"], compute="f16"),
}
# Kinds whose machines share the parameters of their engine unchanged (the factors are 1).
REFERENCE_KINDS = {"apple", "nvidia"}

# Parameters of one engine, with their prior (where the fit pulls a parameter that the data does
# not determine, e.g. a quantization class an engine has no rows of) and bounds.
ENGINE_PARAMETERS = [  # (name, prior, low, high)
    *[(f"weight_efficiency.{q}", 0.8, 0.2, 1.0) for q in pub.QUANT_CLASSES],
    ("kv_efficiency", 0.5, 0.02, 1.0),
    ("layer_seconds", 20e-6, 1e-7, 1e-3),
    *[(f"compute_efficiency.{q}", 0.5, 0.02, 1.0) for q in pub.QUANT_CLASSES],
    ("attention_efficiency", 0.3, 0.01, 1.0),
    ("prefill_layer_seconds", 100e-6, 1e-7, 1e-2),
    ("matrix_half_width", 500.0, 1.0, 20000.0),
    ("matrix_half_rows", 32.0, 0.1, 4096.0),
]
# Per machine kind: factors on the bandwidth shares, on the compute shares, and on the fixed time
# per layer of a decode step (an M-series Ultra is two dies joined by UltraFusion: every kernel's
# launch and synchronisation spans both; a data-centre GPU has more SMs to fill and drain per
# kernel).
KIND_PARAMETERS = [("bandwidth_factor", 1.0, 0.3, 1.5), ("compute_factor", 1.0, 0.2, 3.0),
                   ("layer_seconds_factor", 1.0, 0.2, 5.0)]
# Factors of an older build of an engine (`published.era_of`) on the current one's parameters: the
# fixed time per layer of decode, the compute efficiencies, the attention efficiency, the fixed
# time per layer of prefill and the share of the bandwidth reading the KV cache (llama.cpp's
# builds of 2023 and 2024 ran attention without flash attention unless asked: separate matrix
# products and a softmax that write and read the scores; their decode falls off faster with the
# context than the current build's, e.g. XiongjieDai's RTX 3090, Llama 3 8B Q4_K_M, from 115 tok/s
# at tg512 to 87 at tg8192). Written to speed_model.toml ([build]) for the validation scripts;
# `uma plan` predicts the current build.
ERA_PARAMETERS = [("layer_seconds", 1.0, 0.2, 5.0), ("compute_efficiency", 1.0, 0.2, 5.0),
                  ("attention_efficiency", 1.0, 0.05, 5.0), ("prefill_layer_seconds", 1.0, 0.05, 20.0),
                  ("kv_efficiency", 1.0, 0.1, 5.0)]
# Weight of the pull towards the prior, in log units, against one row's log error.
PRIOR_WEIGHT = 0.05
# Rows whose log error is past this count less (soft L1): single outliers do not drive the fit.
ROBUST_SCALE = 0.1


class Layout:
    """Where each parameter sits in the vector the optimizer sees (logarithms of the values)."""

    def __init__(self, engines: list[str], kinds: list[str], eras: list[tuple[str, str]]):
        self.engines, self.kinds, self.eras = engines, kinds, eras
        self.names, prior, low, high = [], [], [], []
        for section, owners, table in (("engine", engines, ENGINE_PARAMETERS), ("kind", kinds, KIND_PARAMETERS),
                                       ("era", eras, ERA_PARAMETERS)):
            for owner in owners:
                for name, p, lo, hi in table:
                    self.names.append((section, owner, name))
                    prior.append(p)
                    low.append(lo)
                    high.append(hi)
        self.prior, self.low, self.high = np.log(prior), np.log(low), np.log(high)
        self.index = {key: i for i, key in enumerate(self.names)}

    def block(self, x: np.ndarray, section: str, owners: list, table: list) -> np.ndarray:
        """The values of one section, one row per owner, one column per parameter of `table`."""
        start = self.index[(section, owners[0], table[0][0])] if owners else 0
        return np.exp(x[start:start + len(owners) * len(table)]).reshape(len(owners), len(table))

    def params(self, x: np.ndarray) -> dict:
        """The vector as a speed model (the shape of speed_model.toml: older builds' factors as
        `build`, engine, then build)."""
        params = {"engine": {}, "kind": {}, "build": {}}
        for (section, owner, name), value in zip(self.names, np.exp(x)):
            if section == "era":
                engine, era = owner
                params["build"].setdefault(engine, {}).setdefault(era, {})[name] = float(value)
                continue
            table = params[section].setdefault(owner, {})
            if section == "engine":
                table.setdefault("compute", ENGINES[owner]["compute"])
            if "." in name:
                outer, inner = name.split(".")
                table.setdefault(outer, {})[inner] = float(value)
            else:
                table[name] = float(value)
        return params


COLUMN = {name: i for i, (name, _, _, _) in enumerate(ENGINE_PARAMETERS)}


class Features:
    """The rows as arrays, for a vectorised version of `published.predict` (checked against it)."""

    def __init__(self, rows: list[pub.Row], machines: dict, layout: Layout):
        self.rows = rows
        spec = [row.spec for row in rows]
        m = [machines[row.machine] for row in rows]
        self.engine = np.array([layout.engines.index(row.engine) for row in rows])
        self.kind = np.array([layout.kinds.index(r.machine_kind) if r.machine_kind in layout.kinds else -1
                              for r in rows])
        self.era = np.array([layout.eras.index((r.engine, r.era)) if (r.engine, r.era) in layout.eras else -1
                             for r in rows])
        self.quant = np.array([pub.QUANT_CLASSES.index(pub.quant_class(s)) for s in spec])
        self.bandwidth = np.array([x["bandwidth_gb_per_s"] * 1e9 for x in m])
        self.compute = np.array([peak(ENGINES[row.engine]["compute"], x) for row, x in zip(rows, m)])
        self.weights = np.array([s["weight_bytes_per_token"] for s in spec], dtype=float)
        self.active = np.array([s["num_active_parameters"] for s in spec], dtype=float)
        self.layers = np.array([s["num_hidden_layers"] for s in spec], dtype=float)
        self.hidden = np.array([s["hidden_size"] for s in spec], dtype=float)
        self.kv = np.array([pub.kv_bytes_per_layer_position(s) for s in spec], dtype=float)
        self.attention = np.array([pub.attention_flops_per_layer_position(s) for s in spec], dtype=float)
        self.specs = spec
        self.decode = np.array([row.test.kind == "decode" for row in rows])
        self.position = np.array([row.test.position for row in rows], dtype=float)
        self.prompt = np.array([row.test.prompt for row in rows], dtype=float)
        self.depth = np.array([row.test.depth for row in rows], dtype=float)
        self.ubatch = np.array([row.test.ubatch for row in rows], dtype=float)
        self.measured = np.array([row.measured for row in rows])
        t = [row.test for row in rows]
        self.attended = np.array([pub.attended(s, x.position) for s, x in zip(spec, t)])
        self.prompt_attended = np.array([pub.attended_prompt(s, x.depth + x.prompt) - pub.attended_prompt(s, x.depth)
                                         for s, x in zip(spec, t)])
        self.steps = np.array([math.ceil((x.depth + x.prompt) / x.ubatch) - math.ceil(x.depth / x.ubatch)
                               for x in t], dtype=float)
        self.matrix_rows = np.array([pub.matrix_rows(s, min(x.depth + x.prompt, x.ubatch)) for s, x in zip(spec, t)])

    def predict(self, layout: Layout, x: np.ndarray) -> np.ndarray:
        engine = layout.block(x, "engine", layout.engines, ENGINE_PARAMETERS)[self.engine]
        ones = lambda table: np.ones((1, len(table)))  # noqa: E731 (index -1: a factor of 1)
        kind = np.vstack([layout.block(x, "kind", layout.kinds, KIND_PARAMETERS), ones(KIND_PARAMETERS)])[self.kind]
        era = np.vstack([layout.block(x, "era", layout.eras, ERA_PARAMETERS), ones(ERA_PARAMETERS)])[self.era]
        fb, fc, ft = kind[:, 0], kind[:, 1], kind[:, 2]
        n, q, classes = len(self.quant), self.quant, len(pub.QUANT_CLASSES)
        col = lambda name: engine[:, COLUMN[name]]  # noqa: E731
        eta_w = np.minimum(1.0, engine[np.arange(n), COLUMN["weight_efficiency.f16"] + q] * fb)
        eta_kv = np.minimum(1.0, col("kv_efficiency") * fb * era[:, 4])
        tau = col("layer_seconds") * ft * era[:, 0]
        eta_c = np.minimum(1.0, engine[np.arange(n), COLUMN["compute_efficiency.f16"] + q] * fc * era[:, 1])
        eta_c = eta_c * self.hidden / (self.hidden + col("matrix_half_width"))
        eta_rows = eta_c * self.matrix_rows / (self.matrix_rows + col("matrix_half_rows"))
        eta_a = np.minimum(1.0, col("attention_efficiency") * fc * era[:, 2])
        tau_p = col("prefill_layer_seconds") * era[:, 3]
        bw, c = self.bandwidth, self.compute
        memory = self.weights / (bw * eta_w) + self.kv * self.attended / (bw * eta_kv)
        compute = 2 * self.active / (c * eta_c) + self.attention * self.attended / (c * eta_a)
        decode = 1.0 / (np.maximum(memory, compute) + self.layers * tau)
        # prefill: in the compute-bound regime (what the data has) the time of the depth's steps
        # cancels out of the difference the reference formula takes
        memory = self.steps * self.weights / (bw * eta_w)
        compute = self.prompt * 2 * self.active / (c * eta_rows) + self.attention * self.prompt_attended / (c * eta_a)
        with np.errstate(invalid="ignore", divide="ignore"):
            prefill = self.prompt / (np.maximum(memory, compute) + self.steps * self.layers * tau_p)
        return np.where(self.decode, decode, prefill)


def peak(figure: str, machine: dict) -> float:
    """The machine's peak compute in operations per second, as `published.resolve` takes it."""
    value = machine.get("int8_tops") if figure == "int8" else machine.get("f16_tflops")
    return (value or machine.get("f16_tflops") or machine.get("int8_tops")) * 1e12


def fit(features: Features, layout: Layout, mask: np.ndarray) -> tuple[dict, np.ndarray]:
    measured = np.log(features.measured[mask])

    def residuals(x):
        predicted = np.log(features.predict(layout, x)[mask])
        return np.concatenate([predicted - measured, PRIOR_WEIGHT * (x - layout.prior)])

    result = least_squares(residuals, layout.prior.copy(), bounds=(layout.low, layout.high),
                           loss="soft_l1", f_scale=ROBUST_SCALE, x_scale=1.0, max_nfev=2000)
    return layout.params(result.x), result.x


def held_out(features: Features, layout: Layout) -> dict:
    """Each family predicted by a fit on the others: {line: predicted}."""
    predictions = {}
    families = np.array([row.family for row in features.rows])
    for family in sorted(set(families)):
        test = families == family
        _, x = fit(features, layout, ~test)
        predicted = features.predict(layout, x)
        for row, value in zip(np.array(features.rows)[test], predicted[test]):
            predictions[row.line] = float(value)
        errors = np.abs(predicted[test] / features.measured[test] - 1)
        print(f"  held out {family:18} {test.sum():4} rows, median |error| {np.median(errors):6.1%}",
              file=sys.stderr)
    return predictions


def summary(rows, predictions):
    """Per engine and test: rows, median |error|, share within ±20% and ±35%, and the 10th and 90th
    percentiles of measured / predicted."""
    groups = defaultdict(list)
    for row in rows:
        ratio = row.measured / predictions[row.line]
        groups[(row.engine, row.test.kind)].append(ratio)
        groups[("all", row.test.kind)].append(ratio)
    out = {}
    for key, ratios in groups.items():
        ratios = np.array(ratios)
        errors = np.abs(1 / ratios - 1)  # |predicted / measured - 1|
        out[key] = dict(rows=len(ratios), median_error=float(np.median(errors)),
                        within_20=float(np.mean(errors <= 0.20)), within_35=float(np.mean(errors <= 0.35)),
                        low=float(np.percentile(ratios, 10)), high=float(np.percentile(ratios, 90)))
    return out


# Engines the data does not fit: written as they are. uma-cpu's range is the three out-of-sample
# ratios measured / predicted of scripts/bench/validate-planner.sh (docs/benchmarks.md, run 2).
FIXED_ENGINES = """[engine."uma-cpu"]
description = "uma on the CPU: this machine's measured read bandwidth and efficiencies"
runs_on = ["cpu"]
from_machine = true
decode_range = [0.88, 1.06]
# decode: scripts/bench/validate-planner.sh, 3 models on this machine (docs/benchmarks.md); prefill
# not validated: no range

[engine.roofline]
description = "the machine's peak times its own efficiencies (machines.toml), no fixed costs: not validated"
runs_on = ["*"]
from_machine = true
"""

# The engine planned on each kind of machine when none is asked for.
DEFAULT_ENGINES = {"apple": "llama.cpp-metal", "apple-ultra": "llama.cpp-metal", "nvidia": "llama.cpp-cuda",
                   "nvidia-datacenter": "llama.cpp-cuda", "nvidia-gb10": "llama.cpp-cuda", "amd": "llama.cpp-vulkan",
                   "intel": "llama.cpp-vulkan", "cpu": "uma-cpu"}


def render_toml(params, stats, counts, today) -> str:
    lines = [
        f"# Speed model of `uma plan` ({today}). GENERATED by scripts/planner/fit-speed-model.py from",
        "# published_measurements.csv: do not edit by hand, re-run the script (docs/planner.md, \"Speed\").",
        "#",
        "# Per engine: shares of the machine's peak bandwidth reached reading weights (by quantization",
        "# class: f16 = 12 bits per weight or more, q8 = 7 to 12, q4 = below 7, k = llama.cpp's k- and",
        "# i-quants) and reading the KV cache; a fixed time per layer and decode step (kernel launches,",
        "# synchronisation); shares of the peak compute (`compute`: the machine's int8 or f16 figure)",
        "# reached by matrix products (a model of hidden size h gets h / (h + matrix_half_width) of it, a",
        "# step of r rows per matrix, tokens per expert for a mixture of experts, r / (r + matrix_half_rows))",
        "# and by attention; a fixed time per layer and prefill step. Per machine kind: factors on the",
        "# bandwidth and compute shares and on the fixed time per layer of decode of the reference kinds",
        "# (apple, nvidia).",
        "#",
        "# decode_range / prefill_range: measured / predicted, 10th and 90th percentile over the rows of",
        "# machine families the parameters were not fitted on (each family held out in turn): 80% of",
        "# held-out rows fell inside. `uma plan` multiplies its prediction by them.",
        "",
        "[default_engine]",
        *[f'{kind} = "{engine}"' for kind, engine in DEFAULT_ENGINES.items()],
        "",
    ]
    for engine, spec in ENGINES.items():
        e = params["engine"][engine]
        lines.append(f'[engine."{engine}"]')
        lines.append(f'description = "{spec["description"]}"')
        lines.append("runs_on = [" + ", ".join(f'"{k}"' for k in spec["runs_on"]) + "]")
        lines.append(f'compute = "{e["compute"]}"')
        for name in ("weight_efficiency", "compute_efficiency"):
            inner = ", ".join(f"{q} = {e[name][q]:.4f}" for q in pub.QUANT_CLASSES)
            lines.append(f"{name} = {{ {inner} }}")
        lines.append(f"kv_efficiency = {e['kv_efficiency']:.4f}")
        lines.append(f"layer_seconds = {e['layer_seconds']:.4e}")
        lines.append(f"attention_efficiency = {e['attention_efficiency']:.4f}")
        lines.append(f"prefill_layer_seconds = {e['prefill_layer_seconds']:.4e}")
        lines.append(f"matrix_half_width = {e['matrix_half_width']:.1f}")
        lines.append(f"matrix_half_rows = {e['matrix_half_rows']:.2f}")
        for kind in ("decode", "prefill"):
            s = stats.get((engine, kind))
            if s is None:
                lines.append(f"# {kind}: no held-out rows, no range")
                continue
            lines.append(f"{kind}_range = [{min(s['low'], 1.0):.3f}, {max(s['high'], 1.0):.3f}]")
            lines.append(f"# {kind}: {s['rows']} held-out rows, median |error| {s['median_error']:.1%}, "
                         f"{s['within_20']:.0%} within ±20%, {s['within_35']:.0%} within ±35%; "
                         f"fitted on {counts[(engine, kind)]} rows")
        lines.append("")
    lines.append(FIXED_ENGINES)
    for kind, k in sorted(params["kind"].items()):
        lines.append(f'[kind."{kind}"]')
        lines.append(f"bandwidth_factor = {k['bandwidth_factor']:.4f}")
        lines.append(f"compute_factor = {k['compute_factor']:.4f}")
        lines.append(f"layer_seconds_factor = {k['layer_seconds_factor']:.4f}")
        lines.append("")
    lines += [
        "# Older builds of an engine (sources older than 2025, scripts/planner/published.py `era_of`): factors",
        "# on the current build's parameters, fitted with them so that those rows do not bend the current",
        "# build's. Not used by `uma plan`, which predicts the current build; the validation scripts use them",
        "# to compare old measurements with a prediction for the same build.",
        "",
    ]
    for engine, builds in params["build"].items():
        for era, factors in sorted(builds.items()):
            lines.append(f'[build."{engine}"."{era}"]')
            lines += [f"{name} = {value:.4f}" for name, value in factors.items()]
            lines.append("")
    return "\n".join(lines)


def load(machines: dict, uma: str | None):
    """The rows the model predicts (with the planner's model of each), and the others with why."""
    rows, dropped = pub.load_rows(machines)
    pub.attach_specs(rows, uma)
    fit_gpu = [row for row in rows if pub.fits_gpu(row, machines)]
    dropped += [(row.line, row.data, "the weights do not fit the GPU's memory") for row in rows
                if not pub.fits_gpu(row, machines)]
    return fit_gpu, dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uma", help="the uma binary (default: target/release/uma, else debug)")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write speed_model.toml")
    args = parser.parse_args()
    machines = pub.load_machines()
    rows, dropped = load(machines, pub.uma_binary(args.uma))
    kinds = sorted({row.machine_kind for row in rows} - REFERENCE_KINDS)
    eras = sorted({(row.engine, row.era) for row in rows if row.era != "current"})
    layout = Layout(list(ENGINES), kinds, eras)
    print(f"{len(rows)} rows predicted, {len(dropped)} left out (validate-published.py lists why)",
          file=sys.stderr)
    features = Features(rows, machines, layout)
    predictions = held_out(features, layout)
    stats = summary(rows, predictions)
    for (engine, kind), s in sorted(stats.items()):
        print(f"{engine:17} {kind:8} {s['rows']:4} held-out rows: median |error| {s['median_error']:6.1%}, "
              f"{s['within_20']:4.0%} within ±20%, {s['within_35']:4.0%} within ±35%, "
              f"80% range {s['low']:.2f}-{s['high']:.2f}")
    params, x = fit(features, layout, np.ones(len(rows), dtype=bool))
    # The vectorised formula is the reference one's, older builds included.
    vector = features.predict(layout, x)
    scalar = np.array([pub.predict(params, row, machines) for row in rows])
    assert np.allclose(vector, scalar, rtol=1e-9)
    counts = defaultdict(int)
    for row in rows:
        counts[(row.engine, row.test.kind)] += 1
    text = render_toml(params, stats, counts, datetime.date.today().isoformat())
    if args.dry_run:
        print(text)
    else:
        with open(pub.SPEED_MODEL, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(pub.SPEED_MODEL, pub.ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
