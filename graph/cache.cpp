#include "pathpatch/graph/cache.hpp"

#include "pathpatch/graph/error.hpp"

namespace pathpatch {

Cache::Cache(uint64_t budget_bytes) : budget_(budget_bytes) {}

void Cache::bind_owner(uint64_t model_id) {
  if (owner_ && owner_ != model_id)
    throw InputError("this cache holds values of another model; use one cache per model");
  owner_ = model_id;
}

void Cache::set_cost(ExprId id, double flops) {
  if (cost_.size() <= id) cost_.resize(id + 1, 0.0);
  cost_[id] = flops;
}

std::optional<Tensor> Cache::get(ExprId id, int32_t slot) {
  auto it = map_.find(key(id, slot));
  if (it == map_.end()) {
    ++counters_.misses;
    return std::nullopt;
  }
  ++counters_.hits;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.value;
}

bool Cache::contains(ExprId id, int32_t slot) const { return map_.count(key(id, slot)) > 0; }

void Cache::put(ExprId id, const Tensor& value, int32_t slot) {
  Key k = key(id, slot);
  if (map_.count(k)) return;  // entries are immutable: the first value stays
  uint64_t bytes = value.bytes();
  if (bytes > budget_) return;  // larger than the whole budget: computed, used, not kept
  evict_to(budget_ - bytes);
  lru_.push_front(k);
  map_.emplace(k, Entry{value, lru_.begin()});
  counters_.bytes_held += bytes;
  counters_.peak_bytes = std::max(counters_.peak_bytes, counters_.bytes_held);
}

void Cache::evict_to(uint64_t bytes) {
  while (counters_.bytes_held > bytes && !lru_.empty()) {
    Key k = lru_.back();
    lru_.pop_back();
    auto it = map_.find(k);
    counters_.bytes_held -= it->second.value.bytes();
    map_.erase(it);
    ++counters_.evictions;
  }
}

void Cache::set_budget(uint64_t bytes) {
  budget_ = bytes;
  evict_to(bytes);
}

void Cache::clear() {
  map_.clear();
  lru_.clear();
  counters_.bytes_held = 0;
}

}  // namespace pathpatch
