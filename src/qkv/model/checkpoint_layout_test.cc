// Checkpoint layouts: GPT-2's renames and transposes, a layout that splits fused slots into
// several file tensors (as Llama's q/k/v and gate/up), and sharded checkpoints.
#include "qkv/model/checkpoint_layout.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "qkv/core/random.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/transformer.h"

namespace qkv::model {
namespace {

ModelConfig SmallConfig(FfnKind ffn = FfnKind::kGeluTanh) {
  ModelConfig config;
  config.vocab_size = 11;
  config.context = 6;
  config.num_layers = 2;
  config.num_heads = 2;
  config.width = 4;
  config.ffn_dim = 6;
  config.ffn = ffn;
  return config;
}

Model RandomModel(const ModelConfig& config, uint64_t seed) {
  Model model = CreateModel(config);
  Random random(seed);
  ForEachParameter(config, model.params, [&](const ParameterInfo&, TensorView<float>& slot) {
    random.FillNormal(slot, 0.0, 1.0);
  });
  return model;
}

// A Llama-like layout: the fused (3C, C) projection as three (C, C) tensors and SwiGLU's
// (2F, C) up-projection as gate and up, every other parameter under its qkv name.
class SplitLayout final : public CheckpointLayout {
 public:
  std::string name() const override { return "split"; }
  std::vector<TensorPiece> PiecesOf(const ParameterInfo& info) const override {
    const std::string& n = info.name;
    const auto ends = [&](const std::string& suffix) {
      return n.size() > suffix.size() &&
             n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    const std::string stem = n.substr(0, n.rfind('.') + 1);
    if (ends("attention.qkv.weight")) {
      const int64_t c = info.shape[1];
      return {{stem + "q", 0, c, false}, {stem + "k", c, c, false}, {stem + "v", 2 * c, c, false}};
    }
    if (ends("ffn.up.weight") && info.shape[0] % 2 == 0) {
      const int64_t f = info.shape[0] / 2;
      return {{stem + "gate", 0, f, false}, {stem + "up", f, f, false}};
    }
    return {{n, 0, info.shape[0], false}};
  }
};

std::vector<float> Flat(const ModelConfig& config, const ModelParams<float>& params) {
  std::vector<float> values;
  ModelParams<float> views = params;
  ForEachParameter(config, views, [&](const ParameterInfo&, TensorView<float>& slot) {
    values.insert(values.end(), slot.begin(), slot.end());
  });
  return values;
}

TEST(CheckpointLayoutTest, Gpt2TransposesConv1DWeightsAndRenames) {
  const ModelConfig config = SmallConfig();
  const Model model = RandomModel(config, 1);
  const io::SafetensorsFile file = ParametersToFile(Gpt2Layout(), config, model.params);
  const io::NamedTensor& c_attn = file.Get("h.1.attn.c_attn.weight");
  ASSERT_EQ(c_attn.shape, (std::vector<int64_t>{4, 12}));                     // (in, out)
  const TensorView<float> qkv = model.params.blocks[1].attention.qkv_weight;  // (12, 4)
  for (int64_t out = 0; out < 12; ++out) {
    for (int64_t in = 0; in < 4; ++in) {
      EXPECT_EQ(c_attn.f32[static_cast<size_t>(in * 12 + out)], qkv[out * 4 + in]);
    }
  }
  const io::NamedTensor& ln = file.Get("h.0.ln_2.bias");
  EXPECT_EQ(ln.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(ln.f32[2], model.params.blocks[0].norm2.bias[2]);
  EXPECT_EQ(file.Get("wte.weight").f32[5], model.params.token_embedding[5]);
}

TEST(CheckpointLayoutTest, SplitLayoutCutsFusedSlotsIntoRowsAndRoundTrips) {
  const ModelConfig config = SmallConfig(FfnKind::kSwiGlu);
  const Model model = RandomModel(config, 2);
  const SplitLayout layout;
  const io::SafetensorsFile file = ParametersToFile(layout, config, model.params);
  // k is rows [C, 2C) of the fused projection; gate and up the halves of the up-projection.
  const io::NamedTensor& k = file.Get("blocks.0.attention.qkv.k");
  ASSERT_EQ(k.shape, (std::vector<int64_t>{4, 4}));
  const TensorView<float> qkv = model.params.blocks[0].attention.qkv_weight;
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(k.f32[static_cast<size_t>(i)], qkv[16 + i]);
  const io::NamedTensor& up = file.Get("blocks.1.ffn.up.up");
  ASSERT_EQ(up.shape, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(up.f32[0], model.params.blocks[1].ffn.up_weight[int64_t{6} * 4]);

  Model loaded = CreateModel(config);
  const std::vector<io::SafetensorsFile> files{file};
  ParametersFromFile(layout, IndexTensors(layout, files, "test"), config, loaded.params, "test");
  EXPECT_EQ(Flat(config, loaded.params), Flat(config, model.params));
}

TEST(CheckpointLayoutTest, MissingPieceAndUnknownTensorAreErrorsNamingThem) {
  const ModelConfig config = SmallConfig(FfnKind::kSwiGlu);
  const Model model = RandomModel(config, 3);
  const SplitLayout layout;
  io::SafetensorsFile file = ParametersToFile(layout, config, model.params);
  io::SafetensorsFile missing = file;
  std::erase_if(missing.tensors,
                [](const io::NamedTensor& t) { return t.name == "blocks.1.attention.qkv.v"; });
  Model loaded = CreateModel(config);
  const std::vector<io::SafetensorsFile> missing_files{missing};
  try {
    ParametersFromFile(layout, IndexTensors(layout, missing_files, "m"), config, loaded.params,
                       "m");
    FAIL() << "a missing piece was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("blocks.1.attention.qkv.v' is missing"),
              std::string::npos)
        << error.what();
  }
  io::SafetensorsFile extra = file;
  extra.tensors.push_back(file.tensors.front());
  extra.tensors.back().name = "surplus";
  const std::vector<io::SafetensorsFile> extra_files{extra};
  EXPECT_THROW(ParametersFromFile(layout, IndexTensors(layout, extra_files, "x"), config,
                                  loaded.params, "x"),
               Error);
}

TEST(CheckpointLayoutTest, ShardedDirectoryLoadsLikeOneFile) {
  namespace fs = std::filesystem;
  const ModelConfig config = SmallConfig();
  const Model model = RandomModel(config, 4);
  const fs::path dir = fs::temp_directory_path() / ("qkv_layout_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  SaveModel(dir.string(), model);
  // Cut model.safetensors into two shards and an index, as Hugging Face writes them.
  const io::SafetensorsFile whole = io::ReadSafetensors((dir / "model.safetensors").string());
  io::SafetensorsFile shards[2];
  nlohmann::json index;
  for (size_t i = 0; i < whole.tensors.size(); ++i) {
    const int shard = i < whole.tensors.size() / 2 ? 0 : 1;
    shards[shard].tensors.push_back(whole.tensors[i]);
    index["weight_map"][whole.tensors[i].name] =
        shard == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::WriteSafetensors((dir / "model-00001-of-00002.safetensors").string(), shards[0]);
  io::WriteSafetensors((dir / "model-00002-of-00002.safetensors").string(), shards[1]);
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  fs::remove(dir / "model.safetensors");
  const Model loaded = LoadModel(dir.string());
  EXPECT_EQ(Flat(config, loaded.params), Flat(config, model.params));

  // A tensor in a shard other than the one the index names is an error naming both.
  index["weight_map"]["wte.weight"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  try {
    LoadModel(dir.string());
    FAIL() << "a misplaced tensor was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("wte.weight"), std::string::npos) << error.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qkv::model
