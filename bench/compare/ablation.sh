#!/usr/bin/env bash
# What each of qkv's CPU optimisations buys, measured in one run by switching it off at run time
# (docs/performance.md). qkv only; no PyTorch. A benchmark, not a test.
#
#   bash bench/compare/ablation.sh [--repeats N] [--build DIR] [--out FILE.md]
#
# Rows (each a median over --repeats rounds, default 3; the variants of a row alternate within
# a round so that drift on a shared machine hits them alike):
#   vector kernels  QKV_ISA=avx512 | avx2 | scalar on the char recipe step and the GPT-2 small
#                   step (batch 4 x 64): polynomial exp, GELU, LayerNorm, softmax, cross-entropy,
#                   bias gradients, AdamW, gradient norm (kernels/cpu/vector_kernels.h)
#   attention       --attention flash | simple: GPT-2 small, batch 1, contexts 1024 and 2048
#   thread waiting  OMP_WAIT_POLICY=PASSIVE | libgomp's default spinning, alone and with a busy
#                   process on one core, on the char recipe step
# Environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset here too (qkv does not use
# OpenBLAS; unset for parity with run.sh); everything else is per row, as listed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build/release"
OUT="$ROOT/build/bench/ablation.md"
REPEATS=3
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { usage >&2; echo "ablation: --repeats needs a positive integer" >&2; exit 2; }
               REPEATS="$2"; shift 2 ;;
    --build) [[ $# -ge 2 ]] || { echo "ablation: --build needs a directory" >&2; exit 2; }; BUILD="$2"; shift 2 ;;
    --out) [[ $# -ge 2 ]] || { echo "ablation: --out needs a file" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "ablation: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
BENCH="$BUILD/bench/compare/qkv_compare_bench"
[[ -x "$BENCH" ]] || { echo "ablation: not built: $BENCH (cmake --build $BUILD --target qkv_compare_bench)" >&2; exit 1; }
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
mkdir -p "$(dirname "$OUT")"
RAW="$(mktemp -d)"
trap 'rm -rf "$RAW"; [[ -n "${BUSY:-}" ]] && kill "$BUSY" 2>/dev/null || true' EXIT

CHAR=(train --layers 4 --heads 4 --dim 128 --vocab 65 --context 64 --batch 12 --steps 30 --warmup 5)
GPT2=(train --layers 12 --heads 12 --dim 768 --vocab 50257 --context 64 --batch 4 --steps 3 --warmup 1)
gpt2_at() { echo train --layers 12 --heads 12 --dim 768 --vocab 50257 --context "$1" --batch 1 --steps 2 --warmup 1; }

# run NAME ENV... -- ARGS...: one measurement, its step_ms_median appended to $RAW/NAME.
run() {
  local name="$1"; shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  local line
  line="$(env "${envs[@]}" "$BENCH" "$@" --threads 2 2>/dev/null | head -n 1)" || true
  /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["step_ms_median"])' "$line" \
    >> "$RAW/$name" 2>/dev/null || echo "ablation: $name failed" >&2
}

for round in $(seq 1 "$REPEATS"); do
  echo "ablation: round $round/$REPEATS" >&2
  for isa in avx512 avx2 scalar; do
    run "char_$isa" OMP_WAIT_POLICY=PASSIVE QKV_ISA=$isa -- "${CHAR[@]}"
    run "gpt2_$isa" OMP_WAIT_POLICY=PASSIVE QKV_ISA=$isa -- "${GPT2[@]}"
  done
  for t in 1024 2048; do
    for kernel in flash simple; do
      # shellcheck disable=SC2046
      run "attn${t}_$kernel" OMP_WAIT_POLICY=PASSIVE -- $(gpt2_at "$t") --attention "$kernel"
    done
  done
  run char_passive OMP_WAIT_POLICY=PASSIVE -- "${CHAR[@]}"
  run char_spin -u OMP_WAIT_POLICY -- "${CHAR[@]}"
  /usr/bin/python3 -c 'while True: pass' & BUSY=$!
  run char_passive_busy OMP_WAIT_POLICY=PASSIVE -- "${CHAR[@]}"
  run char_spin_busy -u OMP_WAIT_POLICY -- "${CHAR[@]}"
  kill "$BUSY"; wait "$BUSY" 2>/dev/null || true; BUSY=""
done

/usr/bin/python3 - "$RAW" "$OUT" "$REPEATS" <<'EOF'
import os, statistics, sys
raw, out, repeats = sys.argv[1], sys.argv[2], sys.argv[3]
def med(name):
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return None
    values = [float(v) for v in open(path).read().split()]
    return statistics.median(values) if values else None
rows = []
def row(what, variant, name, base):
    value, reference = med(name), med(base)
    ratio = f"{value / reference:.2f}x" if value and reference else "-"
    rows.append(f"| {what} | {variant} | {value:,.1f} | {ratio} |" if value else f"| {what} | {variant} | failed | - |")
for isa in ("avx512", "avx2", "scalar"):
    row("char recipe step (B12 x T64)", f"QKV_ISA={isa}", f"char_{isa}", "char_avx512")
for isa in ("avx512", "avx2", "scalar"):
    row("GPT-2 small step (B4 x T64)", f"QKV_ISA={isa}", f"gpt2_{isa}", "gpt2_avx512")
for t in (1024, 2048):
    for kernel in ("flash", "simple"):
        row(f"GPT-2 small step (B1 x T{t})", f"--attention {kernel}", f"attn{t}_{kernel}", f"attn{t}_flash")
row("char recipe step, cores idle", "OMP_WAIT_POLICY=PASSIVE", "char_passive", "char_passive")
row("char recipe step, cores idle", "libgomp default (spin)", "char_spin", "char_passive")
row("char recipe step, one core busy", "OMP_WAIT_POLICY=PASSIVE", "char_passive_busy", "char_passive")
row("char recipe step, one core busy", "libgomp default (spin)", "char_spin_busy", "char_passive")
text = ["| measurement | variant | step ms (median of %s) | vs first row of its group |" % repeats,
        "|---|---|---:|---:|"] + rows
open(out, "w").write("\n".join(text) + "\n")
print("\n".join(text))
EOF
echo "ablation: table written to $OUT" >&2
