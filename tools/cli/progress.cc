#include "tools/cli/progress.h"

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

}  // namespace qkv::cli
