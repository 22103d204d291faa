#!/bin/bash
# Data-parallel throughput: tokens/s of `qkv train` on the char recipe of scripts/run.sh
# (4 layers, 4 heads, width 128, context 64), 1 thread per rank, for 1 and 2 ranks.
#   weak scaling:   1 x batch 12  vs  2 ranks x batch 12 (twice the tokens per step)
#   strong scaling: 1 x batch 24  vs  2 ranks x batch 12 (the same step, split)
# Usage: bench/mpi/run.sh [QKV_BINARY] [DATA]   (default: build/release/tools/cli/qkv and
# ../shared/data/tinyshakespeare.txt, else a generated text). Prints one line per case: the
# median tokens/s (over all ranks) of the steps after the first 5.
set -euo pipefail
cd "$(dirname "$0")/../.."
qkv=${1:-build/release/tools/cli/qkv}
data=${2:-../shared/data/tinyshakespeare.txt}
steps=${STEPS:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ ! -f $data ]]; then
  data=$work/data.txt
  for i in $(seq 1 20000); do echo "line $i: the quick brown fox jumps over the lazy dog."; done >"$data"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi_flags=(--allow-run-as-root --oversubscribe --bind-to none
           --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
recipe=(--tokenizer char --layers 4 --heads 4 --dim 128 --context 64 --lr 1e-3 --min-lr 1e-4
        --warmup 100 --beta2 0.99 --eval-every 100000 --threads 1 --quiet --steps "$steps")

median_tokens_per_s() {
  python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][5:]
print(round(statistics.median(r["tokens_per_s"] for r in rows)))' "$1/train_log.jsonl"
}

run_case() {  # name ranks batch [extra flags]
  local name=$1 ranks=$2 batch=$3
  shift 3
  local out=$work/$name
  if ((ranks == 1)); then
    "$qkv" train --data "$data" --out "$out" "${recipe[@]}" --batch "$batch" "$@" >/dev/null
  else
    mpirun -np "$ranks" "${mpi_flags[@]}" "$qkv" train --data "$data" --out "$out" \
      "${recipe[@]}" --batch "$batch" "$@" >/dev/null 2>&1
  fi
  printf '%-36s %10s tokens/s\n' "$name" "$(median_tokens_per_s "$out")"
}

echo "qkv data-parallel benchmark: $(nproc) cores, $steps steps, data $data"
run_case "1 rank  x batch 12" 1 12
run_case "2 ranks x batch 12" 2 12
run_case "2 ranks x batch 12, sharded optimizer" 2 12 --shard-optimizer
run_case "1 rank  x batch 24" 1 24
