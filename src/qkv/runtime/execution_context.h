// ExecutionContext: what an op may use besides its arguments: the thread team, a scratch
// arena for temporary buffers, the vector ISA its kernels use, the device, the precision of
// matrix products and any bfloat16 copies of the weights. Passed
// explicitly as the last argument of every op; kernels read the ISA and thread count from it,
// never from process-wide state.
#pragma once

#include "qkv/core/arena.h"
#include "qkv/runtime/isa.h"
#include "qkv/runtime/precision.h"
#include "qkv/runtime/thread_pool.h"

namespace qkv {

class Bf16WeightCopies;  // kernels/bf16_weight_copies.h

struct ExecutionContext {
  const ThreadPool* threads = nullptr;  // Required.
  Arena* scratch = nullptr;             // Required by ops that need temporary buffers.
  Isa isa = DefaultIsa();               // the float kernels' instruction set
  Device device = Device::kCpu;
  // kBfloat16: every float32 product reads bfloat16 operands (kernels/cpu/gemm.h); the caller
  // has checked Bf16Unavailable().
  Precision precision = Precision::kFloat32;
  // bfloat16 copies of weight matrices, rounded once per optimizer step rather than once per
  // product: kernels::Matmul reads them in bf16 precision, and ops::LinearForward for products
  // of a few rows (decoding with `qkv sample --precision bf16`); null: none.
  const Bf16WeightCopies* bf16_weights = nullptr;

  int num_threads() const { return threads != nullptr ? threads->num_threads() : 1; }
  Arena& Scratch() const {
    QKV_CHECK(scratch != nullptr, "this op needs ExecutionContext::scratch, which is null");
    return *scratch;
  }
};

}  // namespace qkv
