#include "qkv/layers/transformer_block.h"

#include <algorithm>
#include <cstring>

#include "qkv/ops/add.h"
#include "qkv/ops/dropout.h"
#include "qkv/ops/op_checks.h"

namespace qkv::layers {

namespace {

template <typename T>
void MaybeDropout(const BlockConfig& config, bool training, Random* random, TensorView<T> values,
                  TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  if (!training || config.dropout == 0.0f) return;
  QKV_CHECK(random != nullptr, "transformer block: dropout needs a random generator");
  ops::DropoutForward<T>(values, config.dropout, *random, keep.Reshape(values.shape()), values,
                         ctx);
}

// d_values (in place) through the dropout of the last training forward pass.
template <typename T>
void MaybeDropoutBackward(const BlockConfig& config, TensorView<T> d_values,
                          TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  if (config.dropout == 0.0f) return;
  ops::DropoutBackward<T>(d_values, keep.Reshape(d_values.shape()), config.dropout, d_values, ctx);
}

// The block's body. attend(attention_input (B, T, C), attention_output (B, T, C)) is the
// self-attention sublayer: over the whole sequence (training) or the new tokens plus a cache
// (decoding); cross(cross_input, cross_output), called only in cross-attention blocks, is the
// cross-attention sublayer.
template <typename T, typename Attend, typename Cross>
void BlockBody(const BlockConfig& config, const BlockParams<T>& params, ConstTensorView<T> input,
               bool training, Random* random, const BlockActivations<T>& acts, TensorView<T> output,
               Attend&& attend, Cross&& cross, const ExecutionContext& ctx) {
  const Shape sequence = input.shape();  // (B, T, C)
  const Shape rows{input.dim(0) * input.dim(1), input.dim(2)};
  const bool has_cross = config.cross_attention.has_value();
  if (config.placement == NormPlacement::kPre) {
    NormForward<T>(config.norm, params.norm1, input.Reshape(rows), acts.norm1_out, acts.norm1, ctx);
    attend(acts.norm1_out.Reshape(sequence), acts.attention_out);
    MaybeDropout(config, training, random, acts.attention_out, acts.attention_keep, ctx);
    ops::AddForward<T>(input, acts.attention_out, acts.residual1, ctx);
    ConstTensorView<T> stream = acts.residual1;  // what the feed-forward sublayer reads
    if (has_cross) {
      NormForward<T>(config.norm, params.cross_norm, acts.residual1.Reshape(rows),
                     acts.cross_norm_out, acts.cross_norm, ctx);
      cross(acts.cross_norm_out.Reshape(sequence), acts.cross_out);
      MaybeDropout(config, training, random, acts.cross_out, acts.cross_keep, ctx);
      ops::AddForward<T>(acts.residual1, acts.cross_out, acts.residual_cross, ctx);
      stream = acts.residual_cross;
    }
    NormForward<T>(config.norm, params.norm2, stream.Reshape(rows), acts.norm2_out, acts.norm2,
                   ctx);
    FeedForwardForward<T>(config.ffn, params.ffn, acts.norm2_out, acts.ffn, ctx);
    MaybeDropout(config, training, random, acts.ffn.out, acts.ffn_keep, ctx);
    ops::AddForward<T>(stream.Reshape(sequence), acts.ffn.out.Reshape(sequence), output, ctx);
  } else {
    attend(input, acts.attention_out);
    MaybeDropout(config, training, random, acts.attention_out, acts.attention_keep, ctx);
    ops::AddForward<T>(input, acts.attention_out, acts.residual1, ctx);
    NormForward<T>(config.norm, params.norm1, acts.residual1.Reshape(rows), acts.norm1_out,
                   acts.norm1, ctx);
    ConstTensorView<T> stream = acts.norm1_out;  // (rows, C) what the feed-forward reads
    if (has_cross) {
      cross(acts.norm1_out.Reshape(sequence), acts.cross_out);
      MaybeDropout(config, training, random, acts.cross_out, acts.cross_keep, ctx);
      ops::AddForward<T>(acts.norm1_out.Reshape(sequence), acts.cross_out, acts.residual_cross,
                         ctx);
      NormForward<T>(config.norm, params.cross_norm, acts.residual_cross.Reshape(rows),
                     acts.cross_norm_out, acts.cross_norm, ctx);
      stream = acts.cross_norm_out;
    }
    FeedForwardForward<T>(config.ffn, params.ffn, stream, acts.ffn, ctx);
    MaybeDropout(config, training, random, acts.ffn.out, acts.ffn_keep, ctx);
    ops::AddForward<T>(stream, acts.ffn.out, acts.residual2.Reshape(rows), ctx);
    NormForward<T>(config.norm, params.norm2, acts.residual2.Reshape(rows), output.Reshape(rows),
                   acts.norm2, ctx);
  }
}

// Backward's own temporaries: the gradients of the stream, of a branch output and of a
// branch input, each (rows, C).
template <typename T>
struct BackwardScratch {
  TensorView<T> d_residual, d_branch, d_branch_input;
};

template <typename T>
BackwardScratch<T> AllocateBackwardScratch(Arena& arena, int64_t rows, int64_t width) {
  return {arena.Allocate<T>(Shape{rows, width}), arena.Allocate<T>(Shape{rows, width}),
          arena.Allocate<T>(Shape{rows, width})};
}

template <typename T>
void Copy(ConstTensorView<T> from, TensorView<T> to) {
  std::memcpy(to.data(), from.data(), static_cast<size_t>(from.size()) * sizeof(T));
}

}  // namespace

template <typename T>
BlockActivations<T> AllocateBlockActivations(Arena& arena, const BlockConfig& config, int64_t batch,
                                             int64_t seq_len, BlockPass pass, int64_t memory_len) {
  ops::CheckPositive("transformer block", "batch", batch);
  ops::CheckPositive("transformer block", "sequence length", seq_len);
  const int64_t rows = batch * seq_len, c = config.attention.width;
  const Shape sequence{batch, seq_len, c}, row_shape{rows, c};
  const bool training = pass == BlockPass::kTraining;
  const bool dropout = training && config.dropout > 0.0f;
  BlockActivations<T> acts;
  acts.norm1_out = arena.Allocate<T>(row_shape);
  acts.norm1 = AllocateNormSaved<T>(arena, rows);
  if (training) {
    acts.attention = AllocateSelfAttentionActivations<T>(arena, config.attention, batch, seq_len);
  }
  acts.attention_out = arena.Allocate<T>(sequence);
  if (dropout) acts.attention_keep = arena.Allocate<uint8_t>(sequence);
  acts.residual1 = arena.Allocate<T>(sequence);
  if (config.cross_attention) {
    acts.cross_norm_out = arena.Allocate<T>(row_shape);
    acts.cross_norm = AllocateNormSaved<T>(arena, rows);
    if (training) {
      acts.cross_attention = AllocateCrossAttentionActivations<T>(arena, *config.cross_attention,
                                                                  batch, seq_len, memory_len);
    }
    acts.cross_out = arena.Allocate<T>(sequence);
    if (dropout) acts.cross_keep = arena.Allocate<uint8_t>(sequence);
    acts.residual_cross = arena.Allocate<T>(sequence);
  }
  if (config.placement == NormPlacement::kPre) acts.norm2_out = arena.Allocate<T>(row_shape);
  acts.norm2 = AllocateNormSaved<T>(arena, rows);
  acts.ffn = AllocateFeedForwardActivations<T>(arena, config.ffn, rows);
  if (dropout) acts.ffn_keep = arena.Allocate<uint8_t>(row_shape);
  if (config.placement == NormPlacement::kPost) acts.residual2 = arena.Allocate<T>(sequence);
  return acts;
}

template <typename T>
void BlockForward(const BlockConfig& config, const BlockParams<T>& params, ConstTensorView<T> input,
                  const BlockContext<T>& context, bool training, Random* random,
                  const BlockActivations<T>& acts, TensorView<T> output,
                  const ExecutionContext& ctx) {
  QKV_CHECK(!config.cross_attention || !context.memory.empty(),
            "transformer block: a cross-attention block needs the encoder's output (memory)");
  BlockBody<T>(
      config, params, input, training, random, acts, output,
      [&](ConstTensorView<T> attention_input, TensorView<T> attention_output) {
        SelfAttentionForward<T>(config.attention, params.attention, attention_input, 0,
                                context.key_padding, acts.attention, attention_output, ctx);
      },
      [&](ConstTensorView<T> cross_input, TensorView<T> cross_output) {
        CrossAttentionForward<T>(*config.cross_attention, params.cross_attention, cross_input,
                                 context.memory, context.memory_padding, acts.cross_attention,
                                 cross_output, ctx);
      },
      ctx);
}

template <typename T>
void BlockForwardCached(const BlockConfig& config, const BlockParams<T>& params,
                        ConstTensorView<T> input, TensorView<T> k_cache, TensorView<T> v_cache,
                        int64_t cache_length, TensorView<T> output, const ExecutionContext& ctx) {
  QKV_CHECK(!config.cross_attention,
            "transformer block: cached decoding of a cross-attention block is not supported yet");
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  const BlockActivations<T> acts =
      AllocateBlockActivations<T>(scratch, config, 1, input.dim(1), BlockPass::kDecoding);
  BlockBody<T>(
      config, params, input, /*training=*/false, nullptr, acts, output,
      [&](ConstTensorView<T> attention_input, TensorView<T> attention_output) {
        SelfAttentionForwardCached<T>(config.attention, params.attention, attention_input, k_cache,
                                      v_cache, cache_length, attention_output, ctx);
      },
      [](ConstTensorView<T>, TensorView<T>) {}, ctx);
}

template <typename T>
void BlockForwardStep(const BlockConfig& config, const BlockParams<T>& params,
                      ConstTensorView<T> input, const BlockStepState<T>& state,
                      TensorView<T> output, const ExecutionContext& ctx) {
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  const BlockActivations<T> acts =
      AllocateBlockActivations<T>(scratch, config, input.dim(0), 1, BlockPass::kDecoding);
  BlockBody<T>(
      config, params, input, /*training=*/false, nullptr, acts, output,
      [&](ConstTensorView<T> attention_input, TensorView<T> attention_output) {
        SelfAttentionForwardStep<T>(config.attention, params.attention, attention_input,
                                    state.k_cache, state.v_cache, state.position, attention_output,
                                    ctx);
      },
      [&](ConstTensorView<T> cross_input, TensorView<T> cross_output) {
        CrossAttentionForwardStep<T>(*config.cross_attention, params.cross_attention, cross_input,
                                     state.cross_k, state.cross_v, state.memory_padding,
                                     state.source_of, cross_output, ctx);
      },
      ctx);
}

template <typename T>
void BlockBackward(const BlockConfig& config, const BlockParams<T>& params,
                   ConstTensorView<T> input, const BlockContext<T>& context,
                   const BlockActivations<T>& acts, ConstTensorView<T> d_output,
                   TensorView<T> d_input, TensorView<T> d_memory, const BlockParams<T>& d_params,
                   const ExecutionContext& ctx) {
  const Shape sequence = input.shape();
  const Shape rows{input.dim(0) * input.dim(1), input.dim(2)};
  const bool has_cross = config.cross_attention.has_value();
  QKV_CHECK(!has_cross || (!context.memory.empty() && d_memory.size() == context.memory.size()),
            "transformer block: a cross-attention block's backward needs the memory and its "
            "gradient");
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  const BackwardScratch<T> s = AllocateBackwardScratch<T>(scratch, rows[0], rows[1]);
  TensorView<T> d_residual = s.d_residual, d_branch = s.d_branch, d_branch_input = s.d_branch_input;
  // d_memory += the cross-attention's gradient of the memory, given cross's d_output d_branch;
  // its d_input goes to d_branch_input.
  auto cross_backward = [&](ConstTensorView<T> cross_input) {
    ArenaScope release_memory_gradient(scratch);
    TensorView<T> d_memory_here = scratch.Allocate<T>(context.memory.shape());
    CrossAttentionBackward<T>(*config.cross_attention, params.cross_attention, cross_input,
                              context.memory, context.memory_padding, acts.cross_attention,
                              d_branch.Reshape(sequence), d_branch_input.Reshape(sequence),
                              d_memory_here, d_params.cross_attention, ctx);
    ops::AddForward<T>(d_memory, d_memory_here, d_memory, ctx);
  };

  if (config.placement == NormPlacement::kPre) {
    // output = stream + ffn(N2(stream)), stream = residual_cross or residual1
    const ConstTensorView<T> stream = has_cross ? acts.residual_cross : acts.residual1;
    Copy<T>(d_output, d_branch);
    MaybeDropoutBackward(config, d_branch, acts.ffn_keep, ctx);
    FeedForwardBackward<T>(config.ffn, params.ffn, acts.norm2_out, acts.ffn, d_branch,
                           d_branch_input, d_params.ffn, ctx);
    NormBackward<T>(config.norm, params.norm2, d_branch_input, stream.Reshape(rows), acts.norm2,
                    d_residual, d_params.norm2, ctx);
    ops::AddForward<T>(d_residual, d_output, d_residual, ctx);
    if (has_cross) {
      // residual_cross = residual1 + cross(Nc(residual1))
      Copy<T>(d_residual, d_branch);
      MaybeDropoutBackward(config, d_branch, acts.cross_keep, ctx);
      cross_backward(acts.cross_norm_out.Reshape(sequence));
      NormBackward<T>(config.norm, params.cross_norm, d_branch_input, acts.residual1.Reshape(rows),
                      acts.cross_norm, d_branch, d_params.cross_norm, ctx);
      ops::AddForward<T>(d_residual, d_branch, d_residual, ctx);
    }
    // residual1 = input + attention(N1(input))
    Copy<T>(d_residual, d_branch);
    MaybeDropoutBackward(config, d_branch, acts.attention_keep, ctx);
    SelfAttentionBackward<T>(config.attention, params.attention, acts.norm1_out.Reshape(sequence),
                             0, context.key_padding, acts.attention, d_branch.Reshape(sequence),
                             d_branch_input.Reshape(sequence), d_params.attention, ctx);
    NormBackward<T>(config.norm, params.norm1, d_branch_input, input.Reshape(rows), acts.norm1,
                    d_input.Reshape(rows), d_params.norm1, ctx);
    ops::AddForward<T>(d_input, d_residual, d_input, ctx);
  } else {
    // output = N2(residual2), residual2 = stream + ffn(stream), stream = cross_norm_out or
    // norm1_out
    const ConstTensorView<T> stream = has_cross ? acts.cross_norm_out : acts.norm1_out;
    NormBackward<T>(config.norm, params.norm2, d_output.Reshape(rows), acts.residual2.Reshape(rows),
                    acts.norm2, d_residual, d_params.norm2, ctx);
    Copy<T>(d_residual, d_branch);
    MaybeDropoutBackward(config, d_branch, acts.ffn_keep, ctx);
    FeedForwardBackward<T>(config.ffn, params.ffn, stream, acts.ffn, d_branch, d_branch_input,
                           d_params.ffn, ctx);
    ops::AddForward<T>(d_residual, d_branch_input, d_residual, ctx);  // d stream
    if (has_cross) {
      // cross_norm_out = Nc(residual_cross), residual_cross = norm1_out + cross(norm1_out)
      NormBackward<T>(config.norm, params.cross_norm, d_residual, acts.residual_cross.Reshape(rows),
                      acts.cross_norm, d_branch, d_params.cross_norm,
                      ctx);  // d_branch = d residual_cross
      Copy<T>(d_branch, d_residual);
      MaybeDropoutBackward(config, d_branch, acts.cross_keep, ctx);
      cross_backward(acts.norm1_out.Reshape(sequence));
      ops::AddForward<T>(d_residual, d_branch_input, d_residual, ctx);  // d norm1_out
    }
    // norm1_out = N1(residual1), residual1 = input + attention(input)
    NormBackward<T>(config.norm, params.norm1, d_residual, acts.residual1.Reshape(rows), acts.norm1,
                    d_branch, d_params.norm1, ctx);  // d_branch = d residual1
    Copy<T>(d_branch, d_residual);
    MaybeDropoutBackward(config, d_branch, acts.attention_keep, ctx);
    SelfAttentionBackward<T>(config.attention, params.attention, input, 0, context.key_padding,
                             acts.attention, d_branch.Reshape(sequence), d_input,
                             d_params.attention, ctx);
    ops::AddForward<T>(d_input, d_residual, d_input, ctx);
  }
}

size_t BlockForwardScratchBytes(const BlockConfig& config, int64_t batch, int64_t seq_len,
                                int num_threads, size_t element_size) {
  const size_t self =
      SelfAttentionForwardScratchBytes(config.attention, batch, seq_len, num_threads, element_size);
  if (!config.cross_attention) return self;
  return std::max(self, CrossAttentionForwardScratchBytes(*config.cross_attention, batch, seq_len,
                                                          num_threads, element_size));
}

size_t BlockBackwardScratchBytes(const BlockConfig& config, int64_t batch, int64_t seq_len,
                                 int num_threads, size_t element_size, int64_t memory_len) {
  const int64_t rows = batch * seq_len;
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, rows, config.attention.width);
  });
  // While its own buffers are held, backward runs one sublayer's backward at a time; the
  // cross-attention's with the memory's gradient held besides.
  size_t cross = 0;
  if (config.cross_attention) {
    const size_t d_memory = MeasureBytes(element_size, [&](Arena& arena, auto element) {
      arena.Allocate<decltype(element)>(Shape{batch, memory_len, config.attention.width});
    });
    cross = d_memory + CrossAttentionBackwardScratchBytes(*config.cross_attention, batch, seq_len,
                                                          memory_len, num_threads, element_size);
  }
  return own + std::max({FeedForwardBackwardScratchBytes(config.ffn, rows, element_size),
                         SelfAttentionScratchBytes(config.attention, batch, seq_len, num_threads,
                                                   element_size),
                         cross});
}

size_t BlockForwardCachedScratchBytes(const BlockConfig& config, int64_t new_tokens,
                                      int64_t total_len, size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBlockActivations<decltype(element)>(arena, config, 1, new_tokens, BlockPass::kDecoding);
  });
  return own +
         SelfAttentionCachedScratchBytes(config.attention, new_tokens, total_len, element_size);
}

size_t BlockForwardStepScratchBytes(const BlockConfig& config, int64_t sequences, int64_t total_len,
                                    int64_t memory_len, int num_threads, size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBlockActivations<decltype(element)>(arena, config, sequences, 1, BlockPass::kDecoding);
  });
  size_t sublayer = SelfAttentionStepScratchBytes(config.attention, sequences, total_len,
                                                  num_threads, element_size);
  if (config.cross_attention) {
    sublayer =
        std::max(sublayer, CrossAttentionStepScratchBytes(*config.cross_attention, sequences,
                                                          memory_len, num_threads, element_size));
  }
  return own + sublayer;
}

#define QKV_INSTANTIATE_BLOCK(T)                                                                   \
  template BlockActivations<T> AllocateBlockActivations<T>(Arena&, const BlockConfig&, int64_t,    \
                                                           int64_t, BlockPass, int64_t);           \
  template void BlockForward<T>(const BlockConfig&, const BlockParams<T>&, ConstTensorView<T>,     \
                                const BlockContext<T>&, bool, Random*, const BlockActivations<T>&, \
                                TensorView<T>, const ExecutionContext&);                           \
  template void BlockBackward<T>(const BlockConfig&, const BlockParams<T>&, ConstTensorView<T>,    \
                                 const BlockContext<T>&, const BlockActivations<T>&,               \
                                 ConstTensorView<T>, TensorView<T>, TensorView<T>,                 \
                                 const BlockParams<T>&, const ExecutionContext&);                  \
  template void BlockForwardCached<T>(const BlockConfig&, const BlockParams<T>&,                   \
                                      ConstTensorView<T>, TensorView<T>, TensorView<T>, int64_t,   \
                                      TensorView<T>, const ExecutionContext&);                     \
  template void BlockForwardStep<T>(const BlockConfig&, const BlockParams<T>&, ConstTensorView<T>, \
                                    const BlockStepState<T>&, TensorView<T>,                       \
                                    const ExecutionContext&);
QKV_INSTANTIATE_BLOCK(float)
QKV_INSTANTIATE_BLOCK(double)
#undef QKV_INSTANTIATE_BLOCK

}  // namespace qkv::layers
