// `qkv eval --pairs`. The loss is summed in double as (batch mean) x (batch labels) over the
// token-count batches of train/pair_batches.h and divided once by all labels, so it is the
// token mean over the whole file whatever the batching (PyTorch's cross_entropy with
// ignore_index over one padded batch of every pair gives the same number).
#include "tools/cli/eval_pairs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/eval/translation_metrics.h"
#include "qkv/io/sentence_pairs.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/model/encoder_decoder.h"
#include "qkv/model/model_config.h"
#include "qkv/train/pair_batches.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/progress.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

// The pairs as ids, each checked against the model's positions; errors name FILE:LINE (the
// pairs file has one pair per line).
std::vector<train::TokenizedPair> TokenizePairs(const TranslationModel& model,
                                                const std::vector<io::SentencePair>& pairs,
                                                const std::string& path) {
  const int64_t positions = model.model.config.max_positions;
  std::vector<train::TokenizedPair> tokenized;
  tokenized.reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const int64_t line = static_cast<int64_t>(i) + 1;
    train::TokenizedPair pair;
    pair.source = EncodeSourceLine(model, pairs[i].source, path, line);
    try {
      pair.target = model.vocabulary->EncodeTarget(pairs[i].target);
    } catch (const Error& error) {
      throw Error(path + ":" + std::to_string(line) + ": the target: " + error.what());
    }
    // The decoder reads the start token and the target: target + 1 positions.
    QKV_CHECK(static_cast<int64_t>(pair.target.size()) + 1 <= positions, path, ":", line,
              ": the target is ", pair.target.size(),
              " tokens, and with the start token longer than the model's ", positions,
              " positions (max_position_embeddings)");
    tokenized.push_back(std::move(pair));
  }
  return tokenized;
}

struct PairLoss {
  double loss = 0;     // mean cross-entropy per label token
  int64_t labels = 0;  // label tokens: target + </s> of every pair
};

PairLoss MeanLabelLoss(const TranslationModel& model,
                       const std::vector<train::TokenizedPair>& pairs, int64_t batch_tokens,
                       model::AttentionImpl attention, Precision precision,
                       const ThreadPool& threads, bool show) {
  model::EncoderDecoderConfig config = model.model.config;
  config.attention = attention;
  config.dropout = 0;
  // One pair longer than --batch-tokens still goes alone into a batch of its own: evaluation
  // covers every pair.
  int64_t max_tokens = batch_tokens;
  for (const train::TokenizedPair& pair : pairs) {
    max_tokens = std::max(max_tokens, train::PairTokens(pair));
  }
  Random order(0);  // the order of the batches does not change the sums below
  const std::vector<std::vector<int64_t>> batches =
      train::PlanTokenBatches(pairs, max_tokens, order);
  const train::PairSpecialIds ids{
      .pad_id = config.pad_id, .start_id = config.decoder_start_id, .eos_id = config.eos_id};
  TaskProgress progress("evaluating pairs", "pairs", static_cast<double>(pairs.size()), show);
  double sum = 0;
  int64_t labels = 0, done = 0;
  for (const std::vector<int64_t>& indices : batches) {
    const train::PairBatch batch = train::BuildPairBatch(pairs, indices, ids);
    Arena measure = Arena::MeasureOnly();
    model::AllocateEncoderDecoderActivations<float>(measure, config, batch.batch, batch.source_len,
                                                    batch.target_len,
                                                    model::ActivationUse::kForwardOnly);
    Arena arena(measure.used_bytes());
    const auto acts = model::AllocateEncoderDecoderActivations<float>(
        arena, config, batch.batch, batch.source_len, batch.target_len,
        model::ActivationUse::kForwardOnly);
    Arena scratch(model::EncoderDecoderScratchBytes(config, batch.batch, batch.source_len,
                                                    batch.target_len, threads.num_threads(),
                                                    sizeof(float)));
    ExecutionContext ctx{&threads, &scratch};
    ctx.precision = precision;
    const float mean = model::EncoderDecoderForward<float>(
        config, model.model.params, batch.SourceIds(), batch.DecoderInput(), batch.Labels(),
        /*training=*/false, nullptr, acts, ctx);
    sum += static_cast<double>(mean) * static_cast<double>(batch.target_tokens);
    labels += batch.target_tokens;
    done += batch.batch;
    progress.Update(static_cast<double>(done));
  }
  progress.Finish();
  return {.loss = sum / static_cast<double>(labels), .labels = labels};
}

}  // namespace

int RunEvalPairs(const EvalCommandOptions& o) {
  if (!o.dump_logits.empty() || o.context > 0 || !o.tokenizer.empty()) {
    throw UsageError(std::string(!o.dump_logits.empty() ? "--dump-logits"
                                 : o.context > 0        ? "--context"
                                                        : "--tokenizer") +
                     " applies to decoder-only models on --data; " + o.model +
                     " is an encoder-decoder, evaluated on --pairs");
  }
  const TranslationModel model = LoadTranslationModel(o.model, "qkv eval --pairs");
  infer::TranslateOptions translate;
  translate.beam = o.beam;
  try {
    translate.Validate(model.model.config);
  } catch (const Error& error) {
    throw UsageError(error.what());
  }
  const std::vector<io::SentencePair> pairs = io::ReadSentencePairs(o.pairs);
  const std::vector<train::TokenizedPair> tokenized = TokenizePairs(model, pairs, o.pairs);
  const ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  const Precision precision = PrecisionOrRefuse(o.precision);
  const PairLoss measured =
      MeanLabelLoss(model, tokenized, o.batch_tokens, model::ParseAttentionImpl(o.attention),
                    precision, threads, !o.quiet);
  const int64_t count = static_cast<int64_t>(pairs.size());
  nlohmann::json result = {{"loss", measured.loss},
                           {"perplexity", std::exp(measured.loss)},
                           {"tokens", measured.labels},
                           {"pairs", count}};
  std::string summary;
  if (o.bleu) {
    std::vector<std::vector<int32_t>> sources(pairs.size());
    std::vector<int64_t> indices(pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      sources[i] = tokenized[i].source;
      indices[i] = static_cast<int64_t>(i);
    }
    std::vector<std::string> hypotheses(pairs.size()), references(pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) references[i] = pairs[i].target;
    std::optional<Bf16WeightCopies> bf16_weights;
    if (precision == Precision::kBfloat16) {
      translate.precision = precision;
      translate.bf16_weights = &bf16_weights.emplace(
          infer::Bf16MatrixCopies(model.model.config, model.model.params, threads));
    }
    TaskProgress progress("translating sources", "sentences", static_cast<double>(count), !o.quiet);
    int64_t done = 0;
    infer::Translator translator(model.model.config, model.model.params, translate, threads);
    TranslateSorted(model, translator, sources, indices, o.batch,
                    [&](int64_t index, const infer::Translation&, std::string text) {
                      hypotheses[static_cast<size_t>(index)] = std::move(text);
                      progress.Update(static_cast<double>(++done));
                    });
    progress.Finish();
    const eval::BleuScore bleu = eval::CorpusBleu(hypotheses, references);
    const eval::ChrfScore chrf = eval::CorpusChrf(hypotheses, references);
    result["bleu"] = bleu.score;
    result["chrf"] = chrf.score;
    result["beam"] = o.beam;
    char line[160];
    std::snprintf(line, sizeof(line), "  BLEU %.2f  chrF %.2f  (%s, %lld sentences)", bleu.score,
                  chrf.score, o.beam == 1 ? "greedy" : ("beam " + std::to_string(o.beam)).c_str(),
                  static_cast<long long>(count));
    summary = line;
  }
  if (o.json) {
    std::printf("%s\n", result.dump().c_str());
  } else {
    std::printf("loss %.6f  perplexity %.4f  (%lld target tokens with </s> in %lld pairs)%s\n",
                measured.loss, std::exp(measured.loss), static_cast<long long>(measured.labels),
                static_cast<long long>(count), summary.c_str());
  }
  return 0;
}

}  // namespace qkv::cli
