#!/usr/bin/python3
"""End-to-end tests of the position lab through the binary: `qkv extrapolate` (table, JSON,
plot; learned positions never run past their table; the same seed gives the same numbers),
ALiBi training, and RoPE scaling at evaluation time (`qkv eval --rope-scaling`)."""
import json
import pathlib
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from cli_checks import FAILURES, check

QKV = sys.argv[1]
TINY = ["--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", "--steps", "4",
        "--batch", "4", "--threads", "1", "--eval-tokens", "600"]



def run(*args):
    return subprocess.run([QKV, *args], capture_output=True, text=True)


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="qkv_position_lab_"))
    data = work / "data.txt"
    data.write_text("".join(f"{i} bottles of beer on the wall, {i} bottles of beer.\n"
                            for i in range(400)))

    first = run("extrapolate", "--data", str(data), "--out", str(work / "a"), *TINY)
    check(first.returncode == 0, f"extrapolate runs ({first.stderr.strip()[-300:]})")
    result = json.loads((work / "a" / "extrapolation.json").read_text())
    check(result["lengths"] == [16, 32, 64, 128], "lengths are L, 2L, 4L, 8L")
    names = set(result["results"])
    check({"learned", "sinusoidal", "rope", "rope+linear", "rope+ntk", "rope+yarn", "alibi",
           "none"} <= names, f"every scheme and RoPE scaling is reported ({sorted(names)})")
    check(result["results"]["learned"][1:] == [None, None, None],
          "learned positions past their table are not applicable, not run")
    check(all(isinstance(v, float) for name, values in result["results"].items()
              if name != "learned" for v in values), "every other scheme has every length")
    check(all(abs(a - b) < 1e-12 for a, b in zip(result["results"]["rope"][:1],
                                                  result["results"]["rope+yarn"][:1])),
          "at the training length every RoPE scaling is plain RoPE")
    check("n/a" in first.stdout and "alibi" in first.stdout, "the table is printed")
    ElementTree.parse(work / "a" / "extrapolation.svg")
    check(True, "the plot is well-formed SVG")
    second = run("extrapolate", "--data", str(data), "--out", str(work / "b"), *TINY)
    again = json.loads((work / "b" / "extrapolation.json").read_text())
    check(second.returncode == 0 and again["results"] == result["results"],
          "the same seed gives the same numbers")
    reuse = run("extrapolate", "--data", str(data), "--out", str(work / "a"), *TINY)
    check(reuse.returncode == 0 and "reusing" in reuse.stderr, "existing models are reused")
    bad = run("extrapolate", "--data", str(data), "--out", str(work / "c"), "--schemes",
              "learned,spiral")
    check(bad.returncode == 2 and "spiral" in bad.stderr, "an unknown scheme: exit 2, named")

    rope = work / "a" / "models" / "rope"
    plain = run("eval", "--model", str(rope), "--data", str(data), "--context", "64", "--json")
    yarn = run("eval", "--model", str(rope), "--data", str(data), "--context", "64", "--json",
               "--rope-scaling", "yarn", "--rope-factor", "4")
    check(plain.returncode == 0 and yarn.returncode == 0, "eval with and without --rope-scaling")
    check(json.loads(plain.stdout)["loss"] != json.loads(yarn.stdout)["loss"],
          "--rope-scaling yarn --rope-factor 4 changes the result")
    one = run("eval", "--model", str(rope), "--data", str(data), "--json", "--rope-scaling",
              "linear", "--rope-factor", "1")
    base = run("eval", "--model", str(rope), "--data", str(data), "--json")
    check(json.loads(one.stdout) == json.loads(base.stdout),
          "--rope-factor 1 gives exactly plain RoPE")
    wrong = run("eval", "--model", str(work / "a" / "models" / "alibi"), "--data", str(data),
                "--rope-scaling", "ntk", "--rope-factor", "2")
    check(wrong.returncode == 2 and "RoPE model" in wrong.stderr,
          "--rope-scaling on an ALiBi model: exit 2")
    config = json.loads((work / "a" / "models" / "alibi" / "config.json").read_text())
    check(config["position_encoding"] == "alibi" and "wpe.weight" not in
          (work / "a" / "models" / "alibi" / "model.safetensors").read_bytes()[:4096].decode(
              "latin-1"), "an ALiBi model has no position table")

    # qkv attention: heatmaps and JSON of every layer and head.
    prefix = work / "attn"
    text = "12 bottles of beer"
    shown = run("attention", "--model", str(rope), "--text", text, "--out", str(prefix))
    check(shown.returncode == 0, f"qkv attention runs ({shown.stderr.strip()[-200:]})")
    maps = json.loads((work / "attn.json").read_text())
    weights = maps["weights"]
    check(len(weights) == maps["layers"] == 1 and len(weights[0]) == maps["heads"] == 2,
          "weights[layer][head] for every layer and head")
    check(len(maps["tokens"]) == len(text) and "".join(maps["tokens"]) == text,
          "one token per character, labelled with its text")
    rows = [row for head in weights[0] for row in head]
    check(all(abs(sum(row) - 1) < 1e-5 for row in rows), "every row of weights sums to 1")
    check(all(head[i][j] == 0.0 for head in weights[0] for i in range(len(head))
              for j in range(i + 1, len(head))), "the causal upper triangle is exactly 0")
    svg = ElementTree.parse(work / "attn_layer0.svg").getroot()
    cells = [e for e in svg.iter() if e.tag.endswith("rect") and e.find("{*}title") is not None]
    check(len(cells) == 2 * len(text) ** 2, "the heatmap has one cell per head, query and key")
    empty = run("attention", "--model", str(rope), "--text", "", "--out", str(prefix))
    check(empty.returncode == 2, "empty --text: exit 2")

    print(f"\n{'FAILED' if FAILURES else 'passed'}: {len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
