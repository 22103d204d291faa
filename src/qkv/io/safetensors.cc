#include "qkv/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "qkv/core/bfloat16.h"
#include "qkv/core/check.h"
#include "qkv/core/checked.h"
#include "qkv/core/memory.h"

namespace qkv::io {

namespace {

// The largest header we accept (the format's reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

float HalfToFloat(uint16_t half) {
  const uint32_t sign = (half >> 15) & 1, exponent = (half >> 10) & 0x1f, mantissa = half & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign << 31;
    } else {  // subnormal: renormalise
      int shift = 0;
      uint32_t m = mantissa;
      while ((m & 0x400) == 0) {
        m <<= 1;
        ++shift;
      }
      bits = (sign << 31) | ((127 - 15 - shift + 1) << 23) | ((m & 0x3ff) << 13);
    }
  } else if (exponent == 31) {
    bits = (sign << 31) | (0xffu << 23) | (mantissa << 13);
  } else {
    bits = (sign << 31) | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// A JSON value for an error message. Containers are named, not dumped: dump() recurses, and a
// hostile header can nest millions of levels deep.
std::string Describe(const nlohmann::json& value) {
  return value.is_primitive() ? value.dump() : std::string(value.type_name());
}

constexpr std::string_view kBf16 = "BF16";

// I32 for integers; a float tensor is written as BF16 when it says so (SetFloatDtype, or read
// from a BF16 file), else as F32.
std::string_view WrittenDtype(const NamedTensor& tensor) {
  if (tensor.is_int32) return "I32";
  return tensor.stored_dtype == kBf16 ? kBf16 : "F32";
}

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t extent : shape) count = CheckedMul(count, extent, "tensor element count");
  return count;
}

// The bytes of a safetensors file: a file on disk or a buffer (fuzzing, tests).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Copies size bytes from offset into out; false when they are not all there.
  virtual bool Read(uint64_t offset, void* out, uint64_t size) = 0;
};

class FileSource final : public ByteSource {
 public:
  explicit FileSource(std::ifstream& in) : in_(in) {}
  bool Read(uint64_t offset, void* out, uint64_t size) override {
    if (size == 0) return true;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(size));
    return in_.good() && static_cast<uint64_t>(in_.gcount()) == size;
  }

 private:
  std::ifstream& in_;
};

class BufferSource final : public ByteSource {
 public:
  explicit BufferSource(std::string_view bytes) : bytes_(bytes) {}
  bool Read(uint64_t offset, void* out, uint64_t size) override {
    if (offset > bytes_.size() || size > bytes_.size() - offset) return false;
    if (size > 0) std::memcpy(out, bytes_.data() + offset, size);
    return true;
  }

 private:
  std::string_view bytes_;
};

SafetensorsFile Parse(ByteSource& source, uint64_t file_size, const std::string& path);

}  // namespace

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

const NamedTensor& SafetensorsFile::Get(const std::string& name) const {
  std::string available;
  for (const NamedTensor& tensor : tensors) {
    if (tensor.name == name) return tensor;
    if (!available.empty()) available.append(", ");
    available.append(tensor.name);
  }
  throw Error(internal::StrCat("tensor '", name, "' is not in the file (it has: ", available, ")"));
}

SafetensorsFile ReadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QKV_CHECK(in.good(), path, ": cannot open: ", std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  QKV_CHECK(end >= 0, path, ": cannot determine the file size");
  FileSource source(in);
  return Parse(source, static_cast<uint64_t>(end), path);
}

SafetensorsFile ParseSafetensors(std::string_view bytes, const std::string& source_name) {
  BufferSource source(bytes);
  return Parse(source, bytes.size(), source_name);
}

namespace {

SafetensorsFile Parse(ByteSource& in, uint64_t file_size, const std::string& path) {
  QKV_CHECK(file_size >= 8, path, ": not a safetensors file (", file_size,
            " bytes, shorter than the 8-byte header length)");
  unsigned char length_bytes[8];
  QKV_CHECK(in.Read(0, length_bytes, 8), path, ": cannot read the header length");
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
  QKV_CHECK(header_length <= kMaxHeaderBytes && header_length <= file_size - 8, path,
            ": header length ", header_length, " does not fit in the file of ", file_size,
            " bytes (truncated or not safetensors)");
  std::string header_text(header_length, '\0');
  QKV_CHECK(in.Read(8, header_text.data(), header_length), path, ": cannot read the header");
  const uint64_t data_size = file_size - 8 - header_length;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& error) {
    throw Error(internal::StrCat(path, ": the header is not valid JSON: ", error.what()));
  }
  QKV_CHECK(header.is_object(), path, ": the header must be a JSON object");

  SafetensorsFile file;
  struct Span {
    uint64_t begin, end;
    size_t index;
    std::string dtype;
    int64_t count;
  };
  std::vector<Span> spans;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      QKV_CHECK(entry.is_object(), path, ": __metadata__ must be an object of strings");
      for (auto& [key, value] : entry.items()) {
        QKV_CHECK(value.is_string(), path, ": __metadata__ value of '", key, "' is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    QKV_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                  entry.contains("data_offsets"),
              path, ": tensor '", name, "' needs dtype, shape and data_offsets");
    QKV_CHECK(entry["dtype"].is_string() && entry["shape"].is_array() &&
                  entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2,
              path, ": tensor '", name, "' has malformed dtype, shape or data_offsets");
    NamedTensor tensor;
    tensor.name = name;
    for (const auto& extent : entry["shape"]) {
      QKV_CHECK(extent.is_number_integer() && extent.get<int64_t>() >= 0, path, ": tensor '", name,
                "' has a bad shape entry ", Describe(extent));
      tensor.shape.push_back(extent.get<int64_t>());
    }
    const std::string dtype = entry["dtype"].get<std::string>();
    tensor.stored_dtype = dtype;
    int64_t element_bytes = 0;
    bool opaque = false;
    if (dtype == "F32" || dtype == "I32") {
      element_bytes = 4;
    } else if (dtype == "F16" || dtype == "BF16") {
      element_bytes = 2;
    } else if (dtype == "BOOL" || dtype == "U8" || dtype == "I8" || dtype == "F8_E4M3" ||
               dtype == "F8_E5M2") {
      element_bytes = 1, opaque = true;
    } else if (dtype == "I16" || dtype == "U16") {
      element_bytes = 2, opaque = true;
    } else if (dtype == "U32") {
      element_bytes = 4, opaque = true;
    } else if (dtype == "I64" || dtype == "U64" || dtype == "F64") {
      element_bytes = 8, opaque = true;
    } else {
      throw Error(internal::StrCat(path, ": tensor '", name, "' has unknown dtype ", dtype));
    }
    for (const auto& offset : entry["data_offsets"]) {
      QKV_CHECK(offset.is_number_unsigned(), path, ": tensor '", name, "' has a bad data offset ",
                Describe(offset));
    }
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
    const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
    QKV_CHECK(begin <= end && end <= data_size, path, ": tensor '", name, "' spans bytes [", begin,
              ", ", end, ") but the data section has ", data_size, " bytes (truncated file?)");
    QKV_CHECK((end - begin) % static_cast<uint64_t>(element_bytes) == 0, path, ": tensor '", name,
              "' spans ", end - begin, " bytes, not a whole number of ", dtype, " elements of ",
              element_bytes, " bytes (misaligned data offsets)");
    int64_t count = 0;
    try {
      count = ElementCount(tensor.shape);
    } catch (const Error& error) {
      throw Error(internal::StrCat(path, ": tensor '", name, "' has shape ",
                                   ShapeText(tensor.shape), ", too many elements: ", error.what()));
    }
    QKV_CHECK(static_cast<uint64_t>(count) == (end - begin) / static_cast<uint64_t>(element_bytes),
              path, ": tensor '", name, "' has shape ", ShapeText(tensor.shape), " (", count,
              " elements of ", element_bytes, " bytes) but spans ", end - begin, " bytes");

    if (opaque) tensor.opaque_dtype = dtype;
    spans.push_back({begin, end, file.tensors.size(), dtype, count});
    file.tensors.push_back(std::move(tensor));
  }
  // The format requires the data section to be covered exactly, without overlaps or holes.
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  uint64_t expected = 0;
  for (const Span& span : spans) {
    QKV_CHECK(span.begin == expected, path, ": tensor '", file.tensors[span.index].name,
              "' starts at byte ", span.begin, " but the previous tensor ends at ", expected,
              " (overlap or hole in the data section)");
    expected = span.end;
  }
  QKV_CHECK(expected == data_size, path, ": the data section has ", data_size,
            " bytes but the tensors cover ", expected);
  // Every value becomes 4 bytes (F16/BF16 double), plus one tensor's raw bytes at a time:
  // refuse a file the machine cannot hold before reading any of it.
  uint64_t needed = 0, largest_span = 0;
  for (const Span& span : spans) {
    if (!file.tensors[span.index].opaque_dtype.empty()) continue;
    needed = CheckedAddSize(needed, CheckedMulSize(static_cast<uint64_t>(span.count), 4));
    largest_span = std::max(largest_span, span.end - span.begin);
  }
  CheckFitsInMemory(CheckedAddSize(needed, largest_span), path + ": reading the tensors");

  std::vector<NamedTensor> ordered;
  for (const Span& span : spans) {
    NamedTensor& tensor = file.tensors[span.index];
    if (tensor.opaque_dtype.empty()) {
      const std::string& dtype = span.dtype;
      const int64_t count = span.count;
      std::vector<unsigned char> raw(span.end - span.begin);
      QKV_CHECK(in.Read(8 + header_length + span.begin, raw.data(), raw.size()), path,
                ": could not read the data of '", tensor.name, "'");
      // memcpy of an empty tensor would pass null pointers, which memcpy forbids even for 0 bytes.
      if (dtype == "I32") {
        tensor.is_int32 = true;
        tensor.i32.resize(count);
        if (!raw.empty()) std::memcpy(tensor.i32.data(), raw.data(), raw.size());
      } else if (dtype == "F32") {
        tensor.f32.resize(count);
        if (!raw.empty()) std::memcpy(tensor.f32.data(), raw.data(), raw.size());
      } else {
        tensor.f32.resize(count);
        for (int64_t i = 0; i < count; ++i) {
          const uint16_t bits = static_cast<uint16_t>(raw[2 * i] | (raw[2 * i + 1] << 8));
          tensor.f32[i] = dtype == "F16" ? HalfToFloat(bits) : FromBfloat16(bits);
        }
      }
    }
    ordered.push_back(std::move(tensor));
  }
  file.tensors = std::move(ordered);
  return file;
}

}  // namespace

void WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::filesystem::path target(path);
  const std::filesystem::path directory =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::string temporary_name = ".";
  temporary_name.append(target.filename().string());
  temporary_name.append(".tmp.");
  temporary_name.append(std::to_string(getpid()));
  const std::string temporary = (directory / temporary_name).string();
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  QKV_CHECK(fd >= 0, temporary, ": cannot create: ", std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved_errno = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      throw Error(internal::StrCat(temporary, ": write failed: ", std::strerror(saved_errno)));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int saved_errno = errno;
    ::unlink(temporary.c_str());
    throw Error(internal::StrCat(temporary, ": fsync/close failed: ", std::strerror(saved_errno)));
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int saved_errno = errno;
    ::unlink(temporary.c_str());
    throw Error(internal::StrCat(path, ": rename failed: ", std::strerror(saved_errno)));
  }
  // Make the rename itself durable.
  const int directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory_fd >= 0) {
    ::fsync(directory_fd);
    ::close(directory_fd);
  }
}

void SetFloatDtype(SafetensorsFile& file, const std::string& dtype) {
  QKV_CHECK(dtype == "F32" || dtype == kBf16, "safetensors: qkv writes float tensors as F32 or ",
            kBf16, ", not ", dtype);
  for (NamedTensor& tensor : file.tensors) {
    if (!tensor.is_int32) tensor.stored_dtype = dtype;
  }
}

void WriteSafetensors(const std::string& path, const SafetensorsFile& file) {
  nlohmann::json header = nlohmann::json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const NamedTensor& tensor : file.tensors) {
    QKV_CHECK(tensor.name != "__metadata__" && names.insert(tensor.name).second, path,
              ": duplicate or reserved tensor name '", tensor.name, "'");
    const int64_t count = ElementCount(tensor.shape);
    const size_t stored = tensor.is_int32 ? tensor.i32.size() : tensor.f32.size();
    QKV_CHECK(static_cast<int64_t>(stored) == count, path, ": tensor '", tensor.name, "' has ",
              stored, " values for shape of ", count, " elements");
    const std::string_view dtype = WrittenDtype(tensor);
    const uint64_t bytes = static_cast<uint64_t>(count) * (dtype == kBf16 ? 2 : 4);
    header[tensor.name] = {
        {"dtype", dtype}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  while ((8 + header_text.size()) % 8 != 0) header_text += ' ';
  std::string bytes;
  bytes.reserve(8 + header_text.size() + offset);
  uint64_t length = header_text.size();
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((length >> (8 * i)) & 0xff);
  bytes += header_text;
  for (const NamedTensor& tensor : file.tensors) {
    if (WrittenDtype(tensor) == kBf16) {
      for (const float value : tensor.f32) {
        const uint16_t bits = ToBfloat16(value);
        bytes += static_cast<char>(bits & 0xff);
        bytes += static_cast<char>(bits >> 8);
      }
      continue;
    }
    const char* data = tensor.is_int32 ? reinterpret_cast<const char*>(tensor.i32.data())
                                       : reinterpret_cast<const char*>(tensor.f32.data());
    const size_t size = (tensor.is_int32 ? tensor.i32.size() : tensor.f32.size()) * 4;
    bytes.append(data, size);
  }
  WriteFileAtomically(path, bytes);
}

}  // namespace qkv::io
