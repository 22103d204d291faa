#!/usr/bin/env bash
# qkv against llama.cpp on one Llama-shaped model with grouped-query attention, in one run:
# prompt processing (a 512-token prompt) and batch-1 greedy generation (8-token prompt, 64 new
# tokens), tokens/s, at 1 and 2 threads. llama.cpp is npm's node-llama-cpp 3.21.1 (its prebuilt
# CPU binaries, which pick their ggml-cpu variant for the CPU), given the same weights as GGUF
# (bench/compare/gguf_writer.py) in F32 and in F16; qkv runs with float32 weights and with
# bfloat16 copies for decoding (--precision bf16). A benchmark, not a test (docs/benchmarks.md).
#
#   bash bench/compare/llamacpp.sh [--quick] [--build DIR] [--out DIR]
#
# Model: the one of bench/compare/llama.sh (12 layers, width 768, 12 heads of 64 sharing 4
# key/value heads, SwiGLU 2048, vocabulary 16000, untied head, ~100M parameters, context 1024;
# --quick: 2 layers). Before timing, a 2-layer model checks the conversion: llama.cpp's greedy
# tokens must equal qkv's (a wrong tensor layout, e.g. RoPE's pair order, changes them at once).
# On the big model, random weights give nearly flat distributions, so the two engines' greedy
# paths part at the first near tie; the count of identical leading tokens is reported.
# Each engine runs in its own process, 3 timed runs after a warm-up, median reported.
# Environment of the benchmark processes only: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
# (they halve OpenBLAS's speed), OMP_WAIT_POLICY=PASSIVE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build/release"
OUT="$ROOT/build/bench/llamacpp"
LAYERS=12
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) LAYERS=2; shift ;;
    --build) BUILD="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "llamacpp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
cmake --build "$BUILD" --target qkv_compare_bench >&2
BENCH="$BUILD/bench/compare/qkv_compare_bench"
PYTHON=/usr/bin/python3

# llama.cpp from npm, once, into the git-ignored build folder (about 730 MB with every GPU
# variant; its postinstall step would try to download or build: not needed for the CPU binaries).
NPM_DIR="$ROOT/build/npm-llamacpp"
MODULE="$NPM_DIR/node_modules/node-llama-cpp"
if [[ ! -f "$MODULE/package.json" ]] ||
   ! grep -q '"version": "3.21.1"' "$MODULE/package.json"; then
  echo "llamacpp.sh: installing node-llama-cpp@3.21.1 into $NPM_DIR" >&2
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && npm init -y >/dev/null && npm i -E --ignore-scripts node-llama-cpp@3.21.1 >&2)
fi

echo "llamacpp.sh: unsetting OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, OMP_WAIT_POLICY=PASSIVE" >&2
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_WAIT_POLICY=PASSIVE

prompt_of() {  # the prompt ids of a qkv result line, comma-separated
  "$PYTHON" -c 'import json,sys; print(",".join(map(str, json.loads(open(sys.argv[1]).readline())["prompt"])))' "$1"
}

# 1. The conversion check on a small model.
CHECK="$OUT/check"
rm -rf "$CHECK" && mkdir -p "$CHECK"
OMP_NUM_THREADS=1 "$BENCH" generate --arch llama --kv-heads 2 --layers 2 --heads 4 --dim 128 \
  --ffn-dim 256 --vocab 512 --context 256 --prompt 8 --tokens 32 --runs 1 --warmup-runs 0 \
  --threads 1 --save "$CHECK/model" > "$CHECK/qkv.json"
"$PYTHON" "$ROOT/bench/compare/gguf_writer.py" "$CHECK/model" "$CHECK/model.gguf"
node "$ROOT/bench/compare/llamacpp_bench.mjs" --module "$MODULE" --model "$CHECK/model.gguf" \
  --threads 1 --prompt "$(prompt_of "$CHECK/qkv.json")" --tokens 32 --vocab 512 --runs 1 \
  --warmup-runs 0 > "$CHECK/llamacpp.json"
"$PYTHON" - "$CHECK/qkv.json" "$CHECK/llamacpp.json" <<'PY'
import json, sys
qkv, llamacpp = (json.load(open(path)) for path in sys.argv[1:3])
if qkv["generated"] != llamacpp["generated"]:
    sys.exit(f"llamacpp.sh: the GGUF conversion check failed: qkv generated {qkv['generated']}, "
             f"llama.cpp {llamacpp['generated']}")
print("llamacpp.sh: conversion check passed (32 greedy tokens identical)", file=sys.stderr)
PY

# 2. The benchmark model.
SHAPE=(--arch llama --kv-heads 4 --layers "$LAYERS" --heads 12 --dim 768 --ffn-dim 2048
       --vocab 16000 --context 1024 --prompt 8 --tokens 64 --prompt-processing 512)
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
rm -rf "$OUT/model"
for precision in fp32 bf16; do
  for threads in 1 2; do
    save=()
    [[ $threads == 1 && $precision == fp32 ]] && save=(--save "$OUT/model")
    OMP_NUM_THREADS=$threads "$BENCH" generate "${SHAPE[@]}" --threads "$threads" \
      --precision "$precision" "${save[@]}" >> "$RESULTS"
  done
done
PROMPT="$(prompt_of "$RESULTS")"
for dtype in f32 f16; do
  "$PYTHON" "$ROOT/bench/compare/gguf_writer.py" "$OUT/model" "$OUT/model-$dtype.gguf" \
    --dtype "$dtype"
  for threads in 1 2; do
    node "$ROOT/bench/compare/llamacpp_bench.mjs" --module "$MODULE" \
      --model "$OUT/model-$dtype.gguf" --threads "$threads" --prompt "$PROMPT" --tokens 64 \
      --prompt-processing 512 --vocab 16000 | "$PYTHON" -c '
import json, sys
row = json.loads(sys.stdin.read()); row["weights"] = sys.argv[1]; print(json.dumps(row))' \
      "$dtype" >> "$RESULTS"
  done
done
rm -f "$OUT"/model-*.gguf  # 600 MB; the safetensors directory stays for a rerun by hand

lscpu > "$OUT/lscpu.txt" 2>/dev/null || true
"$PYTHON" - "$RESULTS" "$OUT/lscpu.txt" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
lscpu = open(sys.argv[2]).read()
model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in lscpu.splitlines() if l.startswith("Flags")), [])
isa = [f for f in ("avx2", "f16c", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
print(f"CPU: {model}; ISA: {' '.join(isa)}")
qkv = [r for r in rows if r["implementation"] == "qkv" and r["precision"] == "fp32"]
qkv_bf16 = [r for r in rows if r["implementation"] == "qkv" and r["precision"] == "bf16"]
print(f"model: {qkv[0]['model']['parameters']:,} parameters, {qkv[0]['model']['layers']} layers")
print(f"{'engine':<22}{'threads':>8}{'prompt tok/s':>14}{'generate tok/s':>16}{'same greedy':>13}")
for r in rows:
    name = (f"qkv {r['precision']} weights" if r["implementation"] == "qkv"
            else f"llama.cpp {r['weights'].upper()}")
    same = 0
    for a, b in zip(r["generated"], qkv[0]["generated"]):
        if a != b:
            break
        same += 1
    print(f"{name:<22}{r['threads']:>8}{r['prompt_processing']['tokens_per_s']:>14.1f}"
          f"{r['tokens_per_s']:>16.1f}{same:>10}/{len(r['generated'])}")
def best(selected, key):
    return max(key(r) for r in selected)
# qkv's float32 weights against llama.cpp's F32, its bfloat16 weights against llama.cpp's F16.
for mine, label, weights in ((qkv, "fp32", "f32"), (qkv_bf16, "bf16", "f16"), (qkv, "fp32", "f16")):
    llama = [r for r in rows if r.get("weights") == weights]
    for what, key in (("prompt processing", lambda r: r["prompt_processing"]["tokens_per_s"]),
                      ("generation", lambda r: r["tokens_per_s"])):
        same_threads = ", ".join(
            f"{t} thread{'s' if t > 1 else ''} "
            f"{best([r for r in mine if r['threads'] == t], key) / best([r for r in llama if r['threads'] == t], key):.2f}x"
            for t in (1, 2))
        print(f"qkv {label} / llama.cpp {weights.upper()} {what}: best "
              f"{best(mine, key) / best(llama, key):.2f}x (same threads: {same_threads})")
PY
