#!/usr/bin/env bash
# qkv against PyTorch, section by section, in one command; prints a Markdown table and writes
# results.json, table.md, scaling.csv and scaling.svg into the out dir. A benchmark, not a
# test: see docs/benchmarks.md ("bench/compare").
#
#   bash bench/compare/run.sh [--quick] [--only SECTIONS] [--repeats N] [--out DIR]
#                             [--build DIR] [--no-build] [--jobs N] [--scaling-repeats N]
#                             [--char-steps N] [--char-warmup N]
#
# SECTIONS is a comma-separated subset of char,gpt2,attention,generate,scaling (default: all).
#   char       training tokens/s, nanoGPT's shakespeare_char CPU model (4 layers, 4 heads,
#              width 128, context 64, batch 12, vocab 65)
#   gpt2       training step time of GPT-2 small (12 x 12 x 768, vocab 50257), batch 4 x T for
#              T = 64, 256, 1024 (--quick: 64)
#   attention  causal attention alone, forward + backward, batch 1, 12 heads of 64, at
#              T = 256, 1024, 4096 (--quick: 256, 1024): qkv's flash kernel and simple op
#              against nanoGPT's explicit matmul/masked_fill/softmax/matmul; time and memory
#   generate   greedy generation tokens/s with a KV cache, batch 1: the char model (200 tokens)
#              and GPT-2 small (context 1024, 64 tokens)
#   scaling    qkv only: GPT-2 small training time per token at batch 1 and context 64 ... 4096
#              (--quick: up to 512), with the attention core timed alone
# Every measurement runs --repeats rounds (default 3; --quick 1 unless given) of qkv (2 threads),
# PyTorch with 1 thread, PyTorch with 2 threads, one process each, one after another; the table
# shows medians over the rounds. Generation also runs qkv with 1 thread (its CLI's default for
# sampling). The scaling section runs --scaling-repeats rounds (default 1).
# --build DIR: the configured qkv build to use (default build/release); the script builds the
# three targets it needs there unless --no-build (--jobs N: N compile jobs, e.g. 1 on a machine
# someone else is using). --out DIR: default build/bench/compare.
# Environment for the benchmark processes only: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
# OMP_WAIT_POLICY=PASSIVE for PyTorch (qkv: its own default, a bounded spin), and per process OMP_NUM_THREADS / OPENBLAS_NUM_THREADS = its threads;
# every change is printed. Exit status 0 when every measurement ran, 1 when one failed (the
# table marks it) or something could not start, 2 for a bad argument.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/compare"
PY=/usr/bin/python3
ALL_SECTIONS="char,gpt2,attention,generate,scaling"

QUICK=0
ONLY="$ALL_SECTIONS"
REPEATS=""
SCALING_REPEATS=1
OUT="$ROOT/build/bench/compare"
BUILD="$ROOT/build/release"
DO_BUILD=1
JOBS=()
CHAR_STEPS=30
CHAR_WARMUP=5

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "compare: $*" >&2; exit 1; }
bad_arg() { usage >&2; echo "compare: $*" >&2; exit 2; }
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || bad_arg "$1 needs a positive integer, got '$2'"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --only) [[ $# -ge 2 ]] || bad_arg "--only needs a list, e.g. char,gpt2"; ONLY="$2"; shift 2 ;;
    --repeats) [[ $# -ge 2 ]] || bad_arg "--repeats needs a number"; positive "$1" "$2"
               REPEATS="$2"; shift 2 ;;
    --scaling-repeats) [[ $# -ge 2 ]] || bad_arg "--scaling-repeats needs a number"
                       positive "$1" "$2"; SCALING_REPEATS="$2"; shift 2 ;;
    --char-steps) [[ $# -ge 2 ]] || bad_arg "--char-steps needs a number"; positive "$1" "$2"
                  CHAR_STEPS="$2"; shift 2 ;;
    --char-warmup) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || bad_arg "--char-warmup needs a number"
                   CHAR_WARMUP="$2"; shift 2 ;;
    --out) [[ $# -ge 2 ]] || bad_arg "--out needs a directory"; OUT="$2"; shift 2 ;;
    --build) [[ $# -ge 2 ]] || bad_arg "--build needs a directory"; BUILD="$2"; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --jobs) [[ $# -ge 2 ]] || bad_arg "--jobs needs a number"; positive "$1" "$2"
            JOBS=(--parallel "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bad_arg "unknown argument '$1'" ;;
  esac
done
[[ -n "$REPEATS" ]] || REPEATS=$((QUICK ? 1 : 3))
IFS=',' read -r -a SECTIONS <<< "$ONLY"
[[ ${#SECTIONS[@]} -gt 0 ]] || bad_arg "--only needs at least one of $ALL_SECTIONS"
for s in "${SECTIONS[@]}"; do
  [[ ",$ALL_SECTIONS," == *",$s,"* ]] || bad_arg "--only: unknown section '$s' (known: $ALL_SECTIONS)"
done
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

# ---- tools -------------------------------------------------------------------------------------
[[ -x "$PY" ]] || die "$PY not found (the PyTorch side and the table need Debian's python3)"
"$PY" -c 'import torch' 2>/dev/null || die "PyTorch is not importable by $PY (apt-get install python3-torch)"
[[ -d "$BUILD" ]] || die "build directory not found: $BUILD
configure it first: bash scripts/setup.sh (or cmake --preset release)"
BUILD="$(cd "$BUILD" && pwd)"
if [[ $DO_BUILD -eq 1 ]]; then
  [[ -f "$BUILD/CMakeCache.txt" ]] || die "$BUILD is not a configured CMake build (bash scripts/setup.sh)"
  echo "compare: building qkv_compare_bench attention_bench gemm_peak in $BUILD ..." >&2
  cmake --build "$BUILD" "${JOBS[@]}" --target qkv_compare_bench attention_bench gemm_peak >&2 \
    || die "the build failed (see above)"
fi
QKV_BENCH="$BUILD/bench/compare/qkv_compare_bench"
ATTENTION_BENCH="$BUILD/bench/attention/attention_bench"
GEMM_PEAK="$BUILD/bench/gemm/gemm_peak"
for binary in "$QKV_BENCH" "$ATTENTION_BENCH" "$GEMM_PEAK"; do
  [[ -x "$binary" ]] || die "not built: $binary (run without --no-build, or build it in $BUILD)"
done

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RAW="$OUT/raw"  # this script's own: one file per process
rm -rf "$RAW"
mkdir -p "$RAW"

# ---- environment -------------------------------------------------------------------------------
# The caller's environment is untouched: these apply to this script's processes only.
ENV_NOTES=()
for var in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  if [[ -n "${!var+x}" ]]; then
    ENV_NOTES+=("unset $var (was '${!var}'; OpenBLAS tuning that slows it here)")
    unset "$var"
  else
    ENV_NOTES+=("$var: was not set")
  fi
done
# libgomp's long default spin collapses either side when anything else runs on the two cores
# (docs/benchmarks.md): PyTorch waits passively; qkv_compare_bench gets OMP_WAIT_POLICY unset
# and so its own default, GOMP_SPINCOUNT=1000 (as the qkv binary).
ENV_NOTES+=("OMP_WAIT_POLICY=PASSIVE for PyTorch, unset for qkv (GOMP_SPINCOUNT=1000, its default) (was '${OMP_WAIT_POLICY-unset}')")
export OMP_WAIT_POLICY=PASSIVE
ENV_NOTES+=("per process: OMP_NUM_THREADS=N OPENBLAS_NUM_THREADS=N for N threads (were '${OMP_NUM_THREADS-unset}', '${OPENBLAS_NUM_THREADS-unset}'); PyTorch also torch.set_num_threads(N)")
printf '%s\n' "${ENV_NOTES[@]}" > "$RAW/env_changes.txt"
echo "compare: environment for the benchmark processes:" >&2
printf '  %s\n' "${ENV_NOTES[@]}" >&2

date -u +%Y-%m-%dT%H:%M:%SZ > "$RAW/started_at.txt"
cut -d' ' -f1-3 /proc/loadavg > "$RAW/load_start.txt"
{ lscpu 2>/dev/null || true; } > "$RAW/lscpu.txt"
{ dpkg-query -W -f='${Package} ${Version}\n' 'libdnnl*' 2>/dev/null || true; } > "$RAW/dpkg_dnnl.txt"
{ ldd "$QKV_BENCH" 2>/dev/null | grep -i dnnl || true; } > "$RAW/ldd_dnnl.txt"

FAILURES=0
# measure OUTFILE LABEL THREADS COMMAND...: runs COMMAND with THREADS threads' environment,
# stdout to OUTFILE, stderr to OUTFILE.log. A failure is recorded (OUTFILE.failed) and the
# script goes on with the next measurement.
measure() {
  local out="$1" label="$2" threads="$3"
  shift 3
  local start=$SECONDS rc=0
  echo "compare: $label ..." >&2
  # qkv's side waits as the qkv binary does by default (a bounded spin, ThreadPool::
  # UseBoundedSpinning), PyTorch's passively.
  local policy=()
  [[ "$1" == "$QKV_BENCH" ]] && policy=(-u OMP_WAIT_POLICY)
  env "${policy[@]}" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" "$@" > "$out" \
    2> "$out.log" || rc=$?
  if [[ $rc -ne 0 ]]; then
    FAILURES=$((FAILURES + 1))
    echo "exit status $rc: $*" > "$out.failed"
    echo "compare: FAILED (exit status $rc): $label; the last lines of $out.log:" >&2
    tail -n 5 "$out.log" | sed 's/^/    /' >&2
  else
    echo "compare:   done in $((SECONDS - start)) s" >&2
  fi
}

ORDER=0
# new_case SECTION CASE LABEL: a directory for one measurement's processes, with its metadata.
new_case() {
  ORDER=$((ORDER + 1))
  CASE_DIR="$RAW/$1/$2"
  mkdir -p "$CASE_DIR"
  printf '{"order": %d, "section": "%s", "case": "%s", "label": "%s"}\n' \
    "$ORDER" "$1" "$2" "$3" > "$CASE_DIR/case.json"
}

measure "$RAW/qkv_info.json" "qkv: oneDNN version" 2 "$QKV_BENCH" info
measure "$RAW/torch_info.json" "PyTorch: version and BLAS" 1 "$PY" "$HERE/torch_compare.py" info
# Peak first, while nothing of ours is running: it is the denominator of every MFU.
measure "$RAW/peak.csv" "FP32 peak (gemm_peak, 1 and 2 threads)" 2 "$GEMM_PEAK" --threads 2
measure "$RAW/matmul_peak.json" "measured matmul rate, fp32 and bf16 (2048^3, 2 threads)" 2 \
  "$QKV_BENCH" matmul-peak --threads 2

TORCH="$HERE/torch_compare.py"

# bf16 (qkv --precision bf16, PyTorch's bf16 autocast) where the CPU has bf16 matrix
# instructions; without them qkv refuses bf16 and PyTorch emulates it far below its fp32 speed.
BF16=0
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  BF16=1
else
  echo "compare: no AVX512-BF16 or AMX on this CPU: the bf16 training runs are skipped" >&2
fi

# train_case SECTION CASE LABEL WARMUP STEPS MODEL_FLAGS...: alternating rounds of qkv (2
# threads; also in bf16 where the CPU can), PyTorch 1 thread, PyTorch 2 threads (and both in
# bf16 autocast where the CPU can).
train_case() {
  local section="$1" case_name="$2" label="$3" warmup="$4" steps="$5"
  shift 5
  new_case "$section" "$case_name" "$label"
  local r
  for ((r = 1; r <= REPEATS; r++)); do
    measure "$CASE_DIR/qkv-2t-r$r.json" "$section $case_name: qkv 2 threads (round $r/$REPEATS)" 2 \
      "$QKV_BENCH" train "$@" --warmup "$warmup" --steps "$steps" --threads 2
    if [[ $BF16 -eq 1 ]]; then
      measure "$CASE_DIR/qkv-bf16-2t-r$r.json" "$section $case_name: qkv bf16 2 threads (round $r/$REPEATS)" 2 \
        "$QKV_BENCH" train "$@" --warmup "$warmup" --steps "$steps" --threads 2 --precision bf16
    fi
    for n in 1 2; do
      measure "$CASE_DIR/torch-${n}t-r$r.json" "$section $case_name: PyTorch $n thread(s) (round $r/$REPEATS)" "$n" \
        "$PY" "$TORCH" train "$@" --warmup "$warmup" --steps "$steps" --threads "$n"
      if [[ $BF16 -eq 1 ]]; then
        measure "$CASE_DIR/torch-bf16-${n}t-r$r.json" "$section $case_name: PyTorch bf16 autocast $n thread(s) (round $r/$REPEATS)" "$n" \
          "$PY" "$TORCH" train "$@" --warmup "$warmup" --steps "$steps" --threads "$n" --bf16
      fi
    done
  done
}

CHAR_MODEL=(--layers 4 --heads 4 --dim 128 --vocab 65 --context 64)
GPT2_SHAPE=(--layers 12 --heads 12 --dim 768 --vocab 50257)

if wanted char; then
  train_case char B12xT64 "shakespeare_char model (4x4x128, 0.8M), batch 12 x 64" \
    "$CHAR_WARMUP" "$CHAR_STEPS" "${CHAR_MODEL[@]}" --batch 12
fi

if wanted gpt2; then
  if [[ $QUICK -eq 1 ]]; then GPT2_LENGTHS=(64); else GPT2_LENGTHS=(64 256 1024); fi
  for t in "${GPT2_LENGTHS[@]}"; do
    # A step takes seconds here (tens at T = 1024): few steps, and fewer still for the longest.
    warmup=2 steps=3
    if [[ $QUICK -eq 1 ]]; then warmup=1 steps=2; fi
    if [[ $t -ge 1024 ]]; then warmup=1 steps=2; fi
    train_case gpt2 "B4xT$t" "GPT-2 small (124M), batch 4 x $t" "$warmup" "$steps" \
      "${GPT2_SHAPE[@]}" --context "$t" --batch 4
  done
fi

if wanted attention; then
  if [[ $QUICK -eq 1 ]]; then ATTENTION_LENGTHS=(256 1024); else ATTENTION_LENGTHS=(256 1024 4096); fi
  for t in "${ATTENTION_LENGTHS[@]}"; do
    new_case attention "T$t" "causal attention fwd+bwd, 1 x 12 heads x 64, T = $t"
    # As many timed runs as attention_bench makes at this length.
    if [[ $t -ge 4096 ]]; then reps=3; elif [[ $t -ge 1024 ]]; then reps=5; else reps=20; fi
    for ((r = 1; r <= REPEATS; r++)); do
      measure "$CASE_DIR/qkv-2t-r$r.txt" "attention T=$t: qkv simple + flash, 2 threads (round $r/$REPEATS)" 2 \
        "$ATTENTION_BENCH" --lengths "$t" --threads 2
      for n in 1 2; do
        measure "$CASE_DIR/torch-${n}t-r$r.json" "attention T=$t: PyTorch $n thread(s) (round $r/$REPEATS)" "$n" \
          "$PY" "$TORCH" attention --seq "$t" --threads "$n" --repeats "$reps"
      done
    done
    # Memory does not depend on the round: once, in a fresh process of its own.
    for n in 1 2; do
      measure "$CASE_DIR/torch-memory-${n}t.json" "attention T=$t: PyTorch peak memory, $n thread(s)" "$n" \
        "$PY" "$TORCH" attention-memory --seq "$t" --threads "$n"
    done
  done
fi

if wanted generate; then
  gen_runs=3
  [[ $QUICK -eq 1 ]] && gen_runs=1
  for which in char gpt2; do
    if [[ $which == char ]]; then
      model=("${CHAR_MODEL[@]}" --prompt 8 --tokens 200)
      new_case generate char "shakespeare_char model, 8-token prompt + 200 tokens (context 64: the window slides)"
    else
      model=("${GPT2_SHAPE[@]}" --context 1024 --prompt 16 --tokens 64)
      new_case generate gpt2 "GPT-2 small, context 1024, 16-token prompt + 64 tokens"
    fi
    for ((r = 1; r <= REPEATS; r++)); do
      for n in 2 1; do
        measure "$CASE_DIR/qkv-${n}t-r$r.json" "generate $which: qkv $n thread(s) (round $r/$REPEATS)" "$n" \
          "$QKV_BENCH" generate "${model[@]}" --runs "$gen_runs" --warmup-runs 1 --threads "$n"
        measure "$CASE_DIR/torch-${n}t-r$r.json" "generate $which: PyTorch $n thread(s) (round $r/$REPEATS)" "$n" \
          "$PY" "$TORCH" generate "${model[@]}" --runs "$gen_runs" --warmup-runs 1 --threads "$n"
      done
    done
  done
fi

if wanted scaling; then
  if [[ $QUICK -eq 1 ]]; then SCALING_LENGTHS=(64 128 256 512); else SCALING_LENGTHS=(64 128 256 512 1024 2048 4096); fi
  for t in "${SCALING_LENGTHS[@]}"; do
    new_case scaling "T$t" "GPT-2 small, batch 1 x $t"
    steps=2
    [[ $t -ge 2048 ]] && steps=1
    for ((r = 1; r <= SCALING_REPEATS; r++)); do
      measure "$CASE_DIR/qkv-2t-r$r.json" "scaling T=$t: qkv 2 threads (round $r/$SCALING_REPEATS)" 2 \
        "$QKV_BENCH" train "${GPT2_SHAPE[@]}" --context "$t" --batch 1 --warmup 1 --steps "$steps" \
        --threads 2 --attention-timing
    done
  done
fi

cut -d' ' -f1-3 /proc/loadavg > "$RAW/load_end.txt"
echo "$FAILURES" > "$RAW/failures.txt"

# ---- table, JSON, CSV, SVG ---------------------------------------------------------------------
"$PY" "$HERE/summarize.py" --raw "$RAW" --out "$OUT" --repeats "$REPEATS" \
  --scaling-repeats "$SCALING_REPEATS" --quick "$QUICK" || die "summarize.py failed"
if [[ $FAILURES -gt 0 ]]; then
  echo "compare: $FAILURES measurement(s) failed; their logs are in $RAW" >&2
  exit 1
fi
