// Helpers shared by the safetensors tests: the message a parse of some bytes fails with, and
// an expectation that a message mentions a piece of text.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"

namespace qkv::io::test_support {

// What ParseSafetensors says about bytes, or "(no error)" when it accepts them.
inline std::string ErrorOf(const std::string& bytes) {
  try {
    ParseSafetensors(bytes, "test.safetensors");
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace qkv::io::test_support

#define EXPECT_MENTIONS(text, needle)               \
  EXPECT_NE((text).find(needle), std::string::npos) \
      << "'" << (text) << "' lacks '" << (needle) << "'"
