#include "tools/cli/training_flags.h"

#include "qkv/train/trainer.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"

namespace qkv::cli {

CLI::Option* AddBatchFlag(CLI::App* command, int64_t& batch) {
  return command->add_option("--batch", batch, "Windows per micro-batch")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
}

CLI::Option* AddLearningRateFlag(CLI::App* command, double& lr) {
  return command->add_option("--lr", lr, "Peak learning rate")
      ->capture_default_str()
      ->check(PositiveFinite());
}

void AddTrainingFlags(CLI::App* c, TrainingFlags& o, const std::string& group) {
  AddBatchFlag(c, o.batch)->group(group);
  c->add_option("--steps", o.steps, "Optimizer steps")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  AddLearningRateFlag(c, o.lr)->group(group);
  c->add_option(
       "--lr-schedule", o.lr_schedule,
       "Decay after the warmup: cosine to --min-lr at --steps (nanoGPT), or inv-sqrt, "
       "lr * sqrt((warmup+1)/(step+1)) (the Transformer paper, Marian), which needs no end "
       "and so suits --time-limit")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "inv-sqrt"}));
  c->add_option("--min-lr", o.min_lr,
                "Learning rate floor: the end of the cosine decay, the least inv-sqrt reaches")
      ->group(group)
      ->capture_default_str()
      ->check(NonNegativeFinite());
  c->add_option("--warmup", o.warmup, "Linear warmup steps")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  c->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay (matrices)")
      ->group(group)
      ->capture_default_str()
      ->check(NonNegativeFinite());
  c->add_option("--beta1", o.beta1, "AdamW beta1")
      ->group(group)
      ->capture_default_str()
      ->check(FiniteNumber(0.0, 0.999999));
  c->add_option("--beta2", o.beta2, "AdamW beta2")
      ->group(group)
      ->capture_default_str()
      ->check(FiniteNumber(0.0, 0.999999));
  c->add_option("--grad-clip", o.grad_clip, "Clip the global gradient norm (0: off)")
      ->group(group)
      ->capture_default_str()
      ->check(NonNegativeFinite());
  AddPrecisionFlag(c, o.precision,
                   "fp32, or bf16: matrix products (linear layers, attention, the output head; "
                   "forward and backward) read bfloat16 and accumulate float32, as PyTorch's CPU "
                   "autocast; weights, AdamW, norms, softmax and the loss stay float32. Needs "
                   "AVX512-BF16 or AMX")
      ->group(group);
  c->add_option("--accum", o.accum, "Micro-batches per step (gradient accumulation)")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
}

train::TrainOptions TrainOptionsFromFlags(const TrainingFlags& flags) {
  train::TrainOptions options;
  options.steps = flags.steps;
  options.accum = flags.accum;
  options.schedule = {flags.lr, flags.min_lr, flags.warmup, flags.steps,
                      *train::ParseLrDecay(flags.lr_schedule)};
  options.adamw = {flags.beta1, flags.beta2, 1e-8, flags.weight_decay};
  options.grad_clip = flags.grad_clip;
  options.precision = PrecisionOrRefuse(flags.precision);
  return options;
}

}  // namespace qkv::cli
