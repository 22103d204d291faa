#include "qkv/infer/translator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <numeric>
#include <span>

#include "qkv/core/tensor.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/sinusoidal.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::infer {

using model::EncoderDecoderConfig;
using model::EncoderDecoderParams;

void TranslateOptions::Validate(const EncoderDecoderConfig& config) const {
  QKV_CHECK(beam >= 1, "translate: --beam must be at least 1, got ", beam);
  QKV_CHECK(max_length >= 0 && max_length <= config.max_positions,
            "translate: --max-length must be in [2, ", config.max_positions,
            "] (the model's positions), got ", max_length);
  QKV_CHECK(max_length == 0 || max_length >= 2,
            "translate: --max-length counts the start token and must be at least 2, got ",
            max_length);
  QKV_CHECK(std::isfinite(length_penalty), "translate: --length-penalty must be finite, got ",
            length_penalty);
  QKV_CHECK(precision == Precision::kFloat32 || Bf16Unavailable().empty(), Bf16Unavailable());
}

Bf16WeightCopies Bf16MatrixCopies(const EncoderDecoderConfig& config,
                                  const EncoderDecoderParams<float>& params,
                                  const ThreadPool& threads) {
  Bf16WeightCopies copies;
  const ExecutionContext ctx{&threads};
  EncoderDecoderParams<float> views = params;
  model::ForEachParameter(config, views, [&](const auto& info, TensorView<float>& tensor) {
    if (tensor.shape().rank() == 2 && !info.name.ends_with("positions")) copies.Add(tensor, ctx);
  });
  return copies;
}

namespace {

struct Hypothesis {
  std::vector<int32_t> tokens;  // generated, without `</s>`
  double score;
};

// The best `beam` finished hypotheses of one source.
struct Finished {
  std::vector<Hypothesis> best;
  void Add(Hypothesis hypothesis, int64_t beam) {
    best.push_back(std::move(hypothesis));
    std::stable_sort(best.begin(), best.end(),
                     [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    if (static_cast<int64_t>(best.size()) > beam) best.pop_back();
  }
};

// log sum_v exp(logits[v]) over every token but the padding token: a step's log-probabilities
// are logits[v] minus it, renormalised with the padding masked. The exponentials are the
// vector kernels' (float, within 2 ulp, summed in float lanes: about 1e-6 relative, far inside
// the float logits' own error); the logarithm and the subtraction are in double.
double LogNormaliser(const float* logits, int64_t vocab, int32_t pad_id,
                     const kernels::VectorKernels& kernels) {
  const int64_t after_pad = int64_t{pad_id} + 1;
  const float max_value =
      std::max(kernels.max(logits, pad_id), kernels.max(logits + after_pad, vocab - after_pad));
  const double sum = static_cast<double>(kernels.sum_exp_shifted(logits, pad_id, max_value)) +
                     static_cast<double>(
                         kernels.sum_exp_shifted(logits + after_pad, vocab - after_pad, max_value));
  return static_cast<double>(max_value) + std::log(sum);
}

// A continuation of a hypothesis: its score, the parent's rank within its source, the token.
struct Candidate {
  double score;
  int64_t parent;
  int32_t token;
};

// The best `capacity` candidates of one source, ranked as torch.topk ranks (beam, vocab)
// flattened: by score, ties by the lower flat index. They must be offered in increasing flat
// index (parent, then token), so a newcomer that ties the worst kept ranks below it; all but
// a few are then rejected by one comparison, instead of sorting K·V candidates.
class TopCandidates {
 public:
  TopCandidates(size_t capacity, int64_t vocab) : capacity_(capacity), ranks_above_{vocab} {}

  void Clear() { kept_.clear(); }

  // Returns whether the candidate was kept (for now).
  bool Offer(double score, int64_t parent, int32_t token) {
    if (kept_.size() < capacity_) {
      kept_.push_back({score, parent, token});
      if (kept_.size() == capacity_) std::make_heap(kept_.begin(), kept_.end(), ranks_above_);
      return true;
    }
    if (!(score > kept_.front().score)) return false;
    std::pop_heap(kept_.begin(), kept_.end(), ranks_above_);
    kept_.back() = {score, parent, token};
    std::push_heap(kept_.begin(), kept_.end(), ranks_above_);
    return true;
  }

  // For the candidates of one parent, scored base + (logit - log_normaliser) in double: sets
  // *bound to the largest float logit whose candidate Offer would reject now, and returns
  // false when there is none to set (not yet full, or a non-finite score). The score grows
  // with the logit, so a logit <= *bound is rejected and a larger one is not: one float
  // comparison decides what the double arithmetic would, for all but the few kept.
  bool RejectionBound(double base, double log_normaliser, float* bound) const {
    if (kept_.size() < capacity_) return false;
    const double worst = kept_.front().score;
    if (!std::isfinite(worst) || !std::isfinite(base) || !std::isfinite(log_normaliser)) {
      return false;
    }
    const auto score_of = [&](float logit) {
      return base + (static_cast<double>(logit) - log_normaliser);
    };
    constexpr float kInf = std::numeric_limits<float>::infinity();
    float logit = static_cast<float>(worst - base + log_normaliser);
    while (logit > -kInf && score_of(logit) > worst) logit = std::nextafter(logit, -kInf);
    while (logit < kInf && !(score_of(std::nextafter(logit, kInf)) > worst)) {
      logit = std::nextafter(logit, kInf);
    }
    *bound = logit;
    return true;
  }

  // The kept candidates, best first.
  const std::vector<Candidate>& Sorted() {
    std::sort(kept_.begin(), kept_.end(), ranks_above_);
    return kept_;
  }

 private:
  // "a ranks above c": ordered by it, the heap's front is the worst kept candidate.
  struct RanksAbove {
    int64_t vocab;
    bool operator()(const Candidate& a, const Candidate& c) const {
      if (a.score != c.score) return a.score > c.score;
      return a.parent * vocab + a.token < c.parent * vocab + c.token;
    }
  };

  size_t capacity_;
  RanksAbove ranks_above_;
  std::vector<Candidate> kept_;
};

// The decoder's per-layer state for up to N = B·K hypothesis slots, B and S the largest batch
// and source length reserved; the first `live` slots are used.
struct DecoderState {
  std::vector<Tensor<float>> k_cache, v_cache;  // L of (N, max_len, C)
  std::vector<Tensor<float>> cross_k, cross_v;  // L of (B·S·C): the batch's (B, S, C) first
};

// Entries [begin, end) of a (N, ...) view of rank 1 to 3.
template <typename T>
TensorView<T> Rows(TensorView<T> view, int64_t begin, int64_t end) {
  const Shape& s = view.shape();
  T* first = view.data() + begin * (view.size() / s[0]);
  if (view.rank() == 1) return TensorView<T>(first, Shape{end - begin});
  return view.rank() == 2 ? TensorView<T>(first, Shape{end - begin, s[1]})
                          : TensorView<T>(first, Shape{end - begin, s[1], s[2]});
}

// The first `count` entries of a (N, ...) view.
template <typename T>
TensorView<T> FirstRows(TensorView<T> view, int64_t count) {
  return Rows(view, 0, count);
}

// A step of many hypotheses is cut into parts, one per thread, each decoded through the whole
// decoder on its own rows: one parallel region per step instead of one per op (dozens, each
// of a few microseconds, where every region's wake-up and barrier cost more than its work).
// A part keeps at least this many rows, where a product's rows cost little more than in one
// of twice as many (oneDNN sgemm on one core here: 16 rows at ~0.8 of 32 rows' rate).
constexpr int64_t kMinPartRows = 16;

// How many parts a step of `live` hypotheses has on `threads` threads. It depends on the
// threads, not on the step's choice of running them (one thread runs the same parts in turn),
// so that the choice changes no bit.
int64_t StepParts(int64_t live, int threads) {
  return std::clamp<int64_t>(live / kMinPartRows, 1, threads);
}

// Steps of at most this many live hypotheses (a batch-1 beam of 4) run on one thread.
constexpr int64_t kSerialStepRows = 4;

// Whether the larger steps of one Translate call run on one thread or on all of them. A step is
// dozens of parallel regions of tens of microseconds, and what waking the other threads for each
// costs differs by machine far more than the work does (a few microseconds on bare metal, ~100
// on a 2-vCPU VM, where 32 sentences of the bench model decode 1.6x faster on one thread than
// on two): so it is measured, not guessed. After a first step on all threads, kTrials steps
// alternate the two, then one thread is kept if it was clearly faster. Both give the same bits
// (kernels split rows, never a sum), so the choice changes the speed only.
class StepThreadingChoice {
 public:
  explicit StepThreadingChoice(bool has_threads) : decided_(!has_threads) {}

  // Whether the next step should run on one thread.
  bool NextSerial() const { return decided_ ? serial_wins_ : trials_ >= 0 && trials_ % 2 == 0; }

  void Record(bool serial, double seconds) {
    if (decided_) return;
    if (trials_ < 0) {  // the first step pays one-off costs: first touches of its buffers
      trials_ = 0;
      return;
    }
    (serial ? serial_seconds_ : threaded_seconds_) += seconds;
    if (++trials_ < kTrials) return;
    serial_wins_ = serial_seconds_ * kSerialMargin < threaded_seconds_;
    decided_ = true;
  }

 private:
  static constexpr int kTrials = 6;
  // The threads keep the steps unless one thread is clearly faster: trial steps are few and
  // noisy, and where the two are close (beam 4 at batch 32 on the VM) a wrong pick of one
  // thread cost 5%.
  static constexpr double kSerialMargin = 1.1;
  bool decided_;
  bool serial_wins_ = true;  // with one thread, both are the same
  int trials_ = -1;          // -1: the warm-up step, not counted
  double serial_seconds_ = 0, threaded_seconds_ = 0;
};
}  // namespace

// Computes the logits of one step for the live hypotheses, slot n holding the hypothesis whose
// source row is source_of[n]. With the cache: the token at `position` of each slot; recomputing:
// the decoder over each slot's whole prefix. Finished sources leave the slots (Reorder with
// fewer parents), so a batch costs what its unfinished sources cost.
//
// Its buffers are sized for the largest batch it has been given (or reserved) and kept for the
// next, so that a run of many batches takes fresh memory once (docs/translation.md: at batch 32
// the fresh buffers of every batch cost half the run's page faults).
class Translator::StepRunner {
 public:
  StepRunner(const EncoderDecoderConfig& config, const EncoderDecoderParams<float>& params,
             const TranslateOptions& options, const ThreadPool& threads)
      : config_(config),
        params_(params),
        threads_(threads),
        beam_(options.beam),
        max_length_(options.max_length > 0 ? options.max_length : config.max_positions),
        recompute_(options.recompute),
        threading_(false) {
    ctx_ = ExecutionContext{&threads, &scratch_};
    ctx_.precision = options.precision;
    ctx_.bf16_weights = options.bf16_weights;
    serial_ctx_ = ctx_;
    serial_ctx_.threads = nullptr;  // one thread: ParallelFor and oneDNN run on the caller
    if (config_.position == model::PositionEncoding::kSinusoidal) {
      position_table_ = Tensor<float>(Shape{config_.max_positions, config_.width});
      ops::FillSinusoidalTable(position_table_.view(), ops::SinusoidalLayout::kHalves);
    }
  }

  int64_t max_length() const { return max_length_; }

  // Sizes every buffer for batches of up to `batch` sources of up to `source_len` tokens.
  void Reserve(int64_t batch, int64_t source_len) {
    if (batch <= reserved_batch_ && source_len <= reserved_source_len_) return;
    reserved_batch_ = std::max(batch, reserved_batch_);
    reserved_source_len_ = std::max(source_len, reserved_source_len_);
    const int64_t slots = reserved_batch_ * beam_, c = config_.width;
    logits_ = Tensor<float>(Shape{slots, config_.vocab_size}, AlignedBuffer::Fill::kUninitialized);
    // Old buffers go first, so that growing never holds two sets. The arenas are not zeroed:
    // they are sized for the worst case (the scratch for a backward pass too), and zeroing
    // them touched 128 MB at batch 32 that the steps never use. Nothing here reads a byte
    // before writing it, which the tests check by reusing buffers across batches.
    const auto fill = AlignedBuffer::Fill::kUninitialized;
    scratch_ = Arena(1);
    scratch_ = Arena(ScratchBytes(reserved_batch_, reserved_source_len_), fill);
    if (recompute_) return;
    encoder_arena_ = Arena(1);
    encoder_arena_ = Arena(EncoderBytes(reserved_batch_, reserved_source_len_), fill);
    const Shape memory{reserved_batch_ * reserved_source_len_ * c};
    const Shape cache{slots, max_length_, c};
    state_ = DecoderState{};
    reordered_ = Tensor<float>();
    for (size_t l = 0; l < params_.decoder_blocks.size(); ++l) {
      // Every buffer here is written before it is read: the memory's keys and values by the
      // batch's encoder, a slot's cache rows by its step or copied from its parent (and rows
      // past the longest translation never are, so no page of them is touched).
      state_.cross_k.emplace_back(memory, AlignedBuffer::Fill::kUninitialized);
      state_.cross_v.emplace_back(memory, AlignedBuffer::Fill::kUninitialized);
      state_.k_cache.emplace_back(cache, AlignedBuffer::Fill::kUninitialized);
      state_.v_cache.emplace_back(cache, AlignedBuffer::Fill::kUninitialized);
    }
    reordered_ = Tensor<float>(cache, AlignedBuffer::Fill::kUninitialized);
    // Each part of a step has its own scratch (the parts run at once), sized for all slots
    // and touched only as far as a part reaches.
    const size_t part_scratch_bytes =
        layers::BlockForwardStepScratchBytes(model::DecoderBlockConfig(config_), slots, max_length_,
                                             reserved_source_len_, 1, sizeof(float));
    part_scratch_.clear();
    part_ctx_.clear();
    if (StepParts(slots, threads_.num_threads()) > 1) {
      for (int part = 0; part < threads_.num_threads(); ++part) {
        part_scratch_.emplace_back(part_scratch_bytes, fill);
      }
      for (Arena& part_scratch : part_scratch_) {
        part_ctx_.push_back(serial_ctx_);
        part_ctx_.back().scratch = &part_scratch;
      }
    }
    stream_[0] = Tensor<float>(Shape{slots, 1, c});
    stream_[1] = Tensor<float>(Shape{slots, 1, c});
    normed_ = Tensor<float>(Shape{slots, c});
    mean_ = Tensor<float>(Shape{slots});
    rstd_ = Tensor<float>(Shape{slots});
  }

  // Starts a batch: source (B, S) of padded ids, kept by reference until the next Begin. Runs
  // the encoder and each decoder block's cross-attention keys and values.
  void Begin(const Tensor<int32_t>& source) {
    source_ = &source;
    batch_ = source.dim(0);
    source_len_ = source.dim(1);
    Reserve(batch_, source_len_);
    threading_ = StepThreadingChoice(threads_.num_threads() > 1);
    if (recompute_) return;
    encoder_arena_.Reset();
    encoder_acts_ = model::AllocateEncoderDecoderActivations<float>(
        encoder_arena_, config_, batch_, source_len_, 1, model::ActivationUse::kForwardOnly);
    model::EncodeSource<float>(config_, params_, source.view(), false, nullptr, encoder_acts_,
                               ctx_);
    const layers::BlockConfig block = model::DecoderBlockConfig(config_);
    for (size_t l = 0; l < params_.decoder_blocks.size(); ++l) {
      layers::CrossAttentionKeysValues<float>(
          *block.cross_attention, params_.decoder_blocks[l].cross_attention, encoder_acts_.memory,
          CrossKeys(l), CrossValues(l), ctx_);
    }
  }

  // (n, V): the logits of the first n slots.
  TensorView<float> Logits(int64_t live) { return FirstRows(logits_.view(), live); }

  // prefixes[n]: slot n's decoder input so far (start token first), the last one at `position`;
  // source_of[n]: its source row. Writes Logits(n) for the n = prefixes.size() live slots.
  void Step(const std::vector<std::vector<int32_t>>& prefixes,
            const std::vector<int64_t>& source_of, int64_t position) {
    const int64_t live = static_cast<int64_t>(prefixes.size());
    QKV_CHECK(live <= batch_ * beam_ && static_cast<int64_t>(source_of.size()) == live,
              "translate: ", live, " live slots for ", batch_ * beam_);
    const TensorView<float> logits = Logits(live);
    if (recompute_) return Recompute(prefixes, source_of, position, logits);
    // A step of a few rows never gains from waking threads (measured on a 2-vCPU VM: one thread
    // decoded 2.3x faster than two at batch 1, docs/translation.md); larger ones measure it.
    const bool trial = live > kSerialStepRows;
    const bool serial = !trial || threading_.NextSerial();
    const auto start = std::chrono::steady_clock::now();
    RunStep(prefixes, source_of, position, logits, serial);
    if (trial) {
      threading_.Record(
          serial, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }

  // The next step's slot n takes the cache rows [0, length) of this step's slot parents[n]:
  // beam search's reordering, and the compaction that drops finished sources.
  void Reorder(const std::vector<int64_t>& parents, int64_t length) {
    if (recompute_) return;
    const size_t row_bytes = static_cast<size_t>(length * config_.width) * sizeof(float);
    const int64_t slot_stride = max_length_ * config_.width;
    // Greedy decoding and compaction only move slots down: in place, skipping those that stay.
    bool moves_down = true;
    for (size_t n = 0; n < parents.size(); ++n) {
      moves_down = moves_down && parents[n] >= static_cast<int64_t>(n) &&
                   (n == 0 || parents[n] > parents[n - 1]);
    }
    // Otherwise the slots that change go through the spare cache: there and back when they
    // are fewer than half (beams that keep their own parent are not copied), else all of them
    // once into it, which then becomes the cache.
    size_t changing = 0;
    for (size_t n = 0; n < parents.size(); ++n) {
      changing += parents[n] != static_cast<int64_t>(n) ? 1 : 0;
    }
    const bool round_trip = !moves_down && 2 * changing < parents.size();
    const auto row = [slot_stride](Tensor<float>& tensor, int64_t slot) {
      return tensor.data() + slot * slot_stride;
    };
    // One slot's rows per work item: the copies are the step's largest memory traffic, and
    // from and to different tensors they can run on every thread.
    const auto copy_slots = [&](Tensor<float>& to, Tensor<float>& from, bool from_parent,
                                bool changing_only) {
      ParallelFor(static_cast<int64_t>(parents.size()),
                  ReorderContext(static_cast<int64_t>(parents.size())),
                  [&](int64_t begin, int64_t end, int) {
                    for (int64_t slot = begin; slot < end; ++slot) {
                      const int64_t parent = parents[static_cast<size_t>(slot)];
                      if (changing_only && parent == slot) continue;
                      std::memcpy(row(to, slot), row(from, from_parent ? parent : slot), row_bytes);
                    }
                  });
    };
    for (std::vector<Tensor<float>>* caches : {&state_.k_cache, &state_.v_cache}) {
      for (Tensor<float>& cache : *caches) {
        if (moves_down) {  // in place, so in order (a slot is read before it is overwritten)
          for (size_t n = 0; n < parents.size(); ++n) {
            const auto slot = static_cast<int64_t>(n);
            if (parents[n] != slot) {
              std::memcpy(row(cache, slot), row(cache, parents[n]), row_bytes);
            }
          }
        } else if (round_trip) {
          copy_slots(reordered_, cache, /*from_parent=*/true, /*changing_only=*/true);
          copy_slots(cache, reordered_, /*from_parent=*/false, /*changing_only=*/true);
        } else {
          copy_slots(reordered_, cache, /*from_parent=*/true, /*changing_only=*/false);
          std::swap(cache, reordered_);
        }
      }
    }
  }

 private:
  // Reorder's copies follow the steps' choice of threads.
  const ExecutionContext& ReorderContext(int64_t slots) const {
    return slots <= kSerialStepRows || threading_.NextSerial() ? serial_ctx_ : ctx_;
  }

  // One step of the live slots: whole (its ops on all threads, or on one when serial), or in
  // StepParts parts side by side (or in turn when serial).
  void RunStep(const std::vector<std::vector<int32_t>>& prefixes,
               const std::vector<int64_t>& source_of, int64_t position, TensorView<float> logits,
               bool serial) {
    const int64_t live = static_cast<int64_t>(prefixes.size());
    const int64_t parts = StepParts(live, threads_.num_threads());
    if (parts == 1) {
      return RunRows(prefixes, source_of, position, 0, live, logits, serial ? serial_ctx_ : ctx_);
    }
    // An exception cannot leave a parallel region: each part keeps its own for after.
    std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
    const auto run_parts = [&](int64_t first, int64_t last, int) {
      for (int64_t part = first; part < last; ++part) {
        try {
          RunRows(prefixes, source_of, position, live * part / parts, live * (part + 1) / parts,
                  logits, part_ctx_[static_cast<size_t>(part)]);
        } catch (...) {
          errors[static_cast<size_t>(part)] = std::current_exception();
        }
      }
    };
    if (serial) {
      run_parts(0, parts, 0);
    } else {
      ParallelFor(parts, ctx_, run_parts);
    }
    for (const std::exception_ptr& error : errors) {
      if (error) std::rethrow_exception(error);
    }
  }

  // The decoder for slots [begin, end): their embeddings, every block, their logits rows.
  void RunRows(const std::vector<std::vector<int32_t>>& prefixes,
               const std::vector<int64_t>& source_of, int64_t position, int64_t begin, int64_t end,
               TensorView<float> logits, const ExecutionContext& ctx) {
    const int64_t rows = end - begin;
    Tensor<int32_t> ids(Shape{rows, 1});
    for (int64_t n = 0; n < rows; ++n) ids[n] = prefixes[static_cast<size_t>(begin + n)].back();
    const ConstTensorView<float> positions = config_.position == model::PositionEncoding::kLearned
                                                 ? ConstTensorView<float>(params_.decoder_positions)
                                                 : ConstTensorView<float>(position_table_.view());
    model::EmbedTokens<float>(config_, params_.shared, positions, ids.view(), position,
                              Rows(stream_[0].view(), begin, end), ctx);
    const layers::BlockConfig block = model::DecoderBlockConfig(config_);
    const std::span<const int64_t> rows_source_of = std::span<const int64_t>(source_of).subspan(
        static_cast<size_t>(begin), static_cast<size_t>(rows));
    int current = 0;
    for (size_t l = 0; l < params_.decoder_blocks.size(); ++l) {
      layers::BlockStepState<float> state{Rows(state_.k_cache[l].view(), begin, end),
                                          Rows(state_.v_cache[l].view(), begin, end),
                                          position,
                                          CrossKeys(l),
                                          CrossValues(l),
                                          encoder_acts_.source_padding,
                                          rows_source_of};
      layers::BlockForwardStep<float>(block, params_.decoder_blocks[l],
                                      Rows(stream_[current].view(), begin, end), state,
                                      Rows(stream_[1 - current].view(), begin, end), ctx);
      current = 1 - current;
    }
    model::OutputLogits<float>(
        config_, params_,
        Rows(stream_[current].view(), begin, end).Reshape(Shape{rows, config_.width}),
        Rows(normed_.view(), begin, end),
        {Rows(mean_.view(), begin, end), Rows(rstd_.view(), begin, end)}, Rows(logits, begin, end),
        ctx);
  }

  // Layer l's (B, S, C) cross-attention keys or values of the current batch.
  TensorView<float> CrossKeys(size_t l) { return CrossView(state_.cross_k[l]); }
  TensorView<float> CrossValues(size_t l) { return CrossView(state_.cross_v[l]); }
  TensorView<float> CrossView(Tensor<float>& buffer) const {
    return TensorView<float>(buffer.data(), Shape{batch_, source_len_, config_.width});
  }

  size_t EncoderBytes(int64_t batch, int64_t source_len) const {
    Arena measure = Arena::MeasureOnly();
    model::AllocateEncoderDecoderActivations<float>(measure, config_, batch, source_len, 1,
                                                    model::ActivationUse::kForwardOnly);
    return measure.used_bytes();
  }

  size_t ScratchBytes(int64_t batch, int64_t source_len) const {
    const int num_threads = threads_.num_threads();
    const int64_t c = config_.width, slots = batch * beam_;
    if (recompute_) {
      // The whole model's activations for N sequences of max_length, and its scratch.
      Arena measure = Arena::MeasureOnly();
      model::AllocateEncoderDecoderActivations<float>(
          measure, config_, slots, source_len, max_length_, model::ActivationUse::kForwardOnly);
      return measure.used_bytes() + model::EncoderDecoderScratchBytes(config_, slots, source_len,
                                                                      max_length_, num_threads,
                                                                      sizeof(float));
    }
    const size_t encoder = model::EncoderDecoderScratchBytes(config_, batch, source_len, 1,
                                                             num_threads, sizeof(float));
    const size_t keys_values =
        static_cast<size_t>(batch * source_len * 2 * c) * sizeof(float) + kBufferAlignment;
    const size_t step =
        layers::BlockForwardStepScratchBytes(model::DecoderBlockConfig(config_), slots, max_length_,
                                             source_len, num_threads, sizeof(float));
    return std::max({encoder, keys_values, step});
  }

  void Recompute(const std::vector<std::vector<int32_t>>& prefixes,
                 const std::vector<int64_t>& source_of, int64_t position,
                 TensorView<float> logits) {
    const int64_t live = static_cast<int64_t>(prefixes.size()), length = position + 1;
    ArenaScope release(scratch_);
    const auto acts = model::AllocateEncoderDecoderActivations<float>(
        scratch_, config_, live, source_len_, length, model::ActivationUse::kForwardOnly);
    Tensor<int32_t> sources(Shape{live, source_len_}), inputs(Shape{live, length});
    for (int64_t n = 0; n < live; ++n) {
      std::memcpy(sources.data() + n * source_len_,
                  source_->data() + source_of[static_cast<size_t>(n)] * source_len_,
                  static_cast<size_t>(source_len_) * sizeof(int32_t));
      for (int64_t t = 0; t < length; ++t) {
        inputs[n * length + t] = prefixes[static_cast<size_t>(n)][static_cast<size_t>(t)];
      }
    }
    model::EncoderDecoderForward<float>(config_, params_, sources.view(), inputs.view(), {}, false,
                                        nullptr, acts, ctx_);
    const int64_t vocab = config_.vocab_size;
    for (int64_t n = 0; n < live; ++n) {
      std::memcpy(logits.data() + n * vocab, acts.logits.data() + (n * length + position) * vocab,
                  static_cast<size_t>(vocab) * sizeof(float));
    }
  }

  const EncoderDecoderConfig& config_;
  const EncoderDecoderParams<float>& params_;
  const ThreadPool& threads_;
  const int64_t beam_, max_length_;
  const bool recompute_;
  int64_t reserved_batch_ = 0, reserved_source_len_ = 0;  // what the buffers are sized for
  // The current batch: its (B, S) source ids.
  const Tensor<int32_t>* source_ = nullptr;
  int64_t batch_ = 0, source_len_ = 0;
  Arena encoder_arena_{1}, scratch_{1};
  ExecutionContext ctx_;
  ExecutionContext serial_ctx_;             // ctx_ on one thread
  std::vector<Arena> part_scratch_;         // (threads): a step part's scratch each
  std::vector<ExecutionContext> part_ctx_;  // serial_ctx_ on part_scratch_[p]
  StepThreadingChoice threading_;
  model::EncoderDecoderActivations<float> encoder_acts_;
  DecoderState state_;
  Tensor<float> logits_;                // (N, V): the step's logits
  Tensor<float> reordered_;             // (N, max_len, C): the spare cache of Reorder
  Tensor<float> position_table_;        // (P, C), sinusoidal only
  Tensor<float> stream_[2];             // (N, 1, C) each: block inputs and outputs, ping-pong
  Tensor<float> normed_, mean_, rstd_;  // (N, C), (N), (N): the pre-norm final norm
};

Translator::Translator(const EncoderDecoderConfig& config,
                       const EncoderDecoderParams<float>& params, const TranslateOptions& options,
                       const ThreadPool& threads)
    : config_(config), options_(options) {
  options_.Validate(config);
  runner_ = std::make_unique<StepRunner>(config, params, options_, threads);
}

Translator::~Translator() = default;

void Translator::Reserve(int64_t batch, int64_t source_length) {
  QKV_CHECK(batch >= 1 && source_length >= 1 && source_length <= config_.max_positions,
            "translate: cannot reserve ", batch, " sources of ", source_length, " tokens");
  runner_->Reserve(batch, source_length);
}

std::vector<Translation> Translator::Translate(const std::vector<std::vector<int32_t>>& sources) {
  if (sources.empty()) return {};
  const EncoderDecoderConfig& config = config_;
  const int64_t batch = static_cast<int64_t>(sources.size()), beam = options_.beam;
  const int64_t max_length = runner_->max_length();
  int64_t source_len = 0;
  for (size_t b = 0; b < sources.size(); ++b) {
    const auto& ids = sources[b];
    QKV_CHECK(!ids.empty() && ids.back() == config.eos_id, "translate: source ", b,
              " does not end with </s> (id ", config.eos_id, ")");
    QKV_CHECK(static_cast<int64_t>(ids.size()) <= config.max_positions, "translate: source ", b,
              " has ", ids.size(), " tokens, more than the model's ", config.max_positions,
              " positions");
    source_len = std::max(source_len, static_cast<int64_t>(ids.size()));
  }
  Tensor<int32_t> source(Shape{batch, source_len});
  for (int64_t b = 0; b < batch; ++b) {
    const auto& ids = sources[static_cast<size_t>(b)];
    for (int64_t s = 0; s < source_len; ++s) {
      source[b * source_len + s] =
          s < static_cast<int64_t>(ids.size()) ? ids[static_cast<size_t>(s)] : config.pad_id;
    }
  }
  StepRunner& runner = *runner_;
  runner.Begin(source);
  const int64_t vocab = config.vocab_size;

  // The live hypotheses, grouped by source in order and by rank within a source: prefixes[n]
  // (start token first), scores[n], source_of[n]. A source starts with one hypothesis, so the
  // first step does not run K copies of it, and leaves once it is done.
  std::vector<std::vector<int32_t>> prefixes(static_cast<size_t>(batch), {config.decoder_start_id});
  std::vector<double> scores(static_cast<size_t>(batch), 0.0);
  std::vector<int64_t> source_of(static_cast<size_t>(batch));
  std::iota(source_of.begin(), source_of.end(), int64_t{0});
  std::vector<Finished> finished(static_cast<size_t>(batch));
  // The 2K best, as torch.topk over (beam, vocab) flattened.
  TopCandidates candidates(static_cast<size_t>(2 * beam), vocab);
  const kernels::VectorKernels& kernels = kernels::ActiveVectorKernels();

  for (int64_t position = 0; position + 1 < max_length && !prefixes.empty(); ++position) {
    const int64_t live = static_cast<int64_t>(prefixes.size());
    runner.Step(prefixes, source_of, position);
    const TensorView<float> logits = runner.Logits(live);
    const bool force_eos = position + 2 == max_length;  // the next token is the last allowed
    std::vector<int64_t> parents;
    std::vector<std::vector<int32_t>> next_prefixes;
    std::vector<double> next_scores;
    std::vector<int64_t> next_source_of;
    for (int64_t first = 0; first < live;) {
      const int64_t b = source_of[static_cast<size_t>(first)];
      int64_t end = first;
      while (end < live && source_of[static_cast<size_t>(end)] == b) ++end;
      candidates.Clear();
      for (int64_t slot = first; slot < end; ++slot) {
        const double score = scores[static_cast<size_t>(slot)];
        if (force_eos) {  // at the last position only </s> is left, with probability 1
          candidates.Offer(score, slot - first, config.eos_id);
          continue;
        }
        const float* row = logits.data() + slot * vocab;
        const double log_normaliser = LogNormaliser(row, vocab, config.pad_id, kernels);
        float bound = 0;
        bool bounded = candidates.RejectionBound(score, log_normaliser, &bound);
        for (int64_t v = 0; v < vocab; ++v) {
          if (v == config.pad_id || (bounded && !(row[v] > bound))) continue;
          if (candidates.Offer(score + (static_cast<double>(row[v]) - log_normaliser), slot - first,
                               static_cast<int32_t>(v))) {
            bounded = candidates.RejectionBound(score, log_normaliser, &bound);
          }
        }
      }
      const std::vector<Candidate>& ranked = candidates.Sorted();
      const size_t keep = ranked.size();
      Finished& source_finished = finished[static_cast<size_t>(b)];
      int64_t next_beam = 0;
      for (size_t rank = 0; rank < keep && next_beam < beam; ++rank) {
        const Candidate& candidate = ranked[rank];
        const auto& parent_prefix = prefixes[static_cast<size_t>(first + candidate.parent)];
        if (candidate.token == config.eos_id) {
          if (static_cast<int64_t>(rank) >= beam) continue;
          // Generated tokens including </s>: the prefix without its start token, plus </s>.
          const double length = static_cast<double>(parent_prefix.size());
          source_finished.Add({std::vector<int32_t>(parent_prefix.begin() + 1, parent_prefix.end()),
                               candidate.score / std::pow(length, options_.length_penalty)},
                              beam);
          continue;
        }
        parents.push_back(first + candidate.parent);
        next_prefixes.push_back(parent_prefix);
        next_prefixes.back().push_back(candidate.token);
        next_scores.push_back(candidate.score);
        next_source_of.push_back(b);
        ++next_beam;
      }
      if (static_cast<int64_t>(source_finished.best.size()) >= beam) {  // done: it leaves
        const size_t kept = parents.size() - static_cast<size_t>(next_beam);
        parents.resize(kept);
        next_prefixes.resize(kept);
        next_scores.resize(kept);
        next_source_of.resize(kept);
      }
      first = end;
    }
    if (!parents.empty()) runner.Reorder(parents, position + 1);
    prefixes = std::move(next_prefixes);
    scores = std::move(next_scores);
    source_of = std::move(next_source_of);
  }

  std::vector<Translation> translations;
  for (int64_t b = 0; b < batch; ++b) {
    const auto& best = finished[static_cast<size_t>(b)].best;
    QKV_CHECK(!best.empty(), "translate: source ", b, " finished no hypothesis");
    translations.push_back({best.front().tokens, best.front().score});
  }
  return translations;
}

std::vector<Translation> Translate(const EncoderDecoderConfig& config,
                                   const EncoderDecoderParams<float>& params,
                                   const std::vector<std::vector<int32_t>>& sources,
                                   const TranslateOptions& options, const ThreadPool& threads) {
  return Translator(config, params, options, threads).Translate(sources);
}

}  // namespace qkv::infer
