#include "qkv/train/trainer.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <vector>

#include "qkv/train/grad_clip.h"

namespace qkv::train {

namespace {

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

// splitmix64's finaliser: a well-mixed 64-bit hash of one value's bits.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Tensors of a state file, one per parameter, in parameter order: "adamw_m.<name>" ("adamw_v.",
// "weights."), or in files written before parameters had qkv's own names, under their GPT-2
// checkpoint names.
std::vector<float> ReadPerParameter(const io::SafetensorsFile& file, const std::string& prefix,
                                    const TrainingTask& task, const std::string& source) {
  std::vector<float> whole;
  for (const auto& [info, view] : task.parameters()) {
    std::string name = prefix + info.name;
    if (std::none_of(file.tensors.begin(), file.tensors.end(),
                     [&](const io::NamedTensor& tensor) { return tensor.name == name; })) {
      if (const std::optional<std::string> legacy = task.LegacyMomentName(info)) {
        name = prefix + *legacy;
      }
    }
    const io::NamedTensor& tensor = file.Get(name);
    QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == view.size(), source, ": '", tensor.name,
              "' has ", tensor.f32.size(), " values, expected ", view.size());
    whole.insert(whole.end(), tensor.f32.begin(), tensor.f32.end());
  }
  return whole;
}

// The float32 parameters in a state file saved with them (the model beside it is rounded).
constexpr const char* kWeightsPrefix = "weights.";

}  // namespace

void TrainOptions::Validate() const {
  QKV_CHECK(steps > 0, "the number of steps must be > 0, got ", steps);
  QKV_CHECK(accum > 0, "the micro-batches per step (accum) must be > 0, got ", accum);
  QKV_CHECK(schedule.max_lr > 0, "the learning rate must be > 0, got ", schedule.max_lr);
  QKV_CHECK(schedule.min_lr >= 0 && schedule.min_lr <= schedule.max_lr,
            "the minimum learning rate must be in [0, the learning rate ", schedule.max_lr,
            "], got ", schedule.min_lr);
  QKV_CHECK(schedule.warmup >= 0, "the warmup must be >= 0 steps, got ", schedule.warmup);
  QKV_CHECK(grad_clip >= 0, "the gradient clipping norm must be >= 0 (0 disables it), got ",
            grad_clip);
  QKV_CHECK(checksum_every >= 0, "the checksum interval must be >= 0 (0: never), got ",
            checksum_every);
  adamw.Validate();
}

nlohmann::json TrainOptions::ResumeKey() const {
  return {{"accum", accum},
          {"lr", schedule.max_lr},
          {"min_lr", schedule.min_lr},
          {"warmup", schedule.warmup},
          {"lr_schedule", ToString(schedule.decay)},
          {"beta1", adamw.beta1},
          {"beta2", adamw.beta2},
          {"eps", adamw.eps},
          {"weight_decay", adamw.weight_decay},
          {"grad_clip", grad_clip},
          {"seed", seed}};
}

Trainer::Trainer(TrainingTask& task, const TrainOptions& options, const ThreadPool& threads,
                 const Communicator* comm)
    : task_(task),
      options_(options),
      sync_(MakeGradientSync(comm, options.shard_optimizer, CountElements(task.parameters()))),
      scratch_(task.ScratchBytes(threads.num_threads())),
      ctx_{&threads, &scratch_},
      param_list_(task.parameters()),
      grad_list_(task.gradients()),
      num_params_(CountElements(param_list_)),
      optimizer_(param_list_, grad_list_, options.adamw, sync_->Shard(num_params_)),
      data_random_(options.seed),
      dropout_random_(options.seed ^ 0x9e3779b97f4a7c15ULL) {
  options_.Validate();
  for (const auto& [info, gradient] : grad_list_) gradient_views_.push_back(gradient);
  if (options_.precision == Precision::kBfloat16) {
    const std::string unavailable = Bf16Unavailable();
    QKV_CHECK(unavailable.empty(), unavailable);
    ctx_.precision = Precision::kBfloat16;
    bf16_weights_ = std::make_unique<Bf16WeightCopies>();
    for (const auto& [info, param] : param_list_) {
      if (param.shape().rank() == 2) bf16_weights_->Add(param, ctx_);
    }
    ctx_.bf16_weights = bf16_weights_.get();
  }
}

void Trainer::RefreshBf16Weights() {
  if (bf16_weights_ != nullptr) bf16_weights_->Refresh(ctx_);
}

nlohmann::json Trainer::ResumeKey() const {
  nlohmann::json key = options_.ResumeKey();
  key.update(task_.ResumeKey(ranks()));
  return key;
}

uint64_t Trainer::ParameterChecksum() const {
  uint64_t sum = 0;
  for (const auto& [info, param] : param_list_) {
    for (float value : param) {
      uint32_t bits;
      std::memcpy(&bits, &value, sizeof(bits));
      sum += Mix(bits);
    }
  }
  return sum;
}

uint64_t Trainer::CheckParametersAgree() {
  const uint64_t checksum = ParameterChecksum();
  const Communicator* comm = sync_->communicator();
  if (comm == nullptr) return checksum;
  uint64_t extremes[2] = {checksum, ~checksum};  // max of ~x is ~(min of x)
  comm->AllreduceMax(extremes, "the parameter checksum");
  QKV_CHECK(extremes[0] == ~extremes[1], "the ranks' parameters diverged at step ", step_,
            ": checksums range from ", ~extremes[1], " to ", extremes[0],
            " (a rank computed differently: mixed builds or hardware?)");
  return checksum;
}

StepResult Trainer::Step() {
  RefreshBf16Weights();  // the parameters may have changed since the last step (loads, updates)
  for (const auto& [info, gradient] : grad_list_) {
    std::memset(gradient.data(), 0, static_cast<size_t>(gradient.size()) * sizeof(float));
  }
  LossSums sums;
  int64_t tokens = 0;
  const float loss_scale = 1.0f / static_cast<float>(options_.accum);
  for (int64_t micro = 0; micro < options_.accum; ++micro) {
    // With several ranks each its own dropout masks, from a seed drawn from the shared stream
    // (so the saved state does not depend on the number of ranks).
    Random rank_dropout(0);
    Random* dropout = &dropout_random_;
    if (sync_->ranks() > 1) {
      if (task_.uses_dropout()) {
        rank_dropout = Random(dropout_random_.NextU64() +
                              0x632be59bd9b4e019ULL * static_cast<uint64_t>(sync_->rank()));
      }
      dropout = &rank_dropout;
    }
    const MicroBatchLoss measured =
        task_.TrainMicroBatch(data_random_, dropout, loss_scale, slice(), ctx_);
    sums.mean += measured.loss;
    sums.weighted += measured.loss * measured.counted;
    sums.counted += measured.counted;
    tokens += measured.tokens;
  }
  sums.mean /= static_cast<double>(options_.accum);
  const double loss = sync_->Synchronize(sums, grad_list_);

  const double learning_rate = options_.schedule.At(step_);
  ++step_;
  // Clipping is folded into the update: one pass for the norm, one for AdamW.
  const double grad_norm = GlobalNorm(gradient_views_, ctx_);
  const float grad_scale = options_.grad_clip > 0 ? ClipScale(grad_norm, options_.grad_clip) : 1.0f;
  optimizer_.Update(step_, learning_rate, grad_scale, ctx_);
  sync_->ShareParameters(param_list_);
  if (sync_->ranks() > 1 && options_.checksum_every > 0 && step_ % options_.checksum_every == 0) {
    CheckParametersAgree();
  }
  return {loss, learning_rate, grad_norm, tokens};
}

double Trainer::Evaluate(int64_t batches, uint64_t seed) {
  QKV_CHECK(batches > 0, "the number of evaluation batches must be > 0, got ", batches);
  const int64_t count = task_.EvaluationBatches(batches);
  RefreshBf16Weights();
  Random random(seed);
  LossSums sums;
  for (int64_t b = 0; b < count; ++b) {
    const MicroBatchLoss measured = task_.EvaluateMicroBatch(b, count, random, slice(), ctx_);
    sums.mean += measured.loss;
    sums.weighted += measured.loss * measured.counted;
    sums.counted += measured.counted;
  }
  sums.mean /= static_cast<double>(count);
  if (task_.token_weighted_evaluation() && sync_->ranks() == 1) {
    return sums.counted > 0 ? sums.weighted / sums.counted : 0.0;
  }
  return sync_->ReduceLoss(sums);
}

io::SafetensorsFile Trainer::SaveState(bool with_weights) const {
  io::SafetensorsFile file;
  // Every rank holds the same parameters: rank 0 writes its own.
  if (with_weights && sync_->rank() == 0) {
    for (const auto& [info, view] : param_list_) {
      io::NamedTensor tensor;
      tensor.name = kWeightsPrefix + info.name;
      for (int i = 0; i < info.shape.rank(); ++i) tensor.shape.push_back(info.shape[i]);
      tensor.f32.assign(view.data(), view.data() + view.size());
      file.tensors.push_back(std::move(tensor));
    }
  }
  for (int index = 0; index < 2; ++index) {
    const std::vector<float> whole = sync_->GatherToRoot(optimizer_.moment(index), num_params_);
    if (whole.empty() && num_params_ > 0) continue;  // not rank 0: it writes nothing
    const float* flat = whole.data();
    for (const auto& [info, view] : param_list_) {
      io::NamedTensor tensor;
      tensor.name = (index == 0 ? "adamw_m." : "adamw_v.") + info.name;
      for (int i = 0; i < info.shape.rank(); ++i) tensor.shape.push_back(info.shape[i]);
      tensor.f32.assign(flat, flat + view.size());
      file.tensors.push_back(std::move(tensor));
      flat += view.size();
    }
  }
  if (file.tensors.empty()) return {};
  file.metadata["step"] = std::to_string(step_);
  file.metadata["data_random"] = StateToText(data_random_.State());
  file.metadata["dropout_random"] = StateToText(dropout_random_.State());
  file.metadata["options"] = ResumeKey().dump();
  const nlohmann::json data_state = task_.DataState();
  if (!data_state.empty()) file.metadata["data_state"] = data_state.dump();
  file.metadata["ranks"] = std::to_string(ranks());
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
  const nlohmann::json current = ResumeKey();
  for (const auto& [key, value] : current.items()) {
    QKV_CHECK(saved_options.contains(key) && saved_options[key] == value, source,
              ": the run was started with ", key, " = ",
              saved_options.contains(key) ? saved_options[key].dump() : "(unset)",
              " but is resumed with ", value.dump(),
              "; resume with the same training settings (only the number of steps may change, "
              "and it moves the end of the learning-rate decay; batch counts the windows of all "
              "ranks together)");
  }
  const std::vector<float> first = ReadPerParameter(file, "adamw_m.", task_, source);
  const std::vector<float> second = ReadPerParameter(file, "adamw_v.", task_, source);
  optimizer_.LoadMoments(first, second);
  const bool with_weights = std::any_of(
      file.tensors.begin(), file.tensors.end(),
      [](const io::NamedTensor& tensor) { return tensor.name.starts_with(kWeightsPrefix); });
  if (with_weights) {
    const std::vector<float> weights = ReadPerParameter(file, kWeightsPrefix, task_, source);
    const float* flat = weights.data();
    for (const auto& [info, view] : param_list_) {
      std::copy(flat, flat + view.size(), view.data());
      flat += view.size();
    }
  }
  try {
    step_ = std::stoll(file.metadata.at("step"));
  } catch (const std::exception&) {
    throw Error(internal::StrCat(source, ": malformed step '", file.metadata.at("step"), "'"));
  }
  data_random_.SetState(StateFromText(file.metadata.at("data_random"), source));
  dropout_random_.SetState(StateFromText(file.metadata.at("dropout_random"), source));
  nlohmann::json data_state = nlohmann::json::object();
  if (file.metadata.count("data_state") == 1) {
    try {
      data_state = nlohmann::json::parse(file.metadata.at("data_state"));
    } catch (const nlohmann::json::exception&) {
      throw Error(internal::StrCat(source, ": malformed data_state metadata"));
    }
  }
  task_.RestoreDataState(data_state, source);
}

}  // namespace qkv::train
