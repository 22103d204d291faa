#include "qkv/train/language_model_task.h"

#include "qkv/model/checkpoint_layout.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/train/batch_sampler.h"

namespace qkv::train {

namespace {

int64_t ResolveSeqLen(const model::ModelConfig& config, int64_t seq_len) {
  QKV_CHECK(seq_len >= 0, "the training context must be > 0, got ", seq_len);
  const int64_t resolved = seq_len > 0 ? seq_len : config.context;
  QKV_CHECK(resolved <= config.context || config.position != model::PositionEncoding::kLearned,
            "a training window of ", resolved,
            " tokens exceeds the model's learned position table of ", config.context);
  return resolved;
}

size_t MeasureBuffers(const model::ModelConfig& config, int64_t batch, int64_t seq_len) {
  QKV_CHECK(batch > 0, "the batch must be > 0 windows, got ", batch);
  Arena measure = Arena::MeasureOnly();
  model::AllocateModelParams<float>(measure, config);
  model::AllocateModelActivations<float>(measure, config, batch, seq_len);
  measure.Allocate<int32_t>(Shape{batch, seq_len});
  measure.Allocate<int32_t>(Shape{batch, seq_len});
  return measure.used_bytes();
}

int64_t CountTargets(ConstTensorView<int32_t> targets) {
  int64_t counted = 0;
  for (int32_t target : targets) counted += target != ops::kDefaultIgnoreIndex ? 1 : 0;
  return counted;
}

}  // namespace

LanguageModelTask::LanguageModelTask(model::Model& model, int64_t batch, int64_t seq_len,
                                     std::span<const int32_t> train_tokens,
                                     std::span<const int32_t> val_tokens)
    : model_(model),
      batch_(batch),
      seq_len_(ResolveSeqLen(model.config, seq_len)),
      train_tokens_(train_tokens),
      val_tokens_(val_tokens),
      arena_(MeasureBuffers(model.config, batch, seq_len_)),
      grads_(model::AllocateModelParams<float>(arena_, model.config)),
      acts_(model::AllocateModelActivations<float>(arena_, model.config, batch, seq_len_)),
      inputs_(arena_.Allocate<int32_t>(Shape{batch, seq_len_})),
      targets_(arena_.Allocate<int32_t>(Shape{batch, seq_len_})),
      param_list_(ListParameters(model.config, model.params)),
      grad_list_(ListParameters(model.config, grads_)) {}

size_t LanguageModelTask::ScratchBytes(int num_threads) const {
  return model::ModelScratchBytes(model_.config, batch_, seq_len_, num_threads, sizeof(float));
}

void LanguageModelTask::SampleSlice(std::span<const int32_t> tokens, Random& random,
                                    const RankSlice& slice) {
  if (slice.ranks == 1) return SampleBatch(tokens, random, inputs_, targets_);
  const int64_t count = static_cast<int64_t>(tokens.size());
  QKV_CHECK(count >= seq_len_ + 1, "the data has ", count, " tokens, fewer than one window of ",
            seq_len_ + 1, " (context ", seq_len_, " + 1); use more data or a shorter context");
  const uint64_t starts = static_cast<uint64_t>(count - seq_len_);
  for (int64_t i = 0; i < batch_ * slice.rank; ++i) random.Below(starts);
  SampleBatch(tokens, random, inputs_, targets_);
  for (int64_t i = 0; i < batch_ * (slice.ranks - 1 - slice.rank); ++i) random.Below(starts);
}

MicroBatchLoss LanguageModelTask::Measure(double loss, const RankSlice& slice) const {
  return {loss, static_cast<double>(CountTargets(targets_)), batch_ * seq_len_ * slice.ranks};
}

MicroBatchLoss LanguageModelTask::TrainMicroBatch(Random& data_random, Random* dropout_random,
                                                  float loss_scale, const RankSlice& slice,
                                                  const ExecutionContext& ctx) {
  if (batch_source_) {
    batch_source_(inputs_, targets_);
  } else {
    SampleSlice(train_tokens_, data_random, slice);
  }
  const double loss = model::ModelForward<float>(model_.config, model_.params, inputs_, targets_,
                                                 true, dropout_random, acts_, ctx);
  model::ModelBackward<float>(model_.config, model_.params, inputs_, targets_, loss_scale, acts_,
                              grads_, ctx);
  return Measure(loss, slice);
}

MicroBatchLoss LanguageModelTask::EvaluateMicroBatch(int64_t /*index*/, int64_t /*batches*/,
                                                     Random& random, const RankSlice& slice,
                                                     const ExecutionContext& ctx) {
  SampleSlice(val_tokens_, random, slice);
  const double loss = model::ModelForward<float>(model_.config, model_.params, inputs_, targets_,
                                                 false, nullptr, acts_, ctx);
  return Measure(loss, slice);
}

nlohmann::json LanguageModelTask::ResumeKey(int ranks) const {
  return {{"batch", batch_ * ranks}, {"seq_len", seq_len_}};
}

std::optional<std::string> LanguageModelTask::LegacyMomentName(
    const model::ParameterInfo& info) const {
  return model::Gpt2Layout().PiecesOf(info).front().file_name;
}

}  // namespace qkv::train
