#!/usr/bin/env python3
"""uma against llama.cpp on a shared, noisy machine: short single tests, each engine right after
the other (the order alternating by round), each run started when the machine is quiet and logged
with how busy it was, so that only the pairs measured on a quiet machine are compared.

  vs-llama-cpp-pairs.py MODEL.gguf ROUNDS LOG.jsonl     # measure, appending to LOG.jsonl
  vs-llama-cpp-pairs.py --summary LOG.jsonl...           # the pairs, the quiet ones' ratios

Each round, in turn for each engine (llama.cpp first in even rounds, uma first in odd ones):
  decode:        llama-bench -p 0 -n 128 -r 3   /  uma bench -p 0 -n 128 -r 3        (tg128)
                 then `uma plan MODEL --ctx 72 --bandwidth <the bench's probe>`: the planner's
                 decode at the bench's mean position (as scripts/bench/validate-planner.sh does)
  16 sequences:  llama-batched-bench -npp 8 -ntg 128 -npl 16 (S_TG)  /
                 uma bench -p 0 -n 128 -r 1 --batch 16
all with THREADS threads (default 2). Before each run it waits (up to 3 minutes) until other
processes used under 0.1 core for 2 seconds; each record has `foreign_cores`, the cores other
processes (and the hypervisor's steal) used during the run (/proc/stat busy ticks less this
script's children's CPU time), and the 1-minute load average at its start. A pair is quiet when
both runs' foreign_cores are at most 0.1. What this cannot see: other virtual machines on the
same host taking memory bandwidth (uma's probe, logged per uma run, moves with it).

Environment: LLAMA_BIN (llama.cpp's bin folder; default: found in ~/.cache/uma-peers), UMA_BIN
(default: this checkout's target/release/uma, not rebuilt), THREADS. Linux only.
"""
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
QUIET = 0.1


def busy():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]  # user nice system irq softirq steal


def children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(limit=180):
    """Waits (at most `limit` s) until other processes used under 0.1 core for 2 s."""
    t = time.time()
    while time.time() - t < limit:
        b0 = busy()
        time.sleep(2)
        if (busy() - b0) / TCK / 2 < QUIET:
            return round(time.time() - t)
    return -1


def run(cmd):
    waited = wait_quiet()
    b0, c0, t0 = busy(), children(), time.time()
    load1 = float(open("/proc/loadavg").read().split()[0])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    b1, c1, t1 = busy(), children(), time.time()
    foreign = max(0.0, (b1 - b0) / TCK - (c1 - c0)) / (t1 - t0)
    return out, {"foreign_cores": round(foreign, 2), "load1": load1, "wall_s": round(t1 - t0, 1),
                 "start": time.strftime("%H:%M:%S", time.localtime(t0)), "waited_s": waited}


def measure(model, rounds, log):
    found = sorted(glob.glob(os.path.expanduser("~/.cache/uma-peers/*/build/bin")))
    llama = os.environ.get("LLAMA_BIN") or (found[0] if found else "")
    uma_bin = os.environ.get("UMA_BIN") or os.path.join(ROOT, "target/release/uma")
    threads = os.environ.get("THREADS", "2")
    if not os.access(os.path.join(llama, "llama-bench"), os.X_OK):
        sys.exit("llama-bench not found: set LLAMA_BIN")

    def llama_tg():
        out, m = run([f"{llama}/llama-bench", "-m", model, "-t", threads, "-p", "0", "-n", "128",
                      "-r", "3", "-o", "json"])
        return json.loads(out)[0]["avg_ts"], m

    def llama_batched():
        out, m = run([f"{llama}/llama-batched-bench", "-m", model, "-t", threads, "-c", "4096",
                      "-b", "2048", "-ub", "512", "-npp", "8", "-ntg", "128", "-npl", "16"])
        for line in out.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and cells[0].isdigit() and cells[2] == "16":
                return float(cells[7]), m
        raise RuntimeError("no 16-sequence row in llama-batched-bench's output")

    def uma(batch, reps):
        out, m = run([uma_bin, "bench", model, "-p", "0", "-n", "128", "-r", str(reps),
                      "--batch", str(batch), "--threads", threads, "--json"])
        j = json.loads(out)
        test = "tg128" if batch == 1 else f"tg128 x{batch}"
        r = next(r for r in j["results"] if r["test"] == test)
        bandwidth = j["bandwidth"]["gb_per_s"]
        m["bandwidth"] = round(bandwidth, 1)
        if batch == 1:
            plan = json.loads(subprocess.run(
                [uma_bin, "plan", model, "--ctx", "72", "--bandwidth", str(bandwidth), "--json"],
                capture_output=True, text=True, check=True).stdout)
            speed = plan["plans"][0]["speed"]["decode_full_context"]["tokens_per_second"]
            m["plan_tok_s"] = round(speed, 2)
        return r["mean"], m

    tests = {"tg128": [("llama.cpp", llama_tg), ("uma", lambda: uma(1, 3))],
             "16 seq S_TG": [("llama.cpp", llama_batched), ("uma", lambda: uma(16, 1))]}
    with open(log, "a") as f:
        for i in range(rounds):
            for test, engines in tests.items():
                for engine, fn in (engines if i % 2 == 0 else engines[::-1]):
                    tps, m = fn()
                    rec = {"round": i, "test": test, "engine": engine, "tok_s": round(tps, 2), **m}
                    f.write(json.dumps(rec) + "\n")
                    f.flush()


def summary(logs):
    pairs = {}
    for log in logs:
        for line in open(log):
            r = json.loads(line)
            pairs.setdefault((log, r["round"], r["test"]), {})[r["engine"]] = r
    for test in ("tg128", "16 seq S_TG"):
        print(f"\n{test}\n\n| log, round | uma tok/s (foreign cores, probe GB/s) "
              "| llama.cpp tok/s (foreign cores) | uma / llama.cpp | uma / plan |")
        print("|---|---|---|---|---|")
        quiet = []
        for (log, rnd, t), p in pairs.items():
            if t != test or len(p) < 2:
                continue
            u, l = p["uma"], p["llama.cpp"]
            ratio = u["tok_s"] / l["tok_s"]
            is_quiet = max(u["foreign_cores"], l["foreign_cores"]) <= QUIET
            plan = f"{u['tok_s'] / u['plan_tok_s']:.2f}" if "plan_tok_s" in u else ""
            if is_quiet:
                quiet.append((ratio, u["tok_s"], l["tok_s"]))
            print(f"| {os.path.basename(log)} {rnd} | {u['tok_s']:.1f} ({u['foreign_cores']:.2f}, "
                  f"{u['bandwidth']:.1f}) | {l['tok_s']:.1f} ({l['foreign_cores']:.2f}) "
                  f"| {ratio:.2f}{'' if is_quiet else ' (busy)'} | {plan} |")
        if quiet:
            ratios = sorted(q[0] for q in quiet)
            print(f"\nquiet pairs: {len(quiet)}, uma / llama.cpp median {statistics.median(ratios):.2f} "
                  f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}, {sum(r >= 1.2 for r in ratios)} at "
                  f"1.2 or more); uma median {statistics.median(q[1] for q in quiet):.1f} tok/s, "
                  f"llama.cpp median {statistics.median(q[2] for q in quiet):.1f} tok/s")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--summary":
        summary(sys.argv[2:])
    elif len(sys.argv) == 4:
        measure(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
