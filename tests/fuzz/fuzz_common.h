// Shared by the fuzz harnesses. A reader of outside data may refuse its input only with a
// qkv::Error; any other exception escaping a harness is a finding (libFuzzer reports it as a
// crash), as are sanitizer reports, leaks and failed round-trip checks.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

// Aborts with a message: a property the harness checks did not hold.
#define QKV_FUZZ_ASSERT(condition, message)                                                 \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "fuzz assertion failed: %s (%s:%d): %s\n", #condition, __FILE__, \
                   __LINE__, message);                                                      \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)
