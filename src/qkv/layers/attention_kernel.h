// Which kernel computes an attention sublayer's scores, softmax and weighted sum. Self- and
// cross-attention choose it alike.
#pragma once

namespace qkv::layers {

// Both give the same result (to float rounding) and the same gradients.
enum class AttentionKernel {
  // ops/attention.h: stores the (B, H, Tq, Tk) probabilities (needed for attention maps).
  kSimple,
  // ops/flash_attention.h: tiled, keeps only a (B, H, Tq) log-sum-exp; memory linear in Tk.
  kFlash,
};

}  // namespace qkv::layers
