#!/usr/bin/python3
"""The soak benchmark behind bench/soak/run.sh: resident memory and file descriptors of a long
`qkv sample` and a long `qkv train` with frequent checkpoints, sampled once a second."""
import argparse
import csv
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def watch(name, command, seconds, rows):
    """Runs command for `seconds`, sampling it once a second; returns the samples."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    start = time.time()
    samples = []
    try:
        while time.time() - start < seconds:
            if process.poll() is not None:
                raise RuntimeError(f"{name} ended early: {process.stderr.read()[-500:]}")
            try:
                sample = (time.time() - start, rss_kib(process.pid), open_fds(process.pid))
            except (FileNotFoundError, ProcessLookupError):
                break
            samples.append(sample)
            rows.append((f"{sample[0]:.1f}", name, sample[1], sample[2]))
            time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGINT)  # train saves and stops; sample just stops
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    return samples


def verdict(name, samples, warmup):
    settled = [s for s in samples if s[0] >= warmup] or samples
    first, peak, last = settled[0][1], max(s[1] for s in settled), settled[-1][1]
    growth = (peak - first) / first if first else 0.0
    fds = sorted({s[2] for s in samples})
    fd_growth = settled[-1][2] - settled[0][2]
    flat = growth <= 0.05 and fd_growth <= 0
    print(f"{name}: resident {first / 1024:.1f} MiB after warm-up, peak {peak / 1024:.1f}, "
          f"end {last / 1024:.1f} MiB ({growth * 100:+.1f} %); open descriptors {fds}; "
          f"{'FLAT' if flat else 'GROWS'}")
    return flat


def svg(rows, path):
    series = {}
    for seconds, name, rss, _ in rows:
        series.setdefault(name, []).append((float(seconds), rss / 1024))
    width, height, margin = 720, 360, 50
    t_max = max(t for points in series.values() for t, _ in points) or 1
    m_max = max(m for points in series.values() for _, m in points) * 1.1 or 1
    colors = ["#1f77b4", "#d62728"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-family="sans-serif">'
             'qkv soak: resident memory (MiB) over time (s)</text>']
    for i, (name, points) in enumerate(series.items()):
        coords = " ".join(
            f"{margin + t / t_max * (width - 2 * margin):.1f},"
            f"{height - margin - m / m_max * (height - 2 * margin):.1f}" for t, m in points)
        parts.append(f'<polyline fill="none" stroke="{colors[i % 2]}" points="{coords}"/>')
        parts.append(f'<text x="{margin + 10}" y="{40 + 16 * i}" fill="{colors[i % 2]}" '
                     f'font-family="sans-serif" font-size="12">{name}</text>')
    parts.append(f'<text x="{margin}" y="{height - 10}" font-family="sans-serif" '
                 f'font-size="11">0 .. {t_max:.0f} s; 0 .. {m_max:.0f} MiB</text></svg>')
    path.write_text("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qkv", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = pathlib.Path(args.data)
    if not data.is_file():
        data = out / "data.txt"
        data.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                                for i in range(3000)))
        print(f"note: ../shared/data/tinyshakespeare.txt is absent; using {data}")
    cpu = platform.machine()
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(f"machine: {cpu}, {os.cpu_count()} cores; "
          f"{args.minutes} min per process")
    seconds = args.minutes * 60
    warmup = min(60.0, seconds / 4)
    model = out / "model"
    shutil.rmtree(model, ignore_errors=True)
    subprocess.run([args.qkv, "train", "--data", str(data), "--out", str(model), "--steps", "50",
                    "--quiet"], check=True)
    rows = []
    sample = watch("sample", [args.qkv, "sample", "--model", str(model), "--tokens",
                              str(1 << 30), "--temperature", "0.8"], seconds, rows)
    training = out / "training"
    shutil.rmtree(training, ignore_errors=True)
    train = watch("train", [args.qkv, "train", "--data", str(data), "--out", str(training),
                            "--steps", str(1 << 30), "--save-every", "5", "--eval-every", "50",
                            "--keep-checkpoints", "2", "--quiet"], seconds, rows)
    with open(out / "soak.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["seconds", "process", "rss_kib", "fds"])
        writer.writerows(rows)
    svg(rows, out / "soak.svg")
    flat = verdict("qkv sample", sample, warmup) & verdict("qkv train", train, warmup)
    print(f"wrote {out / 'soak.csv'} and {out / 'soak.svg'}; {'all flat' if flat else 'growth'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
