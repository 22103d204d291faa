// Text generation with a KV cache: prefill the prompt, then decode one token at a time.
//
//   Generator generator(model, threads);
//   generator.set_notice_callback([](const std::string& notice) { std::cerr << notice; });
//   std::vector<int32_t> ids = generator.Generate(tokenizer->Encode("ROMEO:"), 200, options,
//                                                 [&](int32_t id) { ... stream id ... });
//
// Long sequences: a model only ever saw positions [0, context) in training, and a learned
// position table has no rows past them. When the sequence reaches the context, the generator
// slides the window: it keeps the last context/2 tokens (at least 1), resets the cache and
// prefills them again at positions [0, context/2). Keeping half the context amortises the
// re-prefill over context/2 new tokens (a window that slid by one token would redo a whole
// context of work per token) while still conditioning each token on at least context/2
// tokens. The first slide is reported once through the notice callback; window_slides()
// counts them. Nothing ever reads past a learned position table. A prompt longer than the
// context keeps its last `context` tokens (as nanoGPT crops it), which also counts as a slide.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qkv/infer/incremental_forward.h"
#include "qkv/infer/kv_cache.h"
#include "qkv/infer/sampler.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/model/checkpoint.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv::infer {

class Generator {
 public:
  // Called with each new token id as soon as it is chosen.
  using TokenCallback = std::function<void(int32_t token)>;
  // Called with a one-line message (no trailing newline) the first time the window slides.
  using NoticeCallback = std::function<void(const std::string& notice)>;

  // model and threads must outlive the generator. Allocates the cache and all buffers once.
  Generator(const model::Model& model, const ThreadPool& threads);

  void set_notice_callback(NoticeCallback callback) { notice_ = std::move(callback); }

  // Samples only ids in [0, ids) (1 <= ids <= V; default V): a model whose embedding has more
  // rows than its tokenizer has tokens (padded for speed, as Qwen2's 151,936 for 151,665
  // tokens or nanoGPT's 50,304 for GPT-2's 50,257) never emits a row no token stands for.
  void set_sampled_vocab(int64_t ids);

  // From now on decodes with bfloat16 copies of the weight matrices (rounded to nearest even;
  // `qkv sample --precision bf16`): each new token reads half the bytes. The prompt's prefill
  // keeps the float32 weights, which stay. Returns the bytes of the copies.
  size_t UseBf16Weights();

  // Generates max_new_tokens (>= 0) tokens after `prompt` (non-empty ids in [0, V); see
  // StartToken for an empty prompt) and returns them (the prompt not included). Each call
  // starts from an empty cache and a sampler seeded with options.seed.
  std::vector<int32_t> Generate(std::span<const int32_t> prompt, int64_t max_new_tokens,
                                const SamplerOptions& options, const TokenCallback& on_token = {});

  // The same, handing each token to on_token and keeping none: memory stays flat however
  // many tokens are generated (`qkv sample` streams this way). Returns the count generated.
  int64_t Stream(std::span<const int32_t> prompt, int64_t max_new_tokens,
                 const SamplerOptions& options, const TokenCallback& on_token);

  // Bytes of the key/value cache the generator holds (allocated once, for the context).
  size_t cache_bytes() const { return cache_.bytes(); }

  // Slides of the window during the last Generate call.
  int64_t window_slides() const { return window_slides_; }

  // Tokens kept when the window slides: context / 2, at least 1.
  int64_t tokens_kept_on_slide() const;

  // The token to start from when the prompt is empty: the first id the tokenizer gives the
  // empty text (a BOS token: SentencePiece's, a Hugging Face template's), else the id of "\n"
  // when it encodes it as one token (char models of text with line breaks, byte, GPT-2 BPE),
  // else 0.
  static int32_t StartToken(const tokenizer::Tokenizer& tokenizer);

 private:
  // Runs `tokens` (any count <= the cache's free space) through the model in chunks and
  // returns the logits of the last one, (V).
  std::span<const float> Prefill(std::span<const int32_t> tokens);
  // Resets the cache to the last tokens_kept_on_slide() tokens of window_ and prefills them.
  std::span<const float> Slide();
  void Notice(const std::string& message);

  const model::Model& model_;
  const ThreadPool& threads_;
  KvCache cache_;
  DecodeWorkspace workspace_;
  // The tokens in the cache, then the one being fed: at most context + 1 (Slide trims it), so
  // an endless Stream holds constant memory.
  std::vector<int32_t> window_;
  NoticeCallback notice_;
  int64_t window_slides_ = 0;
  int64_t sampled_vocab_;
  std::unique_ptr<Bf16WeightCopies> bf16_weights_;  // null: float32 weights
};

}  // namespace qkv::infer
