#!/usr/bin/env bash
# Two builds of qkv side by side in one run, interleaved round by round so that load on the
# machine hits both alike: the char recipe's and GPT-2 small's training step and greedy
# generation, reported as medians and new/base ratios, and whether both builds computed the
# same losses bit for bit (a refactor must not change a number). A benchmark, not a test.
#
#   bash bench/compare/ab.sh BASE_BUILD NEW_BUILD [ROUNDS]
#
# BASE_BUILD, NEW_BUILD: configured build directories with bench/compare/qkv_compare_bench
# built (e.g. a git worktree of the previous main, and build/release). ROUNDS: default 3.
# Environment for the benchmark processes only: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
# OMP_WAIT_POLICY=PASSIVE.
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 BASE_BUILD NEW_BUILD [ROUNDS]" >&2
  exit 2
fi
BASE="$1/bench/compare/qkv_compare_bench"
NEW="$2/bench/compare/qkv_compare_bench"
ROUNDS="${3:-3}"
for binary in "$BASE" "$NEW"; do
  [[ -x "$binary" ]] || { echo "ab: $binary is not built" >&2; exit 2; }
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ab: ROUNDS must be a positive integer" >&2; exit 2; }
echo "ab: unsetting OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, OMP_WAIT_POLICY=PASSIVE" >&2
export -n OPENBLAS_CORETYPE OPENBLAS_L2_SIZE 2>/dev/null || true
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_WAIT_POLICY=PASSIVE
CPU=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
ISA=$(grep -m1 -o -w -E "amx_bf16" /proc/cpuinfo || grep -m1 -o -w -E "avx512_bf16" /proc/cpuinfo ||
  grep -m1 -o -w avx512f /proc/cpuinfo || echo avx2)
echo "ab: CPU: $CPU; widest feature: $ISA; $(nproc) cores; $(date -u +%F)" >&2

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
GPT2=(--layers 12 --heads 12 --dim 768 --vocab 50257)
for ((round = 1; round <= ROUNDS; ++round)); do
  for side in base new; do
    binary=$BASE
    [[ $side == new ]] && binary=$NEW
    "$binary" train --steps 20 --warmup 3 --threads 2 >>"$OUT/char_$side.jsonl"
    "$binary" train "${GPT2[@]}" --context 64 --batch 4 --steps 3 --warmup 1 --threads 2 \
      >>"$OUT/gpt2_$side.jsonl"
    "$binary" generate --tokens 200 --runs 2 --threads 1 >>"$OUT/generate_$side.jsonl"
  done
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(name):
    return [json.loads(line) for line in (out / name).read_text().splitlines() if line.strip()]
print("| workload | base | new | new/base | same losses |")
print("|---|---|---|---|---|")
for key, label, field, unit in [("char", "char recipe train step", "step_ms_median", "ms"),
                                ("gpt2", "GPT-2 small step, 4x64", "step_ms_median", "ms"),
                                ("generate", "char model generation", "tokens_per_s", "tok/s")]:
    base, new = load(f"{key}_base.jsonl"), load(f"{key}_new.jsonl")
    b = statistics.median(r[field] for r in base)
    n = statistics.median(r[field] for r in new)
    same = "n/a"
    if "last_loss" in base[0]:
        same = "yes" if all(x["first_loss"] == y["first_loss"] and x["last_loss"] == y["last_loss"]
                            for x, y in zip(base, new)) else "NO"
    print(f"| {label} | {b:.1f} {unit} | {n:.1f} {unit} | {n / b:.3f} | {same} |")
PY
