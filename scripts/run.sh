#!/bin/bash
# Sets everything up and runs qkv's main job on its built-in default: the self-attention demo
# on "Zuko made his uncle tea", printing the attention weights of each head. Extra arguments
# go to `qkv demo` (try --causal, --pos rope, --heads 4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release >&2
exec build/release/tools/cli/qkv demo "$@"
