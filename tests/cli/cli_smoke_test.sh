#!/bin/bash
# The qkv binary's contract (SPEC.md §1): --help and --version succeed, unknown flags and bad
# values exit with status 2 and name the flag, the demo prints attention weights.
set -u
qkv="$1"
failures=0
expect() {  # expect STATUS DESCRIPTION PATTERN -- COMMAND...
  local want="$1" what="$2" pattern="$3"
  shift 4
  local output status
  output="$("$@" 2>&1)"
  status=$?
  if [[ $status -ne $want ]]; then
    echo "FAIL: $what: exit status $status, expected $want"; echo "$output"; failures=$((failures + 1))
  elif ! grep -qE -- "$pattern" <<<"$output"; then
    echo "FAIL: $what: output does not match /$pattern/"; echo "$output"; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
expect 0 "--version" "^qkv [0-9]+\.[0-9]+\.[0-9]+" -- "$qkv" --version
expect 0 "--help lists demo" "demo" -- "$qkv" --help
expect 0 "demo --help" "--heads" -- "$qkv" demo --help
expect 2 "unknown flag" "--bogus" -- "$qkv" demo --bogus
expect 2 "bad --pos value" "--pos" -- "$qkv" demo --pos sideways
expect 2 "heads not dividing dim" "--dim 16.*--heads 3|16.*3" -- "$qkv" demo --heads 3
expect 2 "zero heads" "--heads" -- "$qkv" demo --heads 0
expect 2 "bad --attention value (train)" "--attention.*fast" -- "$qkv" train --data /dev/null --out /nonexistent --attention fast
expect 2 "bad --attention value (eval)" "--attention.*fast" -- "$qkv" eval --model / --data /dev/null --attention fast
expect 0 "demo prints weights" "head 1" -- "$qkv" demo
expect 0 "causal demo masks the future" "Zuko +1\.000 +0\.000 +0\.000 +0\.000 +0\.000" -- "$qkv" demo --causal
echo "$((11 - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
