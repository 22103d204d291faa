// `qkv demo`: one self-attention layer, with random weights, on a short sentence, printing the
// attention weights of every head. It walks through the lecture's steps: x_i = E w_i, position
// vectors, q/k/v projections, scaled scores, softmax, weighted sum of values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/core/random.h"
#include "qkv/core/tensor.h"
#include "qkv/layers/self_attention.h"
#include "qkv/ops/embedding.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/sinusoidal.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/model_flags.h"

namespace qkv::cli {

namespace {

// The positions one attention layer with random weights can show, in the table's order: added
// to the embeddings (sinusoidal), applied inside attention (rope), or none. Learned tables and
// ALiBi belong to trained models.
std::vector<std::string> DemoPositions() {
  std::vector<std::string> names;
  for (const std::string& name : model::PositionEncodingNames()) {
    const model::PositionEncoding position = model::ParsePositionEncoding(name);
    if (position == model::PositionEncoding::kSinusoidal ||
        position == model::PositionEncoding::kRope || position == model::PositionEncoding::kNone) {
      names.push_back(name);
    }
  }
  return names;
}

}  // namespace

CLI::App* AddDemoCommand(CLI::App& app, DemoOptions& options) {
  CLI::App* demo = app.add_subcommand(
      "demo",
      "Run one self-attention layer (random weights) on a sentence and print the "
      "attention weights of each head");
  demo->add_option("--text", options.text, "The sentence; words are the tokens")
      ->capture_default_str()
      ->check([](const std::string& text) {
        std::istringstream words(text);
        std::string word;
        return words >> word ? std::string() : std::string("the text has no words");
      });
  demo->add_option("--dim", options.dim, "Model width")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  demo->add_option("--heads", options.heads, "Number of attention heads (must divide --dim)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{256}));
  AddPositionFlag(demo, options.position, DemoPositions());
  demo->add_flag("--causal", options.causal, "Mask the future (each word sees only the past)");
  AddSeedFlag(demo, options.seed, "Seed of the random weights");
  demo->add_option("--threads", options.threads, "Threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  return demo;
}

int RunDemo(const DemoOptions& options) {
  std::vector<std::string> words;
  std::map<std::string, int32_t> vocabulary;
  {
    std::istringstream stream(options.text);
    for (std::string word; stream >> word;) {
      words.push_back(word);
      vocabulary.emplace(word, static_cast<int32_t>(vocabulary.size()));
    }
  }
  const int64_t seq = static_cast<int64_t>(words.size()), dim = options.dim;
  layers::SelfAttentionConfig config;
  config.width = dim;
  config.num_heads = options.heads;
  config.causal = options.causal;
  const model::PositionEncoding position = model::ParsePositionEncoding(options.position);
  const bool rope = position == model::PositionEncoding::kRope;
  if (rope) config.rope = ops::RopeConfig{};
  const std::string problem = ShapeProblem(dim, options.heads, rope ? "--pos rope" : nullptr);
  if (!problem.empty()) throw UsageError(problem);
  config.Validate();

  ThreadPool threads(options.threads);
  Arena scratch(1 << 20);
  ExecutionContext ctx{&threads, &scratch};
  Random random(options.seed);

  // x_i = E w_i: one random embedding row per distinct word.
  Tensor<int32_t> tokens(Shape{seq});
  for (int64_t i = 0; i < seq; ++i) tokens[i] = vocabulary.at(words[i]);
  Tensor<float> embedding_table(Shape{static_cast<int64_t>(vocabulary.size()), dim});
  random.FillNormal(embedding_table.view(), 0.0, 1.0);
  Tensor<float> x(Shape{1, seq, dim});
  ops::EmbeddingForward<float>(tokens.view(), embedding_table.view(),
                               x.view().Reshape(Shape{seq, dim}), ctx);
  if (position == model::PositionEncoding::kSinusoidal) {
    Tensor<float> table(Shape{seq, dim});
    ops::FillSinusoidalTable(table.view());
    ops::AddPositionsForward<float>(x.view(), table.view(), 0, x.view(), ctx);
  }

  Arena measure = Arena::MeasureOnly();
  layers::AllocateSelfAttentionParams<float>(measure, config);
  layers::AllocateSelfAttentionActivations<float>(measure, config, 1, seq);
  Arena arena(measure.used_bytes());
  auto params = layers::AllocateSelfAttentionParams<float>(arena, config);
  auto acts = layers::AllocateSelfAttentionActivations<float>(arena, config, 1, seq);
  const double init_std = 1.0 / std::sqrt(static_cast<double>(dim));
  random.FillNormal(params.qkv_weight, 0.0, init_std);
  random.FillNormal(params.out_weight, 0.0, init_std);

  Tensor<float> output(Shape{1, seq, dim});
  layers::SelfAttentionForward<float>(config, params, x.view(), 0, {}, acts, output.view(), ctx);

  std::printf("Self-attention over %lld tokens, width %lld, %lld heads of %lld, positions: %s%s\n",
              static_cast<long long>(seq), static_cast<long long>(dim),
              static_cast<long long>(config.num_heads),
              static_cast<long long>(dim / config.num_heads), options.position.c_str(),
              options.causal ? ", causal mask" : "");
  std::printf("Row = query word, column = key word; each row sums to 1.\n");
  size_t label_width = 5;
  for (const std::string& word : words) label_width = std::max(label_width, word.size());
  for (int64_t h = 0; h < config.num_heads; ++h) {
    std::printf("\nhead %lld\n%*s", static_cast<long long>(h), static_cast<int>(label_width), "");
    for (const std::string& word : words) {
      std::printf(" %*s", static_cast<int>(label_width), word.c_str());
    }
    std::printf("\n");
    for (int64_t i = 0; i < seq; ++i) {
      std::printf("%*s", static_cast<int>(label_width), words[i].c_str());
      for (int64_t j = 0; j < seq; ++j) {
        std::printf(" %*.3f", static_cast<int>(label_width), acts.probs[(h * seq + i) * seq + j]);
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace qkv::cli
