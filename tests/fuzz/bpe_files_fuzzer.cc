// GPT-2's vocab.json + merges.txt -> BpeTokenizer::FromStrings. The input is the two files
// joined by one NUL byte (vocab.json first); without a NUL it is all vocab.json. A loaded
// tokenizer must round-trip the rest of the input as text.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "qkv/core/check.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view vocab = input.substr(0, split);
  const std::string_view merges =
      split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  try {
    const std::unique_ptr<qkv::tokenizer::BpeTokenizer> tokenizer =
        qkv::tokenizer::BpeTokenizer::FromStrings(vocab, merges);
    for (const bool allow_special : {false, true}) {
      qkv::tokenizer::EncodeOptions options;
      options.allow_special = allow_special;
      const std::vector<int32_t> ids = tokenizer->Encode(merges, options);
      for (int32_t id : ids) {
        QKV_FUZZ_ASSERT(id >= 0 && id < tokenizer->vocab_size(), "id outside the vocabulary");
      }
      QKV_FUZZ_ASSERT(tokenizer->Decode(ids) == merges, "Decode(Encode(text)) != text");
    }
  } catch (const qkv::Error&) {
  }
  return 0;
}
