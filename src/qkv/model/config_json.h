// Strict readers of config.json values, shared by every config dialect (model_config.cc's
// GPT-2 and Llama keys, marian_checkpoint.cc's MarianMTModel keys): integers must be JSON
// integers in range, reals finite numbers, and every error names the key and the value. A key
// set to null counts as absent.
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "qkv/core/check.h"

namespace qkv::model::config_json {

// A JSON value for an error message; containers are named rather than dumped (dump() recurses,
// and a hostile file can nest arbitrarily deep).
inline std::string Describe(const nlohmann::json& value) {
  return value.is_primitive() ? value.dump() : std::string(value.type_name());
}

[[noreturn]] inline void ThrowBadValue(const char* key, const nlohmann::json& value,
                                       const char* want) {
  throw Error(internal::StrCat("config.json: '", key, "' has a bad value ", Describe(value), " (",
                               want, ")"));
}

inline bool Present(const nlohmann::json& json, const char* key) {
  return json.contains(key) && !json.at(key).is_null();
}

// nlohmann's get<int64_t>() would truncate 3.5 to 3, wrap 2^64 - 1 to -1 and turn 1e30 into
// undefined behaviour; this reads a JSON integer in [min, max] or throws.
inline int64_t IntegerIn(const nlohmann::json& json, const char* key, int64_t min, int64_t max) {
  const nlohmann::json& value = json.at(key);
  if (!value.is_number_integer()) ThrowBadValue(key, value, "want an integer");
  const bool too_big = value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX);
  const int64_t number = too_big ? INT64_MAX : value.get<int64_t>();
  QKV_CHECK(!too_big && number >= min && number <= max, "config.json: '", key, "' is ",
            Describe(value), ", outside the supported range [", min, ", ", max, "]");
  return number;
}

inline int64_t RequiredInteger(const nlohmann::json& json, const char* key, int64_t min,
                               int64_t max) {
  QKV_CHECK(Present(json, key), "config.json: the required key '", key, "' is missing");
  return IntegerIn(json, key, min, max);
}

inline int64_t OptionalInteger(const nlohmann::json& json, const char* key, int64_t fallback,
                               int64_t min, int64_t max) {
  return Present(json, key) ? IntegerIn(json, key, min, max) : fallback;
}

// A finite JSON number (integers allowed), so that NaN-like or huge values never reach a
// float conversion (double -> float of 1e300 is undefined behaviour).
inline double OptionalReal(const nlohmann::json& json, const char* key, double fallback) {
  if (!Present(json, key)) return fallback;
  const nlohmann::json& value = json.at(key);
  if (!value.is_number()) ThrowBadValue(key, value, "want a number");
  const double number = value.get<double>();
  if (!std::isfinite(number)) ThrowBadValue(key, value, "want a finite number");
  return number;
}

inline std::string OptionalString(const nlohmann::json& json, const char* key,
                                  std::string fallback) {
  if (!Present(json, key)) return fallback;
  const nlohmann::json& value = json.at(key);
  if (!value.is_string()) ThrowBadValue(key, value, "want a string");
  return value.get<std::string>();
}

inline bool OptionalBool(const nlohmann::json& json, const char* key, bool fallback) {
  if (!Present(json, key)) return fallback;
  const nlohmann::json& value = json.at(key);
  if (!value.is_boolean()) ThrowBadValue(key, value, "want true or false");
  return value.get<bool>();
}

}  // namespace qkv::model::config_json
