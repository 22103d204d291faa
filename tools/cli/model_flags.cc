#include "tools/cli/model_flags.h"

#include "qkv/core/check.h"
#include "tools/cli/commands.h"
#include "tools/cli/flag_checks.h"

namespace qkv::cli {

namespace {

constexpr const char* kModelGroup = "Model";

// The names joined by `separator`, leaving out `skip`.
std::string Join(const std::vector<std::string>& names, const std::string& separator,
                 const std::string& skip) {
  std::string joined;
  for (const std::string& name : names) {
    if (name == skip) continue;
    if (!joined.empty()) joined += separator;
    joined += name;
  }
  return joined;
}

}  // namespace

CLI::Option* AddLayersFlag(CLI::App* command, int64_t& layers) {
  return command->add_option("--layers", layers, "Transformer blocks")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
}

CLI::Option* AddHeadsFlag(CLI::App* command, int64_t& heads) {
  return command->add_option("--heads", heads, "Attention heads per block (must divide --dim)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
}

CLI::Option* AddDimFlag(CLI::App* command, int64_t& dim) {
  return command->add_option("--dim", dim, "Model width")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
}

CLI::Option* AddPositionFlag(CLI::App* command, std::string& position,
                             const std::vector<std::string>& names) {
  return command->add_option("--pos", position, "Position representation")
      ->capture_default_str()
      ->check(CLI::IsMember(names));
}

void AddModelFlags(CLI::App* c, ModelFlags& o) {
  AddLayersFlag(c, o.layers)->group(kModelGroup);
  AddHeadsFlag(c, o.heads)->group(kModelGroup);
  AddDimFlag(c, o.dim)->group(kModelGroup);
  c->add_option("--kv-heads", o.kv_heads,
                "Key/value heads per block, shared by groups of query heads (grouped-query "
                "attention; 1: multi-query; must divide --heads; 0: --heads)")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  c->add_option("--head-dim", o.head_dim,
                "Size of each attention head (0: --dim / --heads; otherwise --heads need not "
                "divide --dim)")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{65536}));
  c->add_flag("--tie-embeddings,!--no-tie-embeddings", o.tie_embeddings,
              "The output head is the token embedding (GPT-2); --no-tie-embeddings gives it a "
              "matrix of its own (Llama's lm_head)")
      ->group(kModelGroup)
      ->capture_default_str();
  c->add_option("--ffn-dim", o.ffn_dim, "Feed-forward hidden size (0: 4 x --dim)")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  c->add_option("--context", o.context, "Context length (training window, position table)")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  AddPositionFlag(c, o.position, model::PositionEncodingNames())->group(kModelGroup);
  c->add_option("--norm", o.norm, "Normalisation")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::IsMember(model::NormKindNames()));
  c->add_option("--norm-placement", o.norm_placement,
                "pre: norm before each sublayer (GPT-2); post: after the residual add")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::IsMember(model::NormPlacementNames()));
  c->add_option("--ffn", o.ffn, "Feed-forward activation")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::IsMember(model::FfnKindNames()));
  c->add_flag("--bias,!--no-bias", o.bias, "Biases in linear layers and LayerNorm")
      ->group(kModelGroup)
      ->capture_default_str();
  c->add_option("--dropout", o.dropout, "Dropout probability")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(FiniteNumber(0.0, 0.99));
  AddRopeScalingFlags(c, o.rope_scaling);
  c->get_option("--rope-scaling")->group(kModelGroup);
  c->get_option("--rope-factor")->group(kModelGroup);
  c->add_option("--rope-theta", o.rope_theta, "RoPE base")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(PositiveFinite());
  c->add_option("--rope-style", o.rope_style, "RoPE pairing: half (HF Llama) or interleaved")
      ->group(kModelGroup)
      ->capture_default_str()
      ->check(CLI::IsMember(model::RopeStyleNames()));
}

void AddRopeScalingFlags(CLI::App* command, RopeScalingFlags& flags) {
  command
      ->add_option("--rope-scaling", flags.scaling,
                   "Run a RoPE model past its training context: none, linear (position "
                   "interpolation), ntk (NTK-aware base), dynamic (NTK by sequence length), "
                   "yarn or llama3")
      ->capture_default_str()
      ->check(CLI::IsMember(model::RopeScalingNames()));
  command
      ->add_option("--rope-factor", flags.factor,
                   "Context extension factor for --rope-scaling (e.g. 4 for 4x the training "
                   "context)")
      ->capture_default_str()
      ->check(FiniteNumber(1.0, 1e6));
}

CLI::Option* AddAttentionFlag(CLI::App* command, std::string& attention) {
  return command
      ->add_option("--attention", attention,
                   "Attention kernel: simple (stores the T x T probabilities), flash (tiled, "
                   "memory linear in T), auto (flash from " +
                       std::to_string(model::kFlashAttentionFromLength) + " tokens on)")
      ->capture_default_str()
      ->check(CLI::IsMember(model::AttentionImplNames()));
}

std::string ShapeProblem(int64_t dim, int64_t heads, const char* rope_flag, int64_t head_dim,
                         int64_t kv_heads) {
  if (kv_heads > 0 && heads % kv_heads != 0) {
    return "--kv-heads " + std::to_string(kv_heads) + " must divide --heads " +
           std::to_string(heads);
  }
  if (head_dim > 0) {
    if (rope_flag != nullptr && head_dim % 2 != 0) {
      return std::string(rope_flag) + " needs an even head size, but --head-dim is " +
             std::to_string(head_dim);
    }
    return std::string();
  }
  const std::string shape = "--dim " + std::to_string(dim) + " / --heads " + std::to_string(heads);
  if (dim % heads != 0) return shape + ": --heads must divide --dim (or give --head-dim)";
  if (rope_flag != nullptr && (dim / heads) % 2 != 0) {
    return std::string(rope_flag) + " needs an even head size, but " + shape + " = " +
           std::to_string(dim / heads);
  }
  return std::string();
}

model::ModelConfig ConfigFromFlags(const ModelFlags& flags, int64_t vocab_size) {
  model::ModelConfig config;
  config.vocab_size = vocab_size;
  config.context = flags.context;
  config.num_layers = flags.layers;
  config.num_heads = flags.heads;
  config.num_kv_heads = flags.kv_heads;
  config.head_size = flags.head_dim;
  config.tie_embeddings = flags.tie_embeddings;
  config.width = flags.dim;
  config.ffn_dim = flags.ffn_dim;
  config.position = model::ParsePositionEncoding(flags.position);
  config.norm = model::ParseNormKind(flags.norm);
  config.ffn = model::ParseFfnKind(flags.ffn);
  config.norm_placement = model::ParseNormPlacement(flags.norm_placement);
  config.rope_style = model::ParseRopeStyle(flags.rope_style);
  config.rope_theta = flags.rope_theta;
  config.bias = flags.bias;
  config.dropout = flags.dropout;
  ApplyRopeScaling(flags.rope_scaling, config);
  try {
    config.Validate();
  } catch (const Error& error) {
    throw UsageError(error.what());  // e.g. --dim not divisible by --heads
  }
  return config;
}

void ApplyRopeScaling(const RopeScalingFlags& flags, model::ModelConfig& config) {
  const ops::RopeScaling scaling = model::ParseRopeScaling(flags.scaling);
  if (scaling == ops::RopeScaling::kNone) {
    if (flags.factor != 1.0) {
      throw UsageError("--rope-factor needs --rope-scaling " +
                       Join(model::RopeScalingNames(), "|", flags.scaling));
    }
    return;
  }
  if (config.position != model::PositionEncoding::kRope) {
    throw UsageError("--rope-scaling " + flags.scaling +
                     " needs a RoPE model, but this model's positions are " +
                     model::ToString(config.position));
  }
  config.rope_scaling = scaling;
  config.rope_factor = flags.factor;
  // The context the model was trained on, unless it was itself already extended.
  if (config.rope_original_context == 0) config.rope_original_context = config.context;
  config.Validate();
}

}  // namespace qkv::cli
