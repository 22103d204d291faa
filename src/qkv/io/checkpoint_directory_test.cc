#include "qkv/io/checkpoint_directory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"

namespace qkv::io {
namespace {

namespace fs = std::filesystem;

class CheckpointDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qkv_checkpoint_dir_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string Read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // A checkpoint of two files whose contents name the step.
  static void WriteStep(const std::string& folder, int64_t step) {
    WriteFileAtomically(folder + "/config.json", "config " + std::to_string(step));
    WriteFileAtomically(folder + "/model.safetensors", "weights " + std::to_string(step));
  }
  std::vector<std::string> Names(const fs::path& folder) const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(folder)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

TEST_F(CheckpointDirectoryTest, SaveSwitchesTheTopLevelFilesTogether) {
  CheckpointDirectory checkpoints(dir_.string());
  EXPECT_FALSE(checkpoints.CurrentStep());
  EXPECT_EQ(ResolveModelDirectory(dir_.string()), dir_.string());
  checkpoints.Save(
      10, [](const std::string& folder) { WriteStep(folder, 10); }, 1);
  EXPECT_EQ(checkpoints.CurrentStep(), 10);
  EXPECT_EQ(Read(dir_ / "config.json"), "config 10");
  EXPECT_EQ(Read(dir_ / "model.safetensors"), "weights 10");
  EXPECT_TRUE(fs::is_symlink(dir_ / "config.json"));
  checkpoints.Save(
      20, [](const std::string& folder) { WriteStep(folder, 20); }, 1);
  EXPECT_EQ(Read(dir_ / "config.json"), "config 20");
  EXPECT_EQ(Read(dir_ / "model.safetensors"), "weights 20");
  EXPECT_EQ(Read(fs::path(ResolveModelDirectory(dir_.string())) / "config.json"), "config 20");
  // keep = 1: the previous checkpoint is gone once the new one is current.
  EXPECT_EQ(checkpoints.Steps(), std::vector<int64_t>{20});
}

TEST_F(CheckpointDirectoryTest, KeepsTheNewestN) {
  CheckpointDirectory checkpoints(dir_.string());
  for (int64_t step : {1, 2, 3, 4, 5}) {
    checkpoints.Save(
        step, [&](const std::string& folder) { WriteStep(folder, step); }, 3);
  }
  EXPECT_EQ(checkpoints.Steps(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(checkpoints.CurrentStep(), 5);
}

TEST_F(CheckpointDirectoryTest, AFailedSaveLeavesThePreviousCheckpointAndNoLeftovers) {
  CheckpointDirectory checkpoints(dir_.string());
  checkpoints.Save(
      10, [](const std::string& folder) { WriteStep(folder, 10); }, 1);
  const std::vector<std::string> before = Names(dir_ / "checkpoints");
  EXPECT_THROW(checkpoints.Save(
                   20,
                   [](const std::string& folder) {
                     WriteFileAtomically(folder + "/config.json", "config 20");
                     throw Error("disk full (simulated)");
                   },
                   1),
               Error);
  EXPECT_EQ(checkpoints.CurrentStep(), 10);
  EXPECT_EQ(Read(dir_ / "config.json"), "config 10");
  EXPECT_EQ(Read(dir_ / "model.safetensors"), "weights 10");
  EXPECT_EQ(Names(dir_ / "checkpoints"), before);
}

TEST_F(CheckpointDirectoryTest, LeftoversOfACrashedSaveAreRemoved) {
  CheckpointDirectory checkpoints(dir_.string());
  checkpoints.Save(
      10, [](const std::string& folder) { WriteStep(folder, 10); }, 1);
  // What a kill at various moments of the next save leaves: a staging folder, a complete
  // step folder that was never switched to, a half-removed folder, a temporary link.
  fs::create_directories(dir_ / "checkpoints" / ".staging-step-000000020");
  fs::create_directories(dir_ / "checkpoints" / "step-000000030");
  fs::create_directories(dir_ / "checkpoints" / ".trash-step-000000005");
  fs::create_symlink("checkpoints/step-000000030", dir_ / "current.qkv-tmp");
  EXPECT_EQ(checkpoints.CurrentStep(), 10);
  checkpoints.RemoveLeftovers();
  EXPECT_EQ(Names(dir_ / "checkpoints"), std::vector<std::string>{"step-000000010"});
  EXPECT_FALSE(fs::is_symlink(dir_ / "current.qkv-tmp"));
  EXPECT_EQ(Read(dir_ / "config.json"), "config 10");
}

TEST_F(CheckpointDirectoryTest, ReplacesPlainFilesOfAnOlderLayout) {
  fs::create_directories(dir_);
  WriteFileAtomically((dir_ / "config.json").string(), "old config");
  WriteFileAtomically((dir_ / "model.safetensors").string(), "old weights");
  CheckpointDirectory checkpoints(dir_.string());
  checkpoints.Save(
      7, [](const std::string& folder) { WriteStep(folder, 7); }, 1);
  EXPECT_TRUE(fs::is_symlink(dir_ / "config.json"));
  EXPECT_EQ(Read(dir_ / "config.json"), "config 7");
  EXPECT_EQ(Read(dir_ / "model.safetensors"), "weights 7");
}

TEST_F(CheckpointDirectoryTest, RejectsBadArguments) {
  CheckpointDirectory checkpoints(dir_.string());
  EXPECT_THROW(checkpoints.Save(
                   1, [](const std::string&) {}, 0),
               Error);
  EXPECT_THROW(checkpoints.Save(
                   -1, [](const std::string&) {}, 1),
               Error);
}

}  // namespace
}  // namespace qkv::io
