// qkv_model_reference: the C++ half of the whole-model PyTorch comparison (check_model.py).
//
//   qkv_model_reference train-reference OUT_DIR --config JSON_FILE [--precision bf16]
//     Builds and initialises the model the config describes, saves it to OUT_DIR/model, then
//     writes the loss and every gradient on one batch (OUT_DIR/batch.safetensors,
//     OUT_DIR/grads.safetensors), and runs 10 steps of train::Trainer (the code `qkv train`
//     runs: AdamW, warmup + cosine learning rates, gradient clipping) on 10 more batches
//     (OUT_DIR/steps.safetensors), writing the losses,
//     gradient norms and learning rates (OUT_DIR/losses.json) and the final parameters
//     (OUT_DIR/final.safetensors). Every file holding parameters or gradients uses the
//     checkpoint's names and GPT-2 layout, so PyTorch reads them all the same way. With
//     --precision bf16 the batch and the steps run in bfloat16 mixed precision (check_model.py
//     --bf16 compares them with torch.autocast); exit status 77 where the CPU cannot.
//   qkv_model_reference logits MODEL_DIR TOKENS_FILE OUT_FILE
//     Loads MODEL_DIR and writes the logits (B*T, V) of the I32 tensor "tokens" (B, T).
//   qkv_model_reference encoder-decoder OUT_DIR --config JSON_FILE
//     Builds the encoder-decoder model (model/encoder_decoder.h) the JSON describes, with
//     random parameters, and writes them (OUT_DIR/params.safetensors, qkv's names), a batch
//     of padded pairs (OUT_DIR/batch.safetensors), the loss (OUT_DIR/loss.json) and every
//     gradient (OUT_DIR/grads.safetensors); check_encoder_decoder.py rebuilds the model in
//     PyTorch.
//   qkv_model_reference marian-logits MODEL_DIR BATCH_FILE OUT_FILE
//     Loads a Hugging Face MarianMTModel directory (model/marian_checkpoint.h) and writes the
//     logits "logits" (B*T, V) of the I32 tensors "source" (B, S) and "decoder_input" (B, T)
//     (check_marian.py).
//   qkv_model_reference marian-save OUT_DIR --config JSON_FILE
//     Saves the encoder-decoder a Marian config.json (JSON_FILE) describes, with random
//     parameters, as a MarianMTModel directory OUT_DIR.
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
#include "qkv/model/encoder_decoder.h"
#include "qkv/model/marian_checkpoint.h"
#include "qkv/model/transformer.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/train/language_model_task.h"
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

int TrainReference(const std::string& out_dir, const std::string& config_path,
                   Precision precision) {
  if (precision == Precision::kBfloat16 && !Bf16Unavailable().empty()) {
    std::fprintf(stderr, "skipped: %s\n", Bf16Unavailable().c_str());
    return 77;
  }
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
  work.ctx.precision = precision;

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
  options.steps = kSteps;
  options.accum = 1;
  options.schedule = {/*max_lr=*/1e-2, /*min_lr=*/1e-3, /*warmup=*/2, /*decay_steps=*/kSteps};
  options.adamw.beta1 = 0.9;
  options.adamw.beta2 = 0.99;
  options.adamw.eps = 1e-8;
  options.adamw.weight_decay = 0.1;
  options.grad_clip = 1.0;
  options.precision = precision;
  train::LanguageModelTask task(model, kBatch, seq, {}, {});
  train::Trainer trainer(task, options, threads);

  Tensor<int32_t> all_tokens(Shape{kSteps, kBatch, seq}), all_targets(Shape{kSteps, kBatch, seq});
  nlohmann::json losses = nlohmann::json::array(), norms = nlohmann::json::array(),
                 rates = nlohmann::json::array(), decayed = nlohmann::json::array();
  ForEachParameter(config, model.params, [&](const ParameterInfo& info, TensorView<float>&) {
    // check_model.py reads the GPT-2 checkpoint names.
    if (info.decayed) decayed.push_back(Gpt2Layout().PiecesOf(info).front().file_name);
  });
  for (int step = 0; step < kSteps; ++step) {
    task.SetBatchSource([&](TensorView<int32_t> step_tokens, TensorView<int32_t> step_targets) {
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
    const train::StepResult result = trainer.Step();
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
      {"loss", loss},
      {"losses", losses},
      {"grad_norms", norms},
      {"learning_rates", rates},
      {"decayed", decayed},
      {"threads", threads.num_threads()},
      {"precision", PrecisionName(precision)},
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

// Every parameter of an encoder-decoder as F32 tensors under qkv's names.
io::SafetensorsFile EncoderDecoderTensors(const EncoderDecoderConfig& config,
                                          EncoderDecoderParams<float>& params) {
  io::SafetensorsFile file;
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<float>& slot) {
    io::NamedTensor tensor;
    tensor.name = info.name;
    for (int i = 0; i < info.shape.rank(); ++i) tensor.shape.push_back(info.shape[i]);
    tensor.f32.assign(slot.data(), slot.data() + slot.size());
    file.tensors.push_back(std::move(tensor));
  });
  return file;
}

int EncoderDecoderReference(const std::string& out_dir, const std::string& config_path) {
  std::ifstream in(config_path);
  QKV_CHECK(in.good(), config_path, ": cannot open");
  const nlohmann::json json = nlohmann::json::parse(in);
  EncoderDecoderConfig config;
  config.vocab_size = json.at("vocab_size");
  config.width = json.at("d_model");
  config.num_heads = json.at("heads");
  config.ffn_dim = json.at("ffn_dim");
  config.encoder_layers = json.at("encoder_layers");
  config.decoder_layers = json.at("decoder_layers");
  config.max_positions = json.at("max_positions");
  config.position = ParsePositionEncoding(json.at("position"));
  config.norm_placement = ParseNormPlacement(json.at("norm_placement"));
  config.ffn = ParseFfnKind(json.at("ffn"));
  config.scale_embedding = json.at("scale_embedding");
  config.pad_id = 0;
  config.eos_id = 1;
  config.decoder_start_id = 0;
  const int64_t batch = 3, source_len = json.at("source_len"), target_len = json.at("target_len");
  const ThreadPool threads(std::min(2, ThreadPool::HardwareThreads()));

  Arena arena(size_t{64} << 20);
  EncoderDecoderParams<float> params, grads;
  ForEachParameter(config, params, layers::AllocateFrom<float>(arena));
  ForEachParameter(config, grads, layers::AllocateFrom<float>(arena));
  Random random(kInitSeed);
  InitializeParameters(config, params, random);
  ForEachParameter(config, params, [&](const ParameterInfo&, TensorView<float>& slot) {
    for (float& value : slot) value += static_cast<float>(kWeightNoise * random.Normal());
  });
  const auto acts =
      AllocateEncoderDecoderActivations<float>(arena, config, batch, source_len, target_len);
  Arena scratch(EncoderDecoderScratchBytes(config, batch, source_len, target_len,
                                           threads.num_threads(), sizeof(float)));
  const ExecutionContext ctx{&threads, &scratch};

  // Pairs of every length up to the batch's: ids in [2, V), the source ended by </s> and
  // padded, the decoder input [start] + target padded, the labels target + </s> then ignored.
  Tensor<int32_t> source(Shape{batch, source_len}), decoder_input(Shape{batch, target_len}),
      labels(Shape{batch, target_len});
  Random batch_random(kBatchSeed);
  auto draw = [&] { return static_cast<int32_t>(2 + batch_random.Below(config.vocab_size - 2)); };
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t source_tokens = source_len - b;  // >= 1 real token before </s>
    for (int64_t s = 0; s < source_len; ++s) {
      source[b * source_len + s] =
          s + 1 < source_tokens ? draw() : (s + 1 == source_tokens ? config.eos_id : config.pad_id);
    }
    const int64_t target_tokens = target_len - 1 - b;  // labels: these, then </s>
    int32_t previous = config.decoder_start_id;
    for (int64_t t = 0; t < target_len; ++t) {
      const int32_t label = t < target_tokens
                                ? draw()
                                : (t == target_tokens ? config.eos_id : ops::kDefaultIgnoreIndex);
      decoder_input[b * target_len + t] = t <= target_tokens ? previous : config.pad_id;
      labels[b * target_len + t] = label;
      previous = label;
    }
  }
  const float label_smoothing = json.value("label_smoothing", 0.0f);
  const float loss =
      EncoderDecoderForward<float>(config, params, source.view(), decoder_input.view(),
                                   labels.view(), false, nullptr, acts, ctx, label_smoothing);
  EncoderDecoderBackward<float>(config, params, source.view(), decoder_input.view(), labels.view(),
                                1.0f, acts, grads, ctx, label_smoothing);
  io::SafetensorsFile batch_file;
  batch_file.tensors.push_back(IntTensor("source", {batch, source_len}, source.data()));
  batch_file.tensors.push_back(
      IntTensor("decoder_input", {batch, target_len}, decoder_input.data()));
  batch_file.tensors.push_back(IntTensor("labels", {batch, target_len}, labels.data()));
  io::WriteSafetensors(Join(out_dir, "batch.safetensors"), batch_file);
  io::WriteSafetensors(Join(out_dir, "params.safetensors"), EncoderDecoderTensors(config, params));
  io::WriteSafetensors(Join(out_dir, "grads.safetensors"), EncoderDecoderTensors(config, grads));
  WriteText(Join(out_dir, "loss.json"), nlohmann::json{{"loss", loss}}.dump() + "\n");
  return 0;
}

// The I32 tensor `name` (B, L) of a batch file.
io::NamedTensor ReadIds(const io::SafetensorsFile& batch, const std::string& name,
                        const std::string& path) {
  io::NamedTensor ids = batch.Get(name);
  QKV_CHECK(ids.is_int32 && ids.shape.size() == 2, path, ": '", name,
            "' must be an I32 tensor of shape (B, L)");
  return ids;
}

int MarianLogits(const std::string& model_dir, const std::string& batch_path,
                 const std::string& out_path) {
  const LoadedEncoderDecoder model = LoadEncoderDecoder(model_dir);
  const io::SafetensorsFile batch_file = io::ReadSafetensors(batch_path);
  const io::NamedTensor source = ReadIds(batch_file, "source", batch_path);
  const io::NamedTensor decoder_input = ReadIds(batch_file, "decoder_input", batch_path);
  QKV_CHECK(source.shape[0] == decoder_input.shape[0], batch_path,
            ": 'source' and 'decoder_input' hold different batch sizes");
  const int64_t batch = source.shape[0], source_len = source.shape[1],
                target_len = decoder_input.shape[1];
  const EncoderDecoderConfig& config = model.config;
  const ThreadPool threads(std::min(2, ThreadPool::HardwareThreads()));
  Arena measure = Arena::MeasureOnly();
  AllocateEncoderDecoderActivations<float>(measure, config, batch, source_len, target_len);
  Arena arena(measure.used_bytes());
  const auto acts =
      AllocateEncoderDecoderActivations<float>(arena, config, batch, source_len, target_len);
  Arena scratch(EncoderDecoderScratchBytes(config, batch, source_len, target_len,
                                           threads.num_threads(), sizeof(float)));
  const ExecutionContext ctx{&threads, &scratch};
  EncoderDecoderForward<float>(
      config, model.params, ConstTensorView<int32_t>(source.i32.data(), Shape{batch, source_len}),
      ConstTensorView<int32_t>(decoder_input.i32.data(), Shape{batch, target_len}), {}, false,
      nullptr, acts, ctx);
  io::SafetensorsFile output;
  io::NamedTensor logits;
  logits.name = "logits";
  logits.shape = {batch * target_len, config.vocab_size};
  logits.f32.assign(acts.logits.begin(), acts.logits.end());
  output.tensors.push_back(std::move(logits));
  io::WriteSafetensors(out_path, output);
  return 0;
}

int MarianSave(const std::string& out_dir, const std::string& config_path) {
  std::ifstream in(config_path);
  QKV_CHECK(in.good(), config_path, ": cannot open");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw Error(internal::StrCat(config_path, ": not valid JSON: ", error.what()));
  }
  const EncoderDecoderConfig config = EncoderDecoderConfigFromMarianJson(json);
  LoadedEncoderDecoder model = AllocateEncoderDecoder(config);
  Random random(kInitSeed);
  InitializeParameters(config, model.params, random);
  ForEachParameter(config, model.params, [&](const ParameterInfo&, TensorView<float>& slot) {
    for (float& value : slot) value += static_cast<float>(kWeightNoise * random.Normal());
  });
  SaveEncoderDecoder(out_dir, config, model.params);
  return 0;
}

int Usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s train-reference OUT_DIR --config JSON_FILE [--precision fp32|bf16]\n"
               "       %s logits MODEL_DIR TOKENS_FILE OUT_FILE\n"
               "       %s greedy MODEL_DIR TOKENS_FILE N OUT_FILE\n"
               "       %s encoder-decoder OUT_DIR --config JSON_FILE\n"
               "       %s marian-logits MODEL_DIR BATCH_FILE OUT_FILE\n"
               "       %s marian-save OUT_DIR --config JSON_FILE\n",
               program, program, program, program, program, program);
  return 2;
}

}  // namespace
}  // namespace qkv::model

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "train-reference" && args[2] == "--config") {
      return qkv::model::TrainReference(args[1], args[3], qkv::Precision::kFloat32);
    }
    if (args.size() == 6 && args[0] == "train-reference" && args[2] == "--config" &&
        args[4] == "--precision") {
      return qkv::model::TrainReference(args[1], args[3], qkv::ParsePrecision(args[5]));
    }
    if (args.size() == 4 && args[0] == "logits") {
      return qkv::model::Logits(args[1], args[2], args[3]);
    }
    if (args.size() == 4 && args[0] == "encoder-decoder" && args[2] == "--config") {
      return qkv::model::EncoderDecoderReference(args[1], args[3]);
    }
    if (args.size() == 4 && args[0] == "marian-logits") {
      return qkv::model::MarianLogits(args[1], args[2], args[3]);
    }
    if (args.size() == 4 && args[0] == "marian-save" && args[2] == "--config") {
      return qkv::model::MarianSave(args[1], args[3]);
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
