// ExecutionContext: what an op may use besides its arguments: the thread team, a scratch
// arena for temporary buffers, the vector ISA its kernels use and the device. Passed
// explicitly as the last argument of every op; kernels read the ISA and thread count from it,
// never from process-wide state.
#pragma once

#include "qkv/core/arena.h"
#include "qkv/runtime/isa.h"
#include "qkv/runtime/thread_pool.h"

namespace qkv {

struct ExecutionContext {
  const ThreadPool* threads = nullptr;  // Required.
  Arena* scratch = nullptr;             // Required by ops that need temporary buffers.
  Isa isa = DefaultIsa();               // the float kernels' instruction set
  Device device = Device::kCpu;

  int num_threads() const { return threads != nullptr ? threads->num_threads() : 1; }
  Arena& Scratch() const {
    QKV_CHECK(scratch != nullptr, "this op needs ExecutionContext::scratch, which is null");
    return *scratch;
  }
};

}  // namespace qkv
