// ExecutionContext: what an op may use besides its arguments: the thread team and a scratch
// arena for temporary buffers. Passed explicitly as the last argument of every op; qkv has no
// global state of its own.
#pragma once

#include "qkv/core/arena.h"
#include "qkv/runtime/thread_pool.h"

namespace qkv {

struct ExecutionContext {
  const ThreadPool* threads = nullptr;  // Required.
  Arena* scratch = nullptr;             // Required by ops that need temporary buffers.

  int num_threads() const { return threads != nullptr ? threads->num_threads() : 1; }
  Arena& Scratch() const {
    QKV_CHECK(scratch != nullptr, "this op needs ExecutionContext::scratch, which is null");
    return *scratch;
  }
};

}  // namespace qkv
