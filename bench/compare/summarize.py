#!/usr/bin/env python3
"""Tables of bench/compare/run.sh: reads the per-process files under RAW, prints the Markdown
table to stdout and writes results.json, table.md, and (with the scaling section) scaling.csv
and scaling.svg into OUT.

Medians: each process reports the median over its own timed steps or runs; the table shows the
median of those over the rounds. "PyTorch best" is the faster of its 1- and 2-thread runs.
"""

import argparse
import csv
import glob
import json
import math
import os
import statistics
import sys

FLOP_FORMULA = ("training FLOPs per token = 6*N + 12*L*C*T (PaLM / nanoGPT estimate_mfu; N = all "
                "parameters, the tied head counted once, position table included; causal "
                "attention not halved)")
ATTENTION_FLOPS = "attention fwd+bwd FLOPs = 12*B*T^2*C (the 12*L*C*T term for one layer, not halved)"
GENERATE_FLOPS = "generation FLOPs per token = 2*N (forward matmuls; attention over the cache ignored)"


def read_json(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def runs(case_dir, pattern):
    """The JSON objects of the processes matching pattern (failed ones are absent)."""
    paths = [p for p in sorted(glob.glob(os.path.join(case_dir, pattern)))
             if not os.path.exists(p + ".failed")]
    return [r for r in map(read_json, paths) if r is not None]


def machine(raw):
    fields = {}
    for line in read_text(os.path.join(raw, "lscpu.txt")).splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    model = fields.get("Model name", "?")
    cpus = fields.get("CPU(s)", str(os.cpu_count()))
    per_core = fields.get("Thread(s) per core", "?")
    cores = fields.get("Core(s) per socket", "?")
    sockets = fields.get("Socket(s)", "?")
    return {"cpu": model, "logical_cpus": cpus, "threads_per_core": per_core,
            "cores_per_socket": cores, "sockets": sockets,
            "text": f"{model}, {cpus} logical CPUs ({sockets} socket(s) x {cores} core(s) x "
                    f"{per_core} thread(s))"}


def peaks(raw):
    """{threads: GFLOP/s}, the better ISA for each thread count."""
    out = {}
    for row in csv.DictReader(read_text(os.path.join(raw, "peak.csv")).splitlines()):
        try:
            threads, gflops = int(row["threads"]), float(row["gflops"])
        except (KeyError, ValueError):
            continue
        out[threads] = max(out.get(threads, 0.0), gflops)
    return out


def parse_attention_bench(path):
    """{impl: (ms, MiB)} from attention_bench's table rows: T impl threads ms MiB speedup."""
    out = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[1] in ("simple", "flash") and parts[0].isdigit():
            out[parts[1]] = (float(parts[3]), float(parts[4]))
    return out


def fmt(value, digits=0, unit=""):
    if value is None:
        return "failed"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}{unit}"


def pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def tag(variant):
    """1 -> "1t"; a string variant ("1t bf16") as it is."""
    return f"{variant}t" if isinstance(variant, int) else variant


# The training rows' PyTorch variants: threads in fp32, and threads under bf16 autocast (run.sh
# runs those where the CPU has AVX512-BF16 or AMX).
TRAIN_TORCH_VARIANTS = {1: "torch-1t-r*.json", 2: "torch-2t-r*.json",
                        "1t bf16": "torch-bf16-1t-r*.json", "2t bf16": "torch-bf16-2t-r*.json"}


def torch_by_threads(case_dir, key, lower_is_better, pattern="torch-{n}t-r*.json", variants=None):
    """{variant: (median value, runs)} for variants 1, 2 threads (or those given, each a
    pattern), and the best variant."""
    by = {}
    for n, variant_pattern in (variants or {n: pattern.format(n=n) for n in (1, 2)}).items():
        rs = runs(case_dir, variant_pattern)
        value = median([r.get(key) for r in rs])
        if value is not None:
            by[n] = (value, rs)
    if not by:
        return by, None
    best = (min if lower_is_better else max)(by, key=lambda n: by[n][0])
    return by, best


def train_row(case, case_dir, peak_gflops, qkv_pattern="qkv-2t-r*.json", suffix=""):
    qkv_runs = runs(case_dir, qkv_pattern)
    qkv_ms = median([r["step_ms_median"] for r in qkv_runs])
    torch, best = torch_by_threads(case_dir, "step_ms_median", lower_is_better=True,
                                   variants=TRAIN_TORCH_VARIANTS)
    any_run = (qkv_runs or [r for n in torch for r in torch[n][1]] or [None])[0]
    flops_step = (any_run["flops_per_token"] * any_run["tokens_per_step"]) if any_run else None
    tokens_step = any_run["tokens_per_step"] if any_run else None
    params = {"qkv": qkv_runs[0]["model"]["parameters"] if qkv_runs else None,
              "pytorch": next((torch[n][1][0]["model"]["parameters"] for n in torch), None)}

    def mfu(ms):
        return flops_step / (ms / 1e3) / (peak_gflops * 1e9) if ms and flops_step and peak_gflops else None

    torch_ms = torch[best][0] if best else None
    row = {"section": case["section"], "case": case["case"] + suffix, "label": case["label"],
           "metric": "tokens/s" if case["section"] == "char" else "step ms",
           "qkv_threads": 2, "qkv_step_ms": qkv_ms,
           "qkv_tokens_per_s": tokens_step / (qkv_ms / 1e3) if qkv_ms and tokens_step else None,
           "pytorch_step_ms": {n: torch[n][0] for n in torch},
           "pytorch_tokens_per_s": {n: tokens_step / (torch[n][0] / 1e3) for n in torch} if tokens_step else {},
           "pytorch_best_threads": best,
           "speedup": torch_ms / qkv_ms if torch_ms and qkv_ms else None,
           "qkv_mfu": mfu(qkv_ms), "pytorch_mfu": mfu(torch_ms),
           "qkv_memory_mib": median([r.get("peak_memory_mib") for r in qkv_runs]),
           "pytorch_memory_mib": median([r.get("peak_memory_mib") for r in torch[best][1]]) if best else None,
           "memory_note": "peak resident-size growth of the process while building and training",
           "flops_per_token": any_run["flops_per_token"] if any_run else None,
           "tokens_per_step": tokens_step, "parameters": params,
           "rounds": {"qkv": len(qkv_runs), "pytorch": {n: len(torch[n][1]) for n in torch}}}
    if case["section"] == "char":
        row["qkv_value"] = row["qkv_tokens_per_s"]
        row["pytorch_values"] = row["pytorch_tokens_per_s"]
        row["digits"] = 0
    else:
        row["qkv_value"] = qkv_ms
        row["pytorch_values"] = row["pytorch_step_ms"]
        row["digits"] = 0
    # MFU against the measured bf16 matmul rate (matmul-peak's 2048^3 product) for the sides
    # that ran in bf16: the FMA peak is float32's, which bf16 hardware can exceed.
    bf16_rate = (read_json(os.path.join(os.path.dirname(os.path.dirname(case_dir)),
                                        "matmul_peak.json")) or {}).get("bf16_gflops")
    if bf16_rate and flops_step:
        bf16_mfu = lambda ms: flops_step / (ms / 1e3) / (bf16_rate * 1e9) if ms else None
        row["qkv_mfu_of_bf16_matmul"] = bf16_mfu(qkv_ms) if suffix else None
        row["pytorch_mfu_of_bf16_matmul"] = (bf16_mfu(torch_ms)
                                             if isinstance(best, str) and "bf16" in best else None)
    row["qkv_precision"] = qkv_runs[0].get("precision", "fp32") if qkv_runs else None
    row["bf16_matrix_isa"] = qkv_runs[0].get("bf16_matrix_isa") if qkv_runs else None
    rows = [row]
    # qkv in bf16 (run.sh runs it where the CPU can): a row of its own against the same best.
    if not suffix and glob.glob(os.path.join(case_dir, "qkv-bf16-2t-r*.json")):
        rows += train_row(case, case_dir, peak_gflops, "qkv-bf16-2t-r*.json", " bf16")
    return rows


def attention_rows(case, case_dir, peak_gflops):
    qkv = [parse_attention_bench(p) for p in sorted(glob.glob(os.path.join(case_dir, "qkv-2t-r*.txt")))
           if not os.path.exists(p + ".failed")]
    torch, best = torch_by_threads(case_dir, "ms_median", lower_is_better=True)
    any_torch = next((torch[n][1][0] for n in torch), None)
    seq = int(case["case"].lstrip("T"))
    heads, head_dim = 12, 64
    flops = 12.0 * seq * seq * heads * head_dim
    torch_ms = torch[best][0] if best else None
    memory = {n: read_json(os.path.join(case_dir, f"torch-memory-{n}t.json")) for n in (1, 2)}
    torch_mem = memory.get(best) if best else None
    torch_mem = torch_mem or memory.get(1) or memory.get(2)

    def mfu(ms):
        return flops / (ms / 1e3) / (peak_gflops * 1e9) if ms and peak_gflops else None

    rows = []
    for impl in ("flash", "simple"):
        ms = median([r[impl][0] for r in qkv if impl in r])
        mib = median([r[impl][1] for r in qkv if impl in r])
        rows.append({
            "section": "attention", "case": f"{case['case']} {impl}",
            "label": f"{case['label']}: qkv {impl} vs PyTorch explicit",
            "metric": "fwd+bwd ms", "qkv_threads": 2, "qkv_value": ms,
            "pytorch_values": {n: torch[n][0] for n in torch}, "pytorch_best_threads": best,
            "speedup": torch_ms / ms if torch_ms and ms else None,
            "qkv_mfu": mfu(ms), "pytorch_mfu": mfu(torch_ms),
            "qkv_memory_mib": mib,
            "pytorch_memory_mib": torch_mem["memory_mib"] if torch_mem else None,
            "pytorch_memory_detail": memory,
            "memory_note": ("qkv: bytes its buffers take beyond inputs, outputs and gradients "
                            "(attention_bench's accounting); PyTorch: measured peak resident-size "
                            "growth of one fwd+bwd minus the output and dv alive at the peak"),
            "flops": flops, "digits": 2, "probs_mib": any_torch["probs_mib"] if any_torch else None,
            "rounds": {"qkv": len(qkv), "pytorch": {n: len(torch[n][1]) for n in torch}}})
    return rows


def generate_row(case, case_dir, peak_gflops):
    qkv, qkv_best = {}, None
    for n in (1, 2):
        rs = runs(case_dir, f"qkv-{n}t-r*.json")
        value = median([r["tokens_per_s"] for r in rs])
        if value is not None:
            qkv[n] = (value, rs)
    if qkv:
        qkv_best = max(qkv, key=lambda n: qkv[n][0])
    torch, best = torch_by_threads(case_dir, "tokens_per_s", lower_is_better=False)
    any_run = next((rs[0] for _, rs in list(qkv.values()) + list(torch.values())), None)
    flops = any_run["flops_per_token"] if any_run else None

    def mfu(tps):
        return flops * tps / (peak_gflops * 1e9) if tps and flops and peak_gflops else None

    qkv_tps = qkv[qkv_best][0] if qkv_best else None
    torch_tps = torch[best][0] if best else None
    return [{
        "section": "generate", "case": case["case"], "label": case["label"], "metric": "tokens/s",
        "qkv_threads": qkv_best, "qkv_value": qkv_tps,
        "qkv_values": {n: qkv[n][0] for n in qkv},
        "pytorch_values": {n: torch[n][0] for n in torch}, "pytorch_best_threads": best,
        "speedup": qkv_tps / torch_tps if qkv_tps and torch_tps else None,
        "qkv_mfu": mfu(qkv_tps), "pytorch_mfu": mfu(torch_tps),
        "qkv_memory_mib": median([r.get("peak_memory_mib") for r in qkv[qkv_best][1]]) if qkv_best else None,
        "pytorch_memory_mib": median([r.get("peak_memory_mib") for r in torch[best][1]]) if best else None,
        "memory_note": "peak resident-size growth of the process while building the model and generating",
        "window_slides": any_run.get("window_slides") if any_run else None,
        "flops_per_token": flops, "digits": 1,
        "rounds": {"qkv": {n: len(qkv[n][1]) for n in qkv}, "pytorch": {n: len(torch[n][1]) for n in torch}}}]


def scaling_point(case, case_dir, peak_gflops):
    rs = runs(case_dir, "qkv-2t-r*.json")
    seq = int(case["case"].lstrip("T"))
    if not rs:
        return {"seq_len": seq, "failed": True}
    step_ms = median([r["step_ms_median"] for r in rs])
    attention = [r.get("attention") or {} for r in rs]
    simple = median([a.get("all_layers_simple_ms") for a in attention])
    flash = median([a.get("all_layers_flash_ms") for a in attention])
    tokens = rs[0]["tokens_per_step"]
    flops = rs[0]["flops_per_token"] * tokens
    return {"seq_len": seq, "batch": rs[0]["batch"], "model": rs[0]["model"],
            "step_ms": step_ms, "ms_per_token": step_ms / tokens,
            "tokens_per_s": tokens / (step_ms / 1e3),
            "mfu": flops / (step_ms / 1e3) / (peak_gflops * 1e9) if peak_gflops else None,
            "attention_simple_ms": simple, "attention_flash_ms": flash,
            "attention_share_simple": simple / step_ms if simple else None,
            "attention_share_flash": flash / step_ms if flash else None,
            "peak_memory_mib": median([r.get("peak_memory_mib") for r in rs]), "rounds": len(rs),
            "model_kernel": rs[0].get("attention_kernel", "?")}


def svg_escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def scaling_svg(points, title, layers):
    """A line plot of ms per token against T (log2 axis): the whole step and the attention core."""
    points = [p for p in points if not p.get("failed")]
    width, height = 820, 460
    left, right, top, bottom = 80, 290, 50, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    series = [("training step (all of it)", "#1f77b4", "ms_per_token", False),
              (f"attention core, simple op, {layers} layers", "#d62728", "simple_per_token", True),
              (f"attention core, flash kernel, {layers} layers", "#2ca02c", "flash_per_token", True)]
    for p in points:
        tokens = p["step_ms"] / p["ms_per_token"]
        p["simple_per_token"] = p["attention_simple_ms"] / tokens if p.get("attention_simple_ms") else None
        p["flash_per_token"] = p["attention_flash_ms"] / tokens if p.get("attention_flash_ms") else None
    xs = [math.log2(p["seq_len"]) for p in points]
    ys = [p[key] for p in points for _, _, key, _ in series if p.get(key) is not None]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (6, 12)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_hi = max(ys) * 1.1 if ys else 1.0
    magnitude = 10 ** math.floor(math.log10(y_hi / 5))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if y_hi / (m * magnitude) <= 6)

    def sx(x):
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y):
        return top + plot_h - y / y_hi * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + plot_w / 2}" y="24" text-anchor="middle" font-size="15">'
           f'{svg_escape(title)}</text>']
    y = 0.0
    while y <= y_hi + 1e-12:
        out.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + plot_w}" y2="{sy(y):.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += step
    for p, x in zip(points, xs):
        out.append(f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{top + plot_h}" '
                   f'stroke="#eee"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                   f'{p["seq_len"]}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               f'stroke="#444"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 16}" text-anchor="middle">'
               f'context T (tokens, log scale)</text>')
    out.append(f'<text x="18" y="{top + plot_h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {top + plot_h / 2})">ms per token</text>')
    for index, (name, color, key, dashed) in enumerate(series):
        coords = [(sx(x), sy(p[key])) for p, x in zip(points, xs) if p.get(key) is not None]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        if coords:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="'
                       + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords) + '"/>')
            for cx, cy in coords:
                out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{color}"/>')
        ly = top + 10 + index * 22
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{left + plot_w + 14}" y1="{ly}" x2="{left + plot_w + 40}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + plot_w + 46}" y="{ly + 4}" font-size="11">{svg_escape(name)}</text>')
    note_y = top + 10 + len(series) * 22 + 10
    out.append(f'<text x="{left + plot_w + 14}" y="{note_y}" font-size="11">attention share of the'
               f' step (simple / flash):</text>')
    for i, p in enumerate(points):
        text = f'T={p["seq_len"]}: {pct(p.get("attention_share_simple"))} / {pct(p.get("attention_share_flash"))}'
        out.append(f'<text x="{left + plot_w + 14}" y="{note_y + 16 * (i + 1)}" font-size="11">'
                   f'{svg_escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def bf16_share(mfu):
    """" (41.0% of bf16 matmul)" for a side that ran in bf16, else ""."""
    return "" if mfu is None else f" ({100 * mfu:.1f}% of bf16 matmul)"


def markdown_table(rows):
    header = ["section", "case", "metric", "qkv (threads)", "PyTorch 1t / 2t", "PyTorch best (threads)",
              "speed-up", "qkv MFU", "PyTorch MFU", "qkv memory", "PyTorch memory"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for r in rows:
        digits = r.get("digits", 0)
        pv = r.get("pytorch_values", {})
        best = r.get("pytorch_best_threads")
        lines.append("| " + " | ".join([
            r["section"], r["case"], r["metric"],
            f'{fmt(r["qkv_value"], digits)} ({r["qkv_threads"]}t)' if r["qkv_value"] is not None else "failed",
            " / ".join(fmt(pv.get(n), digits) if n in pv else "failed" for n in (1, 2))
            + ("; bf16: " + " / ".join(fmt(pv.get(n), digits) if n in pv else "failed"
                                       for n in ("1t bf16", "2t bf16"))
               if any(isinstance(n, str) for n in pv) else ""),
            f"{fmt(pv[best], digits)} ({tag(best)})" if best else "failed",
            fmt(r["speedup"], 2, "x") if r["speedup"] else "-",
            pct(r["qkv_mfu"]) + bf16_share(r.get("qkv_mfu_of_bf16_matmul")),
            pct(r["pytorch_mfu"]) + bf16_share(r.get("pytorch_mfu_of_bf16_matmul")),
            fmt(r["qkv_memory_mib"], 1, " MiB") if r.get("qkv_memory_mib") is not None else "-",
            fmt(r["pytorch_memory_mib"], 1, " MiB") if r.get("pytorch_memory_mib") is not None else "-",
        ]) + " |")
    return "\n".join(lines)


def scaling_table(points):
    lines = ["| T | step ms | ms/token | tokens/s | MFU | model's attention kernel | "
             "attention simple ms (share) | attention flash ms (share) | peak memory |",
             "|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for p in points:
        if p.get("failed"):
            lines.append(f'| {p["seq_len"]} | failed | | | | | | | |')
            continue
        lines.append(
            f'| {p["seq_len"]} | {p["step_ms"]:,.0f} | {p["ms_per_token"]:.2f} | '
            f'{p["tokens_per_s"]:,.0f} | {pct(p["mfu"])} | {p.get("model_kernel", "?")} | '
            f'{fmt(p["attention_simple_ms"], 0)} ({pct(p["attention_share_simple"])}) | '
            f'{fmt(p["attention_flash_ms"], 0)} ({pct(p["attention_share_flash"])}) | '
            f'{fmt(p["peak_memory_mib"], 0, " MiB")} |')
    return "\n".join(lines)


def matmul_peak_text(raw):
    peak = read_json(os.path.join(raw, "matmul_peak.json"))
    if not peak:
        return "not measured"
    text = f"fp32 (oneDNN sgemm) {peak['fp32_gflops']:,.1f} GFLOP/s"
    if peak.get("bf16_gflops"):
        text += (f"; bf16 (oneDNN matmul, {peak.get('bf16_implementation')}) "
                 f"{peak['bf16_gflops']:,.1f} GFLOP/s: {peak['bf16_gflops'] / peak['fp32_gflops']:.2f}x fp32")
    else:
        text += "; bf16: this CPU has no AVX512-BF16 or AMX"
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--scaling-repeats", type=int, default=1)
    p.add_argument("--quick", type=int, default=0)
    args = p.parse_args()
    raw = args.raw

    info_machine = machine(raw)
    peak = peaks(raw)
    peak_2t = peak.get(2)
    peak_note = "MFU uses the 2-thread figure for both sides"
    # Two threads on two cores give twice one core's FMA rate; a lower 2-thread figure means
    # something else held a core while it ran (it happens on a shared machine), and MFU against
    # it would be inflated, so the 1-thread figure doubled stands in for it.
    if peak.get(1) and (peak_2t is None or peak_2t < 1.8 * peak[1]) and \
            info_machine["threads_per_core"] == "1":
        peak_note = (f"the 2-thread figure is under 1.8x the 1-thread one, so another process held a "
                     f"core while it ran: MFU uses 2 x the 1-thread figure, {2 * peak[1]:,.1f} GFLOP/s")
        peak_2t = 2 * peak[1]
    qkv_info = read_json(os.path.join(raw, "qkv_info.json")) or {}
    torch_info = read_json(os.path.join(raw, "torch_info.json")) or {}
    env_changes = read_text(os.path.join(raw, "env_changes.txt")).splitlines()
    blas_settings = ""
    for line in torch_info.get("blas_config_lines", []):
        if "BLAS_INFO" in line:
            blas_settings = ", ".join(part.strip().removeprefix("- Build settings: ")
                                      for part in line.split(",")
                                      if any(k in part for k in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN")))
    mkldnn = next((l.lstrip("- ") for l in torch_info.get("blas_config_lines", []) if "MKL-DNN" in l), "")
    qkv_gemm = (f'{qkv_info.get("gemm", "oneDNN dnnl_sgemm")} {qkv_info.get("dnnl_version", "?")} '
                f'({qkv_info.get("dnnl_cpu_runtime", "?")} runtime); Debian packages: '
                + "; ".join(read_text(os.path.join(raw, "dpkg_dnnl.txt")).splitlines())
                + "; linked: " + read_text(os.path.join(raw, "ldd_dnnl.txt")).split("(0x")[0].strip())
    torch_gemm = (f'PyTorch {torch_info.get("torch_version", "?")}: {blas_settings or "?"} -> '
                  f'libblas.so.3 = {torch_info.get("libblas_so_3", "?")}; {mkldnn}')

    cases = [read_json(path) | {"dir": os.path.dirname(path)}
             for path in glob.glob(os.path.join(raw, "*", "*", "case.json"))]
    cases.sort(key=lambda c: c["order"])
    rows, scaling = [], []
    for case in cases:
        builder = {"char": train_row, "gpt2": train_row, "attention": attention_rows,
                   "generate": generate_row}.get(case["section"])
        if builder:
            rows.extend(builder(case, case["dir"], peak_2t))
        elif case["section"] == "scaling":
            scaling.append(scaling_point(case, case["dir"], peak_2t))

    started = read_text(os.path.join(raw, "started_at.txt"), "?")
    load = (read_text(os.path.join(raw, "load_start.txt"), "?"), read_text(os.path.join(raw, "load_end.txt"), "?"))
    lines = [f"# qkv vs PyTorch (bench/compare), {started}", "",
             f"- machine: {info_machine['text']}; load average {load[0]} at start, {load[1]} at end",
             f"- FP32 peak (gemm_peak, FMA loop): "
             + ", ".join(f"{n} thread{'s' if n > 1 else ''} {g:,.1f} GFLOP/s" for n, g in sorted(peak.items()))
             + f" - {peak_note}",
             f"- measured 2048^3 matmul, 2 threads: {matmul_peak_text(raw)}",
             "- MFU: against the FP32 peak; a side that ran in bf16 also against the measured bf16 "
             "matmul rate (in parentheses: the share of what the bf16 matrix engine reached here)",
             f"- qkv GEMM: {qkv_gemm}",
             f"- PyTorch GEMM: {torch_gemm}",
             "- environment of the benchmark processes: " + "; ".join(env_changes),
             f"- rounds: {args.repeats} (qkv 2 threads, PyTorch 1 thread, PyTorch 2 threads, "
             "alternating, one process each); values are medians over the rounds"
             + (" (--quick)" if args.quick else ""),
             f"- {FLOP_FORMULA}", f"- {ATTENTION_FLOPS}", f"- {GENERATE_FLOPS}",
             "- speed-up = PyTorch best time / qkv time (for tokens/s: qkv / PyTorch best); "
             "above 1 means qkv is faster",
             "- memory: train and generate rows give the growth of each process's peak resident size; "
             "attention rows give qkv's buffers beyond inputs, outputs and gradients, and PyTorch's "
             "measured peak minus the output and dv (docs/benchmarks.md)", ""]
    table = markdown_table(rows)
    lines.append(table)
    if scaling:
        model = next((p["model"] for p in scaling if not p.get("failed")), {})
        lines += ["", f"### scaling: qkv training, GPT-2 small shape ({model.get('layers')} layers, width "
                  f"{model.get('dim')}, vocab {model.get('vocab')}), batch 1, 2 threads, "
                  f"{args.scaling_repeats} round(s)", "",
                  "attention = the attention core alone (after the QKV projection, before the output "
                  "projection), forward + backward, timed per layer and multiplied by the layers; "
                  "its share is of the whole step. Both kernels are timed: the share that applies is "
                  "that of the kernel the model's self-attention layer calls.", "",
                  scaling_table(scaling)]
    text = "\n".join(lines) + "\n"
    print(text)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    if scaling:
        with open(os.path.join(args.out, "scaling.csv"), "w", newline="") as f:
            fields = ["seq_len", "step_ms", "ms_per_token", "tokens_per_s", "mfu", "attention_simple_ms",
                      "attention_flash_ms", "attention_share_simple", "attention_share_flash",
                      "peak_memory_mib"]
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for point in scaling:
                writer.writerow({k: point.get(k, "") for k in fields})
        with open(os.path.join(args.out, "scaling.svg"), "w") as f:
            f.write(scaling_svg([dict(p) for p in scaling],
                                "qkv training time per token, GPT-2 small, batch 1, 2 threads",
                                model.get("layers")))
    result = {"benchmark": "bench/compare", "started_at": started, "machine": info_machine,
              "load_average": {"start": load[0], "end": load[1]},
              "peak_gflops": peak, "mfu_peak_gflops": peak_2t, "mfu_peak_note": peak_note,
              "qkv_gemm": qkv_gemm, "pytorch_gemm": torch_gemm, "qkv_info": qkv_info,
              "pytorch_info": torch_info, "environment_changes": env_changes,
              "repeats": args.repeats, "scaling_repeats": args.scaling_repeats, "quick": bool(args.quick),
              "flop_formulas": [FLOP_FORMULA, ATTENTION_FLOPS, GENERATE_FLOPS],
              "rows": rows, "scaling": scaling,
              "failures": int(read_text(os.path.join(raw, "failures.txt"), "0") or 0)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"written: {os.path.join(args.out, 'results.json')}, table.md"
          + (", scaling.csv, scaling.svg" if scaling else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
