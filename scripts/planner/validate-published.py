#!/usr/bin/env python3
"""`uma plan` against the published measurements (crates/planner/data/published_measurements.csv):
one line per row the speed model predicts (measured, predicted, ratio), and the summary.

For every row:
  - `uma plan` (the built binary, the committed crates/planner/data/speed_model.toml, fitted on all
    rows, the current engine builds) for the row's model, machine (catalogue or
    crates/planner/data/reference_machines.toml), engine and test: decode at the row's position
    (--ctx), prefill of the row's prompt (--ctx, --batch-tokens; a prompt at a depth is the prefill
    of depth + prompt less the prefill of the depth);
  - the held-out prediction: parameters fitted (as fit-speed-model.py does) on the rows of every
    other machine family, with the row's engine build (older builds have their own factors).
The summary (median |error|, shares within ±20% and ±35%, per engine and test and per family) is
over the held-out predictions. It also checks that `uma plan` computes what the fit's formula
(scripts/planner/published.py) computes, and lists the rows left out and why.

  /tmp/planner-venv/bin/python scripts/planner/validate-published.py [--uma PATH] [--markdown]
      [--rows]   (per-row lines; without it, the summary only)
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import published as pub  # noqa: E402

spec = importlib.util.spec_from_file_location("fit", os.path.join(HERE, "fit-speed-model.py"))
fit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fit)


def uma_predictions(uma: str, rows: list[pub.Row]) -> dict:
    """{line: tokens/s} from `uma plan --json`, one run per model, engine and request."""
    groups = defaultdict(list)
    for row in rows:
        t = row.test
        contexts = (max(t.position, 1),) if t.kind == "decode" else tuple(c for c in (t.depth + t.prompt, t.depth) if c)
        groups[(row.model, row.quant, row.engine, contexts, t.ubatch)].append(row)
    plans = {}
    for (model, quant, engine, contexts, ubatch), group in groups.items():
        machines = sorted({row.machine for row in group})
        for context in contexts:
            out = subprocess.run(
                [uma, "plan", *pub.describe_args(model, quant), "--hw", ",".join(machines), "--engine", engine,
                 "--hw-file", pub.REFERENCE, "--ctx", str(context), "--batch-tokens", str(ubatch), "--json"],
                check=True, capture_output=True, text=True, env=dict(os.environ, UMA_HOME=os.devnull)).stdout
            for plan in json.loads(out)["plans"]:
                plans[(model, quant, engine, plan["machine"]["name"], context, ubatch)] = plan["speed"]
    predicted = {}
    for row in rows:
        t = row.test
        key = (row.model, row.quant, row.engine, row.machine)
        if t.kind == "decode":
            speed = plans[(*key, max(t.position, 1), t.ubatch)]
            rate = speed["decode_empty_context" if t.position == 0 else "decode_full_context"]
            predicted[row.line] = rate["tokens_per_second"]
            continue
        whole = plans[(*key, t.depth + t.prompt, t.ubatch)]["prefill"]["tokens_per_second"]
        seconds = (t.depth + t.prompt) / whole
        if t.depth:
            seconds -= t.depth / plans[(*key, t.depth, t.ubatch)]["prefill"]["tokens_per_second"]
        predicted[row.line] = t.prompt / seconds
    return predicted


def stats(pairs):
    """(rows, median |error|, within ±20%, within ±35%, 10th and 90th percentile of measured /
    predicted) of (measured, predicted) pairs."""
    measured, predicted = np.array(pairs).T
    errors = np.abs(predicted / measured - 1)
    ratios = measured / predicted
    return (len(pairs), np.median(errors), np.mean(errors <= 0.20), np.mean(errors <= 0.35),
            np.percentile(ratios, 10), np.percentile(ratios, 90))


def table(title, groups, markdown):
    header = ["", "rows", "median abs error", "within ±20%", "within ±35%", "80% of measured / predicted"]
    lines = [title]
    if markdown:
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, pairs in groups:
        n, median, w20, w35, low, high = stats(pairs)
        cells = [key, str(n), f"{median:.1%}", f"{w20:.0%}", f"{w35:.0%}", f"{low:.2f}–{high:.2f}"]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"  {cells[0]:28} {cells[1]:>5} rows  median |error| {cells[2]:>6}  "
                         f"±20%: {cells[3]:>4}  ±35%: {cells[4]:>4}  80%: {cells[5]}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uma", help="the uma binary (default: target/release/uma, else debug)")
    parser.add_argument("--markdown", action="store_true", help="summary tables in Markdown")
    parser.add_argument("--rows", action="store_true", help="print every row")
    args = parser.parse_args()
    uma = pub.uma_binary(args.uma)
    machines = pub.load_machines()
    rows, dropped = fit.load(machines, uma)
    params = pub.load_speed_model()

    # uma plan against the fit's formula, same parameters: the Rust and Python models agree.
    rust = uma_predictions(uma, rows)
    current = {**params, "build": {}}
    mismatch = [(row.line, rust[row.line], pub.predict(current, row, machines)) for row in rows
                if abs(rust[row.line] / pub.predict(current, row, machines) - 1) > 1e-6]
    if mismatch:
        for line, r, p in mismatch[:10]:
            print(f"line {line}: uma plan {r:.4f}, published.py {p:.4f}", file=sys.stderr)
        sys.exit(f"{len(mismatch)} rows: uma plan and scripts/planner/published.py disagree")

    kinds = sorted({row.machine_kind for row in rows} - fit.REFERENCE_KINDS)
    eras = sorted({(row.engine, row.era) for row in rows if row.era != "current"})
    layout = fit.Layout(list(fit.ENGINES), kinds, eras)
    features = fit.Features(rows, machines, layout)
    with contextlib.redirect_stderr(io.StringIO()):
        held = fit.held_out(features, layout)

    if args.rows:
        print(f"{'line':>5} {'engine':16} {'machine':26} {'model':30} {'quant':12} {'test':16} "
              f"{'measured':>9} {'uma plan':>9} {'ratio':>6} {'held-out':>9} {'ratio':>6}")
        for row in rows:
            print(f"{row.line:5} {row.engine:16} {row.machine:26} {row.model[:30]:30} {row.quant[:12]:12} "
                  f"{row.data['test'][:16]:16} {row.measured:9.1f} {rust[row.line]:9.1f} "
                  f"{row.measured / rust[row.line]:6.2f} {held[row.line]:9.1f} {row.measured / held[row.line]:6.2f}")
        print()

    by_engine, by_family, by_era = defaultdict(list), defaultdict(list), defaultdict(list)
    for row in rows:
        pair = (row.measured, held[row.line])
        by_engine[f"{row.engine} {row.test.kind}"].append(pair)
        by_engine[f"all {row.test.kind}"].append(pair)
        by_family[f"{row.family} {row.test.kind}"].append(pair)
        by_era[f"{row.era} builds {row.test.kind}"].append(pair)
    order = lambda groups: sorted(groups.items(), key=lambda kv: (kv[0].startswith("all"), kv[0]))  # noqa: E731
    print(table(f"Held out by machine family: {len(rows)} rows, each predicted by parameters fitted on the "
                "other families", order(by_engine), args.markdown))
    print(table("Per machine family (held out)", order(by_family), args.markdown))
    print(table("Per engine build (held out; `uma plan` predicts the current build)", order(by_era), args.markdown))
    in_sample = defaultdict(list)
    for row in rows:
        if row.era == "current":
            in_sample[f"{row.engine} {row.test.kind}"].append((row.measured, rust[row.line]))
    print(table("`uma plan` as committed (fitted on all rows: in sample), current-build rows", order(in_sample),
                args.markdown))
    reasons = Counter(reason for _, _, reason in dropped)
    print(f"{len(dropped)} rows left out:")
    for reason, count in reasons.most_common():
        print(f"  {count:4}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
