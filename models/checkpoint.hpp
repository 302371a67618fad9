#pragma once
// The tensors of a Hugging Face checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pathpatch/graph/tensor.hpp"
#include "pathpatch/models/safetensors.hpp"

namespace pathpatch {

class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir);

  bool has(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> names() const;
  // The tensor as F32. WeightError if it is missing, is not shaped `expected`, or holds NaN or Inf
  // (the message names the tensor, the file and what was expected).
  Tensor load(const std::string& name, const Shape& expected) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace pathpatch
