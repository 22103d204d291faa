#include "tools/cli/info_command.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/encoder_decoder.h"
#include "qkv/model/marian_checkpoint.h"
#include "qkv/model/parameters.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/tokenizer/translation_vocabulary.h"
#include "tools/cli/commands.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

// The part of the model a parameter belongs to, from its GPT-2 name.
std::string PartOf(const std::string& name, bool tied) {
  if (name == "token_embedding")
    return tied ? "token embedding (tied output head)" : "token embedding";
  if (name == "output_head") return "output head";
  if (name == "position_embedding") return "position embedding";
  if (name.find(".attention.") != std::string::npos) return "attention";
  if (name.find(".ffn.") != std::string::npos) return "feed-forward";
  return "normalisation";
}

// Which family of checkpoints a config.json follows: qkv writes GPT-2's keys plus its own.
std::string LayoutOf(const nlohmann::json& config) {
  const std::string type = config.value("model_type", std::string());
  if (type == "marian") return "Marian (encoder-decoder)";
  if (type == "llama") return "Llama (Hugging Face LlamaForCausalLM)";
  if (config.contains("position_encoding") || config.contains("qkv_training_step")) {
    return "qkv (Hugging Face GPT-2 names and qkv's keys)";
  }
  return "GPT-2 (Hugging Face)";
}

std::string HumanBytes(uintmax_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) value /= 1024, ++unit;
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

std::string WithCommas(int64_t value) {
  std::string digits = std::to_string(value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

CLI::App* AddInfoCommand(CLI::App& app, InfoOptions& o) {
  CLI::App* c = app.add_subcommand(
      "info", "What a model directory holds: architecture, parameters, tokenizer, files");
  c->add_option("model", o.model, "Model directory")->required()->check(CLI::ExistingDirectory);
  c->add_flag("--json", o.json, "Print one JSON object");
  return c;
}

namespace {

struct ParameterCount {
  std::map<std::string, int64_t> by_part;
  int64_t total = 0;
};

// Parameters by part, from a model's one parameter list (found by argument-dependent lookup;
// no weights are allocated for this). part_of(name) names the part.
template <typename Params, typename Config, typename PartOf>
ParameterCount CountParameters(const Config& config, PartOf part_of) {
  ParameterCount count;
  Params no_storage;
  ForEachParameter(config, no_storage, [&](const auto& parameter, TensorView<float>&) {
    count.by_part[part_of(parameter.name)] += parameter.shape.NumElements();
    count.total += parameter.shape.NumElements();
  });
  return count;
}

// The architecture of a decoder-only directory (GPT-2, Llama, qkv's): info's keys, and the
// lines `qkv info` prints for them.
std::vector<std::string> DescribeDecoderOnly(const std::string& model_dir, const std::string& dir,
                                             const nlohmann::json& config_json,
                                             nlohmann::json& info) {
  model::ModelConfig config;
  try {
    config = model::ModelConfig::FromJson(config_json);
  } catch (const Error& error) {
    throw Error(model_dir + "/config.json: " + error.what());
  }
  const ParameterCount parameters = CountParameters<model::ModelParams<float>>(
      config, [&](const std::string& name) { return PartOf(name, config.tie_embeddings); });
  info["architecture"] = "decoder-only Transformer";
  info["layers"] = config.num_layers;
  info["heads"] = config.num_heads;
  info["kv_heads"] = config.kv_heads();
  info["width"] = config.width;
  info["head_dim"] = config.head_dim();
  info["ffn_dim"] = config.ffn_hidden();
  info["ffn"] = model::ToString(config.ffn);
  info["norm"] = model::ToString(config.norm);
  info["norm_placement"] = model::ToString(config.norm_placement);
  info["bias"] = config.bias;
  info["context"] = config.context;
  info["position_encoding"] = model::ToString(config.position);
  if (config.position == model::PositionEncoding::kRope) {
    info["rope_theta"] = config.rope_theta;
    info["rope_style"] = model::ToString(config.rope_style);
    info["rope_scaling"] = model::ToString(config.rope_scaling);
  }
  info["vocab_size"] = config.vocab_size;
  info["parameters"] = parameters.total;
  info["parameters_by_part"] = parameters.by_part;
  if (tokenizer::HasTokenizer(config_json, dir)) {
    const auto tokenizer = tokenizer::LoadTokenizer(config_json, dir);
    info["tokenizer"] = {{"type", tokenizer->name()}, {"vocab_size", tokenizer->vocab_size()}};
  } else {
    info["tokenizer"] = nullptr;  // e.g. Hugging Face's GPT-2: vocab.json and merges.txt only
  }
  char architecture[512];
  std::snprintf(
      architecture, sizeof(architecture),
      "decoder-only Transformer: %lld layers x %lld heads (%lld key/value, head dim %lld), width "
      "%lld, feed-forward %lld (%s), %s %s-norm, %s",
      static_cast<long long>(config.num_layers), static_cast<long long>(config.num_heads),
      static_cast<long long>(config.kv_heads()), static_cast<long long>(config.head_dim()),
      static_cast<long long>(config.width), static_cast<long long>(config.ffn_hidden()),
      model::ToString(config.ffn).c_str(), model::ToString(config.norm).c_str(),
      model::ToString(config.norm_placement).c_str(), config.bias ? "with biases" : "no biases");
  return {std::string("architecture  ") + architecture,
          "context       " + std::to_string(config.context) + " tokens, " +
              model::ToString(config.position) + " positions"};
}

// The part of an encoder-decoder a parameter belongs to, from its qkv name.
std::string EncoderDecoderPartOf(const std::string& name) {
  if (name == "shared") return "shared embedding (tied output head)";
  if (name == "final_logits_bias") return "output bias";
  if (name.ends_with(".positions")) return "position embedding";
  if (name.ends_with(".norm.weight") || name.ends_with(".norm.bias")) return "normalisation";
  const std::string stack = name.starts_with("encoder.") ? "encoder " : "decoder ";
  if (name.find(".cross_attention.") != std::string::npos) return stack + "cross-attention";
  if (name.find(".attention.") != std::string::npos) return stack + "self-attention";
  if (name.find(".ffn.") != std::string::npos) return stack + "feed-forward";
  return "normalisation";
}

// The architecture of an encoder-decoder (Marian) directory.
std::vector<std::string> DescribeEncoderDecoder(const std::string& model_dir,
                                                const std::string& dir,
                                                const nlohmann::json& config_json,
                                                nlohmann::json& info) {
  model::EncoderDecoderConfig config;
  try {
    config = model::EncoderDecoderConfigFromMarianJson(config_json);
  } catch (const Error& error) {
    throw Error(model_dir + "/config.json: " + error.what());
  }
  const ParameterCount parameters =
      CountParameters<model::EncoderDecoderParams<float>>(config, EncoderDecoderPartOf);
  info["architecture"] = "encoder-decoder Transformer";
  info["encoder_layers"] = config.encoder_layers;
  info["decoder_layers"] = config.decoder_layers;
  info["heads"] = config.num_heads;
  info["width"] = config.width;
  info["ffn_dim"] = config.ffn_hidden();
  info["ffn"] = model::ToString(config.ffn);
  info["norm_placement"] = model::ToString(config.norm_placement);
  info["max_positions"] = config.max_positions;
  info["position_encoding"] = model::ToString(config.position);
  info["vocab_size"] = config.vocab_size;
  info["parameters"] = parameters.total;
  info["parameters_by_part"] = parameters.by_part;
  try {
    const auto vocabulary = tokenizer::LoadTranslationVocabulary(dir, config_json);
    info["tokenizer"] = {{"type", vocabulary->name()}, {"vocab_size", vocabulary->vocab_size()}};
  } catch (const Error& error) {
    // A directory of weights alone still describes its model; what is missing is said.
    info["tokenizer"] = nullptr;
    info["tokenizer_problem"] = error.what();
  }
  char architecture[512];
  std::snprintf(architecture, sizeof(architecture),
                "encoder-decoder Transformer (cross-attention): %lld encoder + %lld decoder "
                "layers x %lld heads, width %lld, feed-forward %lld (%s), layernorm %s-norm",
                static_cast<long long>(config.encoder_layers),
                static_cast<long long>(config.decoder_layers),
                static_cast<long long>(config.num_heads), static_cast<long long>(config.width),
                static_cast<long long>(config.ffn_hidden()), model::ToString(config.ffn).c_str(),
                model::ToString(config.norm_placement).c_str());
  return {std::string("architecture  ") + architecture,
          "context       " + std::to_string(config.max_positions) + " positions per sentence, " +
              model::ToString(config.position) + " positions"};
}

}  // namespace

int RunInfo(const InfoOptions& o) {
  // One checkpoint's files, even while a run switches to the next.
  const std::string dir = io::ResolveModelDirectory(o.model);
  const nlohmann::json config_json = model::ReadConfigJson(dir);
  nlohmann::json info;
  info["directory"] = o.model;
  info["layout"] = LayoutOf(config_json);
  const std::vector<std::string> architecture =
      IsEncoderDecoderConfig(config_json) ? DescribeEncoderDecoder(o.model, dir, config_json, info)
                                          : DescribeDecoderOnly(o.model, dir, config_json, info);

  const fs::path weights = fs::path(dir) / "model.safetensors";
  if (fs::exists(weights)) {
    std::map<std::string, int64_t> dtypes;
    for (const io::NamedTensor& tensor : io::ReadSafetensors(weights.string()).tensors) {
      dtypes[tensor.stored_dtype] += 1;
    }
    info["weights_dtype"] = dtypes;  // tensors per dtype
  }
  if (config_json.contains("qkv_training_step")) {
    info["training_step"] = config_json["qkv_training_step"];
  }
  info["checkpoints"] = io::CheckpointDirectory(o.model).Steps();
  info["resumable"] = fs::exists(fs::path(dir) / "training_state.safetensors");

  nlohmann::json files = nlohmann::json::object();
  uintmax_t bytes = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;  // follows the links of a training directory
    files[entry.path().filename().string()] = entry.file_size();
    bytes += entry.file_size();
  }
  info["files"] = files;
  info["bytes"] = bytes;

  if (o.json) {
    std::printf("%s\n", info.dump(2).c_str());
    return 0;
  }
  std::printf("%s\n", o.model.c_str());
  std::printf("  layout        %s\n", info["layout"].get<std::string>().c_str());
  for (const std::string& line : architecture) std::printf("  %s\n", line.c_str());
  const int64_t vocab_size = info["vocab_size"].get<int64_t>();
  if (info.contains("tokenizer_problem")) {
    std::printf("  tokenizer     not usable (%s); vocabulary %lld\n",
                info["tokenizer_problem"].get<std::string>().c_str(),
                static_cast<long long>(vocab_size));
  } else if (info["tokenizer"].is_null()) {
    std::printf("  tokenizer     none in config.json; vocabulary %lld\n",
                static_cast<long long>(vocab_size));
  } else {
    std::printf("  tokenizer     %s, %lld tokens\n",
                info["tokenizer"]["type"].get<std::string>().c_str(),
                static_cast<long long>(vocab_size));
  }
  std::printf("  parameters    %s\n", WithCommas(info["parameters"].get<int64_t>()).c_str());
  for (const auto& [part, count] : info["parameters_by_part"].items()) {
    std::printf("    %-36s %14s\n", part.c_str(), WithCommas(count.get<int64_t>()).c_str());
  }
  if (info.contains("weights_dtype")) {
    std::string dtypes;
    for (const auto& [dtype, count] : info["weights_dtype"].items()) {
      dtypes += (dtypes.empty() ? "" : ", ") + dtype + " (" + std::to_string(count.get<int64_t>()) +
                " tensors)";
    }
    std::printf("  weights       %s\n", dtypes.c_str());
  }
  if (info.contains("training_step")) {
    std::printf("  training      step %lld%s\n",
                static_cast<long long>(info["training_step"].get<int64_t>()),
                info["resumable"].get<bool>() ? ", resumable (qkv train --resume)" : "");
  }
  if (!info["checkpoints"].empty()) {
    std::string steps;
    for (const auto& step : info["checkpoints"]) {
      steps += (steps.empty() ? "" : ", ") + std::to_string(step.get<int64_t>());
    }
    std::printf("  checkpoints   steps %s\n", steps.c_str());
  }
  std::printf("  files         %s in all\n", HumanBytes(bytes).c_str());
  for (const auto& [name, size] : files.items()) {
    std::printf("    %-36s %14s\n", name.c_str(), HumanBytes(size.get<uintmax_t>()).c_str());
  }
  return 0;
}

}  // namespace qkv::cli
