#include "tools/cli/attention_map_command.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "qkv/inspect/attention_html.h"
#include "qkv/inspect/attention_map.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/transformer.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"

namespace qkv::cli {

namespace {

// Token text as valid UTF-8 (a byte or BPE token may hold part of a character): bytes that
// do not form a valid sequence are written as \xNN.
std::string ValidUtf8(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const unsigned char lead = static_cast<unsigned char>(bytes[i]);
    const size_t length = lead < 0x80           ? 1
                          : (lead >> 5) == 0x6  ? 2
                          : (lead >> 4) == 0xe  ? 3
                          : (lead >> 3) == 0x1e ? 4
                                                : 0;
    bool valid = length > 0 && i + length <= bytes.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(bytes[i + k]) & 0xc0) == 0x80;
    }
    if (valid) {
      out.append(bytes, i, length);
      i += length;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", lead);
      out += escaped;
      ++i;
    }
  }
  return out;
}

// A path naming a directory (an existing one, or any ending in '/') means "inside it", so
// `--out runs/maps` does not scatter runs/maps_layer0.svg beside the directory.
std::string InsideIfDirectory(const std::string& path, const std::string& name) {
  if (path.back() != '/' && !std::filesystem::is_directory(path)) return path;
  std::filesystem::create_directories(path);
  return (std::filesystem::path(path) / name).string();
}

}  // namespace

CLI::App* AddAttentionMapCommand(CLI::App& app, AttentionMapOptions& o) {
  CLI::App* c = app.add_subcommand(
      "attention", "Attention weights of every layer and head for a text: heatmaps and JSON");
  c->add_option("--model", o.model, "Model directory")->required()->check(CLI::ExistingDirectory);
  c->add_option("--text", o.text, "The text to look at")->required();
  c->add_option("--out", o.out,
                "Heatmaps and JSON. A directory (existing, or ending in '/') gets "
                "DIR/attention.json and DIR/attention_layerN.svg (and .png); anything else is a "
                "prefix: PREFIX.json, PREFIX_layerN.svg. Default: attention (none when only "
                "--html is given)")
      ->check(OutputDirectoryOrPrefix());
  c->add_option("--html", o.html,
                "The attention explorer: one self-contained HTML page with every layer and head "
                "(a directory gets DIR/attention.html)")
      ->check(OutputDirectoryOrPrefix());
  AddThreadsFlag(c, o.threads);
  return c;
}

int RunAttentionMap(const AttentionMapOptions& o) {
  if (o.text.empty()) throw UsageError("--text is empty");
  model::Model model = model::LoadModel(o.model);
  model::ModelConfig config = model.config;
  config.attention = model::AttentionImpl::kSimple;  // the maps are its stored probabilities
  const auto tokenizer = tokenizer::LoadTokenizerFromModelDir(o.model);
  std::vector<int32_t> ids;
  try {
    ids = tokenizer->Encode(o.text);
  } catch (const Error& error) {
    // The text is a flag value the model cannot read (e.g. a character outside a char
    // vocabulary): a usage error that names it.
    throw UsageError("--text: " + std::string(error.what()));
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  if (config.position == model::PositionEncoding::kLearned && n > config.context) {
    throw UsageError("--text is " + std::to_string(n) + " tokens, longer than the model's " +
                     "learned position table of " + std::to_string(config.context));
  }

  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  Arena measure = Arena::MeasureOnly();
  model::AllocateModelActivations<float>(measure, config, 1, n);
  Arena arena(measure.used_bytes() + static_cast<size_t>(n) * sizeof(int32_t) + kBufferAlignment);
  const auto acts = model::AllocateModelActivations<float>(arena, config, 1, n);
  TensorView<int32_t> tokens = arena.Allocate<int32_t>(Shape{1, n});
  for (int64_t t = 0; t < n; ++t) tokens[t] = ids[t];
  Arena scratch(0);  // the simple kernel's forward pass needs none
  ExecutionContext ctx{&threads, &scratch};
  model::ModelForward<float>(config, model.params, tokens, {}, false, nullptr, acts, ctx);

  std::vector<std::string> texts;
  texts.reserve(ids.size());
  for (int32_t id : ids) texts.push_back(ValidUtf8(tokenizer->TokenBytes(id)));
  nlohmann::json json = {{"model", o.model},
                         {"text", o.text},
                         {"tokens", texts},
                         {"ids", ids},
                         {"layers", config.num_layers},
                         {"heads", config.num_heads}};
  // weights[layer][head][query][key]
  std::vector<std::vector<std::vector<std::vector<float>>>> weights(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    const TensorView<float> probs = acts.blocks[l].attention.probs;  // (1, H, n, n)
    weights[l].assign(config.num_heads, std::vector<std::vector<float>>(n, std::vector<float>(n)));
    for (int64_t h = 0; h < config.num_heads; ++h) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < n; ++j) weights[l][h][i][j] = probs[(h * n + i) * n + j];
      }
    }
  }

  if (!o.out.empty() || o.html.empty()) {
    const std::string prefix = InsideIfDirectory(o.out.empty() ? "attention" : o.out, "attention");
    json["weights"] = weights;
    const bool have_rsvg = std::system("command -v rsvg-convert >/dev/null 2>&1") == 0;
    for (int64_t l = 0; l < config.num_layers; ++l) {
      const std::string svg = prefix + "_layer" + std::to_string(l) + ".svg";
      io::WriteFileAtomically(
          svg, inspect::RenderAttentionSvg("qkv attention: layer " + std::to_string(l), texts,
                                           weights[l]));
      std::printf("%s\n", svg.c_str());
      if (have_rsvg) {
        const std::string png = prefix + "_layer" + std::to_string(l) + ".png";
        std::string command = "rsvg-convert -o '";
        command += png;
        command += "' '";
        command += svg;
        command += "' 2>/dev/null";
        if (std::system(command.c_str()) == 0) std::printf("%s\n", png.c_str());
      }
    }
    io::WriteFileAtomically(prefix + ".json", json.dump() + "\n");
    std::printf("%s.json\n", prefix.c_str());
  }
  if (!o.html.empty()) {
    const std::string page = InsideIfDirectory(o.html, "attention.html");
    inspect::AttentionExplorer explorer{o.model, o.text, {}};
    // A decoder-only model has one kind; an encoder-decoder would add its encoder
    // self-attention and cross-attention here.
    explorer.kinds.push_back({"self-attention (causal)", texts, texts, std::move(weights)});
    io::WriteFileAtomically(page, inspect::RenderAttentionHtml(explorer));
    std::printf("%s\n", page.c_str());
  }
  return 0;
}

}  // namespace qkv::cli
