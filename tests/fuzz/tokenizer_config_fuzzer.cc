// The "tokenizer" entry of config.json (char and byte tokenizers; a bpe entry names files,
// which the bpe_files harness covers) -> LoadTokenizer, then a round trip of the
// tokenizer's own vocabulary through Encode and Decode.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "qkv/core/check.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, false);
  if (json.is_discarded()) return 0;
  try {
    // No such directory: a bpe entry must fail cleanly on its missing files.
    const std::unique_ptr<qkv::tokenizer::Tokenizer> tokenizer =
        qkv::tokenizer::LoadTokenizer(json, "/nonexistent-qkv-fuzz-dir");
    std::string text;
    if (const auto* chars = dynamic_cast<const qkv::tokenizer::CharTokenizer*>(tokenizer.get())) {
      for (char32_t c : chars->characters()) qkv::tokenizer::utf8::Append(c, text);
    } else {
      text.assign(reinterpret_cast<const char*>(data), size);
    }
    const std::vector<int32_t> ids = tokenizer->Encode(text);
    for (int32_t id : ids) {
      QKV_FUZZ_ASSERT(id >= 0 && id < tokenizer->vocab_size(), "id outside the vocabulary");
    }
    QKV_FUZZ_ASSERT(tokenizer->Decode(ids) == text, "Decode(Encode(text)) != text");
  } catch (const qkv::Error&) {
  }
  return 0;
}
