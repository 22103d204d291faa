# The English->Spanish Bible recipe, sourced by scripts/translate.sh and bench/translation/run.sh
# so that both train the same model: the flags `qkv train --arch encoder-decoder` and
# bench/translation/torch_translation.py train both take.
#
# A small Transformer-base: 3+3 post-norm blocks of width 256, sinusoidal positions, label
# smoothing 0.1 and dropout 0.1 as in Marian's transformer recipe, but small batches (2,048
# tokens) so that a budget of minutes still makes many updates, and the inverse square root
# schedule, which needs no end: a run stops wherever its time limit falls.
TRANSLATION_RECIPE=(
  --dim 256 --heads 4 --encoder-layers 3 --decoder-layers 3 --ffn-dim 1024
  --max-positions 256 --dropout 0.1 --label-smoothing 0.1 --batch-tokens 2048
  --lr 1e-3 --min-lr 1e-5 --warmup 200 --lr-schedule inv-sqrt --beta1 0.9 --beta2 0.98
  --weight-decay 0 --grad-clip 1.0 --seed 1337
)
# SentencePiece on both sides of the training pairs (qkv only: the PyTorch side reads the pieces
# from the model directory qkv wrote).
TRANSLATION_VOCABULARY=spm:4000

# without_overrides DEFAULTS... -- USER_ARGS...: sets the array KEPT_DEFAULTS to the DEFAULTS
# (flag value pairs) whose flag the user did not give, so that a user's `--dim 512` replaces
# the recipe's --dim 256 (qkv refuses a flag given twice). A user's --layers replaces the
# recipe's --encoder-layers and --decoder-layers.
without_overrides() {
  local defaults=() given=" " arg
  while (($# > 0)) && [[ "$1" != -- ]]; do defaults+=("$1"); shift; done
  shift || true
  for arg in "$@"; do
    if [[ "$arg" == --* ]]; then
      given+="${arg%%=*} "
      if [[ "${arg%%=*}" == --layers ]]; then given+="--encoder-layers --decoder-layers "; fi
    fi
  done
  KEPT_DEFAULTS=()
  local i
  for ((i = 0; i < ${#defaults[@]}; i += 2)); do
    if [[ "$given" != *" ${defaults[i]} "* ]]; then
      KEPT_DEFAULTS+=("${defaults[i]}" "${defaults[i + 1]}")
    fi
  done
}
