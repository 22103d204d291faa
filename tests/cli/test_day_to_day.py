#!/usr/bin/python3
"""The rough edges a new user hits, through the binary (issue "Day-to-day use").

- `qkv sample` past the context: notices never cut the streamed text; each comes once, on a
  line of its own, after the text.
- Error messages carry no source location unless --verbose is given.
- `qkv info DIR [--json]` describes a model directory, and agrees with the files.
- Long work shows a progress line with what it does and the time left: tokenizing a large
  file, `qkv eval` over many windows, BPE tokenizer training, `qkv tokenize` on large input.
"""
import json
import math
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from cli_checks import FAILURES, check

QKV = sys.argv[1]
TINY = ["--layers", "2", "--heads", "2", "--dim", "16", "--context", "16", "--batch", "4",
        "--eval-every", "5", "--eval-batches", "2", "--threads", "1", "--quiet"]



def run(*args, **kwargs):
    return subprocess.run([QKV, *args], capture_output=True, text=True, **kwargs)


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="qkv_day_to_day_"))
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                   for i in range(300))
    data = work / "data.txt"
    data.write_text(text)
    model = work / "model"
    result = run("train", "--data", str(data), "--out", str(model), "--steps", "6", *TINY)
    check(result.returncode == 0, f"a tiny model trains ({result.stderr.strip()[-200:]})")

    # Notices after the text, once, on their own line.
    alone = run("sample", "--model", str(model), "--tokens", "60", "--prompt", "line",
                "--temperature", "0")
    together = subprocess.run([QKV, "sample", "--model", str(model), "--tokens", "60",
                               "--prompt", "line", "--temperature", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(alone.returncode == 0 and together.returncode == 0, "sampling past the context works")
    check(together.stdout.startswith(alone.stdout),
          "with stdout and stderr on one terminal, the streamed text comes out whole, first")
    notes = together.stdout[len(alone.stdout):].splitlines()
    check(len(notes) >= 1 and all(line.startswith("qkv: ") for line in notes),
          f"the notices follow on lines of their own ({notes})")
    check(sum("sliding the window" in line for line in notes) == 1,
          "the window notice comes once per command")

    # No source locations unless --verbose.
    missing = work / "nomodel"
    missing.mkdir()
    plain = run("eval", "--model", str(missing), "--data", str(data))
    verbose = run("eval", "--model", str(missing), "--data", str(data), "--verbose")
    location = re.compile(r"\((src/qkv|tools)/[\w/]+\.cc:\d+\)")
    check(plain.returncode == 1 and "config.json" in plain.stderr and
          not location.search(plain.stderr),
          f"an error names the problem without a source location ({plain.stderr.strip()})")
    check(verbose.returncode == 1 and location.search(verbose.stderr),
          f"--verbose adds the source location ({verbose.stderr.strip()})")

    # qkv info.
    info = run("info", str(model), "--json")
    check(info.returncode == 0, f"qkv info --json ({info.stderr.strip()[-200:]})")
    report = json.loads(info.stdout) if info.returncode == 0 else {}
    weights = (model / "model.safetensors").read_bytes()
    (header_length,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8:8 + header_length])
    counted = sum(math.prod(entry["shape"]) for name, entry in header.items()
                  if name != "__metadata__")
    check(report.get("parameters") == counted,
          f"the parameter count equals the tensors' sizes ({report.get('parameters')} vs "
          f"{counted})")
    check(sum(report.get("parameters_by_part", {}).values()) == counted,
          "the parts add up to the whole")
    config = json.loads((model / "config.json").read_text())
    check(report.get("layers") == config["n_layer"] == 2 and report.get("context") == 16 and
          report.get("position_encoding") == "learned", "architecture, context and positions")
    check(report.get("tokenizer", {}).get("type") == "char" and
          report["tokenizer"]["vocab_size"] == config["vocab_size"], "tokenizer and vocabulary")
    check(report.get("weights_dtype") == {"F32": len(header) - ("__metadata__" in header)},
          "the dtype of the weights")
    check(report.get("training_step") == 6 and report.get("resumable") is True,
          "the training step")
    check(report.get("files", {}).get("model.safetensors") == len(weights), "the file sizes")
    check("qkv" in report.get("layout", ""), "the layout")
    human = run("info", str(model))
    check(human.returncode == 0 and "parameters" in human.stdout and "char" in human.stdout,
          "qkv info prints a readable summary")
    bad = run("info", str(missing))
    check(bad.returncode == 1 and "config.json" in bad.stderr, "qkv info on a non-model: exit 1")

    # Progress lines with the time left.
    big = work / "big.txt"
    big.write_text(text * 80)  # ~1.4 MB
    result = run("train", "--data", str(big), "--out", str(work / "big_model"), "--steps", "1",
                 "--layers", "1", "--heads", "1", "--dim", "8", "--context", "8", "--batch", "1",
                 "--eval-batches", "1", "--threads", "1")
    check(result.returncode == 0 and re.search(r"tokenizing .*big\.txt.*(left|done in)",
                                               result.stderr),
          f"qkv train shows progress while tokenizing a large file "
          f"({result.stderr.strip()[:300]})")
    result = run("eval", "--model", str(model), "--data", str(data), "--threads", "1")
    check(result.returncode == 0 and re.search(r"evaluating 16-token windows: .*windows",
                                               result.stderr) and "done in" in result.stderr,
          f"qkv eval shows its progress ({result.stderr.strip()[-300:]})")
    quiet = run("eval", "--model", str(model), "--data", str(data), "--quiet")
    check(quiet.returncode == 0 and quiet.stderr == "", "qkv eval --quiet prints no progress")
    result = run("train", "--data", str(data), "--out", str(work / "bpe_model"), "--steps", "1",
                 "--tokenizer", "bpe:300", "--layers", "1", "--heads", "1", "--dim", "8",
                 "--context", "8", "--batch", "1", "--eval-batches", "1", "--threads", "1")
    check(result.returncode == 0 and re.search(r"training the tokenizer: merge .* s left",
                                               result.stderr),
          f"BPE tokenizer training shows its progress ({result.stderr.strip()[:300]})")
    result = subprocess.run([QKV, "tokenize", "--model", str(work / "bpe_model")],
                            input=big.read_text(), capture_output=True, text=True)
    check(result.returncode == 0 and "tokenizing standard input" in result.stderr and
          len(result.stdout.split()) > 1000, "qkv tokenize shows progress on a large input")

    shutil.rmtree(work, ignore_errors=True)
    for failure in FAILURES:
        print("FAILED:", failure)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
