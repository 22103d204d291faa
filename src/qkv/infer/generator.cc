#include "qkv/infer/generator.h"

#include <algorithm>

#include "qkv/core/check.h"
#include "qkv/model/parameters.h"

namespace qkv::infer {

namespace {

// Prompts are prefilled in chunks of at most this many tokens, so the workspace (and above
// all its (chunk, V) logits and (H, chunk, context) attention weights) stays small even for
// large contexts and vocabularies, while the GEMMs still get enough rows to be efficient.
constexpr int64_t kPrefillChunk = 64;

}  // namespace

Generator::Generator(const model::Model& model, const ThreadPool& threads)
    : model_(model),
      threads_(threads),
      cache_(model.config.num_layers, model.config.context, model.config.kv_width()),
      workspace_(model.config, std::min(kPrefillChunk, model.config.context), model.config.context),
      sampled_vocab_(model.config.vocab_size) {
  window_.reserve(static_cast<size_t>(model.config.context) + 1);
}

int64_t Generator::tokens_kept_on_slide() const {
  return std::max<int64_t>(1, model_.config.context / 2);
}

int32_t Generator::StartToken(const tokenizer::Tokenizer& tokenizer) {
  try {
    // What the tokenizer puts before any text (SentencePiece's BOS, a Hugging Face template's
    // <|begin_of_text|>) is how such a model saw every document start.
    const std::vector<int32_t> before_text = tokenizer.Encode("");
    if (!before_text.empty()) return before_text.front();
    const std::vector<int32_t> ids = tokenizer.Encode("\n");
    if (ids.size() == 1) return ids[0];
  } catch (const Error&) {
    // A char vocabulary without "\n": fall through to id 0.
  }
  return 0;
}

void Generator::set_sampled_vocab(int64_t ids) {
  QKV_CHECK(ids >= 1 && ids <= model_.config.vocab_size, "generator: sampled vocabulary ", ids,
            " is outside [1, ", model_.config.vocab_size, "] (the model's vocabulary)");
  sampled_vocab_ = ids;
}

size_t Generator::UseBf16Weights() {
  if (bf16_weights_ == nullptr) {
    bf16_weights_ = std::make_unique<Bf16WeightCopies>();
    const ExecutionContext ctx{&threads_};
    // Every matrix a linear layer multiplies by: the blocks' and the head (the token
    // embedding when tied). The embedding lookups keep reading float32 rows, so an untied
    // model's embedding and any position table get no copy.
    model::ModelParams<float> views = model_.params;
    model::ForEachParameter(model_.config, views, [&](const auto& info, TensorView<float>& tensor) {
      if (tensor.shape().rank() == 2 && info.name != "token_embedding" &&
          info.name != "position_embedding") {
        bf16_weights_->Add(tensor, ctx);
      }
    });
    bf16_weights_->Add(model_.params.head(), ctx);
  }
  workspace_.set_bf16_weights(bf16_weights_.get());
  // Where the CPU multiplies bfloat16 pairs, the activations are rounded too (mixed precision,
  // as --precision bf16 means for training); elsewhere the arithmetic stays float32.
  if (Bf16Unavailable().empty()) workspace_.set_precision(Precision::kBfloat16);
  return bf16_weights_->bytes();
}

void Generator::Notice(const std::string& message) {
  if (notice_) notice_(message);
}

std::span<const float> Generator::Prefill(std::span<const int32_t> tokens) {
  QKV_CHECK(!tokens.empty(), "generator: nothing to prefill");
  ConstTensorView<float> logits;
  for (size_t begin = 0; begin < tokens.size();) {
    const size_t count =
        std::min<size_t>(tokens.size() - begin, static_cast<size_t>(workspace_.max_new_tokens()));
    logits = IncrementalForward(model_, tokens.subspan(begin, count), cache_, workspace_, threads_,
                                LogitRows::kLast);
    begin += count;
  }
  const int64_t vocab = model_.config.vocab_size;
  return {logits.data(), static_cast<size_t>(vocab)};
}

std::span<const float> Generator::Slide() {
  const size_t keep = static_cast<size_t>(tokens_kept_on_slide());
  if (window_slides_ == 0) {
    Notice("qkv: the sequence reached the model's context of " +
           std::to_string(model_.config.context) +
           " tokens; sliding the window (keeping the last " + std::to_string(keep) +
           " tokens and recomputing them at positions from 0)");
  }
  ++window_slides_;
  window_.erase(window_.begin(), window_.end() - static_cast<std::ptrdiff_t>(keep));
  cache_.Reset();
  return Prefill(window_);
}

std::vector<int32_t> Generator::Generate(std::span<const int32_t> prompt, int64_t max_new_tokens,
                                         const SamplerOptions& options,
                                         const TokenCallback& on_token) {
  std::vector<int32_t> generated;
  Stream(prompt, max_new_tokens, options, [&](int32_t token) {
    generated.push_back(token);
    if (on_token) on_token(token);
  });
  return generated;
}

int64_t Generator::Stream(std::span<const int32_t> prompt, int64_t max_new_tokens,
                          const SamplerOptions& options, const TokenCallback& on_token) {
  QKV_CHECK(!prompt.empty(),
            "generator: the prompt is empty; start from a token such as "
            "Generator::StartToken(tokenizer)");
  QKV_CHECK(max_new_tokens >= 0, "generator: max_new_tokens must be >= 0, got ", max_new_tokens);
  const int64_t vocab = model_.config.vocab_size, context = model_.config.context;
  for (size_t i = 0; i < prompt.size(); ++i) {
    QKV_CHECK(prompt[i] >= 0 && prompt[i] < vocab, "generator: prompt token ", i, " is id ",
              prompt[i], ", outside the vocabulary [0, ", vocab, ")");
  }
  Sampler sampler(options);
  window_slides_ = 0;
  cache_.Reset();
  window_.clear();
  if (max_new_tokens == 0) return 0;

  std::span<const int32_t> kept = prompt;
  if (static_cast<int64_t>(prompt.size()) > context) {
    kept = prompt.last(static_cast<size_t>(context));
    Notice("qkv: the prompt has " + std::to_string(prompt.size()) +
           " tokens, more than the model's context of " + std::to_string(context) +
           "; keeping its last " + std::to_string(context));
    ++window_slides_;
  }
  window_.assign(kept.begin(), kept.end());
  std::span<const float> logits = Prefill(window_);
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const int32_t next = sampler.Sample(logits.first(static_cast<size_t>(sampled_vocab_)));
    if (on_token) on_token(next);
    if (step + 1 == max_new_tokens) break;  // no forward pass for a token nobody reads
    window_.push_back(next);
    if (cache_.length() == context) {
      logits = Slide();
    } else {
      const ConstTensorView<float> row = IncrementalForward(
          model_, std::span<const int32_t>(&window_.back(), 1), cache_, workspace_, threads_);
      logits = {row.data(), static_cast<size_t>(vocab)};
    }
  }
  return max_new_tokens;
}

}  // namespace qkv::infer
