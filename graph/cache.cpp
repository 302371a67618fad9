#include "graph/cache.hpp"

#include "graph/error.hpp"
#include "graph/intervention.hpp"

namespace pathpatch {

Cache::Cache(uint64_t budget_bytes) : budget_(budget_bytes) {}

Cache::Lease::Lease(Cache& cache, const char* who) : cache_(cache) {
  bool expected = false;
  if (!cache_.in_use_.compare_exchange_strong(expected, true, std::memory_order_acquire))
    throw InputError(std::string(who) + ": this Cache is in use by another run at the same time; a Cache serves one "
                     "run at a time: give each thread its own Cache (a loaded Model may be shared)");
}

Cache::Lease::~Lease() { cache_.in_use_.store(false, std::memory_order_release); }

void Cache::bind_owner(uint64_t model_id) {
  if (owner_ && owner_ != model_id)
    throw InputError("this cache holds values of another model; use one cache per model");
  owner_ = model_id;
}

void Cache::set_seconds(ExprId id, double s) {
  if (seconds_.size() <= id) seconds_.resize(id + 1, 0.0);
  seconds_[id] = s;
}

void Cache::set_cost(ExprId id, double flops) {
  if (cost_.size() <= id) cost_.resize(id + 1, 0.0);
  cost_[id] = flops;
}

size_t Cache::KeyHash::operator()(const Key& k) const {
  uint64_t h = hash_combine(k.id, (uint64_t(k.slot.kind) << 32) | uint32_t(k.slot.act));
  return static_cast<size_t>(hash_combine(h, static_cast<uint64_t>(k.rows.lo * 1000003 + k.rows.hi)));
}

std::optional<Tensor> Cache::lookup(const Key& k) {
  auto it = map_.find(k);
  if (it == map_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.value;
}

std::optional<Tensor> Cache::get(ExprId id, Slot slot, Rows rows, int64_t seq) {
  std::optional<Tensor> hit = lookup(Key{id, slot, kAll});
  if (hit && !(rows == kAll) && !(rows.lo == 0 && rows.hi == seq)) hit = slice1(*hit, rows.lo, rows.hi);
  if (!hit && !(rows == kAll)) hit = lookup(Key{id, slot, rows.lo == 0 && rows.hi == seq ? kAll : rows});
  ++(hit ? counters_.hits : counters_.misses);
  return hit;
}

bool Cache::contains(ExprId id, Slot slot, Rows rows) const { return map_.count(Key{id, slot, rows}) > 0; }

void Cache::put(ExprId id, const Tensor& value, Slot slot, Rows rows) {
  Key k{id, slot, rows};
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

Cache::Snapshot Cache::snapshot() const {
  Snapshot s;
  s.entries_.reserve(lru_.size());
  for (const Key& k : lru_) s.entries_.emplace_back(k, map_.at(k).value);
  return s;
}

void Cache::restore(const Snapshot& s) {
  clear();
  for (const auto& [k, value] : s.entries_) {
    lru_.push_back(k);
    map_.emplace(k, Entry{value, std::prev(lru_.end())});
    counters_.bytes_held += value.bytes();
  }
  evict_to(budget_);  // a budget lowered since the snapshot
}

void Cache::clear() {
  map_.clear();
  lru_.clear();
  counters_.bytes_held = 0;
}

}  // namespace pathpatch
