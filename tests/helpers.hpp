#pragma once
// Shared helpers for the Catch2 tests.
#include <filesystem>
#include <string>

#include "pathpatch/pathpatch.hpp"

namespace pptest {

inline std::filesystem::path source_dir() { return PP_SOURCE_DIR; }
inline std::filesystem::path golden(const std::string& name) { return source_dir() / "tests" / "golden" / name; }

// A model loaded once per test binary (loading is cheap, but tests use the same few many times).
const pathpatch::Model& model(const std::string& golden_name);

// Max |a - b|, where two -inf (masked scores) at the same place count as equal. NaN anywhere: +inf.
float max_diff(const pathpatch::Tensor& a, const pathpatch::Tensor& b);

// A batch from a reference file's input_ids / attention_mask (stored as F32).
pathpatch::Batch batch_from(const pathpatch::Tensor& ids, const pathpatch::Tensor& mask);
// The input of a golden folder's "batch" case (three rows, left padding).
pathpatch::Batch golden_batch(const std::string& golden_name);

inline pathpatch::Split no_split(const pathpatch::Path&) { return pathpatch::Split::None; }

// The ConfigError message ModelConfig::parse gives for `json`, or "(no error)".
std::string config_error(const std::string& json);

}  // namespace pptest
