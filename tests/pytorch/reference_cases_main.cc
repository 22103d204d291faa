// qkv_reference_cases OUT_DIR [CASE...]: writes <OUT_DIR>/<case>.safetensors for the named
// cases (all when none are named) and prints the names of the cases written, one a line.
#include <cstdio>

#include "qkv/core/check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {

std::map<std::string, CaseFunction>& Cases() {
  static std::map<std::string, CaseFunction> cases;
  return cases;
}

}  // namespace qkv::reference

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [CASE...]\n", argv[0]);
    return 2;
  }
  const std::string out_dir = argv[1];
  auto& cases = qkv::reference::Cases();
  std::vector<std::string> names;
  for (int i = 2; i < argc; ++i) names.push_back(argv[i]);
  if (names.empty()) {
    for (const auto& [name, function] : cases) names.push_back(name);
  }
  try {
    for (const std::string& name : names) {
      auto found = cases.find(name);
      if (found == cases.end()) {
        std::fprintf(stderr, "unknown case '%s'\n", name.c_str());
        return 2;
      }
      qkv::io::WriteSafetensors(out_dir + "/" + name + ".safetensors", found->second());
      std::printf("%s\n", name.c_str());
    }
  } catch (const qkv::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
