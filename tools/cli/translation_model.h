// What `qkv translate`, `qkv eval --pairs` and `qkv attention --source` share: an encoder-
// decoder model directory (model/marian_checkpoint.h) with its vocabulary
// (tokenizer/translation_vocabulary.h), and translation in length-sorted batches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qkv/infer/translator.h"
#include "qkv/model/marian_checkpoint.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/tokenizer/translation_vocabulary.h"

namespace qkv::cli {

// Whether config.json (its whole object) describes an encoder-decoder: model_type "marian".
bool IsEncoderDecoderConfig(const nlohmann::json& config);

struct TranslationModel {
  std::string dir;  // the resolved directory (one checkpoint's files)
  model::LoadedEncoderDecoder model;
  std::unique_ptr<tokenizer::TranslationVocabulary> vocabulary;
};

// The model and vocabulary of dir. A directory of another kind (a decoder-only model) is a
// UsageError that says what it is and which command serves it (`command` names the one asked
// for, e.g. "qkv translate"); missing or malformed files are qkv::Error.
TranslationModel LoadTranslationModel(const std::string& dir, const std::string& command);

// The vocabulary's ids of one source line as the encoder reads them (ending with </s>), with
// errors that name the line: "NAME:LINE: ..." for invalid UTF-8 and for a source longer than
// the model's positions.
std::vector<int32_t> EncodeSourceLine(const TranslationModel& model, const std::string& text,
                                      const std::string& name, int64_t line);

// Translates sources[i] (ids from EncodeSourceLine) for every i in `indices`, batch_size at a
// time in order of source length (so that a batch pads little), and calls done(i, translation,
// text) for each once its batch is translated (the batches in order of length, the calls of one
// batch in the order of indices after a stable sort by length). The text is one line: a '\n' or
// '\r' the model generated becomes a space.
void TranslateSorted(
    const TranslationModel& model, infer::Translator& translator,
    const std::vector<std::vector<int32_t>>& sources, std::vector<int64_t> indices,
    int64_t batch_size,
    const std::function<void(int64_t, const infer::Translation&, std::string)>& done);

}  // namespace qkv::cli
