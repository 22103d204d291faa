#include "qkv/core/memory.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "qkv/core/check.h"

namespace qkv {

namespace {

uint64_t MemInfoAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

std::string GiB(uint64_t bytes) {
  std::ostringstream text;
  text.precision(3);
  text << static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return text.str();
}

}  // namespace

uint64_t AvailableMemoryBytes() {
  uint64_t available = MemInfoAvailable();
  if (available == 0) {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0) {
      available = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
    }
  }
  // Unknown (no /proc, no sysconf): refuse nothing rather than everything.
  if (available == 0) available = UINT64_MAX;
  if (const char* limit = std::getenv("QKV_MEMORY_LIMIT"); limit != nullptr && *limit != '\0') {
    char* end = nullptr;
    const unsigned long long cap = std::strtoull(limit, &end, 10);
    QKV_CHECK(*end == '\0' && limit[0] != '-', "QKV_MEMORY_LIMIT must be a number of bytes, got '",
              limit, "'");
    if (cap < available) available = cap;
  }
  return available;
}

void CheckFitsInMemory(uint64_t bytes, std::string_view what, uint64_t available) {
  QKV_CHECK(bytes <= available, what, " needs ", bytes, " bytes (", GiB(bytes), ") but only ",
            available, " bytes (", GiB(available), ") of memory are available");
}

void CheckFitsInMemory(uint64_t bytes, std::string_view what) {
  CheckFitsInMemory(bytes, what, AvailableMemoryBytes());
}

}  // namespace qkv
