#!/bin/bash
# Runs explorer_test.js (the attention explorer in headless Chromium), or skips with status 77
# when Node.js, Chromium or the npm package playwright-core (scripts/setup.sh installs it into
# build/npm) is missing. Usage: explorer_test.sh QKV WORK_DIR [SCREENSHOT]
# QKV_CHROMIUM and QKV_PLAYWRIGHT_CORE override where Chromium and playwright-core are.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
qkv="$(realpath "$1")" work="$2" screenshot="${3:-}"
chromium="${QKV_CHROMIUM:-/usr/bin/chromium}"
playwright="${QKV_PLAYWRIGHT_CORE:-$here/../../build/npm/node_modules/playwright-core}"
node="$(command -v node || true)"
if [[ -z $node ]]; then echo "SKIP: node is not installed (scripts/setup.sh)"; exit 77; fi
if [[ ! -x $chromium ]]; then
  echo "SKIP: no Chromium at $chromium (scripts/setup.sh installs Debian's chromium)"; exit 77
fi
if [[ ! -f $playwright/package.json ]]; then
  echo "SKIP: no playwright-core at $playwright (scripts/setup.sh installs it)"; exit 77
fi
exec "$node" "$here/explorer_test.js" "$qkv" "$playwright" "$chromium" "$work" ${screenshot:+"$screenshot"}
