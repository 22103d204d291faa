#include "qkv/layers/attention_kernel.h"

#include "qkv/ops/attention.h"
#include "qkv/ops/flash_attention.h"

namespace qkv::layers {

size_t AttentionKernelForwardScratchBytes(AttentionKernel kernel, int64_t batch, int64_t num_heads,
                                          int64_t query_len, int num_threads, size_t element_size) {
  if (kernel == AttentionKernel::kSimple) return 0;
  return element_size == sizeof(float)
             ? ops::FlashAttentionScratchBytes<float>(batch, num_heads, query_len, num_threads)
             : ops::FlashAttentionScratchBytes<double>(batch, num_heads, query_len, num_threads);
}

size_t AttentionKernelBackwardScratchBytes(AttentionKernel kernel, int64_t batch, int64_t num_heads,
                                           int64_t query_len, int64_t key_len, int num_threads,
                                           size_t element_size) {
  if (kernel == AttentionKernel::kFlash) {
    return AttentionKernelForwardScratchBytes(kernel, batch, num_heads, query_len, num_threads,
                                              element_size);
  }
  return element_size == sizeof(float)
             ? ops::AttentionBackwardScratchBytes<float>(query_len, key_len, num_threads)
             : ops::AttentionBackwardScratchBytes<double>(query_len, key_len, num_threads);
}

}  // namespace qkv::layers
