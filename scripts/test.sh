#!/bin/bash
# Sets everything up and runs the whole test suite: formatting, clang-tidy (.clang-tidy over
# src/ and tools/), the release build's tests
# (unit tests, PyTorch comparisons, command line), then the same tests built with
# AddressSanitizer and UndefinedBehaviorSanitizer, then a bounded libFuzzer run of every
# reader of outside data (tests/fuzz/run.sh, docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh release asan

echo "test: clang-format" >&2
mapfile -t sources < <(git ls-files '*.cc' '*.h' 2>/dev/null || find src tools tests bench -name '*.cc' -o -name '*.h')
clang-format --dry-run --Werror "${sources[@]}"

echo "test: clang-tidy" >&2
scripts/clang_tidy.sh

echo "test: release build" >&2
ctest --preset release -j2
echo "test: sanitizer build" >&2
ctest --preset asan -j2
echo "test: fuzzing" >&2
fuzz_status=0
tests/fuzz/run.sh || fuzz_status=$?
if ((fuzz_status == 77)); then
  echo "test: fuzzing skipped: clang or its libFuzzer runtime is not installed" >&2
elif ((fuzz_status != 0)); then
  exit "$fuzz_status"
fi
