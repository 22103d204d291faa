#!/bin/bash
# Where `qkv attention` writes: --out DIR (an existing directory, or any path ending in '/')
# writes inside DIR, any other --out is a file prefix, --html alone writes only the explorer
# page, and empty values are usage errors naming the flag. Usage: attention_out_test.sh QKV
set -u
qkv="$(realpath "$1")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"  # a failing run must not litter the caller's directory
failures=0
passed=0
check() {  # check DESCRIPTION COMMAND...
  local what="$1"
  shift
  if "$@"; then
    echo "ok: $what"; passed=$((passed + 1))
  else
    echo "FAIL: $what"; failures=$((failures + 1))
  fi
}

for _ in $(seq 40); do printf 'the cat sat on the mat. '; done >"$work/data.txt"
if ! "$qkv" train --data "$work/data.txt" --out "$work/model" --steps 3 --layers 2 --heads 2 \
  --dim 16 --context 32 --batch 4 --eval-every 5 --eval-batches 2 --threads 1 --quiet \
  >"$work/train.log" 2>&1; then
  echo "FAIL: training the tiny model"; cat "$work/train.log"; exit 1
fi
attention() { "$qkv" attention --model "$work/model" --text "the cat sat" --threads 1 "$@"; }
layers=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["n_layer"])' \
  "$work/model/config.json")

# An existing directory: everything inside it, nothing beside it.
mkdir "$work/maps"
attention --out "$work/maps" >"$work/out1.txt" 2>&1
check "existing --out directory gets attention.json" test -f "$work/maps/attention.json"
for ((l = 0; l < layers; ++l)); do
  check "existing --out directory gets attention_layer$l.svg" \
    test -f "$work/maps/attention_layer$l.svg"
done
check "nothing written beside the directory" \
  test -z "$(ls "$work" | grep -E '^maps[_.]')"
check "the printed paths are the files written" \
  grep -qx "$work/maps/attention.json" "$work/out1.txt"

# A path ending in '/' is a directory even when it does not exist yet.
attention --out "$work/new/" >/dev/null 2>&1
check "--out NEW/ is created and written inside" test -f "$work/new/attention_layer0.svg"

# Anything else is still a prefix.
attention --out "$work/prefix" >/dev/null 2>&1
check "--out PREFIX writes PREFIX.json" test -f "$work/prefix.json"
check "--out PREFIX writes PREFIX_layer0.svg" test -f "$work/prefix_layer0.svg"

# --html alone writes the page only; with --out, both.
mkdir "$work/cwd"
(cd "$work/cwd" && attention --html page.html >/dev/null 2>&1)
check "--html alone writes the page" test -s "$work/cwd/page.html"
check "--html alone writes no heatmaps" test -z "$(ls "$work/cwd" | grep -v '^page.html$')"
mkdir "$work/both"
attention --out "$work/both" --html "$work/both" >/dev/null 2>&1
check "--out DIR --html DIR writes the page as DIR/attention.html" \
  test -s "$work/both/attention.html"
check "--out DIR --html DIR writes the heatmaps too" test -f "$work/both/attention.json"

# Usage errors name the flag.
for flag in --out --html; do
  output="$(attention "$flag" "" 2>&1)"
  status=$?
  check "empty $flag exits 2 naming it" test "$status" -eq 2 -a -n "$(grep -e "$flag" <<<"$output")"
done
check "--help describes --out directories" \
  grep -q "DIR/attention.json" <<<"$("$qkv" attention --help 2>&1)"

echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
