#!/usr/bin/env python3
"""Turns the CSVs of run_gemm_bench.sh into the markdown tables of docs/gemm.md.

Per case, the time is the median over rounds of each run's median; aggregates are total flops
over total time, each case weighted by how often a training step makes that call. Ratios
against oneDNN sgemm are taken per round (the runs of one round were interleaved, so they saw
similar machine load) and then the median is reported.

Usage: summarize_gemm_bench.py RESULTS_DIR
"""

import collections
import csv
import glob
import os
import re
import statistics
import sys

BASELINE = "dnnl_sgemm"
GPT2_LAYERS = 12
# Aggregate name -> {group: weight}. The GPT-2 step is 12 layers plus the LM head.
AGGREGATES = collections.OrderedDict([
    ("GPT-2 step", {"gpt2_layer": GPT2_LAYERS, "gpt2_head": 1}),
    ("GPT-2 layer", {"gpt2_layer": 1}),
    ("LM head", {"gpt2_head": 1}),
    ("char model", {"char": 1}),
    ("attn T=256", {"attn256": 1}),
])


def load(results_dir):
    """Returns rows[(variant, threads, round)] = list of csv dicts, and descriptions."""
    rows, describe = {}, {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.t*.r*.csv"))):
        m = re.match(r"(.+)\.t(\d+)\.r(\d+)\.csv$", os.path.basename(path))
        variant, threads, rnd = m.group(1), int(m.group(2)), int(m.group(3))
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            if line.startswith("# backend:"):
                describe[variant] = line[len("# backend: "):]
            if line.startswith("# correctness check FAILED"):
                sys.exit(f"{path}: correctness check failed")
        data = [l for l in lines if not l.startswith("#")]
        rows[(variant, threads, rnd)] = list(csv.DictReader(data))
    return rows, describe


def flops(r):
    return 2.0 * int(r["m"]) * int(r["n"]) * int(r["k"])


def aggregate_time(case_rows, weights):
    total_flops = total_time = 0.0
    for r in case_rows:
        w = weights.get(r["group"], 0) * int(r["count"])
        total_flops += w * flops(r)
        total_time += w * float(r["median_s"])
    return total_flops, total_time


def main():
    results_dir = sys.argv[1]
    rows, describe = load(results_dir)
    variants = []
    for (v, _, _) in sorted(rows, key=lambda k: k[0]):
        if v not in variants:
            variants.append(v)
    order = ["dnnl_sgemm", "dnnl_matmul", "openblas_env", "openblas_auto", "openblas_haswell",
             "blis_auto", "blis_skx", "eigen_avx2", "eigen_avx512"]
    variants.sort(key=lambda v: order.index(v) if v in order else len(order))
    thread_counts = sorted({t for (_, t, _) in rows})
    rounds = sorted({r for (_, _, r) in rows})

    peak = collections.defaultdict(float)
    # peak.csv holds a run from before and one from after the benchmarks, each with a header.
    with open(os.path.join(results_dir, "peak.csv")) as f:
        for line in f:
            threads, isa, gflops = line.strip().split(",")
            if threads != "threads":
                peak[int(threads)] = max(peak[int(threads)], float(gflops))

    print("Libraries as each program reported itself:\n")
    for v in variants:
        print(f"- `{v}`: {describe.get(v, '?')}")
    print()
    print("FP32 FMA peak (best of runs): " +
          ", ".join(f"{t} thread(s) {peak[t]:.0f} GFLOP/s" for t in sorted(peak)) + "\n")

    # Median per-case time over rounds.
    def case_medians(variant, threads):
        per_case = collections.OrderedDict()
        for rnd in rounds:
            for r in rows.get((variant, threads, rnd), []):
                per_case.setdefault(r["case"], []).append(r)
        out = []
        for case, rs in per_case.items():
            med = dict(rs[0])
            med["median_s"] = statistics.median(float(r["median_s"]) for r in rs)
            med["prepare_s"] = statistics.median(float(r["prepare_s"]) for r in rs)
            out.append(med)
        return out

    for threads in thread_counts:
        print(f"**Aggregate GFLOP/s, {threads} thread(s)** — in parentheses: speed relative to "
              f"`{BASELINE}` (median of per-round ratios); % of the {threads}-thread FMA peak "
              f"({peak[threads]:.0f} GFLOP/s) for the GPT-2 step.\n")
        print("| variant | " + " | ".join(AGGREGATES) + " | GPT-2 step % peak |")
        print("|---|" + "---:|" * (len(AGGREGATES) + 1))
        for v in variants:
            cells = []
            step_gflops = None
            for name, weights in AGGREGATES.items():
                fl, tm = aggregate_time(case_medians(v, threads), weights)
                gf = fl / tm * 1e-9 if tm else float("nan")
                ratios = []
                for rnd in rounds:
                    base = rows.get((BASELINE, threads, rnd))
                    mine = rows.get((v, threads, rnd))
                    if base and mine:
                        _, tb = aggregate_time(base, weights)
                        _, tv = aggregate_time(mine, weights)
                        ratios.append(tb / tv)
                ratio = statistics.median(ratios) if ratios else float("nan")
                cells.append(f"{gf:.0f} ({ratio:.2f})")
                if step_gflops is None:
                    step_gflops = gf
            pct = 100 * step_gflops / peak[threads] if peak[threads] else float("nan")
            print(f"| {v} | " + " | ".join(cells) + f" | {pct:.0f}% |")
        print()

    for threads in thread_counts:
        print(f"**Per call GFLOP/s, {threads} thread(s)** (median over rounds; × = calls per "
              "layer or step)\n")
        print("| case | m×n×k | × | " + " | ".join(variants) + " |")
        print("|---|---|---:|" + "---:|" * len(variants))
        table = {v: {r["case"]: r for r in case_medians(v, threads)} for v in variants}
        for r in case_medians(BASELINE, threads):
            cells = []
            for v in variants:
                rv = table[v].get(r["case"])
                cells.append(f"{flops(rv) / rv['median_s'] * 1e-9:.0f}" if rv else "–")
            print(f"| {r['case']} | {r['m']}×{r['n']}×{r['k']} | {r['count']} | " +
                  " | ".join(cells) + " |")
        print()

    if "dnnl_matmul" in variants:
        for threads in thread_counts:
            meds = case_medians("dnnl_matmul", threads)
            total = sum(r["prepare_s"] for r in meds)
            worst = max(meds, key=lambda r: r["prepare_s"])
            impls = sorted({r["impl"] for r in meds})
            print(f"oneDNN matmul primitive creation, {threads} thread(s): {len(meds)} shapes, "
                  f"{total * 1e3:.1f} ms in total, slowest {worst['prepare_s'] * 1e3:.2f} ms "
                  f"({worst['case']}); implementations: {', '.join(impls)}.\n")


if __name__ == "__main__":
    main()
