#include "tools/cli/extrapolate_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "qkv/inspect/line_plot.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/text_file.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/evaluate.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/memory_check.h"
#include "tools/cli/model_flags.h"
#include "tools/cli/progress.h"
#include "tools/cli/train_command.h"
#include "tools/cli/training_flags.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

// One evaluated line of the plot: a trained scheme, or RoPE with a scaling method at eval time.
struct Row {
  std::string name;
  std::vector<std::optional<double>> losses;  // per multiplier; empty = not applicable
};

const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                               "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};

void TrainScheme(const ExtrapolateOptions& o, const std::string& scheme, const fs::path& dir) {
  TrainCommandOptions train;
  train.data = o.data;
  train.out = dir.string();
  train.tokenizer = "char";
  train.model.layers = o.layers;
  train.model.heads = o.heads;
  train.model.dim = o.dim;
  train.model.context = o.context;
  train.model.position = scheme;
  train.training.batch = o.batch;
  train.training.steps = o.steps;
  train.training.lr = o.lr;
  train.training.min_lr = o.lr / 10;
  train.training.warmup = std::min<int64_t>(100, o.steps / 10);
  train.eval_every = o.steps;
  train.seed = o.seed;
  train.threads = o.threads;
  train.quiet = false;  // each training shows its progress line and time left
  CLI::App unused;
  std::fprintf(stderr, "extrapolate: training %s (%lld steps at context %lld) into %s\n",
               scheme.c_str(), static_cast<long long>(o.steps), static_cast<long long>(o.context),
               dir.c_str());
  const int status = RunTrain(train, unused);
  QKV_CHECK(status == 0, "training the ", scheme, " model failed (status ", status, ")");
}

}  // namespace

CLI::App* AddExtrapolateCommand(CLI::App& app, ExtrapolateOptions& o) {
  CLI::App* c =
      app.add_subcommand("extrapolate",
                         "Train one model per position scheme at context L and evaluate each at "
                         "L, 2L, 4L, 8L: does it work past its training length?");
  c->add_option("--data", o.data, "Text (char tokens; first 90% trains, the rest evaluates)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--out", o.out,
                "Directory for models/<scheme>, extrapolation.{json,svg,png}; "
                "existing models there are reused, not retrained")
      ->required()
      ->check(OutputDirectory());
  c->add_option("--schemes", o.schemes, "Position schemes to compare")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::IsMember(model::PositionEncodingNames()));
  c->add_option("--multipliers", o.multipliers, "Evaluation lengths as multiples of --context")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  c->add_option("--context", o.context, "Training context L")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 16));
  c->add_option("--steps", o.steps, "Training steps per model")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  // The same flags as `qkv train`'s, which trains the models.
  AddLayersFlag(c, o.layers);
  AddHeadsFlag(c, o.heads);
  AddDimFlag(c, o.dim);
  AddBatchFlag(c, o.batch);
  AddLearningRateFlag(c, o.lr);
  c->add_option("--eval-tokens", o.eval_tokens,
                "Validation tokens evaluated at every length (the same text for all)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  AddSeedFlag(c, o.seed, "Seed (the same for every scheme)");
  AddThreadsFlag(c, o.threads);
  return c;
}

int RunExtrapolate(const ExtrapolateOptions& o) {
  const std::string rope = model::ToString(model::PositionEncoding::kRope);
  const bool any_rope = std::find(o.schemes.begin(), o.schemes.end(), rope) != o.schemes.end();
  const std::string shape_problem =
      ShapeProblem(o.dim, o.heads, any_rope ? "--schemes rope" : nullptr);
  if (!shape_problem.empty()) throw UsageError(shape_problem);
  model::ModelConfig smallest;  // one character, no position table: a lower bound for each
  smallest.vocab_size = 1;
  smallest.context = o.context;
  smallest.num_layers = o.layers;
  smallest.num_heads = o.heads;
  smallest.width = o.dim;
  smallest.position = model::PositionEncoding::kNone;
  const std::string problem = TrainingMemoryProblem(smallest, o.batch);
  if (!problem.empty()) {
    throw UsageError("--layers " + std::to_string(o.layers) + " --dim " + std::to_string(o.dim) +
                     " --context " + std::to_string(o.context) + " --batch " +
                     std::to_string(o.batch) + ": training needs " + problem);
  }
  const std::string learned = model::ToString(model::PositionEncoding::kLearned);
  const fs::path out(o.out);
  fs::create_directories(out / "models");
  const std::string text = io::ReadTextFile(o.data);
  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());

  std::vector<Row> rows;
  for (const std::string& scheme : o.schemes) {
    const fs::path dir = out / "models" / scheme;
    if (!fs::exists(dir / "model.safetensors")) {
      TrainScheme(o, scheme, dir);
    } else {
      std::fprintf(stderr, "extrapolate: reusing the %s model in %s\n", scheme.c_str(),
                   dir.c_str());
    }
    model::Model model = model::LoadModel(dir.string());
    QKV_CHECK(model.config.context == o.context, dir.string(), " was trained at context ",
              model.config.context, ", not --context ", o.context,
              "; use another --out or the same --context");
    const auto tokenizer = tokenizer::LoadTokenizerFromModelDir(dir.string());
    const std::vector<int32_t> all = tokenizer->Encode(text);
    // The validation split of training (the last 10%), at most eval_tokens of it.
    const size_t split = all.size() * 9 / 10;
    std::vector<int32_t> val(all.begin() + static_cast<std::ptrdiff_t>(split), all.end());
    if (static_cast<int64_t>(val.size()) > o.eval_tokens) val.resize(o.eval_tokens);

    // RoPE as trained, then with each scaling method.
    std::vector<std::string> variants = {""};
    if (scheme == rope) {
      for (const std::string& method : model::RopeScalingNames()) {
        if (method != model::ToString(ops::RopeScaling::kNone)) variants.push_back(method);
      }
    }
    // The training printed its own progress; the evaluations of the scheme get one line.
    TaskProgress progress(
        "evaluating " + scheme + " at " + std::to_string(o.multipliers.size()) + " lengths",
        "evaluations", static_cast<double>(variants.size() * o.multipliers.size()), true);
    int64_t evaluated = 0;
    for (const std::string& scaling : variants) {
      Row row{scaling.empty() ? scheme : std::string(scheme).append("+").append(scaling), {}};
      for (int64_t multiplier : o.multipliers) {
        progress.Update(static_cast<double>(evaluated++));
        const int64_t length = o.context * multiplier;
        if (scheme == learned && length > model.config.context) {
          row.losses.push_back(std::nullopt);  // never run past the learned table
          continue;
        }
        if (static_cast<int64_t>(val.size()) < length) {
          row.losses.push_back(std::nullopt);
          continue;
        }
        model.config.rope_scaling =
            scaling.empty() ? ops::RopeScaling::kNone : model::ParseRopeScaling(scaling);
        model.config.rope_factor = static_cast<double>(multiplier);
        model.config.rope_original_context = o.context;
        const model::WindowLoss loss = model::EvaluateWindows(model, val, length, 4, 0, threads);
        row.losses.push_back(loss.loss);
      }
      rows.push_back(row);
    }
    progress.Finish();
  }

  // Table on stdout.
  std::printf("%-18s", "scheme \\ length");
  for (int64_t multiplier : o.multipliers) {
    std::printf(" %10lld", static_cast<long long>(o.context) * multiplier);
  }
  std::printf("\n");
  for (const Row& row : rows) {
    std::printf("%-18s", row.name.c_str());
    for (const auto& loss : row.losses) {
      if (loss) {
        std::printf(" %10.4f", *loss);
      } else {
        std::printf(" %10s", "n/a");
      }
    }
    std::printf("\n");
  }
  std::printf(
      "(mean cross-entropy in nats per character on the validation split; n/a: the "
      "learned table ends at %lld)\n",
      static_cast<long long>(o.context));

  // JSON and plot.
  nlohmann::json json = {{"context", o.context},
                         {"steps", o.steps},
                         {"seed", o.seed},
                         {"data", o.data},
                         {"lengths", nlohmann::json::array()},
                         {"results", nlohmann::json::object()}};
  for (int64_t multiplier : o.multipliers) json["lengths"].push_back(o.context * multiplier);
  inspect::LinePlot plot{"Loss past the training context (L = " + std::to_string(o.context) + ")",
                         "evaluation length (tokens)",
                         "validation loss (nats/char)",
                         {}};
  size_t color = 0;
  for (const Row& row : rows) {
    nlohmann::json values = nlohmann::json::array();
    inspect::Series series{row.name, kColors[color++ % std::size(kColors)], {}, true};
    for (size_t i = 0; i < row.losses.size(); ++i) {
      values.push_back(row.losses[i] ? nlohmann::json(*row.losses[i]) : nlohmann::json(nullptr));
      if (row.losses[i]) {
        series.points.emplace_back(static_cast<double>(o.context * o.multipliers[i]),
                                   *row.losses[i]);
      }
    }
    json["results"][row.name] = values;
    plot.series.push_back(series);
  }
  io::WriteFileAtomically((out / "extrapolation.json").string(), json.dump(2) + "\n");
  const fs::path svg = out / "extrapolation.svg", png = out / "extrapolation.png";
  io::WriteFileAtomically(svg.string(), inspect::RenderSvg(plot));
  // PNG through librsvg (installed by scripts/setup.sh) when it is there.
  const std::string command =
      "rsvg-convert -o '" + png.string() + "' '" + svg.string() + "' 2>/dev/null";
  const bool have_png = std::system("command -v rsvg-convert >/dev/null 2>&1") == 0 &&
                        std::system(command.c_str()) == 0;
  std::printf("wrote %s, %s%s\n", (out / "extrapolation.json").c_str(), svg.c_str(),
              have_png ? (", " + png.string()).c_str() : " (no PNG: rsvg-convert is missing)");
  return 0;
}

}  // namespace qkv::cli
