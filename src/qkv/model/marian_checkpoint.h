// The encoder-decoder's model directory: exactly Hugging Face's MarianMTModel layout, the one of
// the OPUS-MT models (../shared/SPEC.md §4), so that a directory transformers saves loads here
// and one qkv saves loads in transformers.
//
// config.json: MarianConfig's keys (model_type "marian", d_model, encoder_layers, ...,
// share_encoder_decoder_embeddings true) plus qkv's own, each defaulting to Marian's behaviour:
// "position_encoding" ("sinusoidal" | "learned" | "none") and "normalize_before" (false:
// post-norm). Tensors, nn.Linear layout (weight (out, in)), qkv's parameters
// (model/encoder_decoder.h) on the left:
//   shared                         model.shared.weight (V, C)
//   encoder.positions              model.encoder.embed_positions.weight (P, C)   learned
//   decoder.positions              model.decoder.embed_positions.weight (P, C)   learned
//   <s>.blocks.<i>.norm1           model.<s>.layers.<i>.self_attn_layer_norm
//   <s>.blocks.<i>.attention.qkv   model.<s>.layers.<i>.self_attn.{q,k,v}_proj  (rows split)
//   <s>.blocks.<i>.attention.out   model.<s>.layers.<i>.self_attn.out_proj
//   decoder.blocks.<i>.cross_norm  model.decoder.layers.<i>.encoder_attn_layer_norm
//   decoder.blocks.<i>.cross_attention.q / .kv / .out
//                                  model.decoder.layers.<i>.encoder_attn.q_proj / {k,v}_proj
//                                  / out_proj
//   <s>.blocks.<i>.norm2           model.<s>.layers.<i>.final_layer_norm
//   <s>.blocks.<i>.ffn.up / .down  model.<s>.layers.<i>.fc1 / fc2
//   <s>.norm (pre-norm only)       model.<s>.layer_norm (mBART's name)
//   final_logits_bias (V)          final_logits_bias (1, V)
// with <s> encoder or decoder. A sinusoidal model also gets both embed_positions tables filled
// with Marian's fixed table (sines, then cosines: ops/sinusoidal.h), as transformers' older
// versions save them; transformers' newer ones leave them out, and loading accepts either, a
// stored table having to equal qkv's. Loading also accepts the tied copies transformers may
// write, model.{encoder,decoder}.embed_tokens.weight and lm_head.weight, which must equal
// model.shared.weight.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "qkv/core/arena.h"
#include "qkv/model/encoder_decoder.h"

namespace qkv::model {

// config.json of a MarianMTModel directory. Throws qkv::Error for what the layout cannot hold
// (a LayerNorm epsilon other than Marian's fixed 1e-5, the swiglu FFN).
nlohmann::json MarianConfigJson(const EncoderDecoderConfig& config);

// The inverse. Errors name the key and its value: a missing required key, a value of the wrong
// type or out of range, model_type other than "marian", encoder and decoder head counts or FFN
// sizes that differ (qkv has one of each for both stacks), an activation qkv's FFN lacks
// ("swish"), unshared or untied embeddings.
EncoderDecoderConfig EncoderDecoderConfigFromMarianJson(const nlohmann::json& json);

// An encoder-decoder's parameters with the arena that holds them. Move-only (the views point
// into the arena's one allocation, which moves with it).
struct LoadedEncoderDecoder {
  EncoderDecoderConfig config;
  Arena arena{0};
  EncoderDecoderParams<float> params;
};

// Zeroed parameters for config (validated).
LoadedEncoderDecoder AllocateEncoderDecoder(const EncoderDecoderConfig& config);

// Writes dir/model.safetensors (its values in float_dtype: "F32" or "BF16", rounded to nearest
// even) and dir/config.json (MarianConfigJson plus the keys of
// `extra`, e.g. a tokenizer entry). A directory that does not exist yet is written beside it
// under a temporary name and renamed into place, so it appears complete or not at all; into
// an existing one (a CheckpointDirectory staging folder, or one holding the tokenizer files)
// each file is written atomically, the tensors before the config.json that describes them.
void SaveEncoderDecoder(const std::string& dir, const EncoderDecoderConfig& config,
                        const EncoderDecoderParams<float>& params, const nlohmann::json& extra = {},
                        const std::string& float_dtype = "F32");

// Reads dir/config.json and dir/model.safetensors (or shards with model.safetensors.index.json;
// F32, F16 or BF16). Every tensor is checked against config.json before the parameters are
// allocated: errors name the tensor for one missing, of the wrong shape or dtype, unknown, a
// tied copy that differs from model.shared.weight, or a stored sinusoidal table that is not
// Marian's (to 1e-6; to the dtype's rounding for F16/BF16).
LoadedEncoderDecoder LoadEncoderDecoder(const std::string& dir);

}  // namespace qkv::model
