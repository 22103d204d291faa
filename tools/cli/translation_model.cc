#include "tools/cli/translation_model.h"

#include <algorithm>
#include <utility>

#include "qkv/core/check.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/model/checkpoint.h"
#include "tools/cli/commands.h"

namespace qkv::cli {

bool IsEncoderDecoderConfig(const nlohmann::json& config) {
  return config.is_object() && config.contains("model_type") && config.at("model_type") == "marian";
}

TranslationModel LoadTranslationModel(const std::string& dir, const std::string& command) {
  TranslationModel loaded;
  loaded.dir = io::ResolveModelDirectory(dir);
  const nlohmann::json config = model::ReadConfigJson(loaded.dir);
  if (!IsEncoderDecoderConfig(config)) {
    const std::string type = config.is_object() && config.contains("model_type")
                                 ? config.at("model_type").dump()
                                 : std::string("none");
    throw UsageError("--model " + dir + " is not an encoder-decoder (config.json model_type " +
                     type + ", not \"marian\"): " + command +
                     " needs a translation model, as `qkv train --arch encoder-decoder` writes; a "
                     "decoder-only model generates text with `qkv sample`");
  }
  loaded.model = model::LoadEncoderDecoder(loaded.dir);
  loaded.vocabulary = tokenizer::LoadTranslationVocabulary(loaded.dir, config);
  return loaded;
}

std::vector<int32_t> EncodeSourceLine(const TranslationModel& model, const std::string& text,
                                      const std::string& name, int64_t line) {
  std::vector<int32_t> ids;
  try {
    ids = model.vocabulary->EncodeSource(text);
  } catch (const Error& error) {
    throw Error(name + ":" + std::to_string(line) + ": " + error.what());
  }
  const int64_t positions = model.model.config.max_positions;
  QKV_CHECK(static_cast<int64_t>(ids.size()) <= positions, name, ":", line, ": the source is ",
            ids.size(), " tokens (with </s>), longer than the model's ", positions,
            " positions (max_position_embeddings)");
  return ids;
}

void TranslateSorted(
    const TranslationModel& model, infer::Translator& translator,
    const std::vector<std::vector<int32_t>>& sources, std::vector<int64_t> indices,
    int64_t batch_size,
    const std::function<void(int64_t, const infer::Translation&, std::string)>& done) {
  QKV_CHECK(batch_size >= 1, "translate: the batch size must be at least 1, got ", batch_size);
  std::ranges::stable_sort(indices, [&](int64_t a, int64_t b) {
    return sources[static_cast<size_t>(a)].size() < sources[static_cast<size_t>(b)].size();
  });
  if (indices.empty()) return;
  // The last batch holds the longest source: reserving for it now sizes the buffers once.
  translator.Reserve(std::min(batch_size, static_cast<int64_t>(indices.size())),
                     static_cast<int64_t>(sources[static_cast<size_t>(indices.back())].size()));
  for (size_t start = 0; start < indices.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(indices.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::vector<int32_t>> batch;
    batch.reserve(end - start);
    for (size_t k = start; k < end; ++k) batch.push_back(sources[static_cast<size_t>(indices[k])]);
    const std::vector<infer::Translation> translations = translator.Translate(batch);
    for (size_t k = start; k < end; ++k) {
      std::string text = model.vocabulary->Decode(translations[k - start].tokens);
      // One line per source, whatever a model generates (a byte model can emit '\n').
      std::ranges::replace(text, '\n', ' ');
      std::ranges::replace(text, '\r', ' ');
      done(indices[k], translations[k - start], std::move(text));
    }
  }
}

}  // namespace qkv::cli
