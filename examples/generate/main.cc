// Generates text from a qkv model directory through the installed library:
//   generate MODEL_DIR [PROMPT] [TOKENS]
// Greedy decoding (temperature 0), so the output is the same on every run.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/infer/generator.h"
#include "qkv/model/checkpoint.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [PROMPT] [TOKENS]\n", argv[0]);
    return 2;
  }
  const std::string model_dir = argv[1];
  const std::string prompt_text = argc > 2 ? argv[2] : "";
  const int64_t tokens = argc > 3 ? std::atoll(argv[3]) : 100;
  try {
    const qkv::model::Model model = qkv::model::LoadModel(model_dir);
    const std::unique_ptr<qkv::tokenizer::Tokenizer> tokenizer =
        qkv::tokenizer::LoadTokenizerFromModelDir(model_dir);
    std::vector<int32_t> prompt = tokenizer->Encode(prompt_text);
    if (prompt.empty()) prompt.push_back(qkv::infer::Generator::StartToken(*tokenizer));

    const qkv::ThreadPool threads(1);
    qkv::infer::Generator generator(model, threads);
    generator.set_notice_callback(
        [](const std::string& notice) { std::fprintf(stderr, "%s\n", notice.c_str()); });
    qkv::infer::SamplerOptions options;
    options.temperature = 0;  // greedy
    const std::vector<int32_t> generated = generator.Generate(prompt, tokens, options);

    // Decoding the whole continuation at once keeps multi-byte characters whole.
    std::printf("%s%s\n", prompt_text.c_str(), tokenizer->Decode(generated).c_str());
    return 0;
  } catch (const qkv::Error& error) {
    std::fprintf(stderr, "generate: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "generate: %s\n", error.what());
    return 1;
  }
}
