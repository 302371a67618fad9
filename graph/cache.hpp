#pragma once
// The memo cache: provenance -> value, with a byte budget.
//
// Entries are immutable tensors (storage shared, never written after insertion). When the bytes
// held pass the budget, the least recently used entries are dropped; a later need recomputes them
// from their provenance. One cache serves many runs on one model, so a sweep of experiments pays
// only for what differs between them.
//
// Threads: a Cache serves one run at a time. Runs on several threads may take turns with one
// cache; a run that starts while another holds it gets an InputError, never a corrupted cache.
// Give each thread its own Cache to run at the same time (a loaded Model is immutable and shared).
#include <cstdint>
#include <atomic>
#include <list>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "graph/provenance.hpp"
#include "graph/tensor.hpp"

namespace pathpatch {

struct CacheCounters {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t bytes_held = 0;
  uint64_t peak_bytes = 0;
};

// Positions [lo, hi) a cache entry holds; the default, {-1, -1}, stands for all of them.
struct CacheRows {
  int64_t lo = -1, hi = -1;
  bool operator==(const CacheRows& o) const { return lo == o.lo && hi == o.hi; }
};

// Which value of an expression an entry holds: the step's own value, an attention's keys (after
// RoPE) or values kept for prefixes, or an activation computed inside the step and captured for a
// replace intervention elsewhere.
struct CacheSlot {
  enum Kind : uint8_t { Value, Keys, Values, Captured } kind = Value;
  ActId act = -1;  // Captured
  static CacheSlot keys() { return {Keys}; }
  static CacheSlot values() { return {Values}; }
  static CacheSlot captured(ActId a) { return {Captured, a}; }
  bool operator==(const CacheSlot& o) const { return kind == o.kind && act == o.act; }
};

class Cache {
 public:
  static constexpr uint64_t kDefaultBudget = 4ull << 30;
  explicit Cache(uint64_t budget_bytes = kDefaultBudget);
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // Held by a run (or a drawing of a result's provenance) while it uses the cache. `who` names
  // the user in the InputError a second, overlapping user gets.
  class Lease {
   public:
    Lease(Cache& cache, const char* who);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    Cache& cache_;
  };

  ExprTable& exprs() { return exprs_; }
  const ExprTable& exprs() const { return exprs_; }

  // A value may be held for all positions (rows = kAll) or for a window of positions [lo, hi)
  // (axis 1).
  using Rows = CacheRows;
  using Slot = CacheSlot;
  static constexpr Rows kAll{};

  // The value for `rows` of `seq` positions: from an entry for all positions (sliced) or for
  // exactly those rows.
  std::optional<Tensor> get(ExprId id, Slot slot = {}, Rows rows = kAll, int64_t seq = 0);
  void put(ExprId id, const Tensor& value, Slot slot = {}, Rows rows = kAll);
  bool contains(ExprId id, Slot slot = {}, Rows rows = kAll) const;
  void clear();  // drops values, keeps provenance

  // The entries as they are now, in recency order, to go back to with restore(). It shares the
  // values (no copy), so entries evicted after it stay in memory while it lives. Units of a sweep
  // each start from one snapshot, so that a unit computes the same bits whichever units ran before
  // it (patching.hpp, Shard).
  class Snapshot;
  Snapshot snapshot() const;
  void restore(const Snapshot& s);

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
  // Wall time of an expression's own step when last computed (its share of a stacked call).
  double seconds(ExprId id) const { return id < seconds_.size() ? seconds_[id] : 0.0; }
  void set_seconds(ExprId id, double s);

 private:
  struct Key {
    ExprId id;
    Slot slot;
    Rows rows;
    bool operator==(const Key& o) const { return id == o.id && slot == o.slot && rows == o.rows; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  void evict_to(uint64_t bytes);
  std::optional<Tensor> lookup(const Key& k);

  ExprTable exprs_;
  uint64_t budget_;
  uint64_t owner_ = 0;
  std::vector<double> cost_;
  std::vector<double> seconds_;
  std::list<Key> lru_;  // front: most recently used
  struct Entry {
    Tensor value;
    std::list<Key>::iterator pos;
  };
  std::unordered_map<Key, Entry, KeyHash> map_;
  CacheCounters counters_;
  std::atomic<bool> in_use_{false};
};

class Cache::Snapshot {
 private:
  friend class Cache;
  std::vector<std::pair<Key, Tensor>> entries_;  // most recently used first
};

}  // namespace pathpatch
