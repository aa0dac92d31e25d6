#!/usr/bin/env python3
"""Compares `uma plan`'s predicted speeds with published measurements
(crates/planner/data/published_measurements.csv) where a catalogued machine and a described model
match a published row. Prints one line per comparison and the error per machine family.

First set: llama.cpp's Apple Silicon table (LLaMA 2 7B at Q4_0 / Q8_0 / F16; pp512 and tg128,
Metal) against the catalogued Macs of the same chip and GPU cores. More sets (other models,
GPUs, engines) belong here as the speed model grows (issue 20).

Usage: scripts/planner/compare-published.py [--uma PATH]   (default: target/release/uma, else debug)
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "crates", "planner", "data", "published_measurements.csv")

# LLaMA 2 7B as llama.cpp's table ran it.
LLAMA2_7B = ["--params", "6.74B", "--layers", "32", "--hidden", "4096", "--heads", "32",
             "--vocab", "32000", "--ffn", "11008", "--ctx", "512"]

# Catalogue machine -> (chip, GPU cores) of the published rows that describe it.
MACHINES = {
    "mac-mini-m4-16gb": ("M4", "10"),
    "mac-mini-m4-pro-24gb": ("M4 Pro", "20"),
    "mac-studio-m4-max-36gb": ("M4 Max", "32"),
    "mac-studio-m4-max-48gb": ("M4 Max", "40"),
    "mac-studio-m3-ultra-96gb": ("M3 Ultra", "60"),
    "mac-studio-m3-ultra-512gb": ("M3 Ultra", "80"),
}


def predicted(uma: str, machine: str, quant: str) -> dict:
    out = subprocess.run([uma, "plan", *LLAMA2_7B, "--quant", quant, "--hw", machine, "--json"],
                         check=True, capture_output=True, text=True).stdout
    speed = json.loads(out)["plans"][0]["speed"]
    return {"tg128": speed["decode_empty_context"]["tokens_per_second"],
            "pp512": speed["prefill"]["tokens_per_second"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    release = os.path.join(ROOT, "target", "release", "uma")
    parser.add_argument("--uma", default=release if os.path.exists(release)
                        else os.path.join(ROOT, "target", "debug", "uma"))
    args = parser.parse_args()
    rows = list(csv.DictReader(open(DATA, encoding="utf-8")))
    errors = defaultdict(list)
    print(f"{'machine':28} {'quant':5} {'test':6} {'published':>9} {'predicted':>9} {'error':>7}")
    for machine, (chip, cores) in MACHINES.items():
        for quant in ("Q4_0", "Q8_0", "F16"):
            published = {r["test"]: float(r["tokens_per_s"]) for r in rows
                         if r["chip"] == chip and r["gpu_cores"] == cores
                         and r["params_b"] in ("7", "6.74") and r["quantization"] == quant
                         and r["engine"] == "llama.cpp" and r["backend"] == "metal"
                         and r["test"] in ("pp512", "tg128")}
            if not published:
                continue
            guess = predicted(args.uma, machine, quant.lower())
            for test, value in sorted(published.items()):
                error = guess[test] / value - 1
                errors[test].append(error)
                print(f"{machine:28} {quant:5} {test:6} {value:9.1f} {guess[test]:9.1f} "
                      f"{error:+7.0%}")
    for test, values in sorted(errors.items()):
        mean_abs = sum(abs(v) for v in values) / len(values)
        print(f"{test}: {len(values)} comparisons, mean |error| {mean_abs:.0%}, "
              f"from {min(values):+.0%} to {max(values):+.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
