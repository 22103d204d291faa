// --seed and --threads, declared the same way by every command that takes them.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

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

}  // namespace qkv::cli
