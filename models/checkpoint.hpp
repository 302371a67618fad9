#pragma once
// The tensors of a Hugging Face checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/tensor.hpp"
#include "models/safetensors.hpp"
#include "models/weights.hpp"

namespace pathpatch {

class Checkpoint {
 public:
  // `access`: tensors copied into memory when loaded (the default), or mapped (safetensors.hpp).
  static Checkpoint open(const std::filesystem::path& dir, WeightAccess access = WeightAccess::Read);
  // An in-memory checkpoint (tests, benchmarks, converted weights).
  static Checkpoint from_tensors(std::map<std::string, Tensor> tensors);
  // Random weights in the config's layout: embeddings N(0, 0.25^2), linear N(0, 1/fan_in), norm
  // weights 1 + N(0, 0.1^2), biases N(0, 0.02^2). Deterministic in `seed`.
  static Checkpoint random(const ModelConfig& cfg, uint64_t seed);
  // Writes the checkpoint as model.safetensors + config.json into `dir` (F32).
  void save(const std::filesystem::path& dir, const std::string& config_json) const;

  bool has(const std::string& name) const { return where_.count(name) > 0 || memory_.count(name) > 0; }
  std::vector<std::string> names() const;
  // The tensor as F32. WeightError if it is missing, is not shaped `expected`, or holds NaN or Inf
  // (the message names the tensor, the file and what was expected).
  Tensor load(const std::string& name, const Shape& expected) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Tensor fetch(const std::string& name) const;  // as stored, before checks

  std::filesystem::path dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;  // for files
  std::map<std::string, Tensor> memory_;                  // for in-memory checkpoints
};

}  // namespace pathpatch
