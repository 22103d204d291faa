// `qkv train`'s log: one JSON line per step in --out/train_log.jsonl ({"step", "loss", "lr",
// "tokens_per_s"} and "val_loss" on evaluation steps), and the loss curve drawn from it,
// --out/loss_curve.svg. Every rank keeps the entries; only the writer (rank 0) touches files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

namespace qkv::cli {

inline constexpr const char* kLogFile = "train_log.jsonl";
inline constexpr const char* kCurveFile = "loss_curve.svg";

struct LogEntry {
  int64_t step;
  double loss, learning_rate, tokens_per_s;
  std::optional<double> val_loss;
  // The tokens the step trained on (train::StepResult::tokens); 0 in lines of older logs.
  int64_t tokens = 0;
  std::string precision = "fp32";  // of the step's matrix products; "fp32" in older logs
};

class TrainLog {
 public:
  // The log of the run in `dir`. For the writer, a new run (resumed_step empty) creates dir
  // and an empty log; a resumed one keeps the lines up to and including its checkpoint's step
  // (those past it were written after that checkpoint) and reads them in. The log is then
  // open for appending.
  TrainLog(std::filesystem::path dir, bool writer, std::optional<int64_t> resumed_step);

  // Keeps the entry and, on the writer, appends its line and flushes it.
  void Append(const LogEntry& entry);
  // On the writer, (re)draws the loss curve of every entry.
  void WriteLossCurve() const;

  const std::vector<LogEntry>& entries() const { return entries_; }

 private:
  std::filesystem::path dir_;
  bool writer_;
  std::vector<LogEntry> entries_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_{nullptr, std::fclose};
};

}  // namespace qkv::cli
