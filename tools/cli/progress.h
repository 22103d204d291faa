// A one-line progress display on stderr: redrawn in place on a terminal, printed every few
// seconds (and at evaluations) otherwise, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace qkv::cli {

class Progress {
 public:
  Progress(bool enabled, bool terminal) : enabled_(enabled), terminal_(terminal) {}
  void Update(int64_t step, int64_t total, double loss, std::optional<double> val_loss,
              double tokens_per_s, const std::string& time_left);
  // Ends the in-place line.
  void Finish();

 private:
  bool enabled_, terminal_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_print_{};
};

}  // namespace qkv::cli
