#include "qkv/train/trainer.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "qkv/model/checkpoint_layout.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/train/batch_sampler.h"
#include "qkv/train/grad_clip.h"

namespace qkv::train {

namespace {

using model::ModelParams;
using model::ParameterInfo;

struct Buffers {
  ModelParams<float> grads;
  model::ModelActivations<float> acts;
  TensorView<int32_t> inputs, targets;
};

Buffers AllocateBuffers(Arena& arena, const model::ModelConfig& config, int64_t batch,
                        int64_t seq_len) {
  Buffers buffers;
  buffers.grads = model::AllocateModelParams<float>(arena, config);
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

// splitmix64's finaliser: a well-mixed 64-bit hash of one value's bits.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t CountTargets(ConstTensorView<int32_t> targets) {
  int64_t counted = 0;
  for (int32_t target : targets) counted += target != ops::kDefaultIgnoreIndex ? 1 : 0;
  return counted;
}

// The moments of a state file, in parameter order: "adamw_m.<name>" ("adamw_v."), or in files
// written before parameters had qkv's own names, under their GPT-2 checkpoint names.
std::vector<float> ReadMoments(const io::SafetensorsFile& file, const std::string& prefix,
                               const ParameterList& params, const std::string& source) {
  std::vector<float> whole;
  for (const auto& [info, view] : params) {
    std::string name = prefix + info.name;
    if (std::none_of(file.tensors.begin(), file.tensors.end(),
                     [&](const io::NamedTensor& tensor) { return tensor.name == name; })) {
      name = prefix + model::Gpt2Layout().PiecesOf(info).front().file_name;
    }
    const io::NamedTensor& tensor = file.Get(name);
    QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == view.size(), source, ": '", tensor.name,
              "' has ", tensor.f32.size(), " values, expected ", view.size());
    whole.insert(whole.end(), tensor.f32.begin(), tensor.f32.end());
  }
  return whole;
}

}  // namespace

void TrainOptions::Validate() const {
  QKV_CHECK(batch > 0, "the batch must be > 0 windows, got ", batch);
  QKV_CHECK(seq_len >= 0, "the training context must be > 0, got ", seq_len);
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

nlohmann::json TrainOptions::ResumeKey(int ranks) const {
  return {{"batch", batch * ranks},
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

Trainer::Trainer(model::Model& model, const TrainOptions& options, const ThreadPool& threads,
                 const Communicator* comm)
    : model_(model),
      options_(options),
      seq_len_(ResolveSeqLen(model.config, options)),
      sync_(MakeGradientSync(comm, options.shard_optimizer, model::CountParameters(model.config))),
      arena_(MeasureBuffers(model.config, options.batch, seq_len_)),
      scratch_(model::ModelScratchBytes(model.config, options.batch, seq_len_,
                                        threads.num_threads(), sizeof(float))),
      ctx_{&threads, &scratch_},
      grads_(model::AllocateModelParams<float>(arena_, model.config)),
      acts_(model::AllocateModelActivations<float>(arena_, model.config, options.batch, seq_len_)),
      inputs_(arena_.Allocate<int32_t>(Shape{options.batch, seq_len_})),
      targets_(arena_.Allocate<int32_t>(Shape{options.batch, seq_len_})),
      param_list_(ListParameters(model.config, model.params)),
      grad_list_(ListParameters(model.config, grads_)),
      num_params_(CountElements(param_list_)),
      optimizer_(param_list_, grad_list_, options.adamw, sync_->Shard(num_params_)),
      data_random_(options.seed),
      dropout_random_(options.seed ^ 0x9e3779b97f4a7c15ULL) {
  options_.Validate();
  options_.seq_len = seq_len_;
  for (const auto& [info, gradient] : grad_list_) gradient_views_.push_back(gradient);
}

void Trainer::SampleSlice(std::span<const int32_t> tokens, Random& random,
                          TensorView<int32_t> inputs, TensorView<int32_t> targets) const {
  if (sync_->ranks() == 1) return SampleBatch(tokens, random, inputs, targets);
  const int64_t batch = inputs.dim(0), seq = inputs.dim(1);
  const int64_t count = static_cast<int64_t>(tokens.size());
  QKV_CHECK(count >= seq + 1, "the data has ", count, " tokens, fewer than one window of ", seq + 1,
            " (context ", seq, " + 1); use more data or a shorter context");
  const uint64_t starts = static_cast<uint64_t>(count - seq);
  for (int64_t i = 0; i < batch * sync_->rank(); ++i) random.Below(starts);
  SampleBatch(tokens, random, inputs, targets);
  for (int64_t i = 0; i < batch * (sync_->ranks() - 1 - sync_->rank()); ++i) random.Below(starts);
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

StepResult Trainer::Step(std::span<const int32_t> train_tokens) {
  return Step([&](TensorView<int32_t> inputs, TensorView<int32_t> targets) {
    SampleSlice(train_tokens, data_random_, inputs, targets);
  });
}

StepResult Trainer::Step(const BatchSource& next_batch) {
  const model::ModelConfig& config = model_.config;
  for (const auto& [info, gradient] : grad_list_) {
    std::memset(gradient.data(), 0, static_cast<size_t>(gradient.size()) * sizeof(float));
  }
  LossSums sums;
  const float loss_scale = 1.0f / static_cast<float>(options_.accum);
  for (int64_t micro = 0; micro < options_.accum; ++micro) {
    next_batch(inputs_, targets_);
    // With several ranks each its own dropout masks, from a seed drawn from the shared stream
    // (so the saved state does not depend on the number of ranks).
    Random rank_dropout(0);
    Random* dropout = &dropout_random_;
    if (sync_->ranks() > 1) {
      if (config.dropout > 0) {
        rank_dropout = Random(dropout_random_.NextU64() +
                              0x632be59bd9b4e019ULL * static_cast<uint64_t>(sync_->rank()));
      }
      dropout = &rank_dropout;
    }
    const double loss = model::ModelForward<float>(config, model_.params, inputs_, targets_, true,
                                                   dropout, acts_, ctx_);
    const double counted = static_cast<double>(CountTargets(targets_));
    sums.mean += loss;
    sums.weighted += loss * counted;
    sums.counted += counted;
    model::ModelBackward<float>(config, model_.params, inputs_, targets_, loss_scale, acts_, grads_,
                                ctx_);
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
  return {loss, learning_rate, grad_norm};
}

double Trainer::Evaluate(std::span<const int32_t> tokens, int64_t batches, uint64_t seed) {
  QKV_CHECK(batches > 0, "the number of evaluation batches must be > 0, got ", batches);
  Random random(seed);
  LossSums sums;
  for (int64_t b = 0; b < batches; ++b) {
    SampleSlice(tokens, random, inputs_, targets_);
    const double loss = model::ModelForward<float>(model_.config, model_.params, inputs_, targets_,
                                                   false, nullptr, acts_, ctx_);
    const double counted = static_cast<double>(CountTargets(targets_));
    sums.mean += loss;
    sums.weighted += loss * counted;
    sums.counted += counted;
  }
  sums.mean /= static_cast<double>(batches);
  return sync_->ReduceLoss(sums);
}

io::SafetensorsFile Trainer::SaveState() const {
  io::SafetensorsFile file;
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
  file.metadata["options"] = options_.ResumeKey(ranks()).dump();
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
  const nlohmann::json current = options_.ResumeKey(ranks());
  for (const auto& [key, value] : current.items()) {
    QKV_CHECK(saved_options.contains(key) && saved_options[key] == value, source,
              ": the run was started with ", key, " = ",
              saved_options.contains(key) ? saved_options[key].dump() : "(unset)",
              " but is resumed with ", value.dump(),
              "; resume with the same training settings (only the number of steps may change, "
              "and it moves the end of the learning-rate decay; batch counts the windows of all "
              "ranks together)");
  }
  const std::vector<float> first = ReadMoments(file, "adamw_m.", param_list_, source);
  const std::vector<float> second = ReadMoments(file, "adamw_v.", param_list_, source);
  optimizer_.LoadMoments(first, second);
  try {
    step_ = std::stoll(file.metadata.at("step"));
  } catch (const std::exception&) {
    throw Error(internal::StrCat(source, ": malformed step '", file.metadata.at("step"), "'"));
  }
  data_random_.SetState(StateFromText(file.metadata.at("data_random"), source));
  dropout_random_.SetState(StateFromText(file.metadata.at("dropout_random"), source));
}

}  // namespace qkv::train
