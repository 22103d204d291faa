#include "qkv/train/translation_task.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "qkv/core/check.h"
#include "qkv/core/memory.h"

namespace qkv::train {

namespace {

using model::EncoderDecoderConfig;

// The (B, S, T) BuildPairBatch pads the pairs at indices to.
std::array<int64_t, 3> BatchShape(std::span<const TokenizedPair> pairs,
                                  std::span<const int64_t> indices) {
  int64_t source = 0, target = 0;
  for (int64_t index : indices) {
    const TokenizedPair& pair = pairs[static_cast<size_t>(index)];
    source = std::max(source, static_cast<int64_t>(pair.source.size()));
    target = std::max(target, static_cast<int64_t>(pair.target.size()) + 1);
  }
  return {static_cast<int64_t>(indices.size()), source, target};
}

void CheckPairs(std::span<const TokenizedPair> pairs, const EncoderDecoderConfig& config,
                const char* set) {
  for (size_t i = 0; i < pairs.size(); ++i) {
    const int64_t source = static_cast<int64_t>(pairs[i].source.size());
    const int64_t target = static_cast<int64_t>(pairs[i].target.size()) + 1;
    QKV_CHECK(source >= 1, "the ", set, " pair ", i + 1, " has an empty source (not even </s>)");
    QKV_CHECK(source <= config.max_positions && target <= config.max_positions, "the ", set,
              " pair ", i + 1, " is ", source, " source and ", target,
              " target tokens (with </s> and the start token), more than the model's ",
              config.max_positions, " positions; drop such pairs or raise --max-positions");
  }
}

size_t ActivationBytes(const EncoderDecoderConfig& config, const std::array<int64_t, 3>& shape) {
  Arena measure = Arena::MeasureOnly();
  model::AllocateEncoderDecoderActivations<float>(measure, config, shape[0], shape[1], shape[2]);
  return measure.used_bytes();
}

}  // namespace

void TranslationTaskOptions::Validate() const {
  QKV_CHECK(batch_tokens >= 1, "the batch must be >= 1 token, got ", batch_tokens);
  QKV_CHECK(label_smoothing >= 0 && label_smoothing < 1,
            "the label smoothing must be in [0, 1), got ", label_smoothing);
}

TranslationTask::TranslationTask(model::LoadedEncoderDecoder& model,
                                 std::span<const TokenizedPair> train,
                                 std::span<const TokenizedPair> val,
                                 const TranslationTaskOptions& options)
    : model_(model),
      train_(train),
      val_(val),
      options_(options),
      ids_{model.config.pad_id, model.config.decoder_start_id, model.config.eos_id},
      grad_arena_(0),
      activation_arena_(0) {
  options_.Validate();
  QKV_CHECK(!train.empty(), "there are no training pairs");
  QKV_CHECK(!val.empty(), "there are no validation pairs");
  CheckPairs(train, model.config, "training");
  CheckPairs(val, model.config, "validation");
  // The contents of the batches do not depend on the random stream, only their order.
  Random unused(0);
  val_plan_ = PlanTokenBatches(val, options_.batch_tokens, unused);
  std::sort(val_plan_.begin(), val_plan_.end());
  for (const std::vector<int64_t>& batch : PlanTokenBatches(train, options_.batch_tokens, unused)) {
    batch_shapes_.push_back(BatchShape(train, batch));
  }
  for (const std::vector<int64_t>& batch : val_plan_) {
    batch_shapes_.push_back(BatchShape(val, batch));
  }
  size_t activation_bytes = 0;
  std::array<int64_t, 3> largest{};
  for (const auto& shape : batch_shapes_) {
    const size_t bytes = ActivationBytes(model.config, shape);
    if (bytes > activation_bytes) {
      activation_bytes = bytes;
      largest = shape;
    }
  }
  Arena measure = Arena::MeasureOnly();
  model::EncoderDecoderParams<float> measured;
  model::ForEachParameter(model.config, measured, layers::AllocateFrom<float>(measure));
  // Refused before any of it is allocated, with the batch that sets the size.
  CheckFitsInMemory(
      activation_bytes + measure.used_bytes(),
      internal::StrCat("training: the gradients and the activations of the largest "
                       "batch (",
                       largest[0], " pairs of ", largest[1], " source and ", largest[2],
                       " target positions; batches of <= ", options_.batch_tokens, " tokens)"));
  activation_arena_ = Arena(activation_bytes);
  grad_arena_ = Arena(measure.used_bytes());
  model::ForEachParameter(model.config, grads_, layers::AllocateFrom<float>(grad_arena_));
  param_list_ = ListParameters(model.config, model.params);
  grad_list_ = ListParameters(model.config, grads_);
}

size_t TranslationTask::ScratchBytes(int num_threads) const {
  size_t bytes = 0;
  for (const auto& shape : batch_shapes_) {
    bytes =
        std::max(bytes, model::EncoderDecoderScratchBytes(model_.config, shape[0], shape[1],
                                                          shape[2], num_threads, sizeof(float)));
  }
  return bytes;
}

MicroBatchLoss TranslationTask::Run(std::span<const TokenizedPair> pairs,
                                    std::span<const int64_t> indices, bool training,
                                    Random* dropout_random, float loss_scale,
                                    const RankSlice& slice, const ExecutionContext& ctx) {
  int64_t tokens = 0;
  for (int64_t index : indices) {
    tokens += static_cast<int64_t>(pairs[static_cast<size_t>(index)].target.size()) + 1;
  }
  const int64_t rows = static_cast<int64_t>(indices.size());
  const int64_t begin = rows * slice.rank / slice.ranks;
  const int64_t end = rows * (slice.rank + 1) / slice.ranks;
  if (begin == end) return {0.0, 0.0, tokens};  // more ranks than pairs in this batch
  const PairBatch batch = BuildPairBatch(
      pairs, indices.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)), ids_);
  activation_arena_.Reset();
  const model::EncoderDecoderActivations<float> acts =
      model::AllocateEncoderDecoderActivations<float>(activation_arena_, model_.config, batch.batch,
                                                      batch.source_len, batch.target_len);
  const float smoothing = training ? static_cast<float>(options_.label_smoothing) : 0.0f;
  const double loss = model::EncoderDecoderForward<float>(
      model_.config, model_.params, batch.SourceIds(), batch.DecoderInput(), batch.Labels(),
      training, dropout_random, acts, ctx, smoothing);
  if (training) {
    model::EncoderDecoderBackward<float>(model_.config, model_.params, batch.SourceIds(),
                                         batch.DecoderInput(), batch.Labels(), loss_scale, acts,
                                         grads_, ctx, smoothing);
  }
  return {loss, static_cast<double>(batch.target_tokens), tokens};
}

void TranslationTask::BeginEpoch(Random& data_random) {
  epoch_random_state_ = data_random.State();
  plan_ = PlanTokenBatches(train_, options_.batch_tokens, data_random);
  next_batch_ = 0;
  ++epoch_;
}

MicroBatchLoss TranslationTask::TrainMicroBatch(Random& data_random, Random* dropout_random,
                                                float loss_scale, const RankSlice& slice,
                                                const ExecutionContext& ctx) {
  if (next_batch_ >= static_cast<int64_t>(plan_.size())) BeginEpoch(data_random);
  const std::vector<int64_t>& indices = plan_[static_cast<size_t>(next_batch_++)];
  return Run(train_, indices, true, dropout_random, loss_scale, slice, ctx);
}

MicroBatchLoss TranslationTask::EvaluateMicroBatch(int64_t index, int64_t /*batches*/,
                                                   Random& /*random*/, const RankSlice& slice,
                                                   const ExecutionContext& ctx) {
  QKV_CHECK(index >= 0 && index < validation_batches(), "validation batch ", index,
            " is outside the ", validation_batches(), " batches of the validation set");
  return Run(val_, val_plan_[static_cast<size_t>(index)], false, nullptr, 0.0f, slice, ctx);
}

nlohmann::json TranslationTask::ResumeKey(int /*ranks*/) const {
  return {{"batch_tokens", options_.batch_tokens}, {"label_smoothing", options_.label_smoothing}};
}

nlohmann::json TranslationTask::DataState() const {
  return {{"epoch", epoch_},
          {"next_batch", next_batch_},
          {"epoch_random",
           std::vector<uint64_t>(epoch_random_state_.begin(), epoch_random_state_.end())}};
}

void TranslationTask::RestoreDataState(const nlohmann::json& state, const std::string& source) {
  try {
    epoch_ = state.at("epoch").get<int64_t>();
    next_batch_ = state.at("next_batch").get<int64_t>();
    const std::vector<uint64_t> words = state.at("epoch_random").get<std::vector<uint64_t>>();
    QKV_CHECK(words.size() == 4, source, ": the data state's epoch_random has ", words.size(),
              " words, expected 4");
    std::copy(words.begin(), words.end(), epoch_random_state_.begin());
  } catch (const nlohmann::json::exception& error) {
    throw Error(internal::StrCat(source, ": malformed data_state metadata (", error.what(),
                                 "; not a translation run's state?)"));
  }
  plan_.clear();
  if (epoch_ == 0) return;
  Random replay(0);
  replay.SetState(epoch_random_state_);
  plan_ = PlanTokenBatches(train_, options_.batch_tokens, replay);
  QKV_CHECK(next_batch_ >= 0 && next_batch_ <= static_cast<int64_t>(plan_.size()), source,
            ": the data state is at batch ", next_batch_, " of an epoch of ", plan_.size(),
            " batches: the training pairs differ from the run's");
}

}  // namespace qkv::train
