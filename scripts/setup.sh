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
  libgtest-dev libgmock-dev python3 python3-torch python3-numpy clang-format
  # benchmarks: Google Benchmark and the GEMM libraries compared in docs/gemm.md
  libbenchmark-dev libopenblas-dev libblis-dev libeigen3-dev
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

presets=("$@")
if ((${#presets[@]} == 0)); then presets=(release); fi
for preset in "${presets[@]}"; do
  echo "setup: building preset $preset" >&2
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
done
