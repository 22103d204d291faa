#include "qkv/train/trainer.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "qkv/ops/cross_entropy.h"
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

// full_moments: false when the optimizer is sharded (the moments live in the shard vectors).
Buffers AllocateBuffers(Arena& arena, const model::ModelConfig& config, int64_t batch,
                        int64_t seq_len, bool full_moments) {
  Buffers buffers;
  buffers.grads = model::AllocateModelParams<float>(arena, config);
  if (full_moments) {
    buffers.moment1 = model::AllocateModelParams<float>(arena, config);
    buffers.moment2 = model::AllocateModelParams<float>(arena, config);
  }
  buffers.acts = model::AllocateModelActivations<float>(arena, config, batch, seq_len);
  buffers.inputs = arena.Allocate<int32_t>(Shape{batch, seq_len});
  buffers.targets = arena.Allocate<int32_t>(Shape{batch, seq_len});
  return buffers;
}

size_t MeasureBuffers(const model::ModelConfig& config, int64_t batch, int64_t seq_len,
                      bool full_moments) {
  Arena measure = Arena::MeasureOnly();
  AllocateBuffers(measure, config, batch, seq_len, full_moments);
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

bool Sharded(const Communicator* comm, const TrainOptions& options) {
  return comm != nullptr && comm->size() > 1 && options.shard_optimizer;
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
      arena_(MeasureBuffers(model.config, options.batch, seq_len_, !Sharded(comm, options))),
      scratch_(model::ModelScratchBytes(model.config, options.batch, seq_len_,
                                        threads.num_threads(), sizeof(float))),
      ctx_{&threads, &scratch_},
      data_random_(options.seed),
      dropout_random_(options.seed ^ 0x9e3779b97f4a7c15ULL),
      comm_(comm != nullptr && comm->size() > 1 ? comm : nullptr) {
  options_.Validate();
  options_.seq_len = seq_len_;
  const bool sharded = Sharded(comm_, options_);
  Buffers buffers = AllocateBuffers(arena_, model.config, options.batch, seq_len_, !sharded);
  grads_ = buffers.grads;
  moment1_ = buffers.moment1;
  moment2_ = buffers.moment2;
  acts_ = buffers.acts;
  inputs_ = buffers.inputs;
  targets_ = buffers.targets;
  param_list_ = Flatten(model.config, model.params);
  grad_list_ = Flatten(model.config, grads_);
  if (!sharded) {
    moment1_list_ = Flatten(model.config, moment1_);
    moment2_list_ = Flatten(model.config, moment2_);
    for (size_t i = 0; i < param_list_.size(); ++i) {
      adamw_tensors_.push_back({param_list_[i].second, grad_list_[i].second,
                                moment1_list_[i].second, moment2_list_[i].second,
                                param_list_[i].first.decayed});
    }
  }
  for (const auto& [info, gradient] : grad_list_) {
    gradient_views_.push_back(gradient);
    gradient_const_views_.push_back(gradient);
  }
  for (const auto& [info, view] : param_list_) num_params_ += view.size();
  if (comm_ == nullptr) return;
  flat_.resize(static_cast<size_t>(num_params_));
  if (!sharded) return;
  // Rank q owns the flat elements [N q / W, N (q + 1) / W).
  const int64_t ranks = comm_->size();
  QKV_CHECK(num_params_ <= INT_MAX, "--shard-optimizer supports up to ", INT_MAX,
            " parameters (MPI counts are int), the model has ", num_params_);
  for (int64_t q = 0; q < ranks; ++q) {
    const int64_t begin = num_params_ * q / ranks, end = num_params_ * (q + 1) / ranks;
    shard_counts_.push_back(static_cast<int>(end - begin));
    shard_displacements_.push_back(static_cast<int>(begin));
  }
  shard_begin_ = num_params_ * comm_->rank() / ranks;
  shard_end_ = num_params_ * (comm_->rank() + 1) / ranks;
  int64_t flat = 0;
  for (size_t i = 0; i < param_list_.size(); ++i) {
    const int64_t size = param_list_[i].second.size();
    const int64_t begin = std::max(flat, shard_begin_), end = std::min(flat + size, shard_end_);
    if (begin < end) shard_pieces_.push_back({i, begin - flat, end - begin, begin});
    flat += size;
  }
  shard_m_.assign(static_cast<size_t>(shard_end_ - shard_begin_), 0.0f);
  shard_v_.assign(static_cast<size_t>(shard_end_ - shard_begin_), 0.0f);
}

// Steps `random` through ranks x batch windows (the global batch) and fills inputs_ and
// targets_ with this rank's batch of them, so the windows of all ranks together are those one
// process with the global batch draws, in the same order.
void Trainer::SampleSlice(std::span<const int32_t> tokens, Random& random) {
  const int64_t batch = inputs_.dim(0), seq = inputs_.dim(1);
  const int64_t count = static_cast<int64_t>(tokens.size());
  QKV_CHECK(count >= seq + 1, "the data has ", count, " tokens, fewer than one window of ", seq + 1,
            " (context ", seq, " + 1); use more data or a smaller --context");
  const uint64_t starts = static_cast<uint64_t>(count - seq);
  for (int64_t i = 0; i < batch * comm_->rank(); ++i) random.Below(starts);
  SampleBatch(tokens, random, inputs_, targets_);
  for (int64_t i = 0; i < batch * (comm_->size() - 1 - comm_->rank()); ++i) random.Below(starts);
}

// Gradients <- the sum over ranks of weight x this rank's gradients, in buckets.
void Trainer::AverageGradients(double weight) {
  const float scale = static_cast<float>(weight);
  float* flat = flat_.data();
  for (const auto& [info, gradient] : grad_list_) {
    const float* data = gradient.data();
    for (int64_t i = 0; i < gradient.size(); ++i) flat[i] = data[i] * scale;
    flat += gradient.size();
  }
  comm_->AllreduceSum(std::span<float>(flat_), "the gradient allreduce");
  flat = flat_.data();
  for (const auto& [info, gradient] : grad_list_) {
    std::memcpy(gradient.data(), flat, static_cast<size_t>(gradient.size()) * sizeof(float));
    flat += gradient.size();
  }
}

// AdamW on this rank's shard of the parameters, then every rank gathers every shard.
void Trainer::ShardedUpdate(double learning_rate) {
  for (const Piece& piece : shard_pieces_) {
    const auto& [info, param] = param_list_[piece.tensor];
    const Shape shape{piece.length};
    const int64_t local = piece.flat - shard_begin_;
    AdamWUpdate(
        TensorView<float>(param.data() + piece.offset, shape),
        ConstTensorView<float>(grad_list_[piece.tensor].second.data() + piece.offset, shape),
        TensorView<float>(shard_m_.data() + local, shape),
        TensorView<float>(shard_v_.data() + local, shape), step_, learning_rate, info.decayed,
        options_.adamw, ctx_);
    std::memcpy(flat_.data() + piece.flat, param.data() + piece.offset,
                static_cast<size_t>(piece.length) * sizeof(float));
  }
  comm_->AllgatherInPlace(std::span<float>(flat_), shard_counts_, shard_displacements_,
                          "the parameter allgather");
  const float* flat = flat_.data();
  for (const auto& [info, param] : param_list_) {
    std::memcpy(param.data(), flat, static_cast<size_t>(param.size()) * sizeof(float));
    flat += param.size();
  }
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
  if (comm_ == nullptr) return checksum;
  uint64_t extremes[2] = {checksum, ~checksum};  // max of ~x is ~(min of x)
  comm_->AllreduceMax(extremes, "the parameter checksum");
  QKV_CHECK(extremes[0] == ~extremes[1], "the ranks' parameters diverged at step ", step_,
            ": checksums range from ", ~extremes[1], " to ", extremes[0],
            " (a rank computed differently: mixed builds or hardware?)");
  return checksum;
}

StepResult Trainer::Step(std::span<const int32_t> train_tokens) {
  const model::ModelConfig& config = model_.config;
  for (const auto& [info, gradient] : grad_list_) {
    std::memset(gradient.data(), 0, static_cast<size_t>(gradient.size()) * sizeof(float));
  }

  double loss_sum = 0;
  // With several ranks: sum of loss x counted targets, and the targets counted.
  double weighted[2] = {0, 0};
  const float loss_scale = 1.0f / static_cast<float>(options_.accum);
  for (int64_t micro = 0; micro < options_.accum; ++micro) {
    if (comm_ == nullptr) {
      SampleBatch(train_tokens, data_random_, inputs_, targets_);
      loss_sum += model::ModelForward<float>(config, model_.params, inputs_, targets_, true,
                                             &dropout_random_, acts_, ctx_);
    } else {
      SampleSlice(train_tokens, data_random_);
      // Each rank its own dropout masks, from a seed drawn from the shared stream (so the
      // saved state does not depend on the number of ranks).
      Random rank_dropout(0);
      if (config.dropout > 0) {
        rank_dropout = Random(dropout_random_.NextU64() +
                              0x632be59bd9b4e019ULL * static_cast<uint64_t>(comm_->rank()));
      }
      const double loss = model::ModelForward<float>(config, model_.params, inputs_, targets_, true,
                                                     &rank_dropout, acts_, ctx_);
      const double counted = static_cast<double>(CountTargets(targets_));
      weighted[0] += loss * counted;
      weighted[1] += counted;
    }
    model::ModelBackward<float>(config, model_.params, inputs_, targets_, loss_scale, acts_, grads_,
                                ctx_);
  }
  double loss = loss_sum / static_cast<double>(options_.accum);
  if (comm_ != nullptr) {
    // The single-process loss is the mean over every counted target of the global batch, so
    // ranks' means (and gradients) are weighted by their counts.
    const double local_count = weighted[1];
    comm_->AllreduceSum(weighted, "the loss allreduce");
    loss = weighted[1] > 0 ? weighted[0] / weighted[1] : 0.0;
    AverageGradients(weighted[1] > 0 ? local_count / weighted[1] : 0.0);
  }

  const double learning_rate = options_.schedule.At(step_);
  ++step_;
  double grad_norm;
  if (Sharded(comm_, options_)) {
    if (options_.grad_clip > 0) {
      grad_norm = ClipGradientsByGlobalNorm(gradient_views_, options_.grad_clip, ctx_);
    } else {
      grad_norm = GlobalNorm(gradient_const_views_, ctx_);
    }
    ShardedUpdate(learning_rate);
  } else {
    // Clipping is folded into the update: one pass for the norm, one for AdamW.
    grad_norm = GlobalNorm(gradient_const_views_, ctx_);
    const float grad_scale =
        options_.grad_clip > 0 ? ClipScale(grad_norm, options_.grad_clip) : 1.0f;
    AdamWUpdateAll(adamw_tensors_, step_, learning_rate, options_.adamw, grad_scale, ctx_);
  }
  if (comm_ != nullptr && options_.checksum_every > 0 && step_ % options_.checksum_every == 0) {
    CheckParametersAgree();
  }
  return {loss, learning_rate, grad_norm};
}

double Trainer::Evaluate(std::span<const int32_t> tokens, int64_t batches, uint64_t seed) {
  QKV_CHECK(batches > 0, "the number of evaluation batches must be > 0, got ", batches);
  Random random(seed);
  double total = 0;
  double weighted[2] = {0, 0};
  for (int64_t b = 0; b < batches; ++b) {
    if (comm_ == nullptr) {
      SampleBatch(tokens, random, inputs_, targets_);
    } else {
      SampleSlice(tokens, random);
    }
    const double loss = model::ModelForward<float>(model_.config, model_.params, inputs_, targets_,
                                                   false, nullptr, acts_, ctx_);
    total += loss;
    if (comm_ != nullptr) {
      const double counted = static_cast<double>(CountTargets(targets_));
      weighted[0] += loss * counted;
      weighted[1] += counted;
    }
  }
  if (comm_ != nullptr) {
    comm_->AllreduceSum(weighted, "the evaluation allreduce");
    return weighted[1] > 0 ? weighted[0] / weighted[1] : 0.0;
  }
  return total / static_cast<double>(batches);
}

io::SafetensorsFile Trainer::SaveState() const {
  io::SafetensorsFile file;
  if (Sharded(comm_, options_)) {
    // Gather the moments' shards to rank 0, then cut them into tensors as below.
    std::vector<float> whole(comm_->is_root() ? static_cast<size_t>(num_params_) : 0);
    for (const auto& [prefix, shard] :
         {std::pair<const char*, const std::vector<float>*>{"adamw_m.", &shard_m_},
          {"adamw_v.", &shard_v_}}) {
      comm_->GatherToRoot(*shard, whole, shard_counts_, shard_displacements_,
                          "the optimizer-state gather");
      if (!comm_->is_root()) continue;
      const float* flat = whole.data();
      for (const auto& [info, view] : param_list_) {
        io::NamedTensor tensor;
        tensor.name = prefix + info.name;
        for (int i = 0; i < info.shape.rank(); ++i) tensor.shape.push_back(info.shape[i]);
        tensor.f32.assign(flat, flat + view.size());
        file.tensors.push_back(std::move(tensor));
        flat += view.size();
      }
    }
    if (!comm_->is_root()) return {};
  } else if (comm_ != nullptr && !comm_->is_root()) {
    return {};  // only rank 0 writes
  }
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
              "; resume with the same training flags (only --steps may change, and it moves "
              "the end of the learning-rate decay; batch counts the windows of all ranks "
              "together)");
  }
  if (Sharded(comm_, options_)) {
    for (const auto& [prefix, shard] :
         {std::pair<const char*, std::vector<float>*>{"adamw_m.", &shard_m_},
          {"adamw_v.", &shard_v_}}) {
      for (const auto& [info, view] : param_list_) {
        const io::NamedTensor& tensor = file.Get(prefix + info.name);
        QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == view.size(), source, ": '",
                  tensor.name, "' has ", tensor.f32.size(), " values, expected ", view.size());
      }
      for (const Piece& piece : shard_pieces_) {
        const io::NamedTensor& tensor = file.Get(prefix + param_list_[piece.tensor].first.name);
        std::memcpy(shard->data() + (piece.flat - shard_begin_), tensor.f32.data() + piece.offset,
                    static_cast<size_t>(piece.length) * sizeof(float));
      }
    }
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
