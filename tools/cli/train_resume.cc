#include "tools/cli/train_resume.h"

#include <filesystem>
#include <functional>
#include <sstream>

#include "qkv/io/checkpoint_directory.h"
#include "tools/cli/commands.h"
#include "tools/cli/train_checkpoints.h"
#include "tools/cli/train_log.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

std::string Text(int64_t value) { return std::to_string(value); }
std::string Text(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}
std::string Text(bool value) { return value ? "--bias" : "--no-bias"; }

}  // namespace

void RequireEqualTo(ModelSource source, const char* flag, const std::string& saved,
                    const std::string& given) {
  if (saved == given) return;
  const std::string whose =
      source == ModelSource::kInitFrom ? "the --init-from model's " : "the checkpoint's ";
  const std::string keeps = source == ModelSource::kInitFrom
                                ? "--init-from keeps the model's architecture and tokenizer"
                                : "a resumed run keeps its model";
  throw UsageError(std::string(flag) + " " + given + " differs from " + whose + saved + "; " +
                   keeps + " (leave the flag out, or give " + saved + ")");
}

RunDirectoryState ClassifyRunDirectory(const std::string& dir) {
  std::error_code error;
  const fs::path root(dir);
  if (!fs::exists(root, error)) return RunDirectoryState::kAbsent;
  if (io::CheckpointDirectory(dir).CurrentStep()) {
    return RunDirectoryState::kCheckpointed;
  }
  const bool model = fs::exists(root / "model.safetensors", error);
  // Directories written before checkpoints had their own folders: plain files at the top.
  if (model && fs::exists(root / kStateFile, error) && fs::exists(root / "config.json", error)) {
    return RunDirectoryState::kCheckpointed;
  }
  if (model || fs::exists(root / "config.json", error)) return RunDirectoryState::kModelOnly;
  if (fs::exists(root / kLogFile, error) || fs::exists(root / "checkpoints", error)) {
    return RunDirectoryState::kStarted;
  }
  return RunDirectoryState::kAbsent;
}

void CheckModelFlagsAgree(const TrainCommandOptions& o, const CLI::App& command,
                          const model::ModelConfig& saved, const tokenizer::Tokenizer& tokenizer,
                          ModelSource source) {
  const ModelFlags& m = o.model;
  const auto given = [&](const char* flag) { return command.count(flag) > 0; };
  const auto RequireEqual = [source](const char* flag, const std::string& saved_value,
                                     const std::string& given_value) {
    RequireEqualTo(source, flag, saved_value, given_value);
  };
  const int64_t heads = given("--heads") ? m.heads : saved.num_heads;
  if (given("--tokenizer")) {
    const std::string saved_spec = tokenizer.name() == "bpe"
                                       ? "bpe:" + std::to_string(tokenizer.vocab_size())
                                       : tokenizer.name();
    RequireEqual("--tokenizer", saved_spec, o.tokenizer);
  }
  const std::pair<const char*, std::pair<int64_t, int64_t>> integers[] = {
      {"--layers", {saved.num_layers, m.layers}},
      {"--heads", {saved.num_heads, m.heads}},
      {"--dim", {saved.width, m.dim}},
      {"--context", {saved.context, m.context}},
      // 0 means "as many as --heads" and "--dim / --heads": compared as the sizes they give.
      {"--kv-heads", {saved.kv_heads(), m.kv_heads > 0 ? m.kv_heads : heads}},
      {"--head-dim",
       {saved.head_dim(),
        m.head_dim > 0 ? m.head_dim : (given("--dim") ? m.dim : saved.width) / heads}},
      // --ffn-dim 0 means four times the width: the checkpoint's width unless --dim is given.
      {"--ffn-dim",
       {saved.ffn_hidden(),
        m.ffn_dim > 0 ? m.ffn_dim : 4 * (given("--dim") ? m.dim : saved.width)}},
  };
  for (const auto& [flag, values] : integers) {
    if (given(flag)) RequireEqual(flag, Text(values.first), Text(values.second));
  }
  const std::pair<const char*, std::pair<std::string, std::string>> names[] = {
      {"--pos", {model::ToString(saved.position), m.position}},
      {"--norm", {model::ToString(saved.norm), m.norm}},
      {"--ffn", {model::ToString(saved.ffn), m.ffn}},
      {"--norm-placement", {model::ToString(saved.norm_placement), m.norm_placement}},
      {"--rope-style", {model::ToString(saved.rope_style), m.rope_style}},
  };
  for (const auto& [flag, values] : names) {
    if (given(flag)) RequireEqual(flag, values.first, values.second);
  }
  if (given("--bias") || given("--no-bias")) {
    RequireEqual(m.bias ? "--bias" : "--no-bias", Text(saved.bias), Text(m.bias));
  }
  if (given("--tie-embeddings") || given("--no-tie-embeddings")) {
    const auto tied = [](bool value) {
      return std::string(value ? "--tie-embeddings" : "--no-tie-embeddings");
    };
    RequireEqual(m.tie_embeddings ? "--tie-embeddings" : "--no-tie-embeddings",
                 tied(saved.tie_embeddings), tied(m.tie_embeddings));
  }
  // Fine-tuning may choose its own dropout; a resumed run keeps the checkpoint's.
  if (given("--dropout") && source == ModelSource::kResumedCheckpoint) {
    RequireEqual("--dropout", Text(static_cast<double>(saved.dropout)),
                 Text(static_cast<double>(m.dropout)));
  }
  if (given("--rope-theta"))
    RequireEqual("--rope-theta", Text(saved.rope_theta), Text(m.rope_theta));
  if (given("--rope-scaling") || given("--rope-factor")) {
    model::ModelConfig scaled = saved;
    ApplyRopeScaling(m.rope_scaling, scaled);
    const auto describe = [](const model::ModelConfig& config) {
      return model::ToString(config.rope_scaling) + " (factor " + Text(config.rope_factor) + ")";
    };
    RequireEqual(given("--rope-scaling") ? "--rope-scaling" : "--rope-factor", describe(saved),
                 describe(scaled));
  }
}

void CheckTrainingFlagsAgree(const nlohmann::json& saved, const nlohmann::json& given) {
  // Trainer::ResumeKey's keys (the options' and the tasks') and the flags that set them.
  const std::pair<const char*, const char*> flags[] = {
      {"batch", "--batch"},
      {"seq_len", "--context"},
      {"accum", "--accum"},
      {"lr", "--lr"},
      {"min_lr", "--min-lr"},
      {"warmup", "--warmup"},
      {"lr_schedule", "--lr-schedule"},
      {"beta1", "--beta1"},
      {"beta2", "--beta2"},
      {"weight_decay", "--weight-decay"},
      {"grad_clip", "--grad-clip"},
      {"seed", "--seed"},
      {"batch_tokens", "--batch-tokens"},
      {"label_smoothing", "--label-smoothing"},
  };
  for (const auto& [key, flag] : flags) {
    if (!saved.contains(key) || !given.contains(key) || saved[key] == given[key]) continue;
    std::string message = std::string(flag) + " " + given[key].dump() +
                          " differs from the checkpoint's " + saved[key].dump() +
                          "; resume with the same training flags (only --steps may change)";
    if (std::string(key) == "batch") {
      message += "; the batch counts the windows of all ranks together";
    }
    throw UsageError(message);
  }
}

}  // namespace qkv::cli
