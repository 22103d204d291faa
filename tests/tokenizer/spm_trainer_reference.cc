// Trains a SentencePiece model with qkv's trainer (qkv/tokenizer/sentencepiece_trainer.h) and
// encodes texts with it, for check_spm_trainer.py, which compares both with the sentencepiece
// Python module.
//
// Usage: qkv_spm_trainer_reference (--sentences FILE | --pairs FILE.tsv) --vocab-size N
//            [--model-type unigram|bpe] [--normalization NAME] [--byte-fallback]
//            --texts TEXTS.json --model-out MODEL.spm --vocab-out VOCAB.json --output RESULT.json
// --sentences: one training sentence per line ('\n'; empty lines are empty sentences);
// --pairs: a source<TAB>target file, both sides trained on (io::ReadSentencePairs).
// MODEL.spm: the model bytes; VOCAB.json: SentencePieceVocabJson; RESULT.json:
//   {"ids": [[EncodeWithEos of each text], ...], "decoded": [SentencePiece's Decode of them],
//    "tokenizer_ids": [[SentencePieceTokenizer (no BOS, with EOS) of each text], ...],
//    "marian": {"eos_id", "unk_id", "pad_id", "vocab_size"}}
// Exit status 0, 1 with the qkv::Error on stderr, 2 for a bad command line.
#include <sentencepiece_processor.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/io/sentence_pairs.h"
#include "qkv/io/text_file.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_trainer.h"

namespace {

using namespace qkv::tokenizer;

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary);
  file << bytes;
  QKV_CHECK(file.good(), "cannot write '", path, "'");
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

const std::string& Required(const std::map<std::string, std::string>& args,
                            const std::string& flag) {
  const auto it = args.find(flag);
  QKV_CHECK(it != args.end(), "missing ", flag);
  return it->second;
}

int Run(std::map<std::string, std::string> args, bool byte_fallback) {
  SentencePieceTrainOptions options;
  options.vocab_size = std::stoi(Required(args, "--vocab-size"));
  const std::string type = args.contains("--model-type") ? args["--model-type"] : "unigram";
  QKV_CHECK(type == "unigram" || type == "bpe", "--model-type: unigram or bpe, not ", type);
  options.model_type =
      type == "bpe" ? SentencePieceModelType::kBpe : SentencePieceModelType::kUnigram;
  if (args.contains("--normalization")) options.normalization = args["--normalization"];
  options.byte_fallback = byte_fallback;

  std::string model;
  if (args.contains("--pairs")) {
    model = TrainSentencePieceOnPairs(qkv::io::ReadSentencePairs(args["--pairs"]), options);
  } else {
    model = TrainSentencePiece(
        Lines(qkv::io::ReadTextFile(Required(args, "--sentences"), /*allow_empty=*/true)), options);
  }
  WriteFile(Required(args, "--model-out"), model);
  WriteFile(Required(args, "--vocab-out"), SentencePieceVocabJson(model).dump(2) + "\n");

  const MarianVocabIds marian = ReadMarianVocabIds(model);
  const SentencePieceModel processor = LoadSentencePieceModel(model, "the trained model");
  const auto tokenizer =
      SentencePieceTokenizer::FromString(model, "the trained model", {false, true});
  std::ifstream input(Required(args, "--texts"), std::ios::binary);
  QKV_CHECK(input.good(), "cannot open '", args["--texts"], "'");
  const nlohmann::json texts = nlohmann::json::parse(input);
  nlohmann::json ids = nlohmann::json::array(), decoded = nlohmann::json::array(),
                 tokenizer_ids = nlohmann::json::array();
  for (const nlohmann::json& text : texts) {
    const std::vector<int32_t> encoded = EncodeWithEos(*processor, text.get<std::string>());
    ids.push_back(encoded);
    std::string back;
    const sentencepiece::util::Status status =
        processor->Decode(std::vector<int>(encoded.begin(), encoded.end()), &back);
    QKV_CHECK(status.ok(), "decode: ", status.ToString());
    decoded.push_back(back);
    tokenizer_ids.push_back(tokenizer->Encode(text.get<std::string>()));
  }
  const nlohmann::json result = {{"ids", ids},
                                 {"decoded", decoded},
                                 {"tokenizer_ids", tokenizer_ids},
                                 {"marian",
                                  {{"eos_id", marian.eos_id},
                                   {"unk_id", marian.unk_id},
                                   {"pad_id", marian.pad_id},
                                   {"vocab_size", marian.vocab_size}}}};
  WriteFile(Required(args, "--output"), result.dump() + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  bool byte_fallback = false;
  const std::set<std::string> known = {"--sentences",  "--pairs",         "--vocab-size",
                                       "--model-type", "--normalization", "--texts",
                                       "--model-out",  "--vocab-out",     "--output"};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--byte-fallback") {
      byte_fallback = true;
    } else if (known.contains(arg) && i + 1 < argc) {
      args[arg] = argv[++i];
    } else {
      std::cerr << "usage: qkv_spm_trainer_reference (--sentences FILE | --pairs FILE.tsv) "
                   "--vocab-size N [--model-type unigram|bpe] [--normalization NAME] "
                   "[--byte-fallback] --texts TEXTS.json --model-out MODEL.spm --vocab-out "
                   "VOCAB.json --output RESULT.json\n";
      return 2;
    }
  }
  try {
    return Run(args, byte_fallback);
  } catch (const std::exception& error) {
    std::cerr << "qkv_spm_trainer_reference: " << error.what() << "\n";
    return 1;
  }
}
