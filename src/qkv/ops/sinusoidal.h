// The fixed sinusoidal position table of "Attention Is All You Need":
//   PE[p, 2i] = sin(p / 10000^(2i/d)),  PE[p, 2i+1] = cos(p / 10000^(2i/d)).
// It is added to the input with AddPositionsForward and has no gradient. Marian (and Hugging
// Face's MarianMTModel) keep the same angles with every sine first, then every cosine:
//   PE[p, i] = sin(p / 10000^(2i/d)),  PE[p, ceil(d/2) + i] = cos(p / 10000^(2i/d)).
#pragma once

#include "qkv/core/tensor_view.h"

namespace qkv::ops {

// table: (max_len, dim), overwritten. Angles are computed in double, so the table is the
// correctly rounded formula even at large positions. An odd dim ends with a sine column.
enum class SinusoidalLayout { kInterleaved, kHalves };

template <typename T>
void FillSinusoidalTable(TensorView<T> table,
                         SinusoidalLayout layout = SinusoidalLayout::kInterleaved);

}  // namespace qkv::ops
