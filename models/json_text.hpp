#pragma once
// JSON values quoted in error messages (config.json, safetensors headers, tokenizer files).
#include <nlohmann/json.hpp>
#include <string>

namespace pathpatch::detail {

// `v` as text. A value nested more than 16 levels deep is named by its type alone: dump() recurses
// once per level, and a hostile file can nest without bound.
std::string json_text(const nlohmann::json& v);

}  // namespace pathpatch::detail
