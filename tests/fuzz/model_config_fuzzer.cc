// config.json bytes -> ModelConfig::FromJson (what LoadModel reads before anything else).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "qkv/core/check.h"
#include "qkv/model/model_config.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The command line turns a JSON syntax error into a qkv::Error (ReadConfigJson); here it is
  // just an input the reader never sees.
  const nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, false);
  if (json.is_discarded()) return 0;
  try {
    const qkv::model::ModelConfig config = qkv::model::ModelConfig::FromJson(json);
    // An accepted config is within the bounds every size computation relies on...
    QKV_FUZZ_ASSERT(config.vocab_size >= 1 && config.vocab_size <= qkv::model::kMaxVocabSize,
                    "vocab_size out of bounds");
    QKV_FUZZ_ASSERT(config.context >= 1 && config.context <= qkv::model::kMaxContext,
                    "context out of bounds");
    QKV_FUZZ_ASSERT(config.num_layers >= 1 && config.num_layers <= qkv::model::kMaxLayers,
                    "n_layer out of bounds");
    QKV_FUZZ_ASSERT(config.width >= 1 && config.width <= qkv::model::kMaxWidth &&
                        config.width % config.num_heads == 0,
                    "n_embd / n_head out of bounds");
    QKV_FUZZ_ASSERT(config.ffn_hidden() >= 1 &&
                        config.ffn_hidden() <= 4 * qkv::model::kMaxWidth + qkv::model::kMaxFfnDim,
                    "n_inner out of bounds");
    // ...and survives being written and read back unchanged.
    const nlohmann::json written = config.ToJson();
    const qkv::model::ModelConfig again = qkv::model::ModelConfig::FromJson(written);
    QKV_FUZZ_ASSERT(again.ToJson() == written, "ToJson/FromJson round trip changed the config");
  } catch (const qkv::Error&) {
  }
  return 0;
}
