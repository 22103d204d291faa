// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length, a JSON header mapping each tensor name to its
// dtype, shape and [begin, end) byte offsets, an optional "__metadata__" of strings, then the
// raw little-endian data.
//
// qkv writes F32, BF16 (rounded to nearest even) and I32; it reads F32, F16, BF16 (converted
// to float) and I32, and accepts
// the format's other dtypes as opaque tensors (shape only). Files are
// written atomically: to a temporary file beside the target, fsync'd, then renamed, so a
// crash never leaves a half-written file under the target's name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/core/tensor.h"

namespace qkv::io {

// A tensor on its way into or out of a file.
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> f32;    // used when is_int32 is false
  std::vector<int32_t> i32;  // used when is_int32 is true
  bool is_int32 = false;
  // Read only: a dtype qkv does not compute with (U8, BOOL, I64, F64, ...). Its shape is known
  // but no values are loaded; the model loader can skip such tensors (GPT-2's mask buffers).
  std::string opaque_dtype;
  // The dtype the file stores the values in (F32, F16, BF16, I32, ...), as read. On writing,
  // a float tensor that says BF16 is written in BF16 and any other in F32.
  std::string stored_dtype;
};

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;  // in the order of their data offsets
  std::map<std::string, std::string> metadata;

  // The tensor called name; throws qkv::Error listing the available names if it is absent.
  const NamedTensor& Get(const std::string& name) const;
};

// "[768, 2304]": a tensor shape for messages.
std::string ShapeText(const std::vector<int64_t>& shape);

// Throws qkv::Error (naming the file and the problem) for a missing, truncated or malformed
// file: bad header length, bad JSON, unknown dtype, offsets that overlap, leave gaps or run
// past the end, or a shape that disagrees with its byte size.
// Before reading any data it checks that the data fits in memory (qkv/core/memory.h).
SafetensorsFile ReadSafetensors(const std::string& path);
// The same from bytes already in memory; `source` names them in error messages. The entry
// point of the fuzz harness (tests/fuzz/safetensors_fuzzer.cc).
SafetensorsFile ParseSafetensors(std::string_view bytes, const std::string& source);

// Has every float tensor of file written as dtype: "F32" or "BF16" (qkv::Error otherwise).
void SetFloatDtype(SafetensorsFile& file, const std::string& dtype);

// Throws qkv::Error on duplicate names or I/O failure; never leaves a partial file at path.
void WriteSafetensors(const std::string& path, const SafetensorsFile& file);

// Writes bytes to path atomically (temporary file, fsync, rename, fsync of the directory).
void WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace qkv::io
