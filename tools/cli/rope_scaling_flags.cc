#include "tools/cli/rope_scaling_flags.h"

#include "tools/cli/commands.h"
#include "tools/cli/flag_checks.h"

namespace qkv::cli {

void AddRopeScalingFlags(CLI::App* command, RopeScalingFlags& flags) {
  command
      ->add_option("--rope-scaling", flags.scaling,
                   "Run a RoPE model past its training context: none, linear (position "
                   "interpolation), ntk (NTK-aware base) or yarn")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "linear", "ntk", "yarn"}));
  command
      ->add_option("--rope-factor", flags.factor,
                   "Context extension factor for --rope-scaling (e.g. 4 for 4x the training "
                   "context)")
      ->capture_default_str()
      ->check(FiniteNumber(1.0, 1e6));
}

void ApplyRopeScaling(const RopeScalingFlags& flags, model::ModelConfig& config) {
  if (flags.scaling == "none") {
    if (flags.factor != 1.0) {
      throw UsageError("--rope-factor needs --rope-scaling linear|ntk|yarn");
    }
    return;
  }
  if (config.position != model::PositionEncoding::kRope) {
    throw UsageError("--rope-scaling " + flags.scaling +
                     " needs a RoPE model, but this model's "
                     "positions are " +
                     model::ToString(config.position));
  }
  config.rope_scaling = model::ParseRopeScaling(flags.scaling);
  config.rope_factor = flags.factor;
  // The context the model was trained on, unless it was itself already extended.
  if (config.rope_original_context == 0) config.rope_original_context = config.context;
  config.Validate();
}

}  // namespace qkv::cli
