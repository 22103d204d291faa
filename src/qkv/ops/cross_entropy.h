// Softmax + cross-entropy over a vocabulary, fused: the loss of row r is
// logsumexp(logits[r]) - logits[r][targets[r]], averaged over the rows whose target is not
// ignore_index (torch.nn.functional.cross_entropy with reduction="mean"). The probabilities are
// never stored: backward recomputes them from the logits and the saved log-sum-exp.
// With label smoothing e (PyTorch's label_smoothing, Marian's and fairseq's for translation)
// the target distribution is (1 - e) one_hot(target) + e / vocab, so the loss of row r is
// (1 - e) (lse - logits[r][t]) + e (lse - mean_v logits[r][v]); e = 0 is the plain loss, by the
// same operations as without the argument.
// Derivation: docs/derivations/softmax_cross_entropy.md.
#pragma once

#include <cstdint>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

inline constexpr int32_t kDefaultIgnoreIndex = -100;  // PyTorch's default

// logits: (rows, vocab); targets: (rows), each in [0, vocab) or == ignore_index;
// saved_logsumexp: (rows), written for backward; label_smoothing in [0, 1). Returns the mean
// loss; when every target is ignored it returns 0 (PyTorch returns NaN) so that such a batch
// leaves training unharmed.
template <typename T>
T CrossEntropyForward(ConstTensorView<T> logits, ConstTensorView<int32_t> targets,
                      int32_t ignore_index, TensorView<T> saved_logsumexp,
                      const ExecutionContext& ctx, T label_smoothing = T(0));

// d_logits (=) = d_loss / counted_rows * (softmax(logits) - (1 - e) one_hot(target) - e / vocab);
// rows with an ignored target get 0. d_logits may alias logits.
template <typename T>
void CrossEntropyBackward(T d_loss, ConstTensorView<T> logits, ConstTensorView<int32_t> targets,
                          int32_t ignore_index, ConstTensorView<T> saved_logsumexp,
                          TensorView<T> d_logits, const ExecutionContext& ctx,
                          T label_smoothing = T(0));

}  // namespace qkv::ops
