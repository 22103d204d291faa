#include "qkv/train/trainer.h"

#include <cstring>
#include <vector>

#include "qkv/train/batch_sampler.h"
#include "qkv/train/grad_clip.h"

namespace qkv::train {

namespace {

using model::ModelParams;
using model::ParameterInfo;

struct Buffers {
  ModelParams<float> grads, moment1, moment2;
  model::ModelActivations<float> acts;
  TensorView<int32_t> inputs, targets;
};

Buffers AllocateBuffers(Arena& arena, const model::ModelConfig& config, int64_t batch,
                        int64_t seq_len) {
  Buffers buffers;
  buffers.grads = model::AllocateModelParams<float>(arena, config);
  buffers.moment1 = model::AllocateModelParams<float>(arena, config);
  buffers.moment2 = model::AllocateModelParams<float>(arena, config);
  buffers.acts = model::AllocateModelActivations<float>(arena, config, batch, seq_len);
  buffers.inputs = arena.Allocate<int32_t>(Shape{batch, seq_len});
  buffers.targets = arena.Allocate<int32_t>(Shape{batch, seq_len});
  return buffers;
}

size_t MeasureBuffers(const model::ModelConfig& config, int64_t batch, int64_t seq_len) {
  Arena measure = Arena::MeasureOnly();
  AllocateBuffers(measure, config, batch, seq_len);
  return measure.used_bytes();
}

// Every (info, view) of a parameter set, in ForEachParameter order.
ParameterList Flatten(const model::ModelConfig& config, ModelParams<float> params) {
  ParameterList list;
  model::ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<float>& slot) {
    list.emplace_back(info, slot);
  });
  return list;
}

int64_t ResolveSeqLen(const model::ModelConfig& config, const TrainOptions& options) {
  const int64_t seq_len = options.seq_len > 0 ? options.seq_len : config.context;
  QKV_CHECK(seq_len <= config.context || config.position != model::PositionEncoding::kLearned,
            "a training window of ", seq_len,
            " tokens exceeds the model's learned position "
            "table of ",
            config.context);
  return seq_len;
}

std::string StateToText(const std::array<uint64_t, 4>& state) {
  std::string text;
  for (uint64_t word : state) text += std::to_string(word) + " ";
  return text;
}

std::array<uint64_t, 4> StateFromText(const std::string& text, const std::string& source) {
  std::array<uint64_t, 4> state{};
  size_t position = 0;
  for (uint64_t& word : state) {
    size_t used = 0;
    try {
      word = std::stoull(text.substr(position), &used);
    } catch (const std::exception&) {
      throw Error(internal::StrCat(source, ": malformed random state '", text, "'"));
    }
    position += used;
  }
  return state;
}

}  // namespace

void TrainOptions::Validate() const {
  QKV_CHECK(batch > 0, "--batch must be > 0, got ", batch);
  QKV_CHECK(seq_len >= 0, "the training context must be > 0, got ", seq_len);
  QKV_CHECK(steps > 0, "--steps must be > 0, got ", steps);
  QKV_CHECK(accum > 0, "--accum must be > 0, got ", accum);
  QKV_CHECK(schedule.max_lr > 0, "--lr must be > 0, got ", schedule.max_lr);
  QKV_CHECK(schedule.min_lr >= 0 && schedule.min_lr <= schedule.max_lr,
            "--min-lr must be in [0, --lr], got ", schedule.min_lr);
  QKV_CHECK(schedule.warmup >= 0, "--warmup must be >= 0, got ", schedule.warmup);
  QKV_CHECK(grad_clip >= 0, "--grad-clip must be >= 0 (0 disables it), got ", grad_clip);
  adamw.Validate();
}

nlohmann::json TrainOptions::ResumeKey() const {
  return {{"batch", batch},
          {"seq_len", seq_len},
          {"accum", accum},
          {"lr", schedule.max_lr},
          {"min_lr", schedule.min_lr},
          {"warmup", schedule.warmup},
          {"beta1", adamw.beta1},
          {"beta2", adamw.beta2},
          {"eps", adamw.eps},
          {"weight_decay", adamw.weight_decay},
          {"grad_clip", grad_clip},
          {"seed", seed}};
}

Trainer::Trainer(model::Model& model, const TrainOptions& options, const ThreadPool& threads)
    : model_(model),
      options_(options),
      seq_len_(ResolveSeqLen(model.config, options)),
      arena_(MeasureBuffers(model.config, options.batch, seq_len_)),
      scratch_(model::ModelScratchBytes(model.config, options.batch, seq_len_,
                                        threads.num_threads(), sizeof(float))),
      ctx_{&threads, &scratch_},
      data_random_(options.seed),
      dropout_random_(options.seed ^ 0x9e3779b97f4a7c15ULL) {
  options_.Validate();
  options_.seq_len = seq_len_;
  Buffers buffers = AllocateBuffers(arena_, model.config, options.batch, seq_len_);
  grads_ = buffers.grads;
  moment1_ = buffers.moment1;
  moment2_ = buffers.moment2;
  acts_ = buffers.acts;
  inputs_ = buffers.inputs;
  targets_ = buffers.targets;
  param_list_ = Flatten(model.config, model.params);
  grad_list_ = Flatten(model.config, grads_);
  moment1_list_ = Flatten(model.config, moment1_);
  moment2_list_ = Flatten(model.config, moment2_);
  for (const auto& [info, gradient] : grad_list_) gradient_views_.push_back(gradient);
}

StepResult Trainer::Step(std::span<const int32_t> train_tokens) {
  const model::ModelConfig& config = model_.config;
  for (const auto& [info, gradient] : grad_list_) {
    std::memset(gradient.data(), 0, static_cast<size_t>(gradient.size()) * sizeof(float));
  }

  double loss_sum = 0;
  const float loss_scale = 1.0f / static_cast<float>(options_.accum);
  for (int64_t micro = 0; micro < options_.accum; ++micro) {
    SampleBatch(train_tokens, data_random_, inputs_, targets_);
    loss_sum += model::ModelForward<float>(config, model_.params, inputs_, targets_, true,
                                           &dropout_random_, acts_, ctx_);
    model::ModelBackward<float>(config, model_.params, inputs_, targets_, loss_scale, acts_, grads_,
                                ctx_);
  }

  double grad_norm;
  if (options_.grad_clip > 0) {
    grad_norm = ClipGradientsByGlobalNorm(gradient_views_, options_.grad_clip, ctx_);
  } else {
    grad_norm = GlobalNorm({gradient_views_.begin(), gradient_views_.end()}, ctx_);
  }

  const double learning_rate = options_.schedule.At(step_);
  ++step_;
  for (size_t i = 0; i < param_list_.size(); ++i) {
    AdamWUpdate(param_list_[i].second, grad_list_[i].second, moment1_list_[i].second,
                moment2_list_[i].second, step_, learning_rate, param_list_[i].first.decayed,
                options_.adamw, ctx_);
  }
  return {loss_sum / static_cast<double>(options_.accum), learning_rate, grad_norm};
}

double Trainer::Evaluate(std::span<const int32_t> tokens, int64_t batches, uint64_t seed) {
  QKV_CHECK(batches > 0, "the number of evaluation batches must be > 0, got ", batches);
  Random random(seed);
  double total = 0;
  for (int64_t b = 0; b < batches; ++b) {
    SampleBatch(tokens, random, inputs_, targets_);
    total += model::ModelForward<float>(model_.config, model_.params, inputs_, targets_, false,
                                        nullptr, acts_, ctx_);
  }
  return total / static_cast<double>(batches);
}

io::SafetensorsFile Trainer::SaveState() const {
  io::SafetensorsFile file;
  for (const auto& [prefix, moments] :
       {std::pair<const char*, const ParameterList*>{"adamw_m.", &moment1_list_},
        {"adamw_v.", &moment2_list_}}) {
    for (const auto& [info, view] : *moments) {
      io::NamedTensor tensor;
      tensor.name = prefix + info.name;
      for (int i = 0; i < info.shape.rank(); ++i) tensor.shape.push_back(info.shape[i]);
      tensor.f32.assign(view.begin(), view.end());
      file.tensors.push_back(std::move(tensor));
    }
  }
  file.metadata["step"] = std::to_string(step_);
  file.metadata["data_random"] = StateToText(data_random_.State());
  file.metadata["dropout_random"] = StateToText(dropout_random_.State());
  file.metadata["options"] = options_.ResumeKey().dump();
  return file;
}

void Trainer::LoadState(const io::SafetensorsFile& file, const std::string& source) {
  for (const char* key : {"step", "data_random", "dropout_random", "options"}) {
    QKV_CHECK(file.metadata.count(key) == 1, source, ": metadata '", key,
              "' is missing (not a qkv training state?)");
  }
  nlohmann::json saved_options;
  try {
    saved_options = nlohmann::json::parse(file.metadata.at("options"));
  } catch (const nlohmann::json::exception&) {
    throw Error(internal::StrCat(source, ": malformed options metadata"));
  }
  const nlohmann::json current = options_.ResumeKey();
  for (const auto& [key, value] : current.items()) {
    QKV_CHECK(saved_options.contains(key) && saved_options[key] == value, source,
              ": the run was started with ", key, " = ",
              saved_options.contains(key) ? saved_options[key].dump() : "(unset)",
              " but is resumed with ", value.dump(),
              "; resume with the same training flags (only --steps may change, and it moves "
              "the end of the learning-rate decay)");
  }
  for (const auto& [prefix, moments] :
       {std::pair<const char*, const ParameterList*>{"adamw_m.", &moment1_list_},
        {"adamw_v.", &moment2_list_}}) {
    for (const auto& [info, view] : *moments) {
      const io::NamedTensor& tensor = file.Get(prefix + info.name);
      QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == view.size(), source, ": '", tensor.name,
                "' has ", tensor.f32.size(), " values, expected ", view.size());
      std::memcpy(view.data(), tensor.f32.data(), tensor.f32.size() * sizeof(float));
    }
  }
  try {
    step_ = std::stoll(file.metadata.at("step"));
  } catch (const std::exception&) {
    throw Error(internal::StrCat(source, ": malformed step '", file.metadata.at("step"), "'"));
  }
  data_random_.SetState(StateFromText(file.metadata.at("data_random"), source));
  dropout_random_.SetState(StateFromText(file.metadata.at("dropout_random"), source));
}

}  // namespace qkv::train
