// The C++ half of the PyTorch comparison (see compare.py). Each case runs one op or layer of
// qkv in float32 on seeded random inputs and stores every input, parameter, output and
// gradient in <out_dir>/<case>.safetensors, with the op's settings in the metadata.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qkv/core/tensor.h"
#include "qkv/io/safetensors.h"

namespace qkv::reference {

using CaseFunction = std::function<io::SafetensorsFile()>;

// Registry filled by static initialisers in the *_cases.cc files (test code only).
std::map<std::string, CaseFunction>& Cases();

struct RegisterCase {
  RegisterCase(const std::string& name, CaseFunction function) {
    Cases().emplace(name, std::move(function));
  }
};

// Adds a float tensor to a case file.
inline void Put(io::SafetensorsFile& file, const std::string& name, ConstTensorView<float> view) {
  io::NamedTensor tensor;
  tensor.name = name;
  for (int i = 0; i < view.rank(); ++i) tensor.shape.push_back(view.dim(i));
  tensor.f32.assign(view.begin(), view.end());
  file.tensors.push_back(std::move(tensor));
}

inline void PutInt(io::SafetensorsFile& file, const std::string& name,
                   ConstTensorView<int32_t> view) {
  io::NamedTensor tensor;
  tensor.name = name;
  tensor.is_int32 = true;
  for (int i = 0; i < view.rank(); ++i) tensor.shape.push_back(view.dim(i));
  tensor.i32.assign(view.begin(), view.end());
  file.tensors.push_back(std::move(tensor));
}

}  // namespace qkv::reference
