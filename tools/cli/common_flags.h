// --seed, --threads and --precision, declared the same way by every command that takes them.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "qkv/runtime/precision.h"
#include "tools/cli/commands.h"
#include "tools/cli/flag_checks.h"

namespace qkv::cli {

// --seed, any 64-bit unsigned value; `help` says what it seeds.
inline CLI::Option* AddSeedFlag(CLI::App* command, uint64_t& seed, const std::string& help) {
  return command->add_option("--seed", seed, help)->capture_default_str()->check(Uint64());
}

// --threads, 0 meaning every core this process may use.
inline CLI::Option* AddThreadsFlag(CLI::App* command, int& threads) {
  return command->add_option("--threads", threads, "Threads (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
}

// --precision fp32|bf16 (../shared/SPEC.md §6); `help` says what bf16 does for the command.
inline CLI::Option* AddPrecisionFlag(CLI::App* command, std::string& precision,
                                     const std::string& help) {
  return command->add_option("--precision", precision, help)
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

// The precision --precision names; bf16 on a machine without bfloat16 matrix hardware is a
// UsageError (exit 2) that says what is missing.
inline Precision PrecisionOrRefuse(const std::string& name) {
  const Precision precision = ParsePrecision(name);
  if (precision == Precision::kBfloat16) {
    const std::string unavailable = Bf16Unavailable();
    if (!unavailable.empty()) throw UsageError("--precision bf16: " + unavailable);
  }
  return precision;
}

// "bf16 matrix products (avx512_bf16)" or "fp32", for a run's summary line.
inline std::string PrecisionSummary(Precision precision) {
  if (precision == Precision::kFloat32) return "fp32";
  return "bf16 matrix products (" + std::string(Bf16MatrixIsa()) + ")";
}

}  // namespace qkv::cli
