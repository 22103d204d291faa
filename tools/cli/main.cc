// The qkv command line: one binary with subcommands (see ../shared/SPEC.md §1).
// Exit status: 0 success, 1 runtime failure (with a message), 2 bad usage (unknown flag or
// bad value, with a message naming it).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>

#include "qkv/core/check.h"
#include "qkv/runtime/thread_pool.h"
#include "tools/cli/attention_map_command.h"
#include "tools/cli/commands.h"
#include "tools/cli/eval_command.h"
#include "tools/cli/extrapolate_command.h"
#include "tools/cli/info_command.h"
#include "tools/cli/sample_command.h"
#include "tools/cli/tokenize_command.h"
#include "tools/cli/train_command.h"
#include "tools/cli/translate_command.h"

namespace {

// A source location helps us, not a user: shown with --verbose, and always in debug builds.
std::string LocationSuffix(const qkv::Error& error, bool verbose) {
#ifndef NDEBUG
  verbose = true;
#endif
  if (!verbose || error.location().empty()) return "";
  return " (" + error.location() + ")";
}

int Main(int argc, char** argv) {
  // libgomp's long default spin collapses qkv when another busy process shares the cores, and
  // sleeping at once makes every small region pay a wake-up: a short bounded spin.
  qkv::ThreadPool::UseBoundedSpinning(argv);
  // A write past the file size limit (ulimit -f) then fails with EFBIG, which every writer
  // reports and cleans up after, instead of killing the process halfway through a save.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"qkv: a Transformer engine built around self-attention"};
  app.set_version_flag("--version", std::string("qkv ") + QKV_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough();  // --verbose may follow the subcommand's own flags
  bool verbose = false;
  app.add_flag("--verbose", verbose, "Error messages name the source location of the check");
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
  qkv::cli::TranslateCommandOptions translate_options;
  CLI::App* translate = qkv::cli::AddTranslateCommand(app, translate_options);
  qkv::cli::TokenizeOptions tokenize_options;
  CLI::App* tokenize = qkv::cli::AddTokenizeCommand(app, tokenize_options);
  qkv::cli::InfoOptions info_options;
  CLI::App* info = qkv::cli::AddInfoCommand(app, info_options);

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
    if (translate->parsed()) return qkv::cli::RunTranslate(translate_options);
    if (tokenize->parsed()) return qkv::cli::RunTokenize(tokenize_options);
    if (info->parsed()) return qkv::cli::RunInfo(info_options);
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const qkv::cli::UsageError& error) {
    std::fprintf(stderr, "qkv: %s\nRun with --help for more information.\n", error.what());
    return 2;
  } catch (const qkv::Error& error) {
    std::fprintf(stderr, "qkv: error: %s%s\n", error.what(),
                 LocationSuffix(error, verbose).c_str());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "qkv: unexpected error: %s\n", error.what());
    return 1;
  }
}

}  // namespace

// Nothing may escape main: setting up the command line can throw too (out of memory).
int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "qkv: unexpected error: %s\n", error.what());
  } catch (...) {
    std::fprintf(stderr, "qkv: unexpected error\n");
  }
  return 1;
}
