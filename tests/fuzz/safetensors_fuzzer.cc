// safetensors bytes -> ParseSafetensors (what LoadModel reads from model.safetensors).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const qkv::io::SafetensorsFile file = qkv::io::ParseSafetensors(bytes, "fuzz.safetensors");
    // What the reader promises: offsets cover the data exactly, and each loaded tensor holds
    // as many values as its shape has elements.
    for (const qkv::io::NamedTensor& tensor : file.tensors) {
      int64_t count = 1;
      for (int64_t extent : tensor.shape) count *= extent;
      if (!tensor.opaque_dtype.empty()) continue;
      const size_t held = tensor.is_int32 ? tensor.i32.size() : tensor.f32.size();
      QKV_FUZZ_ASSERT(static_cast<int64_t>(held) == count, "values disagree with the shape");
      QKV_FUZZ_ASSERT(held * 2 <= size, "more values than the file has bytes for");
    }
  } catch (const qkv::Error&) {
    // A clean refusal.
  }
  return 0;
}
