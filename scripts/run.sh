#!/bin/bash
# Sets everything up and runs qkv's main job: trains a small character-level GPT on a text
# corpus for a couple of minutes and prints samples from it. The built-in default corpus is
# the text of Debian's `fortunes` package (installed by setup.sh); any text file works:
#
#   scripts/run.sh                     # fortunes, default recipe
#   scripts/run.sh --data my_text.txt  # your own text
#   scripts/run.sh --steps 3000        # any other `qkv train` flag is passed through
#
# Each run writes a new model directory under runs/ (never overwriting an earlier one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release >&2

qkv=build/release/tools/cli/qkv
data=""
train_args=()
while (($# > 0)); do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --data=*) data="${1#--data=}"; shift ;;
    *) train_args+=("$1"); shift ;;
  esac
done

if [[ -z "$data" ]]; then
  data=build/fortunes.txt
  if [[ ! -s "$data" ]]; then
    # The fortune files hold quotations separated by lines containing a single "%"; a blank
    # line separates them here instead, so samples read as plain text.
    find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' \
        -print0 | sort -z | xargs -0 cat | sed 's/^%$//' >"$data.tmp"
    mv "$data.tmp" "$data"
  fi
fi

out="runs/$(basename "${data%.*}")-$(date +%Y%m%d-%H%M%S)"
echo "run: training on $data ($(wc -c <"$data") bytes) into $out" >&2
# About two minutes on two cores: nanoGPT's shakespeare_char model (4 layers, 4 heads,
# width 128, context 64) for 1200 steps of 12 windows.
"$qkv" train --data "$data" --out "$out" --tokenizer char --layers 4 --heads 4 --dim 128 \
    --context 64 --batch 12 --steps 1200 --lr 1e-3 --min-lr 1e-4 --warmup 100 \
    --beta2 0.99 --eval-every 200 --eval-batches 20 "${train_args[@]}"
echo "run: samples from $out (temperature 0.8):" >&2
for seed in 1 2 3; do
  echo "----- sample $seed -----"
  "$qkv" sample --model "$out" --tokens 300 --temperature 0.8 --seed "$seed"
  echo
done
echo "run: the loss curve is $out/loss_curve.svg; sample more with: $qkv sample --model $out" >&2
