// qkv_model_reference: the C++ half of the whole-model PyTorch comparison (check_model.py).
//
//   qkv_model_reference train-reference OUT_DIR --config JSON_FILE
//     Builds and initialises the model the config describes, saves it to OUT_DIR/model, then
//     writes the loss and every gradient on one batch (OUT_DIR/batch.safetensors,
//     OUT_DIR/grads.safetensors), and runs 10 steps of train::Trainer (the code `qkv train`
//     runs: AdamW, warmup + cosine learning rates, gradient clipping) on 10 more batches
//     (OUT_DIR/steps.safetensors), writing the losses,
//     gradient norms and learning rates (OUT_DIR/losses.json) and the final parameters
//     (OUT_DIR/final.safetensors). Every file holding parameters or gradients uses the
//     checkpoint's names and GPT-2 layout, so PyTorch reads them all the same way.
//   qkv_model_reference logits MODEL_DIR TOKENS_FILE OUT_FILE
//     Loads MODEL_DIR and writes the logits (B*T, V) of the I32 tensor "tokens" (B, T).
//   qkv_model_reference greedy MODEL_DIR TOKENS_FILE N OUT_FILE
//     Continues each row of the I32 tensor "tokens" (B, T) by N greedy tokens with the
//     KV-cache generator (infer/generator.h) and writes them as I32 "tokens" (B, N).
//
// Exit status: 0 success, 1 a qkv::Error (message on stderr), 2 usage.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/infer/generator.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/checkpoint_layout.h"
#include "qkv/model/transformer.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/train/trainer.h"

namespace qkv::model {
namespace {

// The training recipe check_model.py replays with torch.optim.AdamW; keep the two in sync.
constexpr int64_t kBatch = 3;
constexpr int kSteps = 10;
constexpr uint64_t kInitSeed = 1;
constexpr uint64_t kBatchSeed = 2;
// GPT-2's 0.02 init gives near-uniform predictions where every path carries little signal;
// noise of this size makes each parameter matter, so a wrong gradient anywhere shows.
constexpr double kWeightNoise = 0.2;

std::string Join(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

void WriteText(const std::string& path, const std::string& text) {
  io::WriteFileAtomically(path, text);
}

io::NamedTensor IntTensor(const std::string& name, std::vector<int64_t> shape,
                          const int32_t* data) {
  io::NamedTensor tensor;
  tensor.name = name;
  tensor.shape = std::move(shape);
  tensor.is_int32 = true;
  int64_t count = 1;
  for (int64_t extent : tensor.shape) count *= extent;
  tensor.i32.assign(data, data + count);
  return tensor;
}

// Tokens uniform over the vocabulary; targets too, with a few ignored positions so that the
// ignore index is part of what is compared.
void DrawBatch(const ModelConfig& config, Random& random, Tensor<int32_t>& tokens,
               Tensor<int32_t>& targets) {
  for (int64_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(random.Below(static_cast<uint64_t>(config.vocab_size)));
    targets[i] = static_cast<int32_t>(random.Below(static_cast<uint64_t>(config.vocab_size)));
  }
  targets[1] = ops::kDefaultIgnoreIndex;
  targets[targets.size() - 2] = ops::kDefaultIgnoreIndex;
}

ModelConfig ReadConfigFile(const std::string& path) {
  std::ifstream in(path);
  QKV_CHECK(in.good(), path, ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return ModelConfig::FromJson(nlohmann::json::parse(text.str()));
  } catch (const nlohmann::json::exception& error) {
    throw Error(internal::StrCat(path, ": not valid JSON: ", error.what()));
  }
}

// Activations for (batch, seq) in an arena of their own, plus a scratch arena sized by
// ModelScratchBytes (so that this test also checks that estimate).
struct Workspace {
  Workspace(const ModelConfig& config, int64_t batch, int64_t seq, const ThreadPool& threads)
      : arena(Measure(config, batch, seq)),
        scratch(ModelScratchBytes(config, batch, seq, threads.num_threads(), sizeof(float))),
        ctx{&threads, &scratch} {
    acts = AllocateModelActivations<float>(arena, config, batch, seq);
  }
  static size_t Measure(const ModelConfig& config, int64_t batch, int64_t seq) {
    Arena measure = Arena::MeasureOnly();
    AllocateModelActivations<float>(measure, config, batch, seq);
    return measure.used_bytes();
  }
  Arena arena;
  Arena scratch;
  ExecutionContext ctx;
  ModelActivations<float> acts;
};

int TrainReference(const std::string& out_dir, const std::string& config_path) {
  const ModelConfig config = ReadConfigFile(config_path);
  const int64_t seq = config.context;
  const ThreadPool threads(std::min(2, ThreadPool::HardwareThreads()));

  Model model = CreateModel(config);
  Random init_random(kInitSeed);
  InitializeParameters(config, model.params, init_random);
  ForEachParameter(config, model.params, [&](const ParameterInfo&, TensorView<float>& slot) {
    for (float& value : slot) value += static_cast<float>(kWeightNoise * init_random.Normal());
  });
  SaveModel(Join(out_dir, "model"), model);

  Arena grad_arena(ParameterBytes(config, sizeof(float)));
  ModelParams<float> grads = AllocateModelParams<float>(grad_arena, config);  // zeroed
  Workspace work(config, kBatch, seq, threads);

  // One forward + backward on one batch: the loss and every gradient.
  Random batch_random(kBatchSeed);
  Tensor<int32_t> tokens(Shape{kBatch, seq}), targets(Shape{kBatch, seq});
  DrawBatch(config, batch_random, tokens, targets);
  const float loss = ModelForward<float>(config, model.params, tokens.view(), targets.view(), false,
                                         nullptr, work.acts, work.ctx);
  ModelBackward<float>(config, model.params, tokens.view(), targets.view(), 1.0f, work.acts, grads,
                       work.ctx);
  io::SafetensorsFile batch_file;
  batch_file.tensors.push_back(IntTensor("tokens", {kBatch, seq}, tokens.data()));
  batch_file.tensors.push_back(IntTensor("targets", {kBatch, seq}, targets.data()));
  io::WriteSafetensors(Join(out_dir, "batch.safetensors"), batch_file);
  io::WriteSafetensors(Join(out_dir, "grads.safetensors"), ParametersToSafetensors(config, grads));

  // Ten optimizer steps, each on a fresh batch, by the trainer `qkv train` runs (multi-tensor
  // AdamW with the clipping factor folded into the update).
  train::TrainOptions options;
  options.batch = kBatch;
  options.seq_len = seq;
  options.steps = kSteps;
  options.accum = 1;
  options.schedule = {/*max_lr=*/1e-2, /*min_lr=*/1e-3, /*warmup=*/2, /*decay_steps=*/kSteps};
  options.adamw.beta1 = 0.9;
  options.adamw.beta2 = 0.99;
  options.adamw.eps = 1e-8;
  options.adamw.weight_decay = 0.1;
  options.grad_clip = 1.0;
  train::Trainer trainer(model, options, threads);

  Tensor<int32_t> all_tokens(Shape{kSteps, kBatch, seq}), all_targets(Shape{kSteps, kBatch, seq});
  nlohmann::json losses = nlohmann::json::array(), norms = nlohmann::json::array(),
                 rates = nlohmann::json::array(), decayed = nlohmann::json::array();
  ForEachParameter(config, model.params, [&](const ParameterInfo& info, TensorView<float>&) {
    // check_model.py reads the GPT-2 checkpoint names.
    if (info.decayed) decayed.push_back(Gpt2Layout().PiecesOf(info).front().file_name);
  });
  for (int step = 0; step < kSteps; ++step) {
    const train::StepResult result =
        trainer.Step([&](TensorView<int32_t> step_tokens, TensorView<int32_t> step_targets) {
          Tensor<int32_t> drawn_tokens(step_tokens.shape()), drawn_targets(step_targets.shape());
          DrawBatch(config, batch_random, drawn_tokens, drawn_targets);
          std::memcpy(step_tokens.data(), drawn_tokens.data(),
                      static_cast<size_t>(drawn_tokens.size()) * sizeof(int32_t));
          std::memcpy(step_targets.data(), drawn_targets.data(),
                      static_cast<size_t>(drawn_targets.size()) * sizeof(int32_t));
          std::memcpy(all_tokens.data() + step * kBatch * seq, drawn_tokens.data(),
                      static_cast<size_t>(drawn_tokens.size()) * sizeof(int32_t));
          std::memcpy(all_targets.data() + step * kBatch * seq, drawn_targets.data(),
                      static_cast<size_t>(drawn_targets.size()) * sizeof(int32_t));
        });
    losses.push_back(result.loss);
    norms.push_back(result.grad_norm);
    rates.push_back(result.learning_rate);
  }
  io::SafetensorsFile steps_file;
  steps_file.tensors.push_back(IntTensor("tokens", {kSteps, kBatch, seq}, all_tokens.data()));
  steps_file.tensors.push_back(IntTensor("targets", {kSteps, kBatch, seq}, all_targets.data()));
  io::WriteSafetensors(Join(out_dir, "steps.safetensors"), steps_file);
  io::WriteSafetensors(Join(out_dir, "final.safetensors"),
                       ParametersToSafetensors(config, model.params));
  const nlohmann::json summary = {
      {"loss", loss},        {"losses", losses},
      {"grad_norms", norms}, {"learning_rates", rates},
      {"decayed", decayed},  {"threads", threads.num_threads()},
  };
  WriteText(Join(out_dir, "losses.json"), summary.dump(2) + "\n");
  return 0;
}

// The I32 tensor "tokens" (B, T) of a safetensors file.
io::NamedTensor ReadTokens(const std::string& path) {
  io::NamedTensor tokens = io::ReadSafetensors(path).Get("tokens");
  QKV_CHECK(tokens.is_int32 && tokens.shape.size() == 2, path,
            ": 'tokens' must be an I32 tensor of shape (B, T)");
  return tokens;
}

int Logits(const std::string& model_dir, const std::string& tokens_path,
           const std::string& out_path) {
  const Model model = LoadModel(model_dir);
  const io::NamedTensor tokens = ReadTokens(tokens_path);
  const int64_t batch = tokens.shape[0], seq = tokens.shape[1];
  const ThreadPool threads(std::min(2, ThreadPool::HardwareThreads()));
  Workspace work(model.config, batch, seq, threads);
  ConstTensorView<int32_t> token_view(tokens.i32.data(), Shape{batch, seq});
  ModelForward<float>(model.config, model.params, token_view, {}, false, nullptr, work.acts,
                      work.ctx);
  io::SafetensorsFile output;
  io::NamedTensor logits;
  logits.name = "logits";
  logits.shape = {batch * seq, model.config.vocab_size};
  logits.f32.assign(work.acts.logits.begin(), work.acts.logits.end());
  output.tensors.push_back(std::move(logits));
  io::WriteSafetensors(out_path, output);
  return 0;
}

int Greedy(const std::string& model_dir, const std::string& tokens_path, const std::string& count,
           const std::string& out_path) {
  const Model model = LoadModel(model_dir);
  const io::NamedTensor tokens = ReadTokens(tokens_path);
  const int64_t batch = tokens.shape[0], seq = tokens.shape[1], new_tokens = std::stoll(count);
  const ThreadPool threads(std::min(2, ThreadPool::HardwareThreads()));
  infer::Generator generator(model, threads);
  infer::SamplerOptions greedy;
  greedy.temperature = 0.0f;
  io::NamedTensor output_tokens;
  output_tokens.name = "tokens";
  output_tokens.is_int32 = true;
  output_tokens.shape = {batch, new_tokens};
  for (int64_t b = 0; b < batch; ++b) {
    const std::span<const int32_t> prompt(tokens.i32.data() + b * seq, static_cast<size_t>(seq));
    const std::vector<int32_t> continuation = generator.Generate(prompt, new_tokens, greedy);
    output_tokens.i32.insert(output_tokens.i32.end(), continuation.begin(), continuation.end());
  }
  io::SafetensorsFile output;
  output.tensors.push_back(std::move(output_tokens));
  io::WriteSafetensors(out_path, output);
  return 0;
}

int Usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s train-reference OUT_DIR --config JSON_FILE\n"
               "       %s logits MODEL_DIR TOKENS_FILE OUT_FILE\n"
               "       %s greedy MODEL_DIR TOKENS_FILE N OUT_FILE\n",
               program, program, program);
  return 2;
}

}  // namespace
}  // namespace qkv::model

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "train-reference" && args[2] == "--config") {
      return qkv::model::TrainReference(args[1], args[3]);
    }
    if (args.size() == 4 && args[0] == "logits") {
      return qkv::model::Logits(args[1], args[2], args[3]);
    }
    if (args.size() == 5 && args[0] == "greedy") {
      return qkv::model::Greedy(args[1], args[2], args[3], args[4]);
    }
  } catch (const qkv::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return qkv::model::Usage(argv[0]);
}
