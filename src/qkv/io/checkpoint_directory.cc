#include "qkv/io/checkpoint_directory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "qkv/core/check.h"

namespace qkv::io {

namespace {

namespace fs = std::filesystem;

constexpr const char* kCheckpointsFolder = "checkpoints";
constexpr const char* kCurrentLink = "current";
constexpr const char* kStepPrefix = "step-";
constexpr const char* kStagingPrefix = ".staging-";
constexpr const char* kTrashPrefix = ".trash-";
constexpr const char* kTemporarySuffix = ".qkv-tmp";

std::string StepFolderName(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "%s%09lld", kStepPrefix, static_cast<long long>(step));
  return name;
}

// The step of a folder called step-N, or nothing for any other name.
std::optional<int64_t> ParseStepFolderName(const std::string& name) {
  const size_t prefix = std::strlen(kStepPrefix);
  if (name.size() <= prefix || name.compare(0, prefix, kStepPrefix) != 0) return std::nullopt;
  int64_t step = 0;
  const char* end = name.data() + name.size();
  const auto [stop, error] = std::from_chars(name.data() + prefix, end, step);
  if (error != std::errc() || stop != end || step < 0) return std::nullopt;
  return step;
}

void Fsync(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  QKV_CHECK(fd >= 0, path.string(), ": cannot open to sync: ", std::strerror(errno));
  const int result = ::fsync(fd);
  const int saved_errno = errno;
  ::close(fd);
  QKV_CHECK(result == 0, path.string(), ": fsync failed: ", std::strerror(saved_errno));
}

// Replaces (or creates) the symlink `link` to point at `target`, atomically.
void ReplaceSymlink(const fs::path& link, const std::string& target) {
  const fs::path temporary = link.string() + kTemporarySuffix;
  ::unlink(temporary.c_str());
  QKV_CHECK(::symlink(target.c_str(), temporary.c_str()) == 0, temporary.string(),
            ": cannot create a symlink: ", std::strerror(errno));
  if (::rename(temporary.c_str(), link.c_str()) != 0) {
    const int saved_errno = errno;
    ::unlink(temporary.c_str());
    QKV_CHECK(false, link.string(), ": cannot replace: ", std::strerror(saved_errno));
  }
}

// Removes a folder so that a crash halfway never leaves something that looks complete: it is
// renamed to a trash name first.
void RemoveFolder(const fs::path& folder) {
  const fs::path trash = folder.parent_path() / (kTrashPrefix + folder.filename().string());
  std::error_code error;
  fs::remove_all(trash, error);
  fs::rename(folder, trash, error);
  fs::remove_all(error ? folder : trash, error);
}

}  // namespace

CheckpointDirectory::CheckpointDirectory(std::string dir) : dir_(std::move(dir)) {}

void CheckpointDirectory::RemoveLeftovers() const {
  const fs::path checkpoints = fs::path(dir_) / kCheckpointsFolder;
  std::error_code error;
  if (fs::is_directory(checkpoints, error)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints, error)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(kStagingPrefix) || name.starts_with(kTrashPrefix)) {
        fs::remove_all(entry.path(), error);
      }
    }
  }
  if (fs::is_directory(dir_, error)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(dir_, error)) {
      if (entry.path().filename().string().ends_with(kTemporarySuffix)) {
        fs::remove(entry.path(), error);
      }
    }
  }
  const std::optional<int64_t> current = CurrentStep();
  for (int64_t step : Steps()) {
    if (!current || step > *current) RemoveFolder(checkpoints / StepFolderName(step));
  }
}

std::vector<int64_t> CheckpointDirectory::Steps() const {
  std::vector<int64_t> steps;
  const fs::path checkpoints = fs::path(dir_) / kCheckpointsFolder;
  std::error_code error;
  if (!fs::is_directory(checkpoints, error)) return steps;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints, error)) {
    if (!entry.is_directory(error)) continue;
    if (auto step = ParseStepFolderName(entry.path().filename().string())) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<int64_t> CheckpointDirectory::CurrentStep() const {
  std::error_code error;
  const fs::path target = fs::read_symlink(fs::path(dir_) / kCurrentLink, error);
  if (error) return std::nullopt;
  if (!fs::is_directory(fs::path(dir_) / kCurrentLink, error)) return std::nullopt;
  return ParseStepFolderName(target.filename().string());
}

void CheckpointDirectory::Save(int64_t step,
                               const std::function<void(const std::string& folder)>& write_files,
                               int keep) {
  QKV_CHECK(step >= 0, "checkpoint step ", step, " is negative");
  QKV_CHECK(keep >= 1, "checkpoints to keep: ", keep, " (must be at least 1)");
  const fs::path root(dir_);
  const fs::path checkpoints = root / kCheckpointsFolder;
  const std::string step_name = StepFolderName(step);
  const fs::path staging = checkpoints / (kStagingPrefix + step_name);
  const fs::path final_folder = checkpoints / step_name;
  std::error_code error;
  fs::create_directories(checkpoints, error);
  QKV_CHECK(!error, checkpoints.string(), ": cannot create: ", error.message());
  fs::remove_all(staging, error);

  bool renamed = false;
  try {
    fs::create_directory(staging, error);
    QKV_CHECK(!error, staging.string(), ": cannot create: ", error.message());
    write_files(staging.string());
    // The writers may or may not have synced their files; a checkpoint must not depend on it.
    for (const fs::directory_entry& entry : fs::directory_iterator(staging)) {
      if (entry.is_regular_file()) Fsync(entry.path(), false);
    }
    Fsync(staging, true);
    // A step-N folder left by a run that crashed after writing it but before switching to it
    // is complete but not current; the new one replaces it.
    if (fs::exists(final_folder, error)) RemoveFolder(final_folder);
    fs::rename(staging, final_folder, error);
    QKV_CHECK(!error, final_folder.string(),
              ": cannot rename the new checkpoint into place: ", error.message());
    renamed = true;
    Fsync(checkpoints, true);
    // The switch: from here on every reader sees the new checkpoint.
    ReplaceSymlink(root / kCurrentLink, std::string(kCheckpointsFolder) + "/" + step_name);
    Fsync(root, true);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    if (renamed && CurrentStep() != step) RemoveFolder(final_folder);
    throw;
  }

  // Links for tools that open DIR/config.json and DIR/model.safetensors directly. Readers in
  // qkv resolve `current` themselves, so a crash before these links exist loses nothing.
  for (const fs::directory_entry& entry : fs::directory_iterator(final_folder)) {
    const std::string name = entry.path().filename().string();
    const fs::path link = root / name;
    const std::string target = std::string(kCurrentLink) + "/" + name;
    if (fs::is_symlink(link, error) && fs::read_symlink(link, error) == target) continue;
    ReplaceSymlink(link, target);
  }
  Fsync(root, true);

  // Steps after this one are orphans of a run that crashed before switching to them.
  std::vector<int64_t> older;
  for (int64_t other : Steps()) {
    if (other > step) RemoveFolder(checkpoints / StepFolderName(other));
    if (other < step) older.push_back(other);
  }
  for (size_t i = 0; i + static_cast<size_t>(keep) - 1 < older.size(); ++i) {
    RemoveFolder(checkpoints / StepFolderName(older[i]));
  }
}

std::string ResolveModelDirectory(const std::string& dir) {
  const fs::path current = fs::path(dir) / kCurrentLink;
  std::error_code error;
  if (!fs::is_symlink(current, error) || !fs::is_directory(current, error)) return dir;
  const fs::path target = fs::read_symlink(current, error);
  if (error) return dir;
  return (target.is_absolute() ? target : fs::path(dir) / target).string();
}

}  // namespace qkv::io
