// The encoder-decoder's Hugging Face MarianMTModel directory: config.json both ways, save ->
// load bitwise in both norm placements and position encodings, the tensor names and the row
// splits of the fused projections, what transformers may add (tied copies, sinusoidal tables)
// and every error, each naming the key or tensor. (Agreement with transformers' semantics is
// tests/model_reference/check_marian.py's.)
#include "qkv/model/marian_checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/ops/sinusoidal.h"

namespace qkv::model {
namespace {

namespace fs = std::filesystem;

#define EXPECT_MENTIONS(text, needle)               \
  EXPECT_NE((text).find(needle), std::string::npos) \
      << "'" << (text) << "' lacks '" << (needle) << "'"

EncoderDecoderConfig TinyConfig(NormPlacement placement, PositionEncoding position) {
  EncoderDecoderConfig config;
  config.vocab_size = 11;
  config.width = 8;
  config.num_heads = 2;
  config.ffn_dim = 12;
  config.encoder_layers = 2;
  config.decoder_layers = 3;
  config.max_positions = 10;
  config.position = position;
  config.norm_placement = placement;
  config.ffn = FfnKind::kRelu;
  config.pad_id = 2;
  config.eos_id = 0;
  config.decoder_start_id = 2;
  return config;
}

EncoderDecoderConfig PostNormSinusoidal() {
  return TinyConfig(NormPlacement::kPost, PositionEncoding::kSinusoidal);
}

// Every parameter random (norm gains and biases too), so that a value landing in the wrong
// slot shows.
LoadedEncoderDecoder RandomModel(const EncoderDecoderConfig& config, uint64_t seed = 7) {
  LoadedEncoderDecoder model = AllocateEncoderDecoder(config);
  Random random(seed);
  ForEachParameter(config, model.params,
                   [&](const layers::ParameterInfo&, TensorView<float>& slot) {
                     random.FillNormal(slot, 0.0, 1.0);
                   });
  return model;
}

void ExpectSameConfig(const EncoderDecoderConfig& a, const EncoderDecoderConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.ffn_hidden(), b.ffn_hidden());
  EXPECT_EQ(a.encoder_layers, b.encoder_layers);
  EXPECT_EQ(a.decoder_layers, b.decoder_layers);
  EXPECT_EQ(a.max_positions, b.max_positions);
  EXPECT_EQ(a.position, b.position);
  EXPECT_EQ(a.ffn, b.ffn);
  EXPECT_EQ(a.norm_placement, b.norm_placement);
  EXPECT_EQ(a.scale_embedding, b.scale_embedding);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.dropout, b.dropout);
  EXPECT_EQ(a.pad_id, b.pad_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
  EXPECT_EQ(a.decoder_start_id, b.decoder_start_id);
}

// qkv's parameter name -> its values.
std::map<std::string, std::vector<float>> Values(const EncoderDecoderConfig& config,
                                                 EncoderDecoderParams<float> params) {
  std::map<std::string, std::vector<float>> values;
  ForEachParameter(config, params, [&](const layers::ParameterInfo& info, TensorView<float>& slot) {
    values[info.name].assign(slot.data(), slot.data() + slot.size());
  });
  return values;
}

std::string ConfigError(const nlohmann::json& json) {
  try {
    EncoderDecoderConfigFromMarianJson(json);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

std::string WithValue(const char* key, const nlohmann::json& value) {
  nlohmann::json json = MarianConfigJson(PostNormSinusoidal());
  json[key] = value;
  return ConfigError(json);
}

std::string Without(const char* key) {
  nlohmann::json json = MarianConfigJson(PostNormSinusoidal());
  json.erase(key);
  return ConfigError(json);
}

TEST(MarianConfigTest, JsonHasMarianKeys) {
  EncoderDecoderConfig config = PostNormSinusoidal();
  config.scale_embedding = true;
  const nlohmann::json json = MarianConfigJson(config);
  EXPECT_EQ(json["model_type"], "marian");
  EXPECT_EQ(json["architectures"], nlohmann::json::array({"MarianMTModel"}));
  EXPECT_EQ(json["d_model"], 8);
  EXPECT_EQ(json["encoder_layers"], 2);
  EXPECT_EQ(json["decoder_layers"], 3);
  EXPECT_EQ(json["encoder_attention_heads"], 2);
  EXPECT_EQ(json["decoder_attention_heads"], 2);
  EXPECT_EQ(json["encoder_ffn_dim"], 12);
  EXPECT_EQ(json["decoder_ffn_dim"], 12);
  EXPECT_EQ(json["activation_function"], "relu");
  EXPECT_EQ(json["max_position_embeddings"], 10);
  EXPECT_EQ(json["scale_embedding"], true);
  EXPECT_EQ(json["vocab_size"], 11);
  EXPECT_EQ(json["pad_token_id"], 2);
  EXPECT_EQ(json["eos_token_id"], 0);
  EXPECT_EQ(json["decoder_start_token_id"], 2);
  EXPECT_EQ(json["share_encoder_decoder_embeddings"], true);
  EXPECT_EQ(json["position_encoding"], "sinusoidal");
  EXPECT_EQ(json["normalize_before"], false);
}

TEST(MarianConfigTest, JsonRoundTrip) {
  EncoderDecoderConfig pre = TinyConfig(NormPlacement::kPre, PositionEncoding::kLearned);
  pre.ffn = FfnKind::kGelu;
  pre.dropout = 0.25f;
  pre.scale_embedding = true;
  EncoderDecoderConfig none = TinyConfig(NormPlacement::kPost, PositionEncoding::kNone);
  none.ffn = FfnKind::kGeluTanh;
  none.ffn_dim = 0;  // 4 * C, written out as 32
  none.decoder_start_id = 5;
  for (const EncoderDecoderConfig& config : {PostNormSinusoidal(), pre, none}) {
    const nlohmann::json json = MarianConfigJson(config);
    SCOPED_TRACE(json.dump());
    ExpectSameConfig(EncoderDecoderConfigFromMarianJson(json), config);
    // The same through text, as a file holds it.
    ExpectSameConfig(EncoderDecoderConfigFromMarianJson(nlohmann::json::parse(json.dump(2))),
                     config);
  }
}

TEST(MarianConfigTest, OptionalKeysDefaultToMarian) {
  const nlohmann::json json = {
      {"model_type", "marian"},        {"vocab_size", 11},      {"d_model", 8},
      {"encoder_layers", 1},           {"decoder_layers", 1},   {"encoder_attention_heads", 2},
      {"decoder_attention_heads", 2},  {"encoder_ffn_dim", 16}, {"decoder_ffn_dim", 16},
      {"max_position_embeddings", 32}, {"pad_token_id", 10},    {"eos_token_id", 0},
  };
  const EncoderDecoderConfig config = EncoderDecoderConfigFromMarianJson(json);
  EXPECT_EQ(config.position, PositionEncoding::kSinusoidal);
  EXPECT_EQ(config.norm_placement, NormPlacement::kPost);
  EXPECT_EQ(config.ffn, FfnKind::kGelu);   // MarianConfig's default activation_function
  EXPECT_FALSE(config.scale_embedding);    // MarianConfig's default
  EXPECT_EQ(config.decoder_start_id, 10);  // the padding token, as Marian starts
  EXPECT_FLOAT_EQ(config.dropout, 0.1f);
  EXPECT_EQ(config.norm_eps, 1e-5);
}

TEST(MarianConfigTest, BadValuesNameTheKeyAndValue) {
  EXPECT_MENTIONS(WithValue("d_model", "8"), "'d_model' has a bad value \"8\"");
  EXPECT_MENTIONS(WithValue("d_model", 8.5), "'d_model' has a bad value 8.5");
  EXPECT_MENTIONS(WithValue("encoder_layers", 0), "'encoder_layers' is 0");
  EXPECT_MENTIONS(WithValue("decoder_layers", -3), "'decoder_layers' is -3");
  EXPECT_MENTIONS(WithValue("vocab_size", 1'000'000'000'000), "'vocab_size' is 1000000000000");
  EXPECT_MENTIONS(WithValue("max_position_embeddings", true),
                  "'max_position_embeddings' has a bad value true");
  EXPECT_MENTIONS(WithValue("scale_embedding", 1), "'scale_embedding' has a bad value 1");
  EXPECT_MENTIONS(WithValue("normalize_before", "yes"), "'normalize_before' has a bad value");
  EXPECT_MENTIONS(WithValue("position_encoding", "rope"),
                  "'position_encoding' has a bad value \"rope\"");
  EXPECT_MENTIONS(WithValue("activation_function", "tanh"),
                  "'activation_function' has a bad value \"tanh\"");
  EXPECT_MENTIONS(WithValue("dropout", 1.5), "'dropout' must be in [0, 1), got 1.5");
  EXPECT_MENTIONS(WithValue("model_type", "bart"), "'model_type' is \"bart\"");
  EXPECT_MENTIONS(WithValue("pad_token_id", 11), "pad_token_id 11 is outside the vocabulary");
  EXPECT_MENTIONS(WithValue("decoder_start_token_id", 40), "decoder_start_token_id");
  EXPECT_MENTIONS(WithValue("encoder_attention_heads", 3), "encoder_attention_heads");
  EXPECT_MENTIONS(WithValue("decoder_vocab_size", 12), "'decoder_vocab_size' is 12");
  EXPECT_MENTIONS(Without("vocab_size"), "the required key 'vocab_size' is missing");
  EXPECT_MENTIONS(Without("model_type"), "the required key 'model_type' is missing");
  EXPECT_MENTIONS(Without("decoder_ffn_dim"), "'decoder_ffn_dim' is missing");
  EXPECT_MENTIONS(ConfigError(nlohmann::json::array()), "must hold a JSON object");
}

TEST(MarianConfigTest, DifferentEncoderAndDecoderSizesAreRefused) {
  nlohmann::json json = MarianConfigJson(PostNormSinusoidal());
  json["decoder_attention_heads"] = 4;
  const std::string heads = ConfigError(json);
  EXPECT_MENTIONS(heads, "'encoder_attention_heads' is 2 but 'decoder_attention_heads' is 4");
  EXPECT_MENTIONS(heads, "one head count");
  json = MarianConfigJson(PostNormSinusoidal());
  json["encoder_ffn_dim"] = 24;
  EXPECT_MENTIONS(ConfigError(json), "'encoder_ffn_dim' is 24 but 'decoder_ffn_dim' is 12");
}

TEST(MarianConfigTest, SwishAndSiluAreTheSiluFfnAndSaveAsSwish) {
  // OPUS-MT's configs say "swish"; Hugging Face's ACT2FN has "silu" for the same function.
  for (const char* name : {"swish", "silu"}) {
    nlohmann::json json = MarianConfigJson(PostNormSinusoidal());
    json["activation_function"] = name;
    EXPECT_EQ(EncoderDecoderConfigFromMarianJson(json).ffn, FfnKind::kSilu) << name;
  }
  EncoderDecoderConfig config = PostNormSinusoidal();
  config.ffn = FfnKind::kSilu;
  EXPECT_EQ(MarianConfigJson(config)["activation_function"], "swish");
}

TEST(MarianConfigTest, UnsharedOrUntiedEmbeddingsAreRefused) {
  EXPECT_MENTIONS(WithValue("share_encoder_decoder_embeddings", false),
                  "'share_encoder_decoder_embeddings' is false");
  EXPECT_MENTIONS(WithValue("tie_word_embeddings", false), "'tie_word_embeddings' is false");
}

TEST(MarianConfigTest, WhatMarianCannotHoldIsRefusedOnSave) {
  EncoderDecoderConfig config = PostNormSinusoidal();
  config.norm_eps = 1e-6;
  try {
    MarianConfigJson(config);
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_MENTIONS(std::string(error.what()), "epsilon is fixed at 1e-5");
  }
}

class MarianCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("qkv_marian_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    dir_ = (root_ / "model").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string tensors_path() const { return dir_ + "/model.safetensors"; }

  // Rewrites model.safetensors through edit.
  void EditTensors(const std::function<void(io::SafetensorsFile&)>& edit) {
    io::SafetensorsFile file = io::ReadSafetensors(tensors_path());
    edit(file);
    io::WriteSafetensors(tensors_path(), file);
  }

  std::string LoadError() {
    try {
      LoadEncoderDecoder(dir_);
    } catch (const Error& error) {
      return error.what();
    }
    return "(no error)";
  }

  void ExpectRoundTrip(const EncoderDecoderConfig& config) {
    const LoadedEncoderDecoder saved = RandomModel(config);
    SaveEncoderDecoder(dir_, config, saved.params);
    const LoadedEncoderDecoder loaded = LoadEncoderDecoder(dir_);
    ExpectSameConfig(loaded.config, config);
    const auto expected = Values(config, saved.params), actual = Values(config, loaded.params);
    ASSERT_EQ(actual.size(), expected.size());
    for (const auto& [name, values] : expected) {
      const std::vector<float>& got = actual.at(name);
      ASSERT_EQ(got.size(), values.size()) << name;
      EXPECT_EQ(std::memcmp(got.data(), values.data(), values.size() * sizeof(float)), 0)
          << name << " differs after save and load";
    }
  }

  fs::path root_;
  std::string dir_;
};

TEST_F(MarianCheckpointTest, RoundTripPostNormSinusoidalIsBitwise) {
  ExpectRoundTrip(PostNormSinusoidal());
}

TEST_F(MarianCheckpointTest, RoundTripPreNormLearnedIsBitwise) {
  EncoderDecoderConfig config = TinyConfig(NormPlacement::kPre, PositionEncoding::kLearned);
  config.ffn = FfnKind::kGelu;
  ExpectRoundTrip(config);
}

TEST_F(MarianCheckpointTest, RoundTripWithoutPositionsIsBitwise) {
  ExpectRoundTrip(TinyConfig(NormPlacement::kPost, PositionEncoding::kNone));
}

TEST_F(MarianCheckpointTest, TensorsHaveHuggingFaceNamesShapesAndRows) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  const LoadedEncoderDecoder model = RandomModel(config);
  SaveEncoderDecoder(dir_, config, model.params);
  const io::SafetensorsFile file = io::ReadSafetensors(tensors_path());
  EXPECT_EQ(file.metadata.at("format"), "pt");
  std::map<std::string, const io::NamedTensor*> by_name;
  for (const io::NamedTensor& tensor : file.tensors) by_name[tensor.name] = &tensor;
  // shared, final_logits_bias, two tables; 16 per encoder layer, 26 per decoder layer.
  EXPECT_EQ(by_name.size(), 4u + 2 * 16 + 3 * 26);
  const int64_t c = 8, v = 11, f = 12, p = 10;
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"model.shared.weight", {v, c}},
      {"final_logits_bias", {1, v}},
      {"model.encoder.embed_positions.weight", {p, c}},
      {"model.decoder.embed_positions.weight", {p, c}},
      {"model.encoder.layers.1.self_attn.q_proj.weight", {c, c}},
      {"model.encoder.layers.1.self_attn.k_proj.bias", {c}},
      {"model.encoder.layers.1.self_attn.out_proj.weight", {c, c}},
      {"model.encoder.layers.1.self_attn_layer_norm.weight", {c}},
      {"model.encoder.layers.1.fc1.weight", {f, c}},
      {"model.encoder.layers.1.fc2.weight", {c, f}},
      {"model.encoder.layers.1.final_layer_norm.bias", {c}},
      {"model.decoder.layers.2.encoder_attn.q_proj.weight", {c, c}},
      {"model.decoder.layers.2.encoder_attn.v_proj.bias", {c}},
      {"model.decoder.layers.2.encoder_attn.out_proj.bias", {c}},
      {"model.decoder.layers.2.encoder_attn_layer_norm.weight", {c}},
  };
  for (const auto& [name, shape] : shapes) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_EQ(by_name.at(name)->shape, shape) << name;
  }
  EXPECT_EQ(by_name.count("model.encoder.layer_norm.weight"), 0u);  // post-norm has none
  EXPECT_EQ(by_name.count("lm_head.weight"), 0u);                   // tied

  // The fused projections' rows: qkv = [q; k; v], kv = [k; v].
  const layers::BlockParams<float>& encoder = model.params.encoder_blocks[1];
  const layers::BlockParams<float>& decoder = model.params.decoder_blocks[2];
  auto expect_rows = [&](const std::string& name, const float* rows, int64_t count) {
    const std::vector<float>& stored = by_name.at(name)->f32;
    ASSERT_EQ(static_cast<int64_t>(stored.size()), count) << name;
    EXPECT_EQ(std::memcmp(stored.data(), rows, stored.size() * sizeof(float)), 0) << name;
  };
  const std::string self = "model.encoder.layers.1.self_attn.";
  for (int i = 0; i < 3; ++i) {
    const std::string part = std::string(1, "qkv"[i]) + "_proj.";
    expect_rows(self + part + "weight", encoder.attention.qkv_weight.data() + i * c * c, c * c);
    expect_rows(self + part + "bias", encoder.attention.qkv_bias.data() + i * c, c);
  }
  const std::string cross = "model.decoder.layers.2.encoder_attn.";
  expect_rows(cross + "q_proj.weight", decoder.cross_attention.q_weight.data(), c * c);
  expect_rows(cross + "k_proj.weight", decoder.cross_attention.kv_weight.data(), c * c);
  expect_rows(cross + "v_proj.weight", decoder.cross_attention.kv_weight.data() + c * c, c * c);
  expect_rows(cross + "v_proj.bias", decoder.cross_attention.kv_bias.data() + c, c);
  expect_rows("model.decoder.layers.2.fc1.weight", decoder.ffn.up_weight.data(), f * c);
  expect_rows("model.decoder.layers.2.final_layer_norm.weight", decoder.norm2.weight.data(), c);
  expect_rows("model.decoder.layers.2.self_attn_layer_norm.bias", decoder.norm1.bias.data(), c);
  expect_rows("model.decoder.layers.2.encoder_attn_layer_norm.bias", decoder.cross_norm.bias.data(),
              c);
  expect_rows("final_logits_bias", model.params.final_logits_bias.data(), v);

  // Marian's fixed table: column i < C/2 the sine, C/2 + i the cosine of p / 10000^(2i/C).
  const std::vector<float>& table = by_name.at("model.decoder.embed_positions.weight")->f32;
  const int64_t row = 7, i = 1;
  const double angle = 7.0 / std::pow(10000.0, 2.0 * i / c);
  EXPECT_FLOAT_EQ(table[row * c + i], static_cast<float>(std::sin(angle)));
  EXPECT_FLOAT_EQ(table[row * c + c / 2 + i], static_cast<float>(std::cos(angle)));
}

TEST_F(MarianCheckpointTest, PreNormAndLearnedTensors) {
  const EncoderDecoderConfig config = TinyConfig(NormPlacement::kPre, PositionEncoding::kLearned);
  const LoadedEncoderDecoder model = RandomModel(config);
  SaveEncoderDecoder(dir_, config, model.params);
  const io::SafetensorsFile file = io::ReadSafetensors(tensors_path());
  std::map<std::string, const io::NamedTensor*> by_name;
  for (const io::NamedTensor& tensor : file.tensors) by_name[tensor.name] = &tensor;
  for (const char* name : {"model.encoder.layer_norm.weight", "model.encoder.layer_norm.bias",
                           "model.decoder.layer_norm.weight", "model.decoder.layer_norm.bias"}) {
    EXPECT_EQ(by_name.count(name), 1u) << name;
  }
  const std::vector<float>& learned = by_name.at("model.encoder.embed_positions.weight")->f32;
  ASSERT_EQ(static_cast<int64_t>(learned.size()), model.params.encoder_positions.size());
  EXPECT_EQ(std::memcmp(learned.data(), model.params.encoder_positions.data(),
                        learned.size() * sizeof(float)),
            0);
  const nlohmann::json json = ReadConfigJson(dir_);
  EXPECT_EQ(json["normalize_before"], true);
  EXPECT_EQ(json["position_encoding"], "learned");
}

TEST_F(MarianCheckpointTest, ExtraKeysGoIntoConfigJson) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params, {{"tokenizer", {{"kind", "spm"}}}});
  EXPECT_EQ(ReadConfigJson(dir_)["tokenizer"]["kind"], "spm");
  EXPECT_NO_THROW(LoadEncoderDecoder(dir_));
}

TEST_F(MarianCheckpointTest, NewDirectoryAppearsWholeAndExistingOneKeepsItsFiles) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_ + "/", config, RandomModel(config).params);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"model"});  // no staging folder left
  // Saving again into it (the tokenizer's files already there) replaces only the model's.
  { std::ofstream(dir_ + "/vocab.json") << "{}"; }
  const LoadedEncoderDecoder second = RandomModel(config, 99);
  SaveEncoderDecoder(dir_, config, second.params);
  EXPECT_TRUE(fs::exists(dir_ + "/vocab.json"));
  const LoadedEncoderDecoder loaded = LoadEncoderDecoder(dir_);
  EXPECT_EQ(std::memcmp(loaded.params.shared.data(), second.params.shared.data(),
                        static_cast<size_t>(second.params.shared.size()) * sizeof(float)),
            0);
}

TEST_F(MarianCheckpointTest, TiedCopiesLoadWhenEqual) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  const LoadedEncoderDecoder model = RandomModel(config);
  SaveEncoderDecoder(dir_, config, model.params);
  EditTensors([](io::SafetensorsFile& file) {
    const io::NamedTensor shared = file.Get("model.shared.weight");
    for (const char* name : {"model.encoder.embed_tokens.weight",
                             "model.decoder.embed_tokens.weight", "lm_head.weight"}) {
      io::NamedTensor copy = shared;
      copy.name = name;
      file.tensors.push_back(copy);
    }
  });
  EXPECT_NO_THROW(LoadEncoderDecoder(dir_));
  // A file that keeps only a copy (transformers keeps one name of a tied group).
  EditTensors([](io::SafetensorsFile& file) {
    std::erase_if(file.tensors, [](const io::NamedTensor& tensor) {
      return tensor.name == "model.shared.weight" ||
             tensor.name == "model.encoder.embed_tokens.weight";
    });
  });
  const LoadedEncoderDecoder loaded = LoadEncoderDecoder(dir_);
  EXPECT_EQ(std::memcmp(loaded.params.shared.data(), model.params.shared.data(),
                        static_cast<size_t>(model.params.shared.size()) * sizeof(float)),
            0);
}

TEST_F(MarianCheckpointTest, TiedCopyThatDiffersNamesIt) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  EditTensors([](io::SafetensorsFile& file) {
    io::NamedTensor head = file.Get("model.shared.weight");
    head.name = "lm_head.weight";
    head.f32[5] += 1.0f;
    file.tensors.push_back(head);
  });
  const std::string message = LoadError();
  EXPECT_MENTIONS(message, "tensor 'lm_head.weight' differs from 'model.shared.weight'");
  // A copy of the wrong shape is named too.
  EditTensors([](io::SafetensorsFile& file) {
    std::erase_if(file.tensors,
                  [](const io::NamedTensor& tensor) { return tensor.name == "lm_head.weight"; });
    io::NamedTensor copy = file.Get("model.shared.weight");
    copy.name = "model.decoder.embed_tokens.weight";
    copy.shape = {22, 4};
    file.tensors.push_back(copy);
  });
  EXPECT_MENTIONS(LoadError(),
                  "tensor 'model.decoder.embed_tokens.weight' has shape [22, 4] but config.json "
                  "implies [11, 8]");
}

TEST_F(MarianCheckpointTest, MissingTensorIsNamed) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  const std::string missing = "model.decoder.layers.1.encoder_attn.k_proj.weight";
  EditTensors([&](io::SafetensorsFile& file) {
    std::erase_if(file.tensors,
                  [&](const io::NamedTensor& tensor) { return tensor.name == missing; });
  });
  EXPECT_MENTIONS(LoadError(), "tensor '" + missing + "' is missing");
}

TEST_F(MarianCheckpointTest, WrongShapeIsNamedWithBothShapes) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  EditTensors([](io::SafetensorsFile& file) {
    for (io::NamedTensor& tensor : file.tensors) {
      if (tensor.name == "model.encoder.layers.0.fc1.weight") tensor.shape = {8, 12};
      if (tensor.name == "final_logits_bias") tensor.shape = {11};
    }
  });
  EXPECT_MENTIONS(LoadError(),
                  "tensor 'model.encoder.layers.0.fc1.weight' has shape [8, 12] but config.json "
                  "implies [12, 8]");
  EditTensors([](io::SafetensorsFile& file) {
    for (io::NamedTensor& tensor : file.tensors) {
      if (tensor.name == "model.encoder.layers.0.fc1.weight") tensor.shape = {12, 8};
    }
  });
  EXPECT_MENTIONS(LoadError(),
                  "tensor 'final_logits_bias' has shape [11] but config.json "
                  "implies [1, 11]");
}

TEST_F(MarianCheckpointTest, UnknownTensorIsNamed) {
  // A pre-norm checkpoint read with a post-norm config.json: the final norms are extra.
  const EncoderDecoderConfig pre = TinyConfig(NormPlacement::kPre, PositionEncoding::kSinusoidal);
  SaveEncoderDecoder(dir_, pre, RandomModel(pre).params);
  nlohmann::json json = ReadConfigJson(dir_);
  json["normalize_before"] = false;
  io::WriteFileAtomically(dir_ + "/config.json", json.dump());
  EXPECT_MENTIONS(LoadError(), "tensor 'model.decoder.layer_norm.bias' is not part of the model");
}

TEST_F(MarianCheckpointTest, IntegerTensorIsRefused) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  EditTensors([](io::SafetensorsFile& file) {
    io::NamedTensor ids;
    ids.name = "model.encoder.layers.0.fc2.bias";
    ids.is_int32 = true;
    ids.shape = {8};
    ids.i32.assign(8, 1);
    std::erase_if(file.tensors,
                  [&](const io::NamedTensor& tensor) { return tensor.name == ids.name; });
    file.tensors.push_back(ids);
  });
  EXPECT_MENTIONS(LoadError(), "tensor 'model.encoder.layers.0.fc2.bias' has dtype I32");
}

TEST_F(MarianCheckpointTest, SinusoidalTablesAreOptionalButMustBeMarians) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  // transformers' newer versions do not save them.
  io::SafetensorsFile saved = io::ReadSafetensors(tensors_path());
  EditTensors([](io::SafetensorsFile& file) {
    std::erase_if(file.tensors, [](const io::NamedTensor& tensor) {
      return tensor.name.find("embed_positions") != std::string::npos;
    });
  });
  EXPECT_NO_THROW(LoadEncoderDecoder(dir_));
  // Within 1e-6 is Marian's table; beyond that it is another table.
  io::NamedTensor* table = nullptr;
  for (io::NamedTensor& tensor : saved.tensors) {
    if (tensor.name == "model.encoder.embed_positions.weight") table = &tensor;
  }
  ASSERT_NE(table, nullptr);
  table->f32[3 * 8 + 5] += 5e-7f;
  io::WriteSafetensors(tensors_path(), saved);
  EXPECT_NO_THROW(LoadEncoderDecoder(dir_));
  table->f32[3 * 8 + 5] += 1e-4f;
  io::WriteSafetensors(tensors_path(), saved);
  const std::string message = LoadError();
  EXPECT_MENTIONS(message, "tensor 'model.encoder.embed_positions.weight' is not Marian's");
  EXPECT_MENTIONS(message, "at position 3, column 5");
  // The interleaved layout of "Attention Is All You Need" is not Marian's either.
  ops::FillSinusoidalTable(TensorView<float>(table->f32.data(), Shape{10, 8}),
                           ops::SinusoidalLayout::kInterleaved);
  io::WriteSafetensors(tensors_path(), saved);
  EXPECT_MENTIONS(LoadError(), "is not Marian's sinusoidal position table");
}

TEST_F(MarianCheckpointTest, LearnedTablesAreRequired) {
  const EncoderDecoderConfig config = TinyConfig(NormPlacement::kPost, PositionEncoding::kLearned);
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  EditTensors([](io::SafetensorsFile& file) {
    std::erase_if(file.tensors, [](const io::NamedTensor& tensor) {
      return tensor.name == "model.decoder.embed_positions.weight";
    });
  });
  EXPECT_MENTIONS(LoadError(), "tensor 'model.decoder.embed_positions.weight' is missing");
}

TEST_F(MarianCheckpointTest, ConfigErrorsNameTheDirectory) {
  const EncoderDecoderConfig config = PostNormSinusoidal();
  SaveEncoderDecoder(dir_, config, RandomModel(config).params);
  nlohmann::json json = ReadConfigJson(dir_);
  json["activation_function"] = "mish";
  io::WriteFileAtomically(dir_ + "/config.json", json.dump());
  const std::string message = LoadError();
  EXPECT_MENTIONS(message, dir_);
  EXPECT_MENTIONS(message, "\"mish\"");
}

}  // namespace
}  // namespace qkv::model
