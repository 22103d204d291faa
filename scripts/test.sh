#!/bin/bash
# Sets everything up and runs the whole test suite: formatting, the release build's tests
# (unit tests, PyTorch comparisons, command line), then the same tests built with
# AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh release asan

echo "test: clang-format" >&2
mapfile -t sources < <(git ls-files '*.cc' '*.h' 2>/dev/null || find src tools tests bench -name '*.cc' -o -name '*.h')
clang-format --dry-run --Werror "${sources[@]}"

echo "test: release build" >&2
ctest --preset release -j2
echo "test: sanitizer build" >&2
ctest --preset asan -j2
