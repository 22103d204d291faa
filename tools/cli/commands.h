// The subcommands of the qkv binary. Each declares its flags once (name, default, help) in
// Add*Command, and Run* turns the parsed options into library calls.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace qkv::cli {

// A combination of flag values that is not allowed; main() reports it with exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DemoOptions {
  std::string text = "Zuko made his uncle tea";
  int64_t dim = 16;
  int64_t heads = 2;
  std::string position = "sinusoidal";
  bool causal = false;
  uint64_t seed = 1;
  int threads = 1;
};

CLI::App* AddDemoCommand(CLI::App& app, DemoOptions& options);
int RunDemo(const DemoOptions& options);

}  // namespace qkv::cli
