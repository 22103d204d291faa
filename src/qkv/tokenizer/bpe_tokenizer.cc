#include "qkv/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "qkv/tokenizer/byte_level.h"

namespace qkv::tokenizer {

namespace {

constexpr size_t kMaxSpecialTokens = 1024;

std::string Quote(std::string_view text) {
  nlohmann::json quoted = std::string(text);
  return quoted.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ReadFile(const std::string& path, const char* what) {
  std::ifstream file(path, std::ios::binary);
  QKV_CHECK(file.good(), "BPE tokenizer: cannot open the ", what, " file '", path, "'");
  std::ostringstream contents;
  contents << file.rdbuf();
  QKV_CHECK(!file.bad(), "BPE tokenizer: cannot read the ", what, " file '", path, "'");
  return contents.str();
}

}  // namespace

BpeTokenizer::BpeTokenizer(std::vector<std::string> vocabulary,
                           std::vector<std::pair<std::string, std::string>> merges,
                           const std::string& source)
    : tokens_(std::move(vocabulary)), cache_(std::make_unique<BpeMerger::Cache>()) {
  QKV_CHECK(tokens_.size() < (size_t{1} << 31), source, ": too many tokens (", tokens_.size(), ")");
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id) {
    const auto [it, inserted] = ids.emplace(tokens_[id], static_cast<int32_t>(id));
    QKV_CHECK(inserted, source, ": token ", Quote(tokens_[id]), " has two ids, ", it->second,
              " and ", id);
  }
  const auto id_of = [&](const std::string& token) {
    const auto it = ids.find(token);
    return it == ids.end() ? -1 : it->second;
  };

  // A token is made of bytes if it is one of the 256 byte tokens or the result of a merge;
  // anything else is a special token.
  std::vector<bool> from_bytes(tokens_.size(), false);
  const auto& byte_to_char = byte_level::ByteToChar();
  std::array<int32_t, 256> byte_ids;
  for (int byte = 0; byte < 256; ++byte) {
    std::string text;
    text.push_back(static_cast<char>(byte));
    const std::string token = byte_level::Encode(text);
    byte_ids[byte] = id_of(token);
    QKV_CHECK(byte_ids[byte] >= 0, source, ": no token for byte 0x", std::hex, byte, " (written ",
              Quote(token), ", U+", static_cast<uint32_t>(byte_to_char[byte]),
              "); a byte-level BPE vocabulary needs all 256");
    from_bytes[byte_ids[byte]] = true;
  }
  merges_.reserve(merges.size());
  std::vector<BpeMerger::Merge> merge_ids;
  merge_ids.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const std::string where =
        source + ": merge " + std::to_string(rank) + " (" + Quote(left) + " " + Quote(right) + ")";
    const int32_t left_id = id_of(left), right_id = id_of(right), merged_id = id_of(left + right);
    QKV_CHECK(left_id >= 0, where, ": unknown token ", Quote(left));
    QKV_CHECK(right_id >= 0, where, ": unknown token ", Quote(right));
    QKV_CHECK(merged_id >= 0, where, ": the merged token ", Quote(left + right),
              " is not in the vocabulary");
    merges_.emplace_back(left_id, right_id);
    merge_ids.push_back({left_id, right_id, merged_id});
    from_bytes[merged_id] = true;
  }
  for (size_t rank = 0; rank < merges_.size(); ++rank) {
    for (int32_t part : {merges_[rank].first, merges_[rank].second}) {
      QKV_CHECK(from_bytes[part], source, ": merge ", rank, " uses ", Quote(tokens_[part]),
                ", which is neither a byte token nor made by a merge");
    }
  }
  token_bytes_.resize(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (!from_bytes[id]) {
      QKV_CHECK(!tokens_[id].empty(), source, ": token ", id, " is empty");
      token_bytes_[id] = tokens_[id];
      specials_.emplace_back(tokens_[id], static_cast<int32_t>(id));
      continue;
    }
    QKV_CHECK(byte_level::Decode(tokens_[id], &token_bytes_[id]), source, ": token ", id, " ",
              Quote(tokens_[id]), " has characters outside GPT-2's byte-level alphabet");
  }
  // Real vocabularies have a handful of special tokens (GPT-2: one). Thousands of tokens that no
  // merge makes mean merges are missing, which would silently change every encoding.
  QKV_CHECK(specials_.size() <= kMaxSpecialTokens, source, ": ", specials_.size(), " tokens (e.g. ",
            Quote(specials_.front().first),
            ") are neither bytes nor made by any merge, more than the ", kMaxSpecialTokens,
            " special tokens allowed; is the merges file incomplete?");
  merger_ = std::make_unique<BpeMerger>(byte_ids, merge_ids);
  // At the same position the longest special token wins.
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::FromFiles(const std::string& vocab_path,
                                                      const std::string& merges_path) {
  const std::string vocab = ReadFile(vocab_path, "vocabulary");
  return FromStrings(vocab, ReadFile(merges_path, "merges"), vocab_path, merges_path);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::FromStrings(std::string_view vocab_json,
                                                        std::string_view merges_text,
                                                        const std::string& vocab_name,
                                                        const std::string& merges_name) {
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_json);
  } catch (const nlohmann::json::exception& error) {
    QKV_CHECK(false, "BPE tokenizer: ", vocab_name, " is not valid JSON: ", error.what());
  }
  QKV_CHECK(vocab.is_object(), "BPE tokenizer: ", vocab_name,
            " must be a JSON object {\"token\": id, ...}, not a ", vocab.type_name());
  std::vector<std::string> tokens(vocab.size());
  std::vector<bool> used(vocab.size(), false);
  for (const auto& [token, id] : vocab.items()) {
    QKV_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                  id.get<int64_t>() < static_cast<int64_t>(vocab.size()),
              "BPE tokenizer: ", vocab_name, ": token ", Quote(token), " has id ", id.dump(),
              "; ids must be the integers 0..", vocab.size() - 1);
    const auto index = id.get<size_t>();
    QKV_CHECK(!used[index], "BPE tokenizer: ", vocab_name, ": id ", index,
              " is used by two tokens, ", Quote(tokens[index]), " and ", Quote(token));
    used[index] = true;
    tokens[index] = token;
  }

  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_number = 0, start = 0;
  while (start < merges_text.size()) {
    size_t end = merges_text.find('\n', start);
    if (end == std::string_view::npos) end = merges_text.size();
    std::string_view line = merges_text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    const bool two_fields = space != std::string_view::npos && space > 0 &&
                            space + 1 < line.size() &&
                            line.find(' ', space + 1) == std::string_view::npos;
    QKV_CHECK(two_fields, "BPE tokenizer: ", merges_name, " line ", line_number,
              ": expected two tokens separated by one space, got ", Quote(line));
    merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  return std::make_unique<BpeTokenizer>(std::move(tokens), std::move(merges),
                                        "BPE tokenizer: " + vocab_name + " + " + merges_name);
}

void BpeTokenizer::EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const {
  merger_->EncodePiece(piece, ids);
}

void BpeTokenizer::EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids,
                                  const EncodeProgress& progress) const {
  constexpr size_t kReportEvery = size_t{1} << 20;  // bytes
  size_t next_report = kReportEvery;
  pretokenizer_.Split(text, [&](std::string_view piece) {
    if (progress.report) {
      const size_t done = progress.base + static_cast<size_t>(piece.data() - text.data());
      if (done >= next_report) {
        progress.report(done);
        next_report = done + kReportEvery;
      }
    }
    cache_->EncodePiece(*merger_, piece, ids);
  });
}

std::vector<int32_t> BpeTokenizer::DoEncode(std::string_view text,
                                            const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 16);
  // One lock per call: the cache is shared, and pieces are too small to lock one by one.
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (!options.allow_special || specials_.empty()) {
    EncodeOrdinary(text, &ids, {options.progress, 0});
    return ids;
  }
  size_t offset = 0;
  while (offset < text.size()) {
    // The earliest special token; at equal positions the longest (specials_ is sorted so).
    size_t best_position = std::string_view::npos;
    const std::pair<std::string, int32_t>* best = nullptr;
    for (const auto& special : specials_) {
      const size_t position = text.find(special.first, offset);
      if (position < best_position) best_position = position, best = &special;
    }
    if (best == nullptr) break;
    EncodeOrdinary(text.substr(offset, best_position - offset), &ids, {options.progress, offset});
    ids.push_back(best->second);
    offset = best_position + best->first.size();
  }
  EncodeOrdinary(text.substr(offset), &ids, {options.progress, offset});
  return ids;
}

std::string BpeTokenizer::DoDecode(std::span<const int32_t> ids) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    QKV_CHECK(ids[i] >= 0 && ids[i] < vocab_size(), "BPE tokenizer: id ", ids[i], " at position ",
              i, " is outside [0, ", vocab_size(), ")");
    text += token_bytes_[ids[i]];
  }
  return text;
}

std::string BpeTokenizer::VocabJson() const {
  // In id order, as GPT-2's encoder.json, so the file reads as the vocabulary list.
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < tokens_.size(); ++id) vocab[tokens_[id]] = id;
  return vocab.dump() + "\n";
}

std::string BpeTokenizer::MergesText() const {
  std::string text = "#version: 0.2\n";
  for (const auto& [left, right] : merges_) {
    text += tokens_[left];
    text += ' ';
    text += tokens_[right];
    text += '\n';
  }
  return text;
}

void BpeTokenizer::SaveFiles(const std::string& vocab_path, const std::string& merges_path) const {
  io::WriteFileAtomically(vocab_path, VocabJson());
  io::WriteFileAtomically(merges_path, MergesText());
}

nlohmann::json BpeTokenizer::Save(const std::string& model_dir) const {
  SaveFiles(model_dir + "/vocab.json", model_dir + "/merges.txt");
  return {{"type", "bpe"}, {"vocab_file", "vocab.json"}, {"merges_file", "merges.txt"}};
}

}  // namespace qkv::tokenizer
