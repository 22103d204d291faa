#!/usr/bin/python3
"""`qkv train --init-from DIR`: fine-tuning starts from DIR's weights, keeps its architecture,
tokenizer and checkpoint layout, and refuses model flags that contradict it (SPEC.md §1, §5).

A source model is trained for a few steps in each layout (GPT-2's; Llama's with grouped-query
attention and an untied head). A run started from it with a learning rate of ~0 must have the
source's validation loss (the weights arrived); a run with a real learning rate must start
near the source's training loss, far below a fresh model's; the written directory must have
the source's config keys and tensor names and shapes.
"""
import json
import pathlib
import random
import struct
import subprocess
import sys
import tempfile
from cli_checks import FAILURES, check

QKV = sys.argv[1]
COMMON = ["--batch", "4", "--eval-every", "1000", "--eval-batches", "4", "--threads", "1",
          "--quiet"]



def run(*args):
    return subprocess.run([QKV, *args], capture_output=True, text=True)


def tensor_shapes(model_dir):
    data = (model_dir / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    return {name: entry["shape"] for name, entry in header.items()}


def first_loss(model_dir):
    return json.loads((model_dir / "train_log.jsonl").read_text().splitlines()[0])["loss"]


def eval_loss(model_dir, data):
    result = run("eval", "--model", str(model_dir), "--data", str(data), "--threads", "1")
    check(result.returncode == 0, f"qkv eval {model_dir.name}" +
          ("" if result.returncode == 0 else ": " + result.stderr.strip()[-300:]))
    return float(result.stdout.split()[1]) if result.returncode == 0 else float("nan")


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="qkv_init_from_"))
    # Text with structure a small model learns in a few dozen steps.
    rng = random.Random(7)
    words = ["the", "king", "queen", "said", "and", "to", "my", "lord", "good", "night"]
    data = work / "data.txt"
    data.write_text(" ".join(rng.choice(words) for _ in range(6000)) + "\n")

    layouts = {
        "gpt2": ["--layers", "2", "--heads", "2", "--dim", "16", "--context", "16"],
        "llama": ["--layers", "2", "--heads", "4", "--kv-heads", "2", "--dim", "16",
                  "--context", "16", "--pos", "rope", "--norm", "rmsnorm", "--ffn", "swiglu",
                  "--no-bias", "--no-tie-embeddings"],
    }
    for layout, flags in layouts.items():
        source = work / f"{layout}_source"
        result = run("train", "--data", str(data), "--out", str(source), *flags, *COMMON,
                     "--steps", "80", "--lr", "3e-3")
        check(result.returncode == 0, f"{layout}: train the source: {result.stderr[-300:]}")
        config = json.loads((source / "config.json").read_text())
        check(config["model_type"] == layout, f"{layout}: saved with model_type {layout}")
        if layout == "llama":
            check("lm_head.weight" in tensor_shapes(source), "llama: the untied head is saved")
        source_loss = eval_loss(source, data)

        # A learning rate of ~0: the fine-tuned model is the source.
        still = work / f"{layout}_still"
        result = run("train", "--init-from", str(source), "--data", str(data), "--out",
                     str(still), *COMMON, "--steps", "1", "--lr", "1e-12", "--min-lr", "0")
        check(result.returncode == 0, f"{layout}: --init-from runs: {result.stderr[-300:]}")
        still_loss = eval_loss(still, data)
        check(abs(still_loss - source_loss) < 1e-4,
              f"{layout}: --init-from with lr ~0 keeps the loss ({still_loss} vs {source_loss})")
        check(tensor_shapes(still) == tensor_shapes(source),
              f"{layout}: same tensor names and shapes as the source")
        saved = json.loads((still / "config.json").read_text())
        for key in ("model_type", "tokenizer", "num_key_value_heads", "tie_word_embeddings",
                    "n_head", "n_embd"):
            check(saved.get(key) == config.get(key), f"{layout}: config.json keeps {key}")

        # A real fine-tuning run starts where the source ended, far below a fresh model.
        tuned = work / f"{layout}_tuned"
        result = run("train", "--init-from", str(source), "--data", str(data), "--out",
                     str(tuned), *COMMON, "--steps", "5", "--lr", "1e-3")
        fresh = work / f"{layout}_fresh"
        result_fresh = run("train", "--data", str(data), "--out", str(fresh), *flags, *COMMON,
                           "--steps", "5", "--lr", "1e-3")
        check(result.returncode == 0 and result_fresh.returncode == 0,
              f"{layout}: fine-tuning and fresh runs succeed")
        if result.returncode == 0 and result_fresh.returncode == 0:
            check(first_loss(tuned) < first_loss(fresh) - 0.5,
                  f"{layout}: fine-tuning starts at the source's loss ({first_loss(tuned):.3f}) "
                  f"not a fresh model's ({first_loss(fresh):.3f})")

        # Flags that contradict the source are usage errors naming the flag; repeating the
        # source's own values is fine.
        wrong = "--kv-heads" if layout == "llama" else "--heads"
        result = run("train", "--init-from", str(source), "--data", str(data), "--out",
                     str(work / f"{layout}_wrong"), *COMMON, "--steps", "1", wrong, "1")
        check(result.returncode == 2 and wrong in result.stderr and "--init-from" in result.stderr,
              f"{layout}: {wrong} 1 contradicting the source: exit 2 naming it "
              f"({result.stderr.strip()[:160]})")
        check(not (work / f"{layout}_wrong" / "model.safetensors").exists(),
              f"{layout}: the refused run wrote no model")
        result = run("train", "--init-from", str(source), "--data", str(data), "--out",
                     str(work / f"{layout}_same"), *flags, *COMMON, "--steps", "1")
        check(result.returncode == 0, f"{layout}: the source's own flags are accepted "
              f"({result.stderr.strip()[:160]})")

    result = run("train", "--init-from", str(work / "missing"), "--data", str(data), "--out",
                 str(work / "nothing"), *COMMON, "--steps", "1")
    check(result.returncode == 2 and "--init-from" in result.stderr,
          "a missing --init-from directory is a usage error naming the flag")
    print(f"{len(FAILURES)} failures" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
