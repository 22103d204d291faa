#include "qkv/inspect/attention_html.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace qkv::inspect {
namespace {

using Weights = std::vector<std::vector<std::vector<std::vector<float>>>>;

// Causal softmax rows of made-up scores, different in every layer and head; key 0 of the last
// row gets a weight far below the 4 printed digits, which must not read as masked.
Weights CausalWeights(int layers, int heads, int n) {
  Weights w(layers, std::vector<std::vector<std::vector<float>>>(
                        heads, std::vector<std::vector<float>>(n, std::vector<float>(n, 0.0f))));
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < n; ++i) {
        double sum = 0;
        for (int j = 0; j <= i; ++j) sum += std::exp(std::sin(1.0 + l + 2.0 * h + 0.7 * i * j));
        for (int j = 0; j <= i; ++j) {
          w[l][h][i][j] =
              static_cast<float>(std::exp(std::sin(1.0 + l + 2.0 * h + 0.7 * i * j)) / sum);
        }
      }
      w[l][h][n - 1][0] = 1e-30f;
    }
  }
  return w;
}

// The JSON inside <script type="application/json" id="qkv-data">, parsed.
nlohmann::json EmbeddedData(const std::string& page) {
  const std::string open = "<script type=\"application/json\" id=\"qkv-data\">";
  const size_t begin = page.find(open);
  EXPECT_NE(begin, std::string::npos);
  const size_t end = page.find("</script>", begin);
  EXPECT_NE(end, std::string::npos);
  return nlohmann::json::parse(page.substr(begin + open.size(), end - begin - open.size()));
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(AttentionHtml, EveryHeadOfEveryLayerIsInThePage) {
  const std::vector<std::string> tokens = {"a", "b", "c", "d", "e"};
  const Weights weights = CausalWeights(2, 3, 5);
  const std::string page =
      RenderAttentionHtml({"model", "abcde", {{"self-attention", tokens, tokens, weights}}});
  const nlohmann::json data = EmbeddedData(page);
  ASSERT_EQ(data["kinds"].size(), 1u);
  const nlohmann::json& kind = data["kinds"][0];
  EXPECT_EQ(kind["layers"], 2);
  EXPECT_EQ(kind["heads"], 3);
  EXPECT_EQ(kind["queries"].get<std::vector<std::string>>(), tokens);
  ASSERT_EQ(kind["weights"].size(), 2u);
  for (int l = 0; l < 2; ++l) {
    ASSERT_EQ(kind["weights"][l].size(), 3u);
    for (int h = 0; h < 3; ++h) {
      for (int i = 0; i < 5; ++i) {
        for (int j = 0; j < 5; ++j) {
          const double want = weights[l][h][i][j];
          const double got = kind["weights"][l][h][i][j].get<double>();
          if (want == 0) {
            EXPECT_EQ(got, 0.0) << l << " " << h << " " << i << " " << j;
          } else {
            EXPECT_GT(got, 0.0);
            EXPECT_NEAR(got, want, want * 5e-4) << l << " " << h << " " << i << " " << j;
          }
        }
      }
    }
  }
}

TEST(AttentionHtml, HostileTextCannotLeaveItsElement) {
  const std::vector<std::string> tokens = {"</script><b>", "<!--", "\u2028x\u2029", "a&b\"'"};
  const std::string text = "</title><script>alert(1)</script><b>bold</b>";
  const std::string page = RenderAttentionHtml(
      {text, text, {{"self-attention", tokens, tokens, CausalWeights(1, 1, 4)}}});
  // The page's own two scripts are the only ones, and nothing else opens an element.
  EXPECT_EQ(Count(page, "<script"), 2u);
  EXPECT_EQ(Count(page, "</script>"), 2u);
  EXPECT_EQ(Count(page, "</title>"), 1u);
  EXPECT_EQ(page.find("<b>"), std::string::npos);
  EXPECT_EQ(page.find("<!--"), std::string::npos);
  EXPECT_EQ(page.find("\u2028"), std::string::npos);
  EXPECT_EQ(page.find("\u2029"), std::string::npos);
  EXPECT_NE(page.find("&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  // ... and the data still says exactly what was given.
  const nlohmann::json data = EmbeddedData(page);
  EXPECT_EQ(data["text"], text);
  EXPECT_EQ(data["kinds"][0]["keys"].get<std::vector<std::string>>(), tokens);
}

TEST(AttentionHtml, InvalidUtf8BecomesReplacementCharacters) {
  const std::vector<std::string> tokens = {"\xe2\x82", "\xff"};  // half a euro sign; no char
  const std::string page =
      RenderAttentionHtml({"m\xc3", "t", {{"self", tokens, tokens, CausalWeights(1, 2, 2)}}});
  // nlohmann's strict dump throws on invalid UTF-8: the whole page is valid.
  EXPECT_NO_THROW((void)nlohmann::json(page).dump());
  const nlohmann::json data = EmbeddedData(page);
  EXPECT_EQ(data["kinds"][0]["queries"][0], "\ufffd");
  EXPECT_EQ(data["kinds"][0]["queries"][1], "\ufffd");
  EXPECT_EQ(data["title"], "m\ufffd");
}

TEST(AttentionHtml, KindsMayHaveDifferentQueriesAndKeys) {
  // Cross-attention of an encoder-decoder: 2 decoder queries over 3 encoder keys.
  const std::vector<std::string> source = {"x", "y", "z"}, target = {"p", "q"};
  const Weights cross(1, {{{0.2f, 0.3f, 0.5f}, {0.6f, 0.4f, 0.0f}}});
  const std::string page =
      RenderAttentionHtml({"m",
                           "t",
                           {{"decoder self-attention", target, target, CausalWeights(1, 1, 2)},
                            {"cross-attention", target, source, cross}}});
  const nlohmann::json data = EmbeddedData(page);
  ASSERT_EQ(data["kinds"].size(), 2u);
  EXPECT_EQ(data["kinds"][1]["name"], "cross-attention");
  EXPECT_EQ(data["kinds"][1]["keys"].get<std::vector<std::string>>(), source);
  EXPECT_EQ(data["kinds"][1]["weights"][0][0][1].size(), 3u);
  EXPECT_EQ(data["kinds"][1]["weights"][0][0][1][2].get<double>(), 0.0);
}

TEST(AttentionHtml, FetchesNothing) {
  const std::vector<std::string> tokens = {"a", "b"};
  const std::string page =
      RenderAttentionHtml({"m", "ab", {{"self", tokens, tokens, CausalWeights(2, 2, 2)}}});
  EXPECT_NE(page.find("default-src 'none'"), std::string::npos);
  for (const char* reference : {" src=", "<link", "@import", "url(", "fetch(", "XMLHttpRequest"}) {
    EXPECT_EQ(page.find(reference), std::string::npos) << reference;
  }
}

TEST(AttentionHtml, RejectsDataThatDoesNotFitItsTokens) {
  const std::vector<std::string> tokens = {"a", "b", "c"};
  EXPECT_THROW((void)RenderAttentionHtml({"m", "t", {}}), std::invalid_argument);
  EXPECT_THROW((void)RenderAttentionHtml({"m", "t", {{"self", tokens, tokens, {}}}}),
               std::invalid_argument);
  EXPECT_THROW(
      (void)RenderAttentionHtml({"m", "t", {{"self", tokens, tokens, CausalWeights(1, 1, 2)}}}),
      std::invalid_argument);
  Weights ragged = CausalWeights(2, 2, 3);
  ragged[1].pop_back();
  EXPECT_THROW((void)RenderAttentionHtml({"m", "t", {{"self", tokens, tokens, ragged}}}),
               std::invalid_argument);
  Weights not_finite = CausalWeights(1, 1, 3);
  not_finite[0][0][2][1] = std::nanf("");
  EXPECT_THROW((void)RenderAttentionHtml({"m", "t", {{"self", tokens, tokens, not_finite}}}),
               std::invalid_argument);
}

TEST(AttentionHtml, EscapeHtmlEscapesMarkupAndQuotes) {
  EXPECT_EQ(EscapeHtml("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
}

}  // namespace
}  // namespace qkv::inspect
