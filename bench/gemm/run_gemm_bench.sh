#!/usr/bin/env bash
# Runs every GEMM library variant, alternating them within each round so that load from other
# work on the machine spreads over all of them, then summarizes into markdown tables.
#
# Usage: bench/gemm/run_gemm_bench.sh BUILD_DIR OUT_DIR [ROUNDS] [THREAD_COUNTS...]
#   e.g. bench/gemm/run_gemm_bench.sh build/gemm-bench /tmp/gemm-results 3 1 2
set -euo pipefail

build=${1:?build dir}
out=${2:?output dir}
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
threads_list=(1 2)
[[ $# -gt 0 ]] && threads_list=("$@")
mkdir -p "$out"

# name|env(1) arguments|binary. "-u VAR" removes a variable for that one command only.
variants=(
  "dnnl_sgemm||gemm_bench_dnnl_sgemm"
  "dnnl_matmul||gemm_bench_dnnl_matmul"
  "openblas_auto|-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE|gemm_bench_openblas"
  "openblas_haswell|OPENBLAS_CORETYPE=Haswell|gemm_bench_openblas"
  "blis_auto|-u BLIS_ARCH_TYPE|gemm_bench_blis"
  "blis_skx|BLIS_ARCH_TYPE=0|gemm_bench_blis"  # 0 = BLIS_ARCH_SKX in BLIS 0.9's arch_t.
  "eigen_avx2||gemm_bench_eigen_avx2"
  "eigen_avx512||gemm_bench_eigen_avx512"
)
# OpenBLAS as the environment has it, only when that differs from its own detection.
if [[ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]]; then
  variants+=("openblas_env||gemm_bench_openblas")
fi

env | grep -E '^(OMP_|GOMP_|OPENBLAS_|BLIS_|MKL_|DNNL_|ONEDNN_)' > "$out/env.txt" || true
"$build/gemm_peak" --threads 2 > "$out/peak.csv"

for ((round = 1; round <= rounds; ++round)); do
  # Rotate the starting variant each round so none always runs first or last.
  n=${#variants[@]}
  for ((i = 0; i < n; ++i)); do
    IFS='|' read -r name environment binary <<< "${variants[$(((i + round) % n))]}"
    [[ -x "$build/$binary" ]] || { echo "skip $name: no $binary" >&2; continue; }
    for threads in "${threads_list[@]}"; do
      # Load from other processes makes OpenMP spin barriers collapse; log it beside each run.
      echo "round $round: $name, $threads thread(s), loadavg $(cut -d" " -f1 /proc/loadavg)" >&2
      # shellcheck disable=SC2086  # $environment is a word list on purpose.
      env $environment OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
        BLIS_NUM_THREADS="$threads" "$build/$binary" --threads "$threads" --round "$round" \
        > "$out/$name.t$threads.r$round.csv"
    done
  done
done
"$build/gemm_peak" --threads 2 >> "$out/peak.csv"

python3 "$(dirname "$0")/summarize_gemm_bench.py" "$out" > "$out/summary.md"
echo "wrote $out/summary.md" >&2
