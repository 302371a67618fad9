#pragma once
// The memo cache: provenance -> value, with a byte budget.
//
// Entries are immutable tensors (storage shared, never written after insertion). When the bytes
// held pass the budget, the least recently used entries are dropped; a later need recomputes them
// from their provenance. One cache serves many runs on one model, so a sweep of experiments pays
// only for what differs between them.
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "pathpatch/graph/provenance.hpp"
#include "pathpatch/graph/tensor.hpp"

namespace pathpatch {

struct CacheCounters {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t bytes_held = 0;
  uint64_t peak_bytes = 0;
};

class Cache {
 public:
  static constexpr uint64_t kDefaultBudget = 4ull << 30;
  explicit Cache(uint64_t budget_bytes = kDefaultBudget);

  ExprTable& exprs() { return exprs_; }
  const ExprTable& exprs() const { return exprs_; }

  // `slot` 0 is an expression's value; slot a + 1 a captured activation a computed inside it.
  std::optional<Tensor> get(ExprId id, int32_t slot = 0);
  void put(ExprId id, const Tensor& value, int32_t slot = 0);
  bool contains(ExprId id, int32_t slot = 0) const;
  void clear();  // drops values, keeps provenance

  uint64_t budget() const { return budget_; }
  void set_budget(uint64_t bytes);
  const CacheCounters& counters() const { return counters_; }
  size_t entries() const { return map_.size(); }

  // The model this cache belongs to (0 until the first run binds it).
  uint64_t owner() const { return owner_; }
  void bind_owner(uint64_t model_id);

  // What computing an expression from nothing costs, in FLOPs (its own step plus everything it
  // reads, every path counted as nano-path-patching would compute it). Kept after eviction.
  double cost(ExprId id) const { return id < cost_.size() ? cost_[id] : 0.0; }
  void set_cost(ExprId id, double flops);

 private:
  using Key = uint64_t;
  static Key key(ExprId id, int32_t slot) { return (uint64_t(id) << 32) | uint32_t(slot); }
  void evict_to(uint64_t bytes);

  ExprTable exprs_;
  uint64_t budget_;
  uint64_t owner_ = 0;
  std::vector<double> cost_;
  std::list<Key> lru_;  // front: most recently used
  struct Entry {
    Tensor value;
    std::list<Key>::iterator pos;
  };
  std::unordered_map<Key, Entry> map_;
  CacheCounters counters_;
};

}  // namespace pathpatch
