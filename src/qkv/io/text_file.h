// Whole-file reads with clear errors, for data and prompt files.
#pragma once

#include <string>

namespace qkv::io {

// The bytes of path. Throws qkv::Error naming the path for a missing or unreadable file, and,
// unless allow_empty, for an empty one.
std::string ReadTextFile(const std::string& path, bool allow_empty = false);

}  // namespace qkv::io
