// A model directory that training writes checkpoints into, so that a crash at any instant
// (kill -9, power cut, full disk) leaves the last complete checkpoint loadable:
//
//   DIR/checkpoints/step-000000120/   one complete checkpoint (config.json, model.safetensors,
//   DIR/checkpoints/step-000000140/   tokenizer files, training_state.safetensors)
//   DIR/current -> checkpoints/step-000000140      the one switch: a symlink, replaced by rename
//   DIR/config.json -> current/config.json         one link per file of a checkpoint, so that
//   DIR/model.safetensors -> current/...           DIR reads like any Hugging Face directory
//
// A save writes the new checkpoint into DIR/checkpoints/.staging-step-N, fsyncs every file
// and the folder, renames the folder to step-N (so a step-N folder is always complete),
// fsyncs, then replaces `current` by renaming a new symlink over it and fsyncs DIR. Older
// checkpoints are removed only after that switch: renamed to .trash-* first, so a folder
// half-removed by a crash is never mistaken for a checkpoint. Leftovers of an interrupted
// save are removed at the next open.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace qkv::io {

class CheckpointDirectory {
 public:
  // dir need not exist yet.
  explicit CheckpointDirectory(std::string dir);

  // Removes the leftovers of interrupted saves: staging and trash folders, temporary links,
  // and checkpoints newer than the current one (written, but never switched to). For the
  // one process that writes checkpoints into dir, before its first save.
  void RemoveLeftovers() const;

  // Writes checkpoint `step`: write_files(folder) writes every file of it into folder (an
  // empty staging folder), then the checkpoint is made durable and current, the top-level
  // links are made, and all but the newest `keep` checkpoints (keep >= 1) are removed. On any
  // failure (disk full, file too large, I/O error) the staging folder is removed, the previous
  // checkpoint stays current and untouched, and qkv::Error says what failed.
  void Save(int64_t step, const std::function<void(const std::string& folder)>& write_files,
            int keep);

  // The step of the current checkpoint, if there is one.
  std::optional<int64_t> CurrentStep() const;
  // The steps of all complete checkpoints, oldest first.
  std::vector<int64_t> Steps() const;

  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

// The folder whose files a reader should open for a model directory: dir/current resolved
// once (so that config.json and the tensors come from one checkpoint even while a training
// run switches to the next), or dir itself for a plain directory.
std::string ResolveModelDirectory(const std::string& dir);

}  // namespace qkv::io
