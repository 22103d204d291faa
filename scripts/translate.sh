#!/bin/bash
# Sets everything up and trains an English->Spanish translation model on the Bible for a fixed
# wall-clock budget, then reports BLEU and chrF on the test books and translates a few
# sentences (docs/translation.md). The corpus is the World English Bible against the
# Reina-Valera 1909, aligned by verse (scripts/bible_pairs.py; Debian's sword-text-web,
# sword-text-sparv, diatheke): test = Ruth, Jonah, Philippians; valid = Titus, Jude.
#
#   scripts/translate.sh                    # 15 minutes of training
#   scripts/translate.sh --minutes 60       # a longer budget (any positive number)
#   scripts/translate.sh --dim 512 --heads 8  # any other `qkv train` flag is passed through
#
# Each run writes a new model directory under runs/ (never overwriting an earlier one); the
# exported corpus is kept in build/bible and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=15
train_args=()
while (($# > 0)); do
  case "$1" in
    --minutes|--minutes=*)
      if [[ "$1" == --minutes ]]; then
        if (($# < 2)); then echo "translate.sh: --minutes needs a value" >&2; exit 2; fi
        minutes="$2"; shift 2
      else
        minutes="${1#--minutes=}"; shift
      fi
      if ! [[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ "$minutes" =~ ^0+([.]0+)?$ ]]; then
        echo "translate.sh: --minutes must be a positive number, got '$minutes'" >&2
        exit 2
      fi ;;
    *) train_args+=("$1"); shift ;;
  esac
done

scripts/setup.sh release >&2
qkv=build/release/tools/cli/qkv

corpus=build/bible
if [[ ! -s "$corpus/export.json" ]]; then
  echo "translate: exporting the verse-aligned Bible into $corpus" >&2
  /usr/bin/python3 scripts/bible_pairs.py "$corpus"
fi
echo "translate: $(wc -l <"$corpus/train.tsv") training, $(wc -l <"$corpus/valid.tsv")" \
     "validation and $(wc -l <"$corpus/test.tsv") test pairs" >&2

out="runs/bible-en-es-$(date +%Y%m%d-%H%M%S)"
echo "translate: training for $minutes minutes into $out" >&2
# The recipe (scripts/translation_recipe.sh) with --time-limit: the inverse square root
# schedule needs no end, so the run stops wherever the limit falls; --steps is only a bound.
# Flags given to this script replace the recipe's.
source scripts/translation_recipe.sh
without_overrides --tokenizer "$TRANSLATION_VOCABULARY" "${TRANSLATION_RECIPE[@]}" \
    --steps 1000000 --eval-every 100 --time-limit "${minutes}m" -- "${train_args[@]}"
"$qkv" train --arch encoder-decoder --pairs "$corpus/train.tsv" \
    --val-pairs "$corpus/valid.tsv" --out "$out" "${KEPT_DEFAULTS[@]}" "${train_args[@]}"

echo "translate: BLEU and chrF on the test books (beam 4):" >&2
"$qkv" eval --model "$out" --pairs "$corpus/test.tsv" --bleu --beam 4
echo "translate: a few sentences (beam 4):" >&2
sentences=("Zuko made his uncle tea." "In the beginning was the word."
           "The king sent his servants to the city." "Love your neighbour as yourself."
           "I will go to the house of my father.")
mapfile -t translations < <(printf '%s\n' "${sentences[@]}" |
                            "$qkv" translate --model "$out" --beam 4)
for i in "${!sentences[@]}"; do
  printf '  %s\n    -> %s\n' "${sentences[$i]}" "${translations[$i]}"
done
echo "translate: translate more with: $qkv translate --model $out --beam 4" >&2
