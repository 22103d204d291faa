// Flag checks that CLI11's own validators get wrong for us, shared by the subcommands:
// - CLI::Range and CLI::PositiveNumber compare with < and >, which are false for NaN, so
//   "--lr nan" passed them;
// - CLI11 reads an unsigned value with strtoull, which turns "-1" into 2^64 - 1 and saturates
//   values past 2^64 - 1 without an error;
// - an output path is only tried after the work is done (or fails with a filesystem exception),
//   so a path that can never be written is refused at parse time instead.
// CLI11 puts the flag's name in front of each message.
#pragma once

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>

namespace qkv::cli {

namespace flag_checks_internal {

inline std::string FormatNumber(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// The nearest existing directory that `path` would be created in, or an error message.
inline std::string CheckCreatableIn(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  fs::path parent = path.parent_path();
  std::error_code error;
  while (!parent.empty() && !fs::exists(parent, error)) {
    if (error && error != std::errc::no_such_file_or_directory) {
      return path.string() + ": " + parent.string() + " is not a directory (" + error.message() +
             ")";
    }
    parent = parent.parent_path();
  }
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, error)) {
    return path.string() + ": " + parent.string() + " is not a directory";
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    return path.string() + ": cannot write in " + parent.string() + ": " + std::strerror(errno);
  }
  return std::string();
}

}  // namespace flag_checks_internal

// A finite number in [min, max] (in (min, max] when min_exclusive; max may be the largest
// double, for no upper bound).
inline CLI::Validator FiniteNumber(double min, double max, bool min_exclusive = false) {
  const bool bounded = max < std::numeric_limits<double>::max();
  const std::string low = flag_checks_internal::FormatNumber(min);
  const std::string allowed =
      "a finite number " + (bounded ? (min_exclusive ? "in (" : "in [") + low + ", " +
                                          flag_checks_internal::FormatNumber(max) + "]"
                                    : (min_exclusive ? "> " : ">= ") + low);
  return CLI::Validator(
      [=](std::string& text) {
        double value = 0;
        const char* end = text.data() + text.size();
        const auto [parsed_end, error] = std::from_chars(text.data(), end, value);
        const bool in_range = error == std::errc() && parsed_end == end && std::isfinite(value) &&
                              (min_exclusive ? value > min : value >= min) && value <= max;
        return in_range ? std::string() : "must be " + allowed + ", got '" + text + "'";
      },
      allowed);
}

inline CLI::Validator PositiveFinite() {
  return FiniteNumber(0, std::numeric_limits<double>::max(), /*min_exclusive=*/true);
}

inline CLI::Validator NonNegativeFinite() {
  return FiniteNumber(0, std::numeric_limits<double>::max());
}

// A decimal integer in [0, 2^64 - 1].
inline CLI::Validator Uint64() {
  return CLI::Validator(
      [](std::string& text) {
        uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [parsed_end, error] = std::from_chars(text.data(), end, value);
        if (error == std::errc() && parsed_end == end) {
          // CLI11 converts with base 0, which would read a leading 0 as octal.
          text = std::to_string(value);
          return std::string();
        }
        return "must be a whole number in [0, 18446744073709551615], got '" + text + "'";
      },
      "0 to 2^64-1");
}

// char, byte or bpe:N, with N at most the largest vocabulary a model config allows (checked so
// that a bad N is a usage error naming the flag).
inline CLI::Validator TokenizerSpec() {
  return CLI::Validator(
      [](std::string& text) {
        int64_t n = 0;
        const char* end = text.data() + text.size();
        const bool bpe = text.starts_with("bpe:") && text.size() > 4 &&
                         std::from_chars(text.data() + 4, end, n).ptr == end &&
                         text.find_first_not_of("0123456789", 4) == std::string::npos && n >= 257 &&
                         n <= (int64_t{1} << 24);
        // SentencePiece, for the encoder-decoder (which checks that it is one).
        const bool spm = text.starts_with("spm:") && text.size() > 4 &&
                         std::from_chars(text.data() + 4, end, n).ptr == end &&
                         text.find_first_not_of("0123456789", 4) == std::string::npos && n >= 3 &&
                         n <= (int64_t{1} << 24);
        return text == "char" || text == "byte" || bpe || spm
                   ? std::string()
                   : "must be char, byte or bpe:N with N the vocabulary size (257 to 2^24), or "
                     "spm:N (3 to 2^24 SentencePiece pieces, --arch encoder-decoder), got '" +
                         text + "'";
      },
      "");
}

// A directory that exists or can be created: not a file, not below a file, not where we may
// not write.
inline CLI::Validator OutputDirectory() {
  return CLI::Validator(
      [](std::string& text) {
        namespace fs = std::filesystem;
        if (text.empty()) return std::string("must name a directory, got ''");
        std::error_code error;
        const fs::path path(text);
        if (fs::exists(path, error)) {
          if (!fs::is_directory(path, error)) return text + " is a file, not a directory";
          if (::access(text.c_str(), W_OK | X_OK) != 0) {
            return "cannot write in " + text + ": " + std::strerror(errno);
          }
          return std::string();
        }
        return flag_checks_internal::CheckCreatableIn(path);
      },
      "DIR");
}

// A file to be written: not a directory, and in an existing directory we may write in. A
// prefix (of several files' names) may also be the name of a directory: the files go beside it.
inline CLI::Validator OutputFile(bool prefix = false) {
  return CLI::Validator(
      [prefix](std::string& text) {
        namespace fs = std::filesystem;
        if (text.empty()) return std::string("must name a file, got ''");
        std::error_code error;
        const fs::path path(text);
        if (!path.has_filename()) return text + " names a directory, not a file";
        if (!prefix && fs::is_directory(path, error)) return text + " is a directory, not a file";
        const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
        if (!fs::is_directory(parent, error)) {
          return text + ": " + parent.string() + " is not an existing directory";
        }
        if (::access(parent.c_str(), W_OK | X_OK) != 0) {
          return "cannot write in " + parent.string() + ": " + std::strerror(errno);
        }
        return std::string();
      },
      prefix ? "PREFIX" : "FILE");
}

// A directory to write inside (an existing one, or a path ending in '/') or else a file name
// prefix: the checks of OutputDirectory or OutputFile(prefix) accordingly.
inline CLI::Validator OutputDirectoryOrPrefix() {
  return CLI::Validator(
      [](std::string& text) {
        std::error_code error;
        const bool directory =
            (!text.empty() && text.back() == '/') || std::filesystem::is_directory(text, error);
        std::string copy = text;
        return directory ? OutputDirectory()(copy) : OutputFile(/*prefix=*/true)(copy);
      },
      "PATH");
}

// A wall-clock duration: seconds as a number, or with a unit s, m or h ("600", "90s", "10m",
// "1.5h"); finite and > 0. The text becomes the number of seconds, for the option to read.
inline CLI::Validator Duration() {
  return CLI::Validator(
      [](std::string& text) {
        std::string error =
            "must be a duration > 0 such as 600, 90s, 10m or 1.5h, got '" + text + "'";
        if (text.empty()) return error;
        double scale = 1;
        size_t digits = text.size();
        switch (text.back()) {
          case 's':
            digits -= 1;
            break;
          case 'm':
            scale = 60;
            digits -= 1;
            break;
          case 'h':
            scale = 3600;
            digits -= 1;
            break;
          default:
            break;
        }
        double value = 0;
        const char* end = text.data() + digits;
        const auto [parsed_end, parse_error] = std::from_chars(text.data(), end, value);
        if (digits == 0 || parse_error != std::errc() || parsed_end != end ||
            !std::isfinite(value * scale) || !(value > 0)) {
          return error;
        }
        char seconds[32];
        const auto written = std::to_chars(seconds, seconds + sizeof(seconds), value * scale);
        text.assign(seconds, written.ptr);
        return std::string();
      },
      "DURATION");
}

}  // namespace qkv::cli
