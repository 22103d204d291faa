#include "qkv/io/text_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qkv/core/check.h"

namespace qkv::io {

std::string ReadTextFile(const std::string& path, bool allow_empty) {
  std::error_code error;
  QKV_CHECK(!std::filesystem::is_directory(path, error), path, ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  QKV_CHECK(in.good(), path, ": cannot open: ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  QKV_CHECK(!in.bad(), path, ": read failed");
  std::string bytes = text.str();
  QKV_CHECK(allow_empty || !bytes.empty(), path, ": the file is empty");
  return bytes;
}

}  // namespace qkv::io
