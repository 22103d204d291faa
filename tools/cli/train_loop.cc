#include "tools/cli/train_loop.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>

#include "tools/cli/progress.h"

namespace qkv::cli {

namespace {

std::atomic<bool> interrupted{false};

extern "C" void OnInterrupt(int) { interrupted.store(true); }

// Installs OnInterrupt for SIGINT and SIGTERM while alive; the previous handlers come back
// afterwards (a second Ctrl-C during the final save is still caught, not fatal).
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string FormatDuration(double seconds) {
  const int64_t total = std::llround(seconds);
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof(buffer), "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buffer;
}

// One optimizer step, evaluated every --eval-every steps and at the last one (`last`: the last
// that --time-limit lets run), and logged.
LogEntry TrainOneStep(const TrainCommandOptions& o, train::Trainer& trainer, TrainLog& log,
                      bool last) {
  const auto start = std::chrono::steady_clock::now();
  const train::StepResult result = trainer.Step();
  const double seconds = SecondsSince(start);
  LogEntry entry{trainer.step(),
                 result.loss,
                 result.learning_rate,
                 static_cast<double>(result.tokens) / seconds,
                 std::nullopt,
                 result.tokens,
                 std::string(PrecisionName(trainer.options().precision))};
  if (trainer.step() % o.eval_every == 0 || trainer.step() == o.training.steps || last) {
    const uint64_t eval_seed = o.seed ^ 0x5eedf00dULL;
    entry.val_loss = trainer.Evaluate(o.eval_batches, eval_seed);
  }
  log.Append(entry);
  return entry;
}

// A signal may reach the ranks at different steps: they stop together, at the first step any
// of them saw it (a collective with several ranks).
void ShareInterrupt(const Communicator& comm) {
  if (!comm.distributed()) return;
  uint64_t any_interrupted = interrupted.load() ? 1 : 0;
  comm.AllreduceMax(std::span<uint64_t>(&any_interrupted, 1), "the interrupt check");
  if (any_interrupted != 0) interrupted.store(true);
}

// Whether the coming step is the last that --time-limit allows: another one after it would end
// past the limit, at the pace of the step before (the first step always runs). The root's clock
// decides for every rank (a collective with several ranks).
bool LastStepByTime(const TrainCommandOptions& o, double elapsed, double last_step_seconds,
                    const Communicator& comm) {
  if (o.time_limit <= 0) return false;
  uint64_t last = comm.is_root() && elapsed + 2 * last_step_seconds > o.time_limit ? 1 : 0;
  if (comm.distributed()) {
    comm.AllreduceMax(std::span<uint64_t>(&last, 1), "the time-limit check");
  }
  return last != 0;
}

// The end of a run stopped by --stop-at or a signal, once its checkpoint is saved.
int ReportStop(const TrainCommandOptions& o, int64_t step, bool signalled,
               const Communicator& comm) {
  const int status = signalled ? 130 : 0;
  if (!comm.is_root()) return status;
  std::fprintf(stderr,
               "qkv train: %s at step %lld; checkpoint saved in %s. Continue with the same "
               "command plus --resume.\n",
               signalled ? "interrupted" : "stopped", static_cast<long long>(step), o.out.c_str());
  return status;
}

// The end of a run that reached --steps or --time-limit, once its final checkpoint is saved.
int ReportFinish(const TrainCommandOptions& o, train::Trainer& trainer, const TrainLog& log,
                 std::optional<double> last_val, double seconds, const Communicator& comm) {
  if (comm.distributed()) {
    // Every rank reports what it holds, so a test can compare it with the saved model.
    const uint64_t checksum = trainer.CheckParametersAgree();
    std::fprintf(stderr, "qkv train: rank %d of %d: parameter checksum %llu\n", comm.rank(),
                 comm.size(), static_cast<unsigned long long>(checksum));
  }
  if (!comm.is_root()) return 0;
  const std::vector<LogEntry>& entries = log.entries();
  if (trainer.step() < o.training.steps) {
    std::printf("time limit %s reached after %s at step %lld of --steps %lld%s\n",
                FormatDuration(o.time_limit).c_str(), FormatDuration(seconds).c_str(),
                static_cast<long long>(trainer.step()), static_cast<long long>(o.training.steps),
                o.training.lr_schedule == "cosine"
                    ? " (the cosine schedule had not decayed: --lr-schedule inv-sqrt needs no end)"
                    : "");
  }
  std::printf("trained %lld steps: train loss %.4f, validation loss %s; model in %s\n",
              static_cast<long long>(trainer.step()), entries.empty() ? 0.0 : entries.back().loss,
              last_val ? std::to_string(*last_val).c_str() : "n/a", o.out.c_str());
  return 0;
}

}  // namespace

int RunTrainLoop(const TrainCommandOptions& o, train::Trainer& trainer, TrainLog& log,
                 CheckpointWriter& checkpoints, const Communicator& comm) {
  Progress progress(!o.quiet, isatty(STDERR_FILENO) != 0);
  InterruptGuard guard;
  interrupted.store(false);
  const auto run_start = std::chrono::steady_clock::now();
  const int64_t first_step = trainer.step(), steps = o.training.steps;
  std::optional<double> last_val;
  double last_step_seconds = 0;
  while (trainer.step() < steps) {
    const double step_start = SecondsSince(run_start);
    const bool last_by_time = LastStepByTime(o, step_start, last_step_seconds, comm);
    const LogEntry entry = TrainOneStep(o, trainer, log, last_by_time);
    if (entry.val_loss) last_val = entry.val_loss;
    ShareInterrupt(comm);
    const double elapsed = SecondsSince(run_start);
    last_step_seconds = elapsed - step_start;
    const double per_step = elapsed / static_cast<double>(trainer.step() - first_step);
    double remaining = per_step * static_cast<double>(steps - trainer.step());
    if (o.time_limit > 0) remaining = std::min(remaining, std::max(0.0, o.time_limit - elapsed));
    progress.Update(trainer.step(), steps, entry.loss, entry.val_loss, entry.tokens_per_s,
                    FormatDuration(remaining));
    const bool stop_here = o.stop_at > 0 && trainer.step() == o.stop_at;
    if ((o.save_every > 0 && trainer.step() % o.save_every == 0) || stop_here ||
        interrupted.load()) {
      checkpoints.Save();
    }
    if (interrupted.load() || stop_here) {
      progress.Finish();
      return ReportStop(o, trainer.step(), interrupted.load(), comm);
    }
    if (last_by_time) break;
  }
  checkpoints.Save();
  progress.Finish();
  return ReportFinish(o, trainer, log, last_val, SecondsSince(run_start), comm);
}

}  // namespace qkv::cli
