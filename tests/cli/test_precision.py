#!/usr/bin/python3
"""`--precision fp32|bf16` of `qkv train`, `qkv eval` and `qkv translate`, through the binary.

Everywhere: a bad value and bf16 where it cannot run (QKV_ISA=avx2 turns the bfloat16 matrix
kernels off on any machine) exit 2 with a message that names the flag and the way out, and
write nothing. Where the CPU has AVX512-BF16 or AMX: a bf16 run learns as the fp32 run does
(final loss within 5%), records its precision in every train_log.jsonl line and in its summary
line, resumes bitwise, and `qkv eval --precision bf16` agrees with fp32 eval within 1e-2; a toy
translation model translates held-out sentences in bf16 as in fp32 (>= 95% of lines the same,
greedy and beam 4), and `eval --pairs --bleu --precision bf16` scores within 2 BLEU of fp32.
Usage: test_precision.py QKV_BINARY
"""
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
from cli_checks import FAILURES, check

QKV = sys.argv[1]
TINY = ["--layers", "2", "--heads", "2", "--dim", "32", "--context", "32", "--batch", "8",
        "--eval-every", "10", "--eval-batches", "4", "--threads", "2", "--lr", "3e-3"]



def run(*args, env=None):
    return subprocess.run([QKV, *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def log_of(model_dir):
    return [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]


def eval_loss(model_dir, data, precision):
    result = run("eval", "--model", str(model_dir), "--data", str(data), "--json", "--quiet",
                 "--precision", precision)
    check(result.returncode == 0, f"eval --precision {precision} ({result.stderr.strip()[-200:]})")
    return json.loads(result.stdout)["loss"] if result.returncode == 0 else float("nan")


def main():
    with tempfile.TemporaryDirectory(prefix="qkv_precision_test_") as folder:
        return checks(pathlib.Path(folder))


def checks(work):
    data = work / "data.txt"
    data.write_text("".join(f"verse {i}: in the beginning was the word, and the word was "
                            f"with the sea.\n" for i in range(400)))

    refused = work / "refused"
    result = run("train", "--data", str(data), "--out", str(refused), "--steps", "3",
                 "--precision", "bf16", *TINY, env={"QKV_ISA": "avx2"})
    check(result.returncode == 2, f"bf16 with QKV_ISA=avx2 exits 2 (got {result.returncode})")
    check("--precision bf16" in result.stderr and "--precision fp32" in result.stderr,
          f"the refusal names the flag and the way out ({result.stderr.strip()[-200:]})")
    check(not refused.exists(), "a refused run writes nothing")
    result = run("train", "--data", str(data), "--out", str(refused), "--steps", "3",
                 "--precision", "fp16", *TINY)
    check(result.returncode == 2 and "fp16" in result.stderr and not refused.exists(),
          "--precision fp16 is a usage error naming the value")

    fp32 = work / "fp32"
    result = run("train", "--data", str(data), "--out", str(fp32), "--steps", "40", *TINY)
    check(result.returncode == 0, f"fp32 run ({result.stderr.strip()[-200:]})")
    check(all(e.get("precision") == "fp32" for e in log_of(fp32)), "fp32 log lines say fp32")
    result = run("eval", "--model", str(fp32), "--data", str(data), "--precision", "bf16",
                 "--quiet", env={"QKV_ISA": "avx2"})
    check(result.returncode == 2 and "--precision bf16" in result.stderr,
          "eval --precision bf16 with QKV_ISA=avx2 exits 2 naming the flag")

    result = run("translate", "--model", str(work), "--precision", "bf16",
                 env={"QKV_ISA": "avx2"})
    check(result.returncode == 2 and "--precision bf16" in result.stderr and not result.stdout,
          f"translate --precision bf16 with QKV_ISA=avx2 exits 2 naming the flag "
          f"({result.stderr.strip()[-200:]})")

    bf16 = work / "bf16"
    result = run("train", "--data", str(data), "--out", str(bf16), "--steps", "40",
                 "--precision", "bf16", *TINY)
    if result.returncode == 2 and "neither AVX512-BF16 nor AMX" in result.stderr:
        print("skipped the bf16 runs: " + result.stderr.strip().splitlines()[-1])
        return finish()
    check(result.returncode == 0, f"bf16 run ({result.stderr.strip()[-300:]})")
    check("bf16 matrix products" in result.stderr, "the run's summary line names bf16")
    log = log_of(bf16)
    check(all(e.get("precision") == "bf16" for e in log), "bf16 log lines say bf16")
    fp32_log = log_of(fp32)
    first, last32, last16 = fp32_log[0]["loss"], fp32_log[-1]["val_loss"], log[-1]["val_loss"]
    check(last16 < 0.8 * first, f"bf16 learns: validation loss {last16:.4f} from {first:.4f}")
    check(abs(last16 - last32) <= 0.05 * last32,
          f"bf16 final validation loss {last16:.4f} within 5% of fp32's {last32:.4f}")

    stopped = work / "bf16_stopped"
    run("train", "--data", str(data), "--out", str(stopped), "--steps", "40", "--stop-at", "17",
        "--precision", "bf16", *TINY)
    result = run("train", "--data", str(data), "--out", str(stopped), "--steps", "40",
                 "--resume", "--precision", "bf16", *TINY)
    check(result.returncode == 0, f"bf16 resume ({result.stderr.strip()[-200:]})")
    check([(e["step"], e["loss"]) for e in log_of(stopped)] == [(e["step"], e["loss"]) for e in log],
          "bf16 stopped + resumed losses equal the uninterrupted run's, bitwise")
    check((stopped / "model.safetensors").read_bytes() == (bf16 / "model.safetensors").read_bytes(),
          "bf16 stopped + resumed weights equal the uninterrupted run's")

    loss32, loss16 = eval_loss(bf16, data, "fp32"), eval_loss(bf16, data, "bf16")
    check(abs(loss16 - loss32) <= 1e-2 * loss32,
          f"eval --precision bf16 {loss16:.5f} within 1e-2 of fp32's {loss32:.5f}")
    check_translation(work)
    return finish()


def check_translation(work):
    """A toy word-by-word translation (English colours/animals to Spanish) in both precisions."""
    words = {"red": "rojo", "blue": "azul", "cat": "gato", "dog": "perro", "sun": "sol",
             "moon": "luna", "tree": "arbol", "house": "casa", "water": "agua", "fire": "fuego"}
    rng = random.Random(1)

    def sentences(count):
        chosen = [[rng.choice(sorted(words)) for _ in range(rng.randint(2, 6))]
                  for _ in range(count)]
        return [(" ".join(c), " ".join(words[w] for w in c)) for c in chosen]

    pairs, held_out = work / "pairs.tsv", work / "held_out.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in sentences(3000)))
    held = sentences(200)
    held_out.write_text("".join(f"{s}\t{t}\n" for s, t in held))
    sources = work / "sources.txt"
    sources.write_text("".join(s + "\n" for s, _ in held))
    model = work / "translator"
    result = run("train", "--arch", "encoder-decoder", "--tokenizer", "spm:40", "--dim", "64",
                 "--heads", "4", "--layers", "2", "--ffn-dim", "128", "--pairs", str(pairs),
                 "--steps", "400", "--batch-tokens", "1024", "--lr", "3e-3", "--threads", "2",
                 "--quiet", "--out", str(model))
    check(result.returncode == 0, f"translation model trains ({result.stderr.strip()[-200:]})")
    for beam in ("1", "4"):
        outputs = {}
        for precision in ("fp32", "bf16"):
            result = run("translate", "--model", str(model), "--input", str(sources), "--beam",
                         beam, "--precision", precision)
            check(result.returncode == 0, f"translate --beam {beam} --precision {precision} "
                                          f"({result.stderr.strip()[-200:]})")
            outputs[precision] = result.stdout.splitlines()
        exact = sum(o == t for o, (_, t) in zip(outputs["fp32"], held))
        same = sum(a == b for a, b in zip(outputs["fp32"], outputs["bf16"]))
        check(exact >= 100, f"beam {beam}: fp32 translates {exact}/200 exactly (the model learned)")
        check(len(outputs["bf16"]) == 200 and same >= 190,
              f"beam {beam}: bf16 translations equal fp32's on {same}/200 lines")
    scores = {}
    for precision in ("fp32", "bf16"):
        result = run("eval", "--model", str(model), "--pairs", str(held_out), "--bleu", "--json",
                     "--quiet", "--precision", precision)
        check(result.returncode == 0, f"eval --pairs --bleu --precision {precision}")
        scores[precision] = json.loads(result.stdout)["bleu"] if result.returncode == 0 else 0
    check(abs(scores["bf16"] - scores["fp32"]) <= 2.0,
          f"BLEU in bf16 {scores['bf16']:.2f} within 2 of fp32's {scores['fp32']:.2f}")


def finish():
    if FAILURES:
        print(f"{len(FAILURES)} FAILURES", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
