#!/usr/bin/env bash
# A Llama-shaped model with grouped-query attention, qkv against plain PyTorch's best on the
# same architecture (bench/compare/torch_llama.py), in one run: batch-1 greedy generation with
# a KV cache (tokens/s, and the cache's bytes per token against the multi-head model's), and the
# training step at batch 4 x 64. A benchmark, not a test (docs/benchmarks.md).
#
#   bash bench/compare/llama.sh [--quick] [--build DIR] [--out DIR]
#
# Model (issue 14's): 12 layers, width 768, 12 heads of 64 sharing 4 key/value heads, SwiGLU
# 2048, vocabulary 16000, untied head (~100M parameters), context 1024; prompt 8, 64 new tokens
# (--quick: 2 layers, 16 tokens). Each of qkv (1 and 2 threads), PyTorch fp32 and PyTorch
# bf16 autocast (1 and 2 threads) runs in its own process, 3 timed runs after a warm-up, median
# reported; training: 5 timed steps after one. Environment of the benchmark processes only: OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset (they halve OpenBLAS's speed), OMP_WAIT_POLICY=PASSIVE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build/release"
OUT="$ROOT/build/bench/llama"
LAYERS=12
TOKENS=64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) LAYERS=2; TOKENS=16; shift ;;
    --build) BUILD="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "llama.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
cmake --build "$BUILD" --target qkv_compare_bench >&2
BENCH="$BUILD/bench/compare/qkv_compare_bench"
echo "llama.sh: unsetting OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, OMP_WAIT_POLICY=PASSIVE" >&2
export -n OPENBLAS_CORETYPE OPENBLAS_L2_SIZE 2>/dev/null || true
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_WAIT_POLICY=PASSIVE
# PyTorch's bf16 autocast runs where the CPU has bf16 arithmetic (AVX512-BF16 or AMX); without
# it PyTorch emulates bf16 at a fraction of its fp32 speed (measured on Zen 3: 1/15 for
# training), so it cannot be PyTorch's best there and is skipped, saying so.
PRECISIONS=("")
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  PRECISIONS+=(--bf16)
else
  echo "llama.sh: no AVX512-BF16 or AMX on this CPU: PyTorch bf16 autocast skipped" >&2
fi
SHAPE=(--layers "$LAYERS" --heads 12 --dim 768 --ffn-dim 2048 --vocab 16000 --context 1024)
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
for threads in 1 2; do
  OMP_NUM_THREADS=$threads "$BENCH" generate --arch llama --kv-heads 4 "${SHAPE[@]}" \
    --prompt 8 --tokens "$TOKENS" --threads "$threads" >> "$RESULTS"
  for precision in "${PRECISIONS[@]}"; do
    OMP_NUM_THREADS=$threads /usr/bin/python3 "$ROOT/bench/compare/torch_llama.py" --kv-heads 4 \
      "${SHAPE[@]}" --prompt 8 --tokens "$TOKENS" --threads "$threads" $precision >> "$RESULTS"
  done
done
# Training steps, batch 4 x 64.
for threads in 1 2; do
  OMP_NUM_THREADS=$threads "$BENCH" train --arch llama --kv-heads 4 --layers "$LAYERS" --heads 12 \
    --dim 768 --ffn-dim 2048 --vocab 16000 --context 64 --batch 4 --steps 5 --warmup 1 \
    --threads "$threads" >> "$RESULTS"
  for precision in "${PRECISIONS[@]}"; do
    OMP_NUM_THREADS=$threads /usr/bin/python3 "$ROOT/bench/compare/torch_llama.py" --kv-heads 4 \
      "${SHAPE[@]}" --train --batch 4 --seq 64 --steps 5 --threads "$threads" $precision \
      >> "$RESULTS"
  done
done
# The multi-head model of the same width, for the cache size per token.
OMP_NUM_THREADS=1 "$BENCH" generate --arch llama --kv-heads 12 "${SHAPE[@]}" --prompt 8 \
  --tokens 2 --runs 1 --warmup-runs 0 --threads 1 >> "$RESULTS"
lscpu > "$OUT/lscpu.txt" 2>/dev/null || true
/usr/bin/python3 - "$RESULTS" "$OUT/lscpu.txt" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
lscpu = open(sys.argv[2]).read()
model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in lscpu.splitlines() if l.startswith("Flags")), [])
isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
print(f"CPU: {model}; ISA: {' '.join(isa)}")
gqa = [r for r in rows if r["model"]["kv_heads"] == 4 and r["what"] == "generate"]
train = [r for r in rows if r["what"] == "train"]
mha = [r for r in rows if r["model"]["kv_heads"] == 12][0]
best = max((r for r in gqa if r["implementation"] == "pytorch"), key=lambda r: r["tokens_per_s"])
print(f"model: {gqa[0]['model']['parameters']:,} parameters, {gqa[0]['model']['layers']} layers")
print("| run | threads | tokens/s | vs PyTorch's best | KV cache bytes/token |")
print("|---|---|---|---|---|")
for r in gqa:
    name = "qkv fp32" if r["implementation"] == "qkv" else "PyTorch " + r["precision"]
    print(f"| {name} | {r['threads']} | {r['tokens_per_s']:.1f} | "
          f"{r['tokens_per_s'] / best['tokens_per_s']:.2f}x | {r['kv_cache_bytes_per_token']:.0f} |")
qkv_gqa = [r for r in gqa if r["implementation"] == "qkv"][0]
best_train = max((r for r in train if r["implementation"] == "pytorch"),
                 key=lambda r: r["tokens_per_s"])
print()
print("| training, batch 4 x 64 | threads | step ms | vs PyTorch's best |")
print("|---|---|---|---|")
for r in train:
    name = "qkv fp32" if r["implementation"] == "qkv" else "PyTorch " + r["precision"]
    print(f"| {name} | {r['threads']} | {r['step_ms_median']:.0f} | "
          f"{r['tokens_per_s'] / best_train['tokens_per_s']:.2f}x |")
print(f"KV cache per token: GQA {qkv_gqa['kv_cache_bytes_per_token']:.0f} B, MHA "
      f"{mha['kv_cache_bytes_per_token']:.0f} B: ratio "
      f"{qkv_gqa['kv_cache_bytes_per_token'] / mha['kv_cache_bytes_per_token']:.3f} (kv/heads = 4/12)")
PY
