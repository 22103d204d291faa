#!/usr/bin/python3
"""`qkv train --save-dtype fp32|bf16` through the binary (../shared/SPEC.md §6), for both
architectures.

- With bf16 every float tensor of model.safetensors is BF16 and holds the float32 weights of the
  same run saved in fp32, rounded to nearest even as PyTorch's `.to(torch.bfloat16)` rounds them
  (the oracle); the file is about half the size.
- The saved dtype does not change training: the losses equal the fp32-saved run's, bitwise.
- A run saved in bf16, stopped and resumed, gives bitwise the losses and the file of an
  uninterrupted one: the training state keeps the float32 weights (and only then).
- eval and sample read the BF16 model; translate reads the encoder-decoder's.
- A bad value is a usage error that writes nothing.
Usage: test_save_dtype.py QKV_BINARY
"""
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
from cli_checks import FAILURES, check

QKV = sys.argv[1]
TINY = ["--layers", "2", "--heads", "2", "--dim", "32", "--context", "32", "--batch", "8",
        "--eval-every", "10", "--eval-batches", "4", "--threads", "2", "--lr", "3e-3", "--quiet"]
TRANSLATION = ["--arch", "encoder-decoder", "--tokenizer", "byte", "--dim", "32", "--heads", "2",
               "--layers", "1", "--ffn-dim", "64", "--batch-tokens", "256", "--eval-every", "6",
               "--threads", "2", "--quiet"]



def run(*args):
    return subprocess.run([QKV, *args], capture_output=True, text=True)


def header(path):
    """The safetensors header: name -> {dtype, shape, data_offsets}."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    entries = json.loads(data[8:8 + length])
    entries.pop("__metadata__", None)
    return entries


def float_tensors(path):
    """name -> float32 torch tensor of every F32/BF16 tensor, decoded here from the bytes."""
    import torch
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header(path).items():
        begin, end = entry["data_offsets"]
        raw = bytearray(body[begin:end])
        if entry["dtype"] == "F32":
            values = torch.frombuffer(raw, dtype=torch.float32)
        elif entry["dtype"] == "BF16":
            values = torch.frombuffer(raw, dtype=torch.bfloat16).float()
        else:
            continue
        tensors[name] = values.reshape(entry["shape"])
    return tensors


def log_of(out):
    return [(e["step"], e["loss"], e.get("val_loss"))
            for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())]


def check_rounded(name, fp32_file, bf16_file):
    entries = header(bf16_file)
    check(entries.keys() == header(fp32_file).keys(), f"{name}: the same tensors in both files")
    check(all(e["dtype"] == "BF16" for e in entries.values()),
          f"{name}: every tensor is BF16 ({sorted({e['dtype'] for e in entries.values()})})")
    ratio = bf16_file.stat().st_size / fp32_file.stat().st_size
    check(0.45 < ratio < 0.56, f"{name}: the BF16 file is about half the size ({ratio:.3f})")
    try:
        import torch
    except ImportError:
        print(f"skipped {name}'s value check: PyTorch (python3-torch) is not installed")
        return
    exact, rounded = float_tensors(fp32_file), float_tensors(bf16_file)
    wrong = [n for n in exact
             if not torch.equal(exact[n].to(torch.bfloat16).float(), rounded[n])]
    check(not wrong, f"{name}: every value is PyTorch's round-to-nearest-even of the fp32 "
                     f"run's ({len(exact)} tensors; differing: {wrong[:3]})")


def main():
    with tempfile.TemporaryDirectory(prefix="qkv_save_dtype_test_") as folder:
        return checks(pathlib.Path(folder))


def checks(work):
    data = work / "data.txt"
    data.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                            for i in range(300)))

    result = run("train", "--data", str(data), "--out", str(work / "bad"), "--steps", "3",
                 "--save-dtype", "fp16", *TINY)
    check(result.returncode == 2 and "--save-dtype" in result.stderr and "fp16" in result.stderr
          and not (work / "bad").exists(),
          f"--save-dtype fp16 is a usage error naming flag and value ({result.stderr.strip()})")

    args = ["train", "--data", str(data), "--steps", "30", "--save-every", "7", *TINY]
    fp32, bf16, part = work / "fp32", work / "bf16", work / "part"
    first = run(*args, "--out", str(fp32))
    second = run(*args, "--out", str(bf16), "--save-dtype", "bf16")
    stopped = run(*args, "--out", str(part), "--save-dtype", "bf16", "--stop-at", "12")
    resumed = run(*args, "--out", str(part), "--save-dtype", "bf16", "--resume")
    check(all(r.returncode == 0 for r in (first, second, stopped, resumed)),
          "fp32, bf16, stopped and resumed runs: " +
          " | ".join(r.stderr.strip()[-200:] for r in (first, second, stopped, resumed)))
    check_rounded("decoder", fp32 / "model.safetensors", bf16 / "model.safetensors")
    check(log_of(fp32) == log_of(bf16), "the saved dtype does not change training (bitwise)")
    check(log_of(part) == log_of(bf16),
          "bf16-saved, stopped at 12 and resumed: the uninterrupted run's losses, bitwise")
    check((part / "model.safetensors").read_bytes() == (bf16 / "model.safetensors").read_bytes(),
          "and its model.safetensors, byte for byte")
    state16 = header(bf16 / "training_state.safetensors")
    state32 = header(fp32 / "training_state.safetensors")
    check(any(n.startswith("weights.") for n in state16) and
          all(e["dtype"] == "F32" for e in state16.values()),
          "the bf16 run's training state keeps float32 weights")
    check(not any(n.startswith("weights.") for n in state32),
          "the fp32 run's training state does not repeat the weights")

    losses = {}
    for name, out in (("fp32", fp32), ("bf16", bf16)):
        result = run("eval", "--model", str(out), "--data", str(data), "--json", "--quiet")
        check(result.returncode == 0, f"eval reads the {name} model ({result.stderr[-200:]})")
        losses[name] = json.loads(result.stdout)["loss"] if result.returncode == 0 else 0.0
    check(losses["bf16"] != losses["fp32"] and
          abs(losses["bf16"] - losses["fp32"]) <= 1e-2 * losses["fp32"],
          f"the rounded model evaluates close to the fp32 one ({losses})")
    result = run("sample", "--model", str(bf16), "--prompt", "line", "--tokens", "8",
                 "--seed", "1")
    check(result.returncode == 0 and result.stdout.startswith("line"),
          f"sample reads the BF16 model ({result.stdout!r} {result.stderr[-200:]})")

    pairs = work / "pairs.tsv"
    pairs.write_text("".join(f"red cat {i}\tgato rojo {i}\n" for i in range(80)))
    translation = ["train", *TRANSLATION, "--pairs", str(pairs), "--steps", "12"]
    enc32, enc16 = work / "enc_fp32", work / "enc_bf16"
    first = run(*translation, "--out", str(enc32))
    second = run(*translation, "--out", str(enc16), "--save-dtype", "bf16")
    check(first.returncode == 0 and second.returncode == 0,
          f"encoder-decoder runs ({first.stderr[-200:]} {second.stderr[-200:]})")
    check_rounded("encoder-decoder", enc32 / "model.safetensors", enc16 / "model.safetensors")
    check(log_of(enc32) == log_of(enc16), "encoder-decoder: the same losses, bitwise")
    source = work / "source.txt"
    source.write_text("red cat 7\n")
    result = run("translate", "--model", str(enc16), "--input", str(source))
    check(result.returncode == 0 and len(result.stdout.splitlines()) == 1,
          f"translate reads the BF16 model ({result.stdout!r} {result.stderr[-200:]})")

    if FAILURES:
        print(f"{len(FAILURES)} FAILURES", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
