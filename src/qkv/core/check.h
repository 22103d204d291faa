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

// Raised for every invalid argument or failed precondition. what() names the values involved
// and is meant for the user; location() is the source file and line of the failed check
// (empty when the error was raised by hand), meant for us: the command line shows it only
// with --verbose or in debug builds.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, std::string location = {})
      : std::runtime_error(message), location_(std::move(location)) {}

  const std::string& location() const { return location_; }

 private:
  std::string location_;
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

// QKV_CHECK(condition, message parts...): throws qkv::Error(message) located at file:line.
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
