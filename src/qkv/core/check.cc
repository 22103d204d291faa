#include "qkv/core/check.h"

#include <cstring>

namespace qkv::internal {

void ThrowCheckFailure(const char* file, int line, const char* condition,
                       const std::string& message) {
  // The message is for the user; the location (without the checkout's prefix) is for us.
  (void)condition;
  const char* short_file = std::strstr(file, "src/qkv/");
  if (short_file == nullptr) short_file = std::strstr(file, "tools/");
  throw Error(message, StrCat(short_file != nullptr ? short_file : file, ":", line));
}

}  // namespace qkv::internal
