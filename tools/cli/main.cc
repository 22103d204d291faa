// The qkv command line: one binary with subcommands (see ../shared/SPEC.md §1).
// Exit status: 0 success, 1 runtime failure (with a message), 2 bad usage (unknown flag or
// bad value, with a message naming it).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "qkv/core/check.h"
#include "tools/cli/attention_map_command.h"
#include "tools/cli/commands.h"
#include "tools/cli/eval_command.h"
#include "tools/cli/extrapolate_command.h"
#include "tools/cli/sample_command.h"
#include "tools/cli/tokenize_command.h"
#include "tools/cli/train_command.h"

namespace {

// OpenMP threads that spin while waiting (libgomp's default) collapse qkv's speed by 10-50x as
// soon as another busy process shares the cores, because every parallel region then waits for
// a descheduled spinner. libgomp reads its wait policy once, when it loads, so the binary
// re-executes itself with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy.
void PreferPassiveOpenMpWaiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);
  // If the re-exec fails we simply go on with the default policy.
}

}  // namespace

int main(int argc, char** argv) {
  PreferPassiveOpenMpWaiting(argv);
  CLI::App app{"qkv: a Transformer engine built around self-attention"};
  app.set_version_flag("--version", std::string("qkv ") + QKV_VERSION);
  app.require_subcommand(0, 1);
  qkv::cli::DemoOptions demo_options;
  CLI::App* demo = qkv::cli::AddDemoCommand(app, demo_options);
  qkv::cli::TrainCommandOptions train_options;
  CLI::App* train = qkv::cli::AddTrainCommand(app, train_options);
  qkv::cli::EvalCommandOptions eval_options;
  CLI::App* eval = qkv::cli::AddEvalCommand(app, eval_options);
  qkv::cli::AttentionMapOptions attention_options;
  CLI::App* attention = qkv::cli::AddAttentionMapCommand(app, attention_options);
  qkv::cli::ExtrapolateOptions extrapolate_options;
  CLI::App* extrapolate = qkv::cli::AddExtrapolateCommand(app, extrapolate_options);
  qkv::cli::SampleCommandOptions sample_options;
  CLI::App* sample = qkv::cli::AddSampleCommand(app, sample_options);
  qkv::cli::TokenizeOptions tokenize_options;
  CLI::App* tokenize = qkv::cli::AddTokenizeCommand(app, tokenize_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& success) {
    return app.exit(success);  // --help, --version
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return 2;
  }
  try {
    if (demo->parsed()) return qkv::cli::RunDemo(demo_options);
    if (train->parsed()) return qkv::cli::RunTrain(train_options, *train);
    if (eval->parsed()) return qkv::cli::RunEval(eval_options);
    if (attention->parsed()) return qkv::cli::RunAttentionMap(attention_options);
    if (extrapolate->parsed()) return qkv::cli::RunExtrapolate(extrapolate_options);
    if (sample->parsed()) return qkv::cli::RunSample(sample_options);
    if (tokenize->parsed()) return qkv::cli::RunTokenize(tokenize_options);
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const qkv::cli::UsageError& error) {
    std::fprintf(stderr, "qkv: %s\nRun with --help for more information.\n", error.what());
    return 2;
  } catch (const qkv::Error& error) {
    std::fprintf(stderr, "qkv: error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "qkv: unexpected error: %s\n", error.what());
    return 1;
  }
}
