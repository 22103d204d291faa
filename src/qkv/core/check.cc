#include "qkv/core/check.h"

#include <cstring>

namespace qkv::internal {

void ThrowCheckFailure(const char* file, int line, const char* condition,
                       const std::string& message) {
  // Keep only the path below src/ so messages are stable across checkouts.
  const char* short_file = std::strstr(file, "src/qkv/");
  throw Error(StrCat(message, " [check `", condition, "` failed at ",
                     short_file != nullptr ? short_file : file, ":", line, "]"));
}

}  // namespace qkv::internal
