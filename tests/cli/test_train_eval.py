#!/usr/bin/python3
"""End-to-end tests of `qkv train` and `qkv eval` through the binary, as a user runs them.

Covers: a fresh run writes every file SPEC.md promises; an interrupted run (by --stop-at and by
a real SIGINT) resumed with --resume gives bitwise the same losses as an uninterrupted one;
bad inputs are clear errors that lose nothing; `qkv eval` windows and averages exactly as
SPEC.md says (checked against the dumped logits with numpy).
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from cli_checks import FAILURES, check

QKV = sys.argv[1]

# A tiny but real recipe: fast enough to run in seconds, with every option on the data path.
TINY = ["--layers", "2", "--heads", "2", "--dim", "16", "--context", "16", "--batch", "4",
        "--eval-every", "5", "--eval-batches", "2", "--threads", "1", "--quiet"]



def run(*args, **kwargs):
    return subprocess.run([QKV, *args], capture_output=True, text=True, **kwargs)


def losses(model_dir):
    """(step, loss, val_loss) per log line, as exact strings of the JSON numbers."""
    rows = []
    for line in (model_dir / "train_log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        rows.append((entry["step"], repr(entry["loss"]), repr(entry.get("val_loss"))))
    return rows


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="qkv_cli_test_"))
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                   for i in range(300))
    data = work / "data.txt"
    data.write_text(text)

    # A fresh run writes the whole model directory.
    full = work / "full"
    result = run("train", "--data", str(data), "--out", str(full), "--steps", "12", *TINY)
    check(result.returncode == 0, f"fresh training run succeeds ({result.stderr.strip()[-200:]})")
    for name in ["config.json", "model.safetensors", "train_log.jsonl", "loss_curve.svg",
                 "training_state.safetensors"]:
        check((full / name).is_file(), f"{name} written")
    log = [json.loads(line) for line in (full / "train_log.jsonl").read_text().splitlines()]
    check([e["step"] for e in log] == list(range(1, 13)), "one log line per step")
    check(all({"step", "loss", "lr", "tokens", "tokens_per_s"} <= e.keys() for e in log),
          "log lines have step, loss, lr, tokens, tokens_per_s")
    window_tokens = int(TINY[TINY.index("--batch") + 1]) * int(TINY[TINY.index("--context") + 1])
    check(all(e["tokens"] == window_tokens for e in log),
          f"each step trained on --batch x --context tokens ({log[0].get('tokens')})")
    check(sum("val_loss" in e for e in log) == 3, "val_loss at steps 5, 10 and 12")
    svg = (full / "loss_curve.svg").read_text()
    check(svg.startswith("<svg") and "polyline" in svg, "loss curve is an SVG with lines")
    config = json.loads((full / "config.json").read_text())
    check(config["n_layer"] == 2 and config["tokenizer"]["type"] == "char",
          "config.json describes the model and its char tokenizer")

    # Interrupted by --stop-at, then resumed: the same losses, bit for bit.
    stopped = work / "stopped"
    first = run("train", "--data", str(data), "--out", str(stopped), "--steps", "12",
                "--stop-at", "7", *TINY)
    check(first.returncode == 0 and len(losses(stopped)) == 7, "--stop-at 7 stops after step 7")
    second = run("train", "--data", str(data), "--out", str(stopped), "--steps", "12",
                 "--resume", "--threads", "1", "--quiet", "--eval-every", "5",
                 "--eval-batches", "2", "--batch", "4")
    check(second.returncode == 0, f"--resume succeeds ({second.stderr.strip()[-300:]})")
    check(losses(stopped) == losses(full), "stopped + resumed losses equal uninterrupted ones")
    check((stopped / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes(),
          "stopped + resumed weights equal uninterrupted ones, bitwise")

    # Interrupted by a real Ctrl-C (SIGINT) at an arbitrary step.
    long_args = ["--steps", "400", *TINY]
    reference = work / "reference"
    check(run("train", "--data", str(data), "--out", str(reference), *long_args).returncode == 0,
          "uninterrupted 400-step run")
    interrupted = work / "interrupted"
    process = subprocess.Popen([QKV, "train", "--data", str(data), "--out", str(interrupted),
                                *long_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    log_path = interrupted / "train_log.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        if log_path.exists() and len(log_path.read_text().splitlines()) >= 20:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        print("note: the run finished before the signal arrived; resuming is then a no-op")
    else:
        check(process.returncode == 130 and "interrupted at step" in stderr,
              f"Ctrl-C saves and exits with 130 ({stderr.strip()[-200:]})")
        stop_step = len(losses(interrupted))
        resumed = run("train", "--data", str(data), "--out", str(interrupted), "--resume",
                      "--steps", "400", "--batch", "4", "--eval-every", "5", "--eval-batches",
                      "2", "--threads", "1", "--quiet")
        check(resumed.returncode == 0, f"resume after Ctrl-C at step {stop_step} succeeds")
        check(losses(interrupted) == losses(reference),
              f"Ctrl-C at step {stop_step} + resume gives the uninterrupted losses bitwise")

    # Bad inputs: clear errors, nothing overwritten or half-written.
    empty = work / "empty.txt"
    empty.write_text("")
    result = run("train", "--data", str(empty), "--out", str(work / "e"), *TINY)
    check(result.returncode == 1 and "empty" in result.stderr, "empty data file: exit 1, says so")
    result = run("train", "--data", str(work / "missing.txt"), "--out", str(work / "m"), *TINY)
    check(result.returncode == 2 and "missing.txt" in result.stderr,
          "missing data file: exit 2, names it")
    short = work / "short.txt"
    short.write_text("abcdefghij" * 2)
    result = run("train", "--data", str(short), "--out", str(work / "s"), *TINY)
    check(result.returncode == 1 and "fewer than one window" in result.stderr,
          f"data shorter than a window: exit 1 ({result.stderr.strip()[-160:]})")
    before = (full / "model.safetensors").read_bytes()
    result = run("train", "--data", str(data), "--out", str(full), "--steps", "3", *TINY)
    check(result.returncode == 2 and "already holds a model" in result.stderr and
          (full / "model.safetensors").read_bytes() == before,
          "an existing model is never overwritten without --resume")
    result = run("train", "--data", str(data), "--out", str(full), "--steps", "30", "--resume",
                 "--layers", "3")
    check(result.returncode == 2 and "--layers" in result.stderr,
          "--resume with a model flag: exit 2, names the flag")
    result = run("train", "--data", str(data), "--out", str(full), "--steps", "30", "--resume",
                 "--lr", "0.5", "--batch", "4", "--quiet", "--threads", "1")
    check(result.returncode == 2 and "--lr 0.5" in result.stderr and
          (full / "model.safetensors").read_bytes() == before,
          "--resume with a different --lr: exit 2, names it, model untouched")
    for flag, value in [("--heads", "3"), ("--pos", "spiral"), ("--steps", "0"),
                        ("--tokenizer", "bpe:x"), ("--dropout", "1.5")]:
        result = run("train", "--data", str(data), "--out", str(work / "x"), *TINY, flag, value)
        check(result.returncode == 2 and flag.lstrip("-") in result.stderr,
              f"bad {flag} {value}: exit 2, names the flag")
    check(not (work / "x").exists(), "no output directory is created for rejected flags")

    # Corrupted checkpoints are errors, not crashes.
    broken = work / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((full / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(before[: len(before) // 2])
    result = run("eval", "--model", str(broken), "--data", str(data))
    check(result.returncode == 1 and "truncated" in result.stderr,
          f"truncated model.safetensors: exit 1 ({result.stderr.strip()[-160:]})")
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!}   ")
    result = run("eval", "--model", str(broken), "--data", str(data))
    check(result.returncode == 1 and "JSON" in result.stderr, "corrupt header: exit 1")

    # qkv eval: windows and mean exactly as SPEC.md defines them, against the dumped logits.
    byte_model = work / "bytes"
    check(run("train", "--data", str(data), "--out", str(byte_model), "--tokenizer", "byte",
              "--steps", "3", *TINY).returncode == 0, "byte-tokenizer model trains")
    window_text = work / "window.txt"
    window_text.write_bytes(text.encode()[:16 + 9])  # one window of 16 and a dropped remainder
    dump = work / "logits.npy"
    result = run("eval", "--model", str(byte_model), "--data", str(window_text), "--json",
                 "--dump-logits", str(dump))
    check(result.returncode == 0, f"eval runs ({result.stderr.strip()[-200:]})")
    report = json.loads(result.stdout)
    logits = np.load(dump).astype(np.float64)
    ids = np.frombuffer(text.encode()[:16], dtype=np.uint8).astype(np.int64)
    log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                                                                   keepdims=True))
    log_probs -= logits.max(1, keepdims=True)
    expected = -np.mean(log_probs[np.arange(15), ids[1:]])
    check(logits.shape == (16, 256), "dumped logits have shape [N, vocab]")
    check(report["windows"] == 1 and report["tokens"] == 15,
          "one window, 15 predictions (the partial window is dropped)")
    check(abs(report["loss"] - expected) <= 1e-5 * expected,
          f"eval loss {report['loss']:.7f} equals numpy's {expected:.7f} from the logits")
    check(abs(report["perplexity"] - np.exp(report["loss"])) <= 1e-9 * report["perplexity"],
          "perplexity = exp(loss)")
    result = run("eval", "--model", str(byte_model), "--data", str(window_text), "--context", "64")
    check(result.returncode == 2 and "position table" in result.stderr,
          "eval past a learned position table: exit 2")

    print(f"\n{'FAILED' if FAILURES else 'passed'}: {len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
