#include "tools/cli/attention_map_command.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "qkv/inspect/attention_html.h"
#include "qkv/inspect/attention_map.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/encoder_decoder.h"
#include "qkv/model/transformer.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/translation_model.h"

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

// weights[layer][head][query][key]
using LayerWeights = std::vector<std::vector<std::vector<std::vector<float>>>>;

// The heads of every layer from the stored probabilities probs(l) of (1, H, queries, keys).
template <typename Probs>
LayerWeights CopyWeights(int64_t layers, int64_t heads, int64_t queries, int64_t keys,
                         const Probs& probs) {
  LayerWeights weights(static_cast<size_t>(layers));
  for (int64_t l = 0; l < layers; ++l) {
    const TensorView<float> p = probs(l);
    weights[l].assign(heads, std::vector<std::vector<float>>(queries, std::vector<float>(keys)));
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < queries; ++i) {
        for (int64_t j = 0; j < keys; ++j) weights[l][h][i][j] = p[(h * queries + i) * keys + j];
      }
    }
  }
  return weights;
}

// PREFIX_<kind>layerN.svg (and .png with rsvg-convert) for every layer; prints each path.
void WriteHeatmaps(const std::string& prefix, const std::string& kind, const std::string& title,
                   const std::vector<std::string>& queries, const std::vector<std::string>& keys,
                   const LayerWeights& weights) {
  static const bool have_rsvg = std::system("command -v rsvg-convert >/dev/null 2>&1") == 0;
  for (size_t l = 0; l < weights.size(); ++l) {
    std::string name = prefix;
    name.append("_").append(kind).append("layer").append(std::to_string(l));
    const std::string svg = name + ".svg";
    io::WriteFileAtomically(svg, inspect::RenderAttentionSvg(title + ": layer " + std::to_string(l),
                                                             queries, keys, weights[l]));
    std::printf("%s\n", svg.c_str());
    if (have_rsvg) {
      const std::string png = name + ".png";
      std::string command = "rsvg-convert -o '";
      command += png;
      command += "' '";
      command += svg;
      command += "' 2>/dev/null";
      if (std::system(command.c_str()) == 0) std::printf("%s\n", png.c_str());
    }
  }
}

// The maps of an encoder-decoder: --source through the encoder, [start] + --target through the
// decoder (teacher forcing), one forward pass with the simple kernel, whose stored
// probabilities are the maps.
int RunEncoderDecoderAttention(const AttentionMapOptions& o) {
  if (!o.text.empty()) {
    throw UsageError("--model " + o.model +
                     " is an encoder-decoder: give --source TEXT and --target TEXT instead of "
                     "--text");
  }
  if (o.source.empty()) throw UsageError("--source is empty (or missing): the encoder's text");
  const TranslationModel model = LoadTranslationModel(o.model, "qkv attention --source");
  model::EncoderDecoderConfig config = model.model.config;
  config.attention = model::AttentionImpl::kSimple;  // the maps are its stored probabilities
  config.dropout = 0;
  const tokenizer::TranslationVocabulary& vocabulary = *model.vocabulary;
  std::vector<int32_t> source_ids, decoder_ids{config.decoder_start_id};
  try {
    source_ids = vocabulary.EncodeSource(o.source);
  } catch (const Error& error) {
    throw UsageError("--source: " + std::string(error.what()));
  }
  try {
    const std::vector<int32_t> target = vocabulary.EncodeTarget(o.target);
    decoder_ids.insert(decoder_ids.end(), target.begin(), target.end());
  } catch (const Error& error) {
    throw UsageError("--target: " + std::string(error.what()));
  }
  const int64_t s = static_cast<int64_t>(source_ids.size());
  const int64_t t = static_cast<int64_t>(decoder_ids.size());
  for (const auto& [flag, length] : {std::pair{"--source", s}, std::pair{"--target", t}}) {
    if (length > config.max_positions) {
      throw UsageError(std::string(flag) + " is " + std::to_string(length) + " tokens (with " +
                       (flag == std::string("--source") ? "</s>" : "the start") +
                       "), more than the model's " + std::to_string(config.max_positions) +
                       " positions");
    }
  }

  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  Arena measure = Arena::MeasureOnly();
  model::AllocateEncoderDecoderActivations<float>(measure, config, 1, s, t);
  Arena arena(measure.used_bytes());
  const auto acts = model::AllocateEncoderDecoderActivations<float>(arena, config, 1, s, t);
  Arena scratch(
      model::EncoderDecoderScratchBytes(config, 1, s, t, threads.num_threads(), sizeof(float)));
  const ExecutionContext ctx{&threads, &scratch};
  model::EncoderDecoderForward<float>(
      config, model.model.params, ConstTensorView<int32_t>(source_ids.data(), Shape{1, s}),
      ConstTensorView<int32_t>(decoder_ids.data(), Shape{1, t}), {}, false, nullptr, acts, ctx);

  const auto labels = [&](const std::vector<int32_t>& ids) {
    std::vector<std::string> texts;
    texts.reserve(ids.size());
    for (const int32_t id : ids) texts.push_back(ValidUtf8(vocabulary.PieceText(id)));
    return texts;
  };
  const std::vector<std::string> source_tokens = labels(source_ids);
  const std::vector<std::string> decoder_tokens = labels(decoder_ids);
  const int64_t heads = config.num_heads;
  LayerWeights encoder = CopyWeights(config.encoder_layers, heads, s, s, [&](int64_t l) {
    return acts.encoder_blocks[l].attention.probs;
  });
  LayerWeights decoder = CopyWeights(config.decoder_layers, heads, t, t, [&](int64_t l) {
    return acts.decoder_blocks[l].attention.probs;
  });
  LayerWeights cross = CopyWeights(config.decoder_layers, heads, t, s, [&](int64_t l) {
    return acts.decoder_blocks[l].cross_attention.probs;
  });

  if (!o.out.empty() || o.html.empty()) {
    const std::string prefix = InsideIfDirectory(o.out.empty() ? "attention" : o.out, "attention");
    WriteHeatmaps(prefix, "encoder_", "qkv attention: encoder self-attention", source_tokens,
                  source_tokens, encoder);
    WriteHeatmaps(prefix, "decoder_", "qkv attention: decoder self-attention (causal)",
                  decoder_tokens, decoder_tokens, decoder);
    WriteHeatmaps(prefix, "cross_", "qkv attention: cross-attention", decoder_tokens, source_tokens,
                  cross);
    const nlohmann::json json = {{"model", o.model},
                                 {"source", o.source},
                                 {"target", o.target},
                                 {"source_tokens", source_tokens},
                                 {"source_ids", source_ids},
                                 {"target_tokens", decoder_tokens},
                                 {"target_ids", decoder_ids},
                                 {"encoder_layers", config.encoder_layers},
                                 {"decoder_layers", config.decoder_layers},
                                 {"heads", heads},
                                 {"encoder_self_attention", encoder},
                                 {"decoder_self_attention", decoder},
                                 {"cross_attention", cross}};
    io::WriteFileAtomically(prefix + ".json", json.dump() + "\n");
    std::printf("%s.json\n", prefix.c_str());
  }
  if (!o.html.empty()) {
    const std::string page = InsideIfDirectory(o.html, "attention.html");
    inspect::AttentionExplorer explorer{o.model, o.source + "  \u2192  " + o.target, {}};
    explorer.kinds.push_back(
        {"encoder self-attention", source_tokens, source_tokens, std::move(encoder)});
    explorer.kinds.push_back(
        {"decoder self-attention (causal)", decoder_tokens, decoder_tokens, std::move(decoder)});
    explorer.kinds.push_back({"cross-attention", decoder_tokens, source_tokens, std::move(cross)});
    io::WriteFileAtomically(page, inspect::RenderAttentionHtml(explorer));
    std::printf("%s\n", page.c_str());
  }
  return 0;
}

}  // namespace

CLI::App* AddAttentionMapCommand(CLI::App& app, AttentionMapOptions& o) {
  CLI::App* c = app.add_subcommand(
      "attention",
      "Attention weights of every layer and head for a text (an encoder-decoder: a source and a "
      "target, with the cross-attention): heatmaps and JSON");
  c->add_option("--model", o.model, "Model directory")->required()->check(CLI::ExistingDirectory);
  CLI::Option* text = c->add_option("--text", o.text, "The text to look at (decoder-only models)");
  CLI::Option* source =
      c->add_option("--source", o.source, "Encoder-decoder: the source text (encoder input)")
          ->excludes(text);
  c->add_option("--target", o.target,
                "Encoder-decoder: the target text (the decoder reads the start token and it)")
      ->excludes(text)
      ->needs(source);
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
  if (IsEncoderDecoderConfig(model::ReadConfigJson(o.model))) return RunEncoderDecoderAttention(o);
  if (!o.source.empty() || !o.target.empty()) {
    throw UsageError("--source and --target need an encoder-decoder model, and " + o.model +
                     " is decoder-only: give --text");
  }
  if (o.text.empty()) throw UsageError("--text is empty (or missing)");
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
  LayerWeights weights = CopyWeights(config.num_layers, config.num_heads, n, n, [&](int64_t l) {
    return acts.blocks[l].attention.probs;  // (1, H, n, n)
  });

  if (!o.out.empty() || o.html.empty()) {
    const std::string prefix = InsideIfDirectory(o.out.empty() ? "attention" : o.out, "attention");
    json["weights"] = weights;
    WriteHeatmaps(prefix, "", "qkv attention", texts, texts, weights);
    io::WriteFileAtomically(prefix + ".json", json.dump() + "\n");
    std::printf("%s.json\n", prefix.c_str());
  }
  if (!o.html.empty()) {
    const std::string page = InsideIfDirectory(o.html, "attention.html");
    inspect::AttentionExplorer explorer{o.model, o.text, {}};
    // A decoder-only model has one kind (an encoder-decoder's three: RunEncoderDecoderAttention).
    explorer.kinds.push_back({"self-attention (causal)", texts, texts, std::move(weights)});
    io::WriteFileAtomically(page, inspect::RenderAttentionHtml(explorer));
    std::printf("%s\n", page.c_str());
  }
  return 0;
}

}  // namespace qkv::cli
