#include "qkv/tokenizer/special_tokens.h"

#include <vector>

namespace qkv::tokenizer {

void SplitAtSpecialTokens(std::string_view text, std::span<const SpecialToken> tokens,
                          const std::function<void(std::string_view)>& ordinary,
                          const std::function<void(int32_t)>& special) {
  constexpr size_t kNone = std::string_view::npos;
  std::vector<size_t> next(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) next[i] = text.find(tokens[i].text);
  size_t offset = 0;
  while (offset < text.size()) {
    size_t best = tokens.size();
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (next[i] != kNone && next[i] < offset) next[i] = text.find(tokens[i].text, offset);
      // Ties go to the earlier token, the longer one.
      if (next[i] != kNone && (best == tokens.size() || next[i] < next[best])) best = i;
    }
    if (best == tokens.size()) break;
    if (next[best] > offset) ordinary(text.substr(offset, next[best] - offset));
    special(tokens[best].id);
    offset = next[best] + tokens[best].text.size();
  }
  if (offset < text.size()) ordinary(text.substr(offset));
}

}  // namespace qkv::tokenizer
