#!/bin/bash
# Builds the libFuzzer harnesses (preset "fuzz": clang, ASan + UBSan), replays every
# regression input, then fuzzes each harness from its seed corpus for a bounded time. Exits 1
# on any finding (crash, sanitizer report, leak, timeout, out-of-memory, failed round trip);
# libFuzzer leaves the input as build/fuzz/findings/<harness>/crash-* (or leak-*, timeout-*,
# oom-*) to add to tests/fuzz/regressions/<harness>/ once fixed. Exits 77 when clang or its
# fuzzer runtime is missing.
#
# Usage: tests/fuzz/run.sh [seconds per harness (default 35)] [harness...]
# Environment: QKV_FUZZ_JOBS (parallel harnesses, default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-35}
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=(safetensors model_config tokenizer_config bpe_files text_roundtrip)
fi
jobs=${QKV_FUZZ_JOBS:-2}

if ! command -v clang++ >/dev/null; then
  echo "fuzz: skipped: clang++ is not installed (Debian: clang)" >&2
  exit 77
fi
runtime=$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if [[ ! -f "$runtime" ]]; then
  runtime=$(find "$(clang++ -print-resource-dir 2>/dev/null || echo /nonexistent)" \
    -name 'libclang_rt.fuzzer-x86_64.a' 2>/dev/null | head -1)
fi
if [[ -z "$runtime" || ! -f "$runtime" ]]; then
  echo "fuzz: skipped: clang's libFuzzer runtime (libclang_rt.fuzzer-x86_64.a) is missing" \
       "(Debian: libclang-rt-14-dev)" >&2
  exit 77
fi

start=$SECONDS
cmake --preset fuzz >/dev/null
targets=()
for harness in "${harnesses[@]}"; do targets+=("${harness}_fuzzer"); done
cmake --build --preset fuzz --target "${targets[@]}"
echo "fuzz: built ${#targets[@]} harnesses in $((SECONDS - start)) s" >&2

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# -rss_limit_mb: a reader that allocates what a header claims, not what the input holds, is a
# finding. -timeout: one input taking seconds is a finding (quadratic parsing, a hang).
limits=(-rss_limit_mb=2048 -timeout=10 -max_len=8192)

fuzz_one() {
  local harness=$1
  local binary=build/fuzz/tests/fuzz/${harness}_fuzzer
  local corpus=tests/fuzz/corpus/$harness regressions=tests/fuzz/regressions/$harness
  local findings=build/fuzz/findings/$harness work=build/fuzz/corpus/$harness
  local log=build/fuzz/logs/$harness.log
  mkdir -p "$findings" "$work" "$(dirname "$log")"
  # Regressions first: every input that ever crashed must now be refused cleanly.
  local inputs=()
  for file in "$regressions"/*; do [[ -f $file ]] && inputs+=("$file"); done
  if ((${#inputs[@]} > 0)); then
    if ! "$binary" "${limits[@]}" "${inputs[@]}" >"$log.replay" 2>&1; then
      echo "fuzz: $harness: a regression input fails again (log: $log.replay)" >&2
      tail -30 "$log.replay" >&2
      return 1
    fi
  fi
  # New inputs go to a scratch corpus under build/, never into the committed seeds.
  if ! "$binary" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$findings/" "$work" "$corpus" >"$log" 2>&1; then
    echo "fuzz: $harness: FINDING (log: $log; input: $(ls "$findings" | head -1))" >&2
    grep -m1 -A25 -E "ERROR|runtime error|fuzz assertion|deadly signal|uncaught" "$log" >&2 || tail -30 "$log" >&2
    return 1
  fi
  local runs
  runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz: $harness: $runs inputs in ${seconds} s, no findings (${#inputs[@]} regressions replayed)" >&2
}

status=0
pids=()
names=()
for harness in "${harnesses[@]}"; do
  fuzz_one "$harness" &
  pids+=($!)
  names+=("$harness")
  if ((${#pids[@]} >= jobs)); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "fuzz: done in $((SECONDS - start)) s" >&2
exit $status
