#include "tools/cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qkv::cli {

void Progress::Update(int64_t step, int64_t total, double loss, std::optional<double> val_loss,
                      double tokens_per_s, const std::string& time_left) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool due = now - last_print_ > std::chrono::seconds(terminal_ ? 0 : 5);
  if (!due && !val_loss && step != total && step != 1) return;
  last_print_ = now;
  constexpr int kBarWidth = 24;
  const int filled = static_cast<int>(kBarWidth * step / total);
  char bar[kBarWidth + 1];
  for (int i = 0; i < kBarWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kBarWidth] = '\0';
  char val[32] = "";
  if (val_loss) std::snprintf(val, sizeof(val), " val %.4f", *val_loss);
  std::fprintf(stderr, "%s[%s] step %lld/%lld loss %.4f%s | %.0f tok/s | %s left%s",
               terminal_ ? "\r\033[K" : "", bar, static_cast<long long>(step),
               static_cast<long long>(total), loss, val, tokens_per_s, time_left.c_str(),
               terminal_ ? "" : "\n");
  if (terminal_ && val_loss) std::fputc('\n', stderr);  // keep evaluations on screen
  drawn_ = terminal_ && !val_loss;
  std::fflush(stderr);
}

void Progress::Finish() {
  if (enabled_ && drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

namespace {

// 1.2 MB, 345 windows: large counts of bytes shrink to a readable unit.
std::string Amount(double value, const std::string& unit) {
  char text[64];
  if (unit == "bytes" && value >= 1e6) {
    std::snprintf(text, sizeof(text), "%.1f MB", value / 1e6);
  } else if (unit == "bytes" && value >= 1e3) {
    std::snprintf(text, sizeof(text), "%.1f kB", value / 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.0f %s", value, unit.c_str());
  }
  return text;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

std::string Seconds(double seconds) {
  const long long total = static_cast<long long>(std::llround(seconds));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", total / 3600, total % 3600 / 60);
  } else {
    std::snprintf(text, sizeof(text), "%lldm%02llds", total / 60, total % 60);
  }
  return text;
}

}  // namespace

TaskProgress::TaskProgress(std::string what, std::string unit, double total, bool enabled)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total > 0 ? total : 1),
      enabled_(enabled),
      terminal_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {
  // In a log (not a terminal) a line every five seconds and the final one are enough.
  if (enabled_ && terminal_) Print(0);
}

void TaskProgress::Update(double done) {
  if (!enabled_ || finished_) return;
  last_done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = terminal_ ? std::chrono::milliseconds(100) : std::chrono::seconds(5);
  if (now - last_print_ >= interval) Print(done);
}

void TaskProgress::Finish() {
  if (!enabled_ || finished_) return;
  Print(total_);
  finished_ = true;
  if (terminal_) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void TaskProgress::Print(double done) {
  last_print_ = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(last_print_ - start_).count();
  constexpr int kBarWidth = 24;
  const double fraction = std::min(1.0, std::max(0.0, done / total_));
  const int filled = static_cast<int>(kBarWidth * fraction);
  char bar[kBarWidth + 1];
  for (int i = 0; i < kBarWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kBarWidth] = '\0';
  std::string rate, left = "time left: estimating";
  if (done > 0 && elapsed > 0) rate = " | " + Amount(done / elapsed, unit_) + "/s";
  if (done >= total_) {
    left = "done in " + Seconds(elapsed);
  } else if (done > 0 && elapsed > 0) {
    left = Seconds(elapsed / done * (total_ - done)) + " left";
  }
  // "1.2 MB of 5.0 MB", "12 of 96 windows"
  const std::string so_far = unit_ == "bytes" ? Amount(done, unit_) : Trimmed(Amount(done, ""));
  std::fprintf(stderr, "%s[%s] %s: %s of %s%s | %s%s", terminal_ ? "\r\033[K" : "", bar,
               what_.c_str(), so_far.c_str(), Amount(total_, unit_).c_str(), rate.c_str(),
               left.c_str(), terminal_ ? "" : "\n");
  std::fflush(stderr);
}

std::vector<int32_t> EncodeWithProgress(const tokenizer::Tokenizer& tokenizer,
                                        std::string_view text, const std::string& what,
                                        bool enabled) {
  TaskProgress progress(what, "bytes", static_cast<double>(text.size()), enabled);
  tokenizer::EncodeOptions options;
  options.progress = [&](size_t done) { progress.Update(static_cast<double>(done)); };
  std::vector<int32_t> ids = tokenizer.Encode(text, options);
  progress.Finish();
  return ids;
}

}  // namespace qkv::cli
