// A one-line progress display on stderr: redrawn in place on a terminal, printed every few
// seconds (and at evaluations) otherwise, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

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

// A progress line for work that is not training steps: what is being done, how far (in
// `unit`s), the rate and the time left. Drawn in place on a terminal (at most ten times a
// second), printed every five seconds otherwise; the first and the last state always show.
class TaskProgress {
 public:
  // total > 0. Nothing is printed when !enabled.
  TaskProgress(std::string what, std::string unit, double total, bool enabled);
  ~TaskProgress() { Finish(); }
  TaskProgress(const TaskProgress&) = delete;
  TaskProgress& operator=(const TaskProgress&) = delete;

  void Update(double done);
  // Prints the final state (if not yet shown) and ends the line.
  void Finish();

 private:
  void Print(double done);

  std::string what_, unit_;
  double total_;
  bool enabled_, terminal_;
  bool finished_ = false;
  double last_done_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// tokenizer.Encode(text) with a progress line named `what` (in bytes).
std::vector<int32_t> EncodeWithProgress(const tokenizer::Tokenizer& tokenizer,
                                        std::string_view text, const std::string& what,
                                        bool enabled);

}  // namespace qkv::cli
