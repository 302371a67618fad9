#include "helpers.hpp"

#include <cmath>
#include <map>
#include <memory>

#include "models/safetensors.hpp"

namespace pptest {

const pathpatch::Model& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<pathpatch::Model>> loaded;
  auto& slot = loaded[name];
  if (!slot) slot = std::make_unique<pathpatch::Model>(pathpatch::load_model(golden(name)));
  return *slot;
}

float max_diff(const pathpatch::Tensor& a, const pathpatch::Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    float x = a.data()[i], y = b.data()[i];
    if (std::isinf(x) && std::isinf(y) && (x < 0) == (y < 0)) continue;
    float d = std::fabs(x - y);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

std::string config_error(const std::string& json) {
  try {
    pathpatch::ModelConfig::parse(json, "config.json");
  } catch (const pathpatch::ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

pathpatch::Batch batch_from(const pathpatch::Tensor& ids, const pathpatch::Tensor& mask) {
  pathpatch::Batch b;
  b.size = ids.size(0);
  b.seq = ids.size(1);
  for (int64_t i = 0; i < ids.numel(); ++i) {
    b.ids.push_back(static_cast<int32_t>(ids.data()[i]));
    b.mask.push_back(mask.data()[i] != 0.0f);
  }
  return b;
}

pathpatch::Batch golden_batch(const std::string& golden_name) {
  auto f = pathpatch::SafetensorsFile::open(golden(golden_name) / "batch.safetensors");
  return batch_from(f.load("input_ids"), f.load("attention_mask"));
}

}  // namespace pptest
