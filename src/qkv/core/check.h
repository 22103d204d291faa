// Error reporting for qkv: QKV_CHECK for conditions a caller can get wrong (shapes, sizes,
// indices), QKV_DCHECK for invariants inside hot loops (compiled out with NDEBUG).
//
// Errors are exceptions of type qkv::Error rather than aborts, so that tests can assert on them,
// the command line can turn them into an exit status, and a library user never loses a process
// to a bad argument. The happy path costs one predictable branch.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace qkv {

// Raised for every invalid argument or failed precondition. what() names the values involved.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace internal {

template <typename... Parts>
std::string StrCat(Parts&&... parts) {
  std::ostringstream stream;
  (stream << ... << std::forward<Parts>(parts));
  return stream.str();
}

[[noreturn]] void ThrowCheckFailure(const char* file, int line, const char* condition,
                                    const std::string& message);

}  // namespace internal
}  // namespace qkv

// QKV_CHECK(condition, message parts...): throws qkv::Error("message (condition at file:line)").
#define QKV_CHECK(condition, ...)                                               \
  do {                                                                          \
    if (!(condition)) [[unlikely]] {                                            \
      ::qkv::internal::ThrowCheckFailure(__FILE__, __LINE__, #condition,        \
                                         ::qkv::internal::StrCat(__VA_ARGS__)); \
    }                                                                           \
  } while (false)

#ifdef NDEBUG
#define QKV_DCHECK(condition, ...) \
  do {                             \
  } while (false)
#else
#define QKV_DCHECK(condition, ...) QKV_CHECK(condition, __VA_ARGS__)
#endif
