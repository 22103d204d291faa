// The precision of matrix products (../shared/SPEC.md §6). kFloat32: float32 inputs and
// results, bitwise as qkv has always computed. kBfloat16: mixed precision as PyTorch's CPU
// autocast: every product reads its operands rounded to bfloat16 (to nearest, ties to even)
// and accumulates and returns float32; weights, optimizer moments, norms, softmax, the
// residual stream and the loss stay float32. ExecutionContext carries it; kernels::Matmul
// applies it.
#pragma once

#include <string>
#include <string_view>

namespace qkv {

enum class Precision { kFloat32, kBfloat16 };

std::string_view PrecisionName(Precision precision);  // "fp32" | "bf16"
// "fp32" or "bf16"; throws qkv::Error naming the value otherwise.
Precision ParsePrecision(std::string_view name);

// The bfloat16 matrix instructions oneDNN will use on this CPU: "amx_bf16", "avx512_bf16", or
// empty where there are none (or QKV_ISA chose an ISA below avx512, which turns them off so the
// refusal can be seen on any machine).
std::string_view Bf16MatrixIsa();

// Empty when bfloat16 products run on matrix hardware here, else the sentence that says why
// not: qkv does not emulate them (emulation runs at a fraction of float32's speed).
std::string Bf16Unavailable();

}  // namespace qkv
