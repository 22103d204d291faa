#include "qkv/tokenizer/hf_bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <unordered_map>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "qkv/tokenizer/byte_level.h"
#include "qkv/tokenizer/special_tokens.h"

namespace qkv::tokenizer {

struct HfBpeTokenizer::PreTokenizeStep {
  bool byte_level = false;                 // ByteLevel (the last step) or Split
  bool add_prefix_space = false;           // ByteLevel: put a space before a piece without one
  std::unique_ptr<Pretokenizer> splitter;  // null: ByteLevel without its regex
};

namespace {

using Json = nlohmann::json;

std::string Quote(std::string_view text) {
  Json quoted = std::string(text);
  return quoted.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A value for an error message, cut short.
std::string Show(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// Split patterns are written for Oniguruma (what Hugging Face's tokenizers compile them with);
// a few escapes mean something else in PCRE2 and are rewritten: \s and \S (Oniguruma: Unicode's
// White_Space; PCRE2's \s also matches U+180E), \h and \H (Oniguruma: a hex digit; PCRE2:
// horizontal space), \w and \W (Oniguruma: a letter, mark, number or connector punctuation).
// Everything else (\p{L}, \r, (?i:...), look-arounds) means the same in both. Throws for \H or
// \W inside a character class, which PCRE2 cannot write.
std::string ToPcre2(const std::string& pattern, const std::string& where) {
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' first in the class (after an optional '^') is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    if (c == '[' && in_class && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // a POSIX class such as [:alpha:]
      if (end != std::string::npos) {
        out += pattern.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (c != '\\' || i + 1 == pattern.size()) {
      out += c;
      continue;
    }
    const char next = pattern[++i];
    const char* word = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
    switch (next) {
      case 's':
        out += "\\p{White_Space}";
        break;
      case 'S':
        out += "\\P{White_Space}";
        break;
      case 'h':
        out += in_class ? "0-9A-Fa-f" : "[0-9A-Fa-f]";
        break;
      case 'w':
        out += in_class ? std::string(word) : "[" + std::string(word) + "]";
        break;
      case 'H':
      case 'W':
        QKV_CHECK(!in_class, where, ": \\", next,
                  " inside a character class is not supported (PCRE2 cannot write Oniguruma's "
                  "meaning there)");
        out += next == 'H' ? "[^0-9A-Fa-f]" : "[^" + std::string(word) + "]";
        break;
      default:
        out += '\\';
        out += next;
    }
  }
  return out;
}

// A literal string as a PCRE2 pattern: every character outside [A-Za-z0-9] and non-ASCII
// bytes escaped.
std::string LiteralPattern(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80 || std::isalnum(byte)) {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x{";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
      out += '}';
    }
  }
  return out;
}

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  template <typename... Parts>
  [[noreturn]] void Fail(const std::string& where, Parts&&... parts) const {
    throw Error(internal::StrCat(source_, ": ", where, ": ", std::forward<Parts>(parts)...));
  }
  const Json& Member(const Json& object, const std::string& where, const char* key) const {
    if (!object.is_object() || !object.contains(key)) Fail(where, "missing \"", key, "\"");
    return object[key];
  }
  const Json* Optional(const Json& object, const char* key) const {
    if (!object.is_object() || !object.contains(key) || object[key].is_null()) return nullptr;
    return &object[key];
  }
  std::string String(const Json& value, const std::string& where) const {
    if (!value.is_string()) Fail(where, "expected a string, got ", Show(value));
    return value.get<std::string>();
  }
  bool Bool(const Json& object, const std::string& where, const char* key, bool fallback) const {
    const Json* value = Optional(object, key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) Fail(where + "." + key, "expected true or false, got ", Show(*value));
    return value->get<bool>();
  }
  int64_t Id(const Json& value, const std::string& where) const {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
        value.get<int64_t>() >= (int64_t{1} << 30)) {
      Fail(where, "expected a token id (an integer in [0, 2^30)), got ", Show(value));
    }
    return value.get<int64_t>();
  }
  std::string Type(const Json& value, const std::string& where) const {
    if (!value.is_object()) Fail(where, "expected an object, got ", Show(value));
    return String(Member(value, where, "type"), where + ".type");
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

}  // namespace

HfBpeTokenizer::HfBpeTokenizer() : cache_(std::make_unique<BpeMerger::Cache>()) {}
HfBpeTokenizer::~HfBpeTokenizer() = default;

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::FromFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  QKV_CHECK(file.good(), "cannot open the tokenizer file '", path, "'");
  std::ostringstream contents;
  contents << file.rdbuf();
  QKV_CHECK(!file.bad(), "cannot read the tokenizer file '", path, "'");
  return FromString(contents.str(), "'" + path + "'");
}

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::FromString(std::string contents,
                                                           const std::string& source) {
  Json json;
  try {
    json = Json::parse(contents);
  } catch (const Json::exception& error) {
    QKV_CHECK(false, source, " is not valid JSON: ", error.what());
  }
  return FromParsed(json, std::move(contents), source);
}

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::FromParsed(const Json& json, std::string contents,
                                                           const std::string& source) {
  std::unique_ptr<HfBpeTokenizer> tokenizer(new HfBpeTokenizer());
  try {
    tokenizer->Parse(json, source);
  } catch (const Json::exception& error) {
    // The checks above every access should leave nothing for nlohmann to throw; if one slips
    // through it is still an error naming the file.
    QKV_CHECK(false, source, ": unexpected tokenizer.json content: ", error.what());
  }
  tokenizer->contents_ = std::move(contents);
  return tokenizer;
}

bool HfBpeTokenizer::IsByteLevelBpe(const Json& json) {
  if (!json.is_object() || !json.contains("model") || !json["model"].is_object()) return false;
  const Json& model = json["model"];
  const bool bpe = model.contains("type") ? model["type"] == "BPE" : model.contains("merges");
  if (!bpe || !json.contains("pre_tokenizer")) return false;
  const std::function<bool(const Json&)> has_byte_level = [&](const Json& step) {
    if (!step.is_object() || !step.contains("type")) return false;
    if (step["type"] == "ByteLevel") return true;
    if (step["type"] != "Sequence" || !step.contains("pretokenizers")) return false;
    const Json& steps = step["pretokenizers"];
    return steps.is_array() && std::any_of(steps.begin(), steps.end(), has_byte_level);
  };
  return has_byte_level(json["pre_tokenizer"]);
}

void HfBpeTokenizer::Parse(const Json& json, const std::string& source) {
  const Reader r(source);
  if (!json.is_object()) r.Fail("the top level", "expected a JSON object, got ", Show(json));

  // The model.
  const Json& model = r.Member(json, "the top level", "model");
  if (!model.is_object()) r.Fail("model", "expected an object, got ", Show(model));
  const std::string model_type =
      model.contains("type") ? r.String(model["type"], "model.type") : std::string("BPE");
  if (model_type != "BPE") {
    r.Fail("model.type", "\"", model_type,
           "\" is not supported; qkv reads byte-level BPE tokenizer.json files (model \"BPE\")");
  }
  if (const Json* dropout = r.Optional(model, "dropout");
      dropout != nullptr && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    r.Fail("model.dropout", Show(*dropout),
           " is not supported (BPE dropout makes encoding random); it must be null");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const Json* affix = r.Optional(model, key);
        affix != nullptr && !(affix->is_string() && affix->get<std::string>().empty())) {
      r.Fail(std::string("model.") + key, Show(*affix),
             " is not supported in a byte-level BPE; it must be null or \"\"");
    }
  }
  if (r.Bool(model, "model", "byte_fallback", false)) {
    r.Fail("model.byte_fallback",
           "true: this is a SentencePiece-style BPE (Llama 2's tokenizer.json), not a byte-level "
           "one; qkv reads such tokenizers from their tokenizer.model");
  }
  if (const Json* unk = r.Optional(model, "unk_token"); unk != nullptr && !unk->is_string()) {
    r.Fail("model.unk_token", "expected a string or null, got ", Show(*unk));
  }
  const bool ignore_merges = r.Bool(model, "model", "ignore_merges", false);

  // Ids: the vocabulary and the added tokens, together 0..n-1.
  const Json& vocab = r.Member(model, "model", "vocab");
  if (!vocab.is_object()) {
    r.Fail("model.vocab", "expected an object {\"token\": id, ...}, got ", Show(vocab));
  }
  std::map<int64_t, std::string> vocab_by_id;
  std::unordered_map<std::string, int32_t> vocab_ids;
  for (const auto& [token, id_value] : vocab.items()) {
    const int64_t id = r.Id(id_value, "model.vocab[" + Quote(token) + "]");
    const auto [it, inserted] = vocab_by_id.emplace(id, token);
    if (!inserted) {
      r.Fail("model.vocab", "id ", id, " is used by two tokens, ", Quote(it->second), " and ",
             Quote(token));
    }
    vocab_ids.emplace(token, static_cast<int32_t>(id));
  }
  std::map<int64_t, AddedToken> added_by_id;
  if (const Json* added = r.Optional(json, "added_tokens")) {
    if (!added->is_array()) r.Fail("added_tokens", "expected an array, got ", Show(*added));
    for (size_t i = 0; i < added->size(); ++i) {
      const Json& entry = (*added)[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!entry.is_object()) r.Fail(where, "expected an object, got ", Show(entry));
      const int64_t id = r.Id(r.Member(entry, where, "id"), where + ".id");
      const std::string content = r.String(r.Member(entry, where, "content"), where + ".content");
      if (content.empty()) r.Fail(where + ".content", "an added token cannot be empty");
      for (const char* option : {"single_word", "lstrip", "rstrip"}) {
        if (r.Bool(entry, where, option, false)) {
          r.Fail(where + "." + option, "true is not supported (token ", Quote(content), ")");
        }
      }
      r.Bool(entry, where, "normalized", false);  // no normalizer: either way the same
      const bool special = r.Bool(entry, where, "special", false);
      if (const auto it = vocab_by_id.find(id); it != vocab_by_id.end()) {
        std::string bytes;
        const bool same =
            it->second == content || (byte_level::Decode(it->second, &bytes) && bytes == content);
        if (!same) {
          r.Fail(where, "id ", id, " is the added token ", Quote(content),
                 " but the vocabulary token ", Quote(it->second));
        }
      }
      const auto [it, inserted] =
          added_by_id.emplace(id, AddedToken{content, static_cast<int32_t>(id), special});
      if (!inserted) {
        r.Fail(where, "id ", id, " is used by two added tokens, ", Quote(it->second.content),
               " and ", Quote(content));
      }
    }
  }
  // As many distinct ids as tokens, all below that count: 0..n-1 without gaps.
  size_t vocab_count = vocab_by_id.size();
  for (const auto& entry : added_by_id) vocab_count += vocab_by_id.contains(entry.first) ? 0 : 1;
  if (vocab_count == 0) r.Fail("model.vocab", "the vocabulary is empty");
  token_bytes_.resize(vocab_count);
  added_.assign(vocab_count, false);
  const auto check_dense = [&](int64_t id, const std::string& token) {
    if (id >= static_cast<int64_t>(vocab_count)) {
      r.Fail(added_by_id.contains(id) ? "added_tokens" : "model.vocab", "token ", Quote(token),
             " has id ", id, " but there are only ", vocab_count,
             " tokens (vocabulary and added tokens); ids must be 0..", vocab_count - 1,
             " without gaps");
    }
  };
  for (const auto& [id, token] : vocab_by_id) {
    check_dense(id, token);
    if (!byte_level::Decode(token, &token_bytes_[id]) && !added_by_id.contains(id)) {
      r.Fail("model.vocab[" + Quote(token) + "]",
             "the token has characters outside the "
             "byte-level alphabet (GPT-2's bytes_to_unicode) and is no added token");
    }
  }
  for (const auto& [id, token] : added_by_id) {
    check_dense(id, token.content);
    token_bytes_[id] = token.content;
    added_[id] = true;
    added_tokens_.push_back(token);
  }
  // At the same position the longest added token wins.
  std::stable_sort(added_tokens_.begin(), added_tokens_.end(), [](const auto& a, const auto& b) {
    return a.content.size() > b.content.size();
  });
  for (const AddedToken& token : added_tokens_) {
    all_added_.push_back({token.content, token.id});
    if (!token.special) plain_added_.push_back({token.content, token.id});
  }

  // The byte tokens and the merges.
  std::array<int32_t, 256> byte_ids;
  for (int byte = 0; byte < 256; ++byte) {
    const std::string token = byte_level::Encode(std::string(1, static_cast<char>(byte)));
    const auto it = vocab_ids.find(token);
    if (it == vocab_ids.end()) {
      r.Fail("model.vocab", "no token for byte 0x", std::hex, byte, std::dec, " (written ",
             Quote(token), "); a byte-level BPE vocabulary needs all 256");
    }
    byte_ids[byte] = it->second;
  }
  const Json& merges = r.Member(model, "model", "merges");
  if (!merges.is_array()) r.Fail("model.merges", "expected an array, got ", Show(merges));
  std::vector<BpeMerger::Merge> merge_ids;
  merge_ids.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& merge = merges[rank];
    const std::string where = "model.merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == text.size() ||
          text.find(' ', space + 1) != std::string::npos) {
        r.Fail(where, "expected two tokens separated by one space, got ", Quote(text));
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      r.Fail(where, "expected \"left right\" or [\"left\", \"right\"], got ", Show(merge));
    }
    const auto find = [&](const std::string& token, const char* what) {
      const auto it = vocab_ids.find(token);
      if (it == vocab_ids.end()) {
        r.Fail(where, "the ", what, " ", Quote(token), " is not in the vocabulary");
      }
      return it->second;
    };
    merge_ids.push_back(
        {find(left, "left token"), find(right, "right token"), find(left + right, "merged token")});
  }
  // Hugging Face (and GPT-2's Python) keep the last rank of a pair listed twice; BpeMerger
  // keeps the first, so the earlier copies go.
  {
    std::unordered_map<uint64_t, size_t> last;
    const auto key = [](const BpeMerger::Merge& m) {
      return (uint64_t{static_cast<uint32_t>(m.left)} << 32) | static_cast<uint32_t>(m.right);
    };
    for (size_t i = 0; i < merge_ids.size(); ++i) last[key(merge_ids[i])] = i;
    if (last.size() != merge_ids.size()) {
      std::vector<BpeMerger::Merge> kept;
      for (size_t i = 0; i < merge_ids.size(); ++i) {
        if (last[key(merge_ids[i])] == i) kept.push_back(merge_ids[i]);
      }
      merge_ids = std::move(kept);
    }
  }
  BpeMerger::WholeTokens whole_tokens;
  if (ignore_merges) {
    for (const auto& [id, token] : vocab_by_id) {
      std::string bytes;
      if (byte_level::Decode(token, &bytes)) whole_tokens.emplace(bytes, static_cast<int32_t>(id));
    }
  }
  merger_ = std::make_unique<BpeMerger>(byte_ids, merge_ids, std::move(whole_tokens));

  // The normalizer: none.
  if (const Json* normalizer = r.Optional(json, "normalizer")) {
    const std::string type = r.Type(*normalizer, "normalizer");
    const bool empty_sequence = type == "Sequence" && normalizer->contains("normalizers") &&
                                (*normalizer)["normalizers"].is_array() &&
                                (*normalizer)["normalizers"].empty();
    if (!empty_sequence) {
      r.Fail("normalizer", "\"", type,
             "\" is not supported; qkv reads tokenizer.json files "
             "without a normalizer (GPT-2's, Llama 3's)");
    }
  }

  // The pre-tokenizer: Split steps, then one ByteLevel.
  const Json& pre_tokenizer = r.Member(json, "the top level", "pre_tokenizer");
  const std::function<void(const Json&, const std::string&)> add_step =
      [&](const Json& step, const std::string& where) {
        const std::string type = r.Type(step, where);
        if (type == "Sequence") {
          const Json& list = r.Member(step, where, "pretokenizers");
          if (!list.is_array()) r.Fail(where + ".pretokenizers", "expected an array");
          for (size_t i = 0; i < list.size(); ++i) {
            add_step(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
          }
          return;
        }
        if (!steps_.empty() && steps_.back().byte_level) {
          r.Fail(where, "\"", type, "\" after ByteLevel is not supported (ByteLevel must be last)");
        }
        PreTokenizeStep parsed;
        if (type == "ByteLevel") {
          parsed.byte_level = true;
          parsed.add_prefix_space = r.Bool(step, where, "add_prefix_space", false);
          if (r.Bool(step, where, "use_regex", true))
            parsed.splitter = std::make_unique<Pretokenizer>();
        } else if (type == "Split") {
          const Json& pattern = r.Member(step, where, "pattern");
          std::string regex;
          if (pattern.is_object() && pattern.contains("Regex")) {
            regex = ToPcre2(r.String(pattern["Regex"], where + ".pattern.Regex"),
                            r.source() + ": " + where + ".pattern.Regex");
          } else if (pattern.is_object() && pattern.contains("String")) {
            const std::string literal = r.String(pattern["String"], where + ".pattern.String");
            if (literal.empty()) r.Fail(where + ".pattern.String", "the string is empty");
            regex = LiteralPattern(literal);
          } else {
            r.Fail(where + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}, got ",
                   Show(pattern));
          }
          const std::string behavior =
              r.String(r.Member(step, where, "behavior"), where + ".behavior");
          if (behavior != "Isolated") {
            r.Fail(where + ".behavior", "\"", behavior, "\" is not supported (only \"Isolated\")");
          }
          if (r.Bool(step, where, "invert", false)) {
            r.Fail(where + ".invert", "true is not supported");
          }
          parsed.splitter = std::make_unique<Pretokenizer>(regex, r.source() + ": " + where);
        } else {
          r.Fail(where, "pre-tokenizer \"", type,
                 "\" is not supported (only ByteLevel, Split and Sequence)");
        }
        steps_.push_back(std::move(parsed));
      };
  add_step(pre_tokenizer, "pre_tokenizer");
  if (steps_.empty() || !steps_.back().byte_level) {
    r.Fail("pre_tokenizer", "no ByteLevel pre-tokenizer: not a byte-level BPE");
  }

  // The post-processor: the template's special tokens around each text.
  const std::function<void(const Json&, const std::string&)> add_processor =
      [&](const Json& step, const std::string& where) {
        const std::string type = r.Type(step, where);
        if (type == "ByteLevel") return;  // offsets only
        if (type == "Sequence") {
          const Json& list = r.Member(step, where, "processors");
          if (!list.is_array()) r.Fail(where + ".processors", "expected an array");
          for (size_t i = 0; i < list.size(); ++i) {
            add_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
          }
          return;
        }
        if (type != "TemplateProcessing") {
          r.Fail(where, "post-processor \"", type,
                 "\" is not supported (only ByteLevel, TemplateProcessing and Sequence)");
        }
        if (!prefix_ids_.empty() || !suffix_ids_.empty()) {
          r.Fail(where, "a second TemplateProcessing is not supported");
        }
        const Json& single = r.Member(step, where, "single");
        const Json& specials = r.Member(step, where, "special_tokens");
        if (!single.is_array()) r.Fail(where + ".single", "expected an array, got ", Show(single));
        bool seen_sequence = false;
        for (size_t i = 0; i < single.size(); ++i) {
          const std::string item_where = where + ".single[" + std::to_string(i) + "]";
          const Json& item = single[i];
          if (item.is_object() && item.contains("Sequence")) {
            if (seen_sequence) r.Fail(item_where, "a second sequence in the template");
            seen_sequence = true;
            continue;
          }
          if (!item.is_object() || !item.contains("SpecialToken")) {
            r.Fail(item_where, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, got ",
                   Show(item));
          }
          const std::string name =
              r.String(r.Member(item["SpecialToken"], item_where + ".SpecialToken", "id"),
                       item_where + ".SpecialToken.id");
          if (!specials.is_object() || !specials.contains(name)) {
            r.Fail(where + ".special_tokens", "no entry for the template's token ", Quote(name));
          }
          std::string entry_where = where;
          entry_where += ".special_tokens.";
          entry_where += name;
          const Json& ids = r.Member(specials[name], entry_where, "ids");
          if (!ids.is_array()) r.Fail(entry_where, "\"ids\" must be an array");
          for (const Json& id_value : ids) {
            const int64_t id = r.Id(id_value, entry_where);
            if (id >= static_cast<int64_t>(vocab_count)) {
              r.Fail(entry_where, "id ", id, " is outside the vocabulary of ", vocab_count,
                     " tokens");
            }
            (seen_sequence ? suffix_ids_ : prefix_ids_).push_back(static_cast<int32_t>(id));
          }
        }
        if (!seen_sequence) r.Fail(where + ".single", "the template has no {\"Sequence\": ...}");
      };
  if (const Json* post = r.Optional(json, "post_processor")) add_processor(*post, "post_processor");

  // The decoder.
  if (const Json* decoder = r.Optional(json, "decoder")) {
    const std::string type = r.Type(*decoder, "decoder");
    if (type != "ByteLevel") {
      r.Fail("decoder", "\"", type,
             "\" is not supported (a byte-level BPE decodes with ByteLevel)");
    }
  } else {
    r.Fail("the top level", "no decoder (a byte-level BPE decodes with ByteLevel)");
  }
}

bool HfBpeTokenizer::is_added_token(int32_t id) const {
  return id >= 0 && id < vocab_size() && added_[id];
}

void HfBpeTokenizer::PreTokenize(size_t step, std::string_view text,
                                 std::vector<int32_t>* ids) const {
  const PreTokenizeStep& current = steps_[step];
  if (!current.byte_level) {
    current.splitter->Split(text,
                            [&](std::string_view piece) { PreTokenize(step + 1, piece, ids); });
    return;
  }
  std::string with_space;
  if (current.add_prefix_space && !text.starts_with(' ')) {
    with_space = " " + std::string(text);
    text = with_space;
  }
  if (current.splitter == nullptr) {
    cache_->EncodePiece(*merger_, text, ids);
    return;
  }
  current.splitter->Split(
      text, [&](std::string_view piece) { cache_->EncodePiece(*merger_, piece, ids); });
}

std::vector<int32_t> HfBpeTokenizer::DoEncode(std::string_view text,
                                              const EncodeOptions& options) const {
  std::vector<int32_t> ids(prefix_ids_);
  ids.reserve(text.size() / 3 + 16);
  // One lock per call: the cache is shared, and pieces are too small to lock one by one.
  std::lock_guard<std::mutex> lock(cache_mutex_);
  SplitAtSpecialTokens(
      text, options.allow_special ? all_added_ : plain_added_,
      [&](std::string_view part) { PreTokenize(0, part, &ids); },
      [&](int32_t id) { ids.push_back(id); });
  ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string HfBpeTokenizer::DoDecode(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    QKV_CHECK(ids[i] >= 0 && ids[i] < vocab_size(), "hf-bpe tokenizer: id ", ids[i],
              " at position ", i, " is outside [0, ", vocab_size(), ")");
  }
  // The template's tokens where Encode put them.
  size_t begin = 0, end = ids.size();
  if (!prefix_ids_.empty() && ids.size() >= prefix_ids_.size() &&
      std::equal(prefix_ids_.begin(), prefix_ids_.end(), ids.begin())) {
    begin = prefix_ids_.size();
  }
  if (!suffix_ids_.empty() && end - begin >= suffix_ids_.size() &&
      std::equal(suffix_ids_.begin(), suffix_ids_.end(), ids.end() - suffix_ids_.size())) {
    end -= suffix_ids_.size();
  }
  std::string text;
  for (size_t i = begin; i < end; ++i) text += token_bytes_[ids[i]];
  return text;
}

nlohmann::json HfBpeTokenizer::Save(const std::string& model_dir) const {
  io::WriteFileAtomically(model_dir + "/tokenizer.json", contents_);
  return {{"type", "hf-bpe"}, {"file", "tokenizer.json"}};
}

}  // namespace qkv::tokenizer
