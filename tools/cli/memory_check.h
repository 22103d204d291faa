// Refusing a training run whose flags ask for more memory than the machine has, before anything
// is allocated: a model is created and initialised before the trainer sizes its buffers, so
// without this a run far too big for the machine first spends seconds to minutes filling its
// parameters, or is killed by the OOM killer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "qkv/core/arena.h"
#include "qkv/core/buffer.h"
#include "qkv/core/check.h"
#include "qkv/core/memory.h"
#include "qkv/model/model_config.h"
#include "qkv/model/parameters.h"
#include "qkv/model/transformer.h"

namespace qkv::cli {

// Empty when training `config` on batches of `batch` windows fits in the available memory, else
// why not. A lower bound: parameters, gradients and the two AdamW moments, plus the
// activations of one micro-batch.
inline std::string TrainingMemoryProblem(const model::ModelConfig& config, int64_t batch) {
  const size_t available = static_cast<size_t>(AvailableMemoryBytes());
  if (available == 0) return std::string();
  size_t needed = 0;
  try {
    Arena measure = Arena::MeasureOnly();
    model::AllocateModelActivations<float>(measure, config, batch, config.context);
    const size_t parameters = model::ParameterBytes(config, sizeof(float));
    if (parameters > (SIZE_MAX - measure.used_bytes()) / 4) return "more than 2^64 bytes";
    needed = 4 * parameters + measure.used_bytes();
  } catch (const Error&) {
    return "more than 2^64 bytes";  // a shape or an arena past 2^64
  }
  if (needed <= available) return std::string();
  char text[128];
  std::snprintf(text, sizeof(text), "at least %.1f GiB, but %.1f GiB of memory is available",
                static_cast<double>(needed) / (1ull << 30),
                static_cast<double>(available) / (1ull << 30));
  return text;
}

}  // namespace qkv::cli
