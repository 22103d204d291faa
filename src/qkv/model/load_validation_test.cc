// config.json values and model directories that must be refused before anything is allocated
// from them: each error names the key or tensor and the values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "qkv/core/check.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/model_config.h"

namespace qkv::model {
namespace {

#define EXPECT_MENTIONS(text, needle)               \
  EXPECT_NE((text).find(needle), std::string::npos) \
      << "'" << (text) << "' lacks '" << (needle) << "'"

ModelConfig TinyConfig() {
  ModelConfig config;
  config.vocab_size = 7;
  config.context = 6;
  config.num_layers = 2;
  config.num_heads = 2;
  config.width = 8;
  config.ffn_dim = 12;
  return config;
}

std::string FromJsonError(const nlohmann::json& json) {
  try {
    ModelConfig::FromJson(json);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

std::string WithValue(const char* key, const nlohmann::json& value) {
  nlohmann::json json = TinyConfig().ToJson();
  json[key] = value;
  return FromJsonError(json);
}

TEST(ConfigValidationTest, HugeSizesAreErrorsNamingTheKey) {
  const int64_t huge = 1'000'000'000'000;  // 10^12
  for (const char* key : {"n_positions", "n_embd", "n_layer", "vocab_size", "n_inner"}) {
    const std::string message = WithValue(key, huge);
    EXPECT_MENTIONS(message, std::string("'") + key + "'");
    EXPECT_MENTIONS(message, "1000000000000");
  }
  // Past int64_t: nlohmann stores it unsigned, get<int64_t>() would have wrapped it.
  EXPECT_MENTIONS(WithValue("n_embd", uint64_t{18446744073709551615u}), "'n_embd'");
}

TEST(ConfigValidationTest, NegativeAndZeroSizesNameTheKey) {
  EXPECT_MENTIONS(WithValue("n_layer", -1), "'n_layer' is -1");
  EXPECT_MENTIONS(WithValue("n_head", 0), "'n_head' is 0");
  EXPECT_MENTIONS(WithValue("vocab_size", -7), "'vocab_size' is -7");
  EXPECT_MENTIONS(WithValue("n_inner", -12), "'n_inner' is -12");
}

TEST(ConfigValidationTest, NonIntegersAreRefused) {
  // get<int64_t>() truncated 8.5 to 8 and accepted it.
  EXPECT_MENTIONS(WithValue("n_embd", 8.5), "'n_embd' has a bad value 8.5");
  EXPECT_MENTIONS(WithValue("n_positions", 1e30), "'n_positions' has a bad value");
  EXPECT_MENTIONS(WithValue("n_layer", "2"), "'n_layer' has a bad value \"2\"");
  EXPECT_MENTIONS(WithValue("n_head", true), "'n_head' has a bad value true");
  EXPECT_MENTIONS(WithValue("n_layer", nlohmann::json::array({2})), "'n_layer' has a bad value");
  // Reals that would overflow a float, and non-finite numbers spelled as strings.
  EXPECT_MENTIONS(WithValue("resid_pdrop", 1e300), "'resid_pdrop' must be in [0, 1)");
  EXPECT_MENTIONS(WithValue("layer_norm_epsilon", "nan"), "'layer_norm_epsilon' has a bad value");
  EXPECT_MENTIONS(WithValue("bias", 1), "'bias' has a bad value 1");
}

TEST(ConfigValidationTest, HeadsThatDoNotDivideTheWidthNameBothKeys) {
  const std::string message = WithValue("n_head", 3);
  EXPECT_MENTIONS(message, "n_embd 8 is not divisible by n_head 3");
}

class ModelDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("qkv_load_validation_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    SaveModel(dir_, CreateModel(TinyConfig()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void RewriteConfig(const char* key, const nlohmann::json& value) {
    nlohmann::json json = ReadConfigJson(dir_);
    json[key] = value;
    std::ofstream(dir_ + "/config.json") << json.dump();
  }
  std::string LoadError() {
    try {
      LoadModel(dir_);
    } catch (const Error& error) {
      return error.what();
    }
    return "(no error)";
  }

  std::string dir_;
};

TEST_F(ModelDirTest, TheTinyModelLoads) { EXPECT_EQ(LoadModel(dir_).config.width, 8); }

TEST_F(ModelDirTest, TensorsContradictingALargeConfigFailBeforeAllocating) {
  // Within the config bounds, but 2^24 x 2^16 floats of wte alone would be 4 TiB: the tensors
  // must be compared with the config before the config sizes the parameter arena.
  RewriteConfig("vocab_size", int64_t{1} << 24);
  RewriteConfig("n_embd", int64_t{1} << 16);
  const std::string message = LoadError();
  EXPECT_MENTIONS(message, "wte.weight' has shape [7, 8]");
  EXPECT_MENTIONS(message, "[16777216, 65536]");
}

TEST_F(ModelDirTest, DeepAndWideConfigIsComparedWithTheTensorsBeforeAllocating) {
  // 1024 layers with 2^20-wide feed-forward blocks: 64 GiB of parameters the file does not have.
  RewriteConfig("n_layer", 1024);
  RewriteConfig("n_inner", 1 << 20);
  EXPECT_MENTIONS(LoadError(),
                  "h.0.mlp.c_fc.weight' has shape [8, 12] but config.json implies [8, 1048576]");
}

// Already refused before the bounds were added, but only after allocating the 512 MiB position
// table the config asked for; pinned here so the message keeps naming the tensor and shapes.
TEST_F(ModelDirTest, LongerContextThanThePositionTableNamesWpe) {
  RewriteConfig("n_positions", 1 << 24);
  EXPECT_MENTIONS(LoadError(),
                  "wpe.weight' has shape [6, 8] but config.json implies [16777216, 8]");
}

TEST_F(ModelDirTest, AModelLargerThanTheAvailableMemoryIsRefusedWithBothSizes) {
  // Tensors of a few floats each: reading the file takes a few hundred bytes, while the arena
  // gives every tensor its own 64-byte aligned slot, so a limit between the two reaches the
  // parameter check.
  ModelConfig config;
  config.vocab_size = 2;
  config.context = 2;
  config.num_layers = 1;
  config.num_heads = 1;
  config.width = 2;
  config.ffn_dim = 2;
  std::filesystem::remove_all(dir_);
  SaveModel(dir_, CreateModel(config));
  const size_t needed = ParameterBytes(config, sizeof(float));
  ASSERT_GT(needed, size_t{600});
  ASSERT_EQ(setenv("QKV_MEMORY_LIMIT", "600", 1), 0);
  const std::string message = LoadError();
  unsetenv("QKV_MEMORY_LIMIT");
  EXPECT_MENTIONS(message, "parameters needs " + std::to_string(needed) + " bytes");
  EXPECT_MENTIONS(message, "only 600 bytes");
}

}  // namespace
}  // namespace qkv::model
