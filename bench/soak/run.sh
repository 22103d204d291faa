#!/usr/bin/env bash
# Soak benchmark (docs/reliability.md): `qkv sample` generating without pause, then `qkv train`
# saving a checkpoint every few steps, each for a fixed time, while their resident memory and
# open file descriptors are sampled once a second. Resident memory must stay flat (after the
# first minute of warm-up it may not grow by more than 5 %) and descriptors must not grow.
# A benchmark, not a test: it takes 2 x --minutes (default 10) minutes.
#
#   bash bench/soak/run.sh [--minutes M] [--out DIR]
#
# Writes DIR/soak.csv (seconds, process, rss_kib, fds) and DIR/soak.svg (the memory curves) and
# prints a verdict per process. Exit status 0 whatever the verdict; 1 when it could not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MINUTES=10
OUT="$ROOT/runs/soak"
while (($# > 0)); do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "soak: unknown argument $1 (use --minutes M, --out DIR)" >&2; exit 1 ;;
  esac
done
QKV="$ROOT/build/release/tools/cli/qkv"
[[ -x "$QKV" ]] || { echo "soak: build first (bash scripts/setup.sh)" >&2; exit 1; }
exec /usr/bin/python3 "$ROOT/bench/soak/soak.py" --qkv "$QKV" --minutes "$MINUTES" --out "$OUT" \
  --data "$ROOT/../shared/data/tinyshakespeare.txt"
