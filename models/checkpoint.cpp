#include "models/checkpoint.hpp"

#include <cmath>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "models/config.hpp"

namespace pathpatch {

namespace fs = std::filesystem;

Checkpoint Checkpoint::open(const fs::path& dir, WeightAccess access) {
  if (!fs::is_directory(dir)) throw IoError(dir.string() + ": not a model folder");
  Checkpoint c;
  c.dir_ = dir;
  std::vector<fs::path> shards;
  fs::path single = dir / "model.safetensors";
  fs::path index = dir / "model.safetensors.index.json";
  std::map<std::string, std::string> expected;  // tensor -> shard, from the index
  if (files::exists(single)) {
    shards.push_back(single);
  } else if (files::exists(index)) {
    const std::string text = files::read(index, files::kMaxConfigBytes, "shard index");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(index.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw FormatError(index.string() + ": missing the 'weight_map' object");
    std::set<std::string> files;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw FormatError(index.string() + ": weight_map['" + it.key() + "'] is not a file name");
      std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
        throw FormatError(index.string() + ": shard name '" + file + "' must be a plain file name in the folder");
      expected[it.key()] = file;
      files.insert(file);
    }
    for (const auto& f : files) shards.push_back(dir / f);
  } else {
    throw IoError(dir.string() + ": neither model.safetensors nor model.safetensors.index.json found");
  }
  for (const auto& path : shards) {
    auto file = std::make_shared<SafetensorsFile>(SafetensorsFile::open(path, access));
    for (const auto& e : file->entries()) {
      if (c.where_.count(e.name))
        throw FormatError(path.string() + ": tensor '" + e.name + "' also appears in " + c.where_[e.name]->path().string());
      c.where_[e.name] = file.get();
    }
    c.files_.push_back(std::move(file));
  }
  for (const auto& [name, file] : expected) {
    auto it = c.where_.find(name);
    if (it == c.where_.end())
      throw WeightError(index.string() + ": lists tensor '" + name + "' in " + file + ", which does not contain it");
    if (it->second->path().filename() != file)
      throw WeightError(index.string() + ": lists tensor '" + name + "' in " + file + " but it is in " +
                        it->second->path().filename().string());
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  for (const auto& [name, t] : memory_) out.push_back(name);
  return out;
}

Checkpoint Checkpoint::from_tensors(std::map<std::string, Tensor> tensors) {
  Checkpoint c;
  c.dir_ = "(memory)";
  c.memory_ = std::move(tensors);
  return c;
}

Checkpoint Checkpoint::random(const ModelConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::map<std::string, Tensor> tensors;
  for (const TensorSpec& spec : checkpoint_layout(cfg)) {
    Tensor t = Tensor::uninitialized(spec.shape);
    float* p = t.data_mut();
    float mean = spec.init == TensorSpec::NormWeight ? 1.0f : 0.0f;
    float std = spec.init == TensorSpec::Embedding                                         ? 0.25f
                : spec.init == TensorSpec::Linear                                          ? 1.0f / std::sqrt(static_cast<float>(spec.fan_in))
                : spec.init == TensorSpec::NormWeight || spec.init == TensorSpec::NormOffset ? 0.1f
                                                                                             : 0.02f;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + std * normal(rng);
    tensors[spec.name] = std::move(t);
  }
  return from_tensors(std::move(tensors));
}

void Checkpoint::save(const fs::path& dir, const std::string& config_json) const {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> all;
  for (const std::string& name : names()) all.emplace_back(name, fetch(name));
  write_safetensors(dir / "model.safetensors", all, {{"format", "pt"}});
  files::write(dir / "config.json", config_json);
}

Tensor Checkpoint::fetch(const std::string& name) const {
  if (auto it = memory_.find(name); it != memory_.end()) return it->second;
  const SafetensorsFile& f = *where_.at(name);
  return f.load(*f.find(name));
}

Tensor Checkpoint::load(const std::string& name, const Shape& expected) const {
  if (!has(name))
    throw WeightError(dir_.string() + ": missing tensor '" + name + "' (expected shape " + to_string(expected) + ")");
  const std::string where = memory_.count(name) ? dir_.string() : where_.at(name)->path().string();
  Shape stored = memory_.count(name) ? memory_.at(name).shape() : where_.at(name)->find(name)->shape;
  if (stored != expected)
    throw WeightError(where + ": tensor '" + name + "' has shape " + to_string(stored) + ", expected " +
                      to_string(expected));
  Tensor t = fetch(name);
  const float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i]))
      throw WeightError(where + ": tensor '" + name + "' holds " + (std::isnan(p[i]) ? "NaN" : "Inf") +
                        " at flat index " + std::to_string(i));
  return t;
}

}  // namespace pathpatch
