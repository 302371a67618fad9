// The families pathpatch reads, one line each (models/family.hpp).
#include "models/family.hpp"

namespace pathpatch {

extern const Family kGpt2Family, kLlamaFamily, kMistralFamily, kQwen2Family, kGemma2Family, kGptNeoxFamily,
    kGptNeoFamily;

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> all = {
      &kGpt2Family, &kLlamaFamily, &kMistralFamily, &kQwen2Family, &kGemma2Family, &kGptNeoxFamily, &kGptNeoFamily,
  };
  return all;
}

const Family* find_family(std::string_view model_type) {
  for (const Family* f : families())
    for (const std::string& t : f->model_types)
      if (t == model_type) return f;
  return nullptr;
}

}  // namespace pathpatch
