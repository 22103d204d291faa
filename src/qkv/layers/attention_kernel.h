// Which kernel computes an attention sublayer's scores, softmax and weighted sum. Self- and
// cross-attention choose it alike, and size its scratch with the same two functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qkv::layers {

// Both give the same result (to float rounding) and the same gradients.
enum class AttentionKernel {
  // ops/attention.h: stores the (B, H, Tq, Tk) probabilities (needed for attention maps).
  kSimple,
  // ops/flash_attention.h: tiled, keeps only a (B, H, Tq) log-sum-exp; memory linear in Tk.
  kFlash,
};

// Bytes of ctx.scratch the kernel's forward pass takes: the flash kernel's tiles, nothing for
// the simple kernel.
size_t AttentionKernelForwardScratchBytes(AttentionKernel kernel, int64_t batch, int64_t num_heads,
                                          int64_t query_len, int num_threads, size_t element_size);

// Bytes of ctx.scratch the kernel's backward pass takes (besides the layer's own buffers): the
// simple kernel's per-thread (Tq, Tk) tiles, or the flash kernel's (the same as its forward's).
size_t AttentionKernelBackwardScratchBytes(AttentionKernel kernel, int64_t batch, int64_t num_heads,
                                           int64_t query_len, int64_t key_len, int num_threads,
                                           size_t element_size);

}  // namespace qkv::layers
