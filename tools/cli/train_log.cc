#include "tools/cli/train_log.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "qkv/core/check.h"
#include "qkv/inspect/line_plot.h"
#include "qkv/io/safetensors.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

std::string ToJsonLine(const LogEntry& entry) {
  nlohmann::json json = {{"step", entry.step},
                         {"loss", entry.loss},
                         {"lr", entry.learning_rate},
                         {"tokens", entry.tokens},
                         {"tokens_per_s", entry.tokens_per_s},
                         {"precision", entry.precision}};
  if (entry.val_loss) json["val_loss"] = *entry.val_loss;
  return json.dump();
}

// The lines of an existing log up to and including `last_step`. A last line without its
// newline was cut short by a crash and is dropped.
std::vector<LogEntry> ReadLog(const fs::path& path, int64_t last_step) {
  std::vector<LogEntry> entries;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || in.eof()) continue;
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
      LogEntry entry{json.at("step").get<int64_t>(),
                     json.at("loss").get<double>(),
                     json.at("lr").get<double>(),
                     json.at("tokens_per_s").get<double>(),
                     std::nullopt,
                     json.value("tokens", int64_t{0})};
      if (json.contains("val_loss")) entry.val_loss = json["val_loss"].get<double>();
      entry.precision = json.value("precision", std::string("fp32"));
      if (entry.step <= last_step) entries.push_back(entry);
    } catch (const nlohmann::json::exception&) {
      throw Error(internal::StrCat(path.string(), ": malformed line: ", line));
    }
  }
  return entries;
}

}  // namespace

TrainLog::TrainLog(fs::path dir, bool writer, std::optional<int64_t> resumed_step)
    : dir_(std::move(dir)), writer_(writer) {
  if (!writer_) return;
  const fs::path path = dir_ / kLogFile;
  if (resumed_step) {
    entries_ = ReadLog(path, *resumed_step);
    std::string kept;
    for (const LogEntry& entry : entries_) kept += ToJsonLine(entry) + "\n";
    io::WriteFileAtomically(path.string(), kept);
  } else {
    fs::create_directories(dir_);
    io::WriteFileAtomically(path.string(), "");
  }
  file_.reset(std::fopen(path.c_str(), "a"));
  QKV_CHECK(file_ != nullptr, path.string(), ": cannot open for appending");
}

void TrainLog::Append(const LogEntry& entry) {
  entries_.push_back(entry);
  if (!writer_) return;
  const std::string line = ToJsonLine(entry) + "\n";
  QKV_CHECK(std::fputs(line.c_str(), file_.get()) >= 0 && std::fflush(file_.get()) == 0,
            (dir_ / kLogFile).string(), ": cannot append: ", std::strerror(errno));
}

void TrainLog::WriteLossCurve() const {
  if (!writer_) return;
  const fs::path path = dir_ / kCurveFile;
  inspect::Series train{"train loss", "#1f77b4", {}, false};
  inspect::Series val{"validation loss", "#d62728", {}, true};
  for (const LogEntry& entry : entries_) {
    train.points.emplace_back(static_cast<double>(entry.step), entry.loss);
    if (entry.val_loss) val.points.emplace_back(static_cast<double>(entry.step), *entry.val_loss);
  }
  inspect::LinePlot plot{"qkv training: " + path.parent_path().filename().string(),
                         "step",
                         "cross-entropy loss (nats/token)",
                         {train, val}};
  io::WriteFileAtomically(path.string(), inspect::RenderSvg(plot));
}

}  // namespace qkv::cli
