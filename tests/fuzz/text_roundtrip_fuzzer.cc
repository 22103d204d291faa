// Text -> tokens -> text for each tokenizer kind: byte (any bytes), char (the input's own
// characters, when it is valid UTF-8) and byte-level BPE (merges trained once on a fixed
// text, so that real merges and the GPT-2 pre-tokenizer run). Decode(Encode(x)) == x must
// hold for every input a tokenizer accepts; byte and BPE accept every input.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "qkv/core/check.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/byte_tokenizer.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

const qkv::tokenizer::BpeTokenizer& Bpe() {
  static const std::unique_ptr<qkv::tokenizer::BpeTokenizer> bpe = [] {
    qkv::tokenizer::BpeTrainOptions options;
    options.num_tokens = 320;
    return qkv::tokenizer::BpeTokenizer::Train(
        "The quick brown fox jumps over the lazy dog. It's 2026, isn't it? \n\n"
        "  naïve café – déjà vu — 東京 🦊🦊\n"
        "don't we'll they've I'm you'd\t\ttabs 12345 67.89\n",
        options);
  }();
  return *bpe;
}

void CheckRoundTrip(const qkv::tokenizer::Tokenizer& tokenizer, std::string_view text,
                    qkv::tokenizer::EncodeOptions options = {}) {
  const std::vector<int32_t> ids = tokenizer.Encode(text, options);
  for (int32_t id : ids) {
    QKV_FUZZ_ASSERT(id >= 0 && id < tokenizer.vocab_size(), "id outside the vocabulary");
  }
  QKV_FUZZ_ASSERT(tokenizer.Decode(ids) == text, "Decode(Encode(text)) != text");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Byte and BPE tokenizers accept every input: an error here is a finding too.
  CheckRoundTrip(qkv::tokenizer::ByteTokenizer(), text);
  CheckRoundTrip(Bpe(), text);
  if (!text.empty() && qkv::tokenizer::utf8::FirstInvalidOffset(text) == text.size()) {
    CheckRoundTrip(qkv::tokenizer::CharTokenizer::Train(text), text);
  }
  return 0;
}
