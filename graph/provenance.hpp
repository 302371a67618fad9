#pragma once
// Provenance: what a value was computed from, hash-consed into a small integer (ExprId).
//
// An expression is one step of the forward (an embedding, one attention's z, a residual sum, ...)
// applied to the expressions it reads. Two paths that compute the same thing get the same ExprId,
// so the memo cache (cache.hpp) computes it once. The expressions reachable from a result are the
// provenance DAG that viz/ draws.
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "graph/batch.hpp"
#include "graph/graph.hpp"
#include "graph/intervention.hpp"
#include "graph/step.hpp"

namespace pathpatch {

struct Expr {
  StepKind kind;
  NodeId node = -1;         // the graph node this step belongs to
  uint32_t interventions = 0;  // intervention list (0: none) applied inside this step
  uint64_t input = 0;       // Embed: the batch's key
  std::vector<ExprId> args;
  bool operator==(const Expr& o) const {
    return kind == o.kind && node == o.node && interventions == o.interventions && input == o.input &&
           args == o.args;
  }
};

class ExprTable;

// Where a step runs in the forward: node by node (nodes are numbered in forward order), within a
// node by its kind's order (step.hpp), a patch right after what it patches. Every step reads only
// steps of lower rank, or its reference at its own rank. The evaluator runs steps in this order;
// diagrams line steps of equal rank up.
int step_rank(const ExprTable& t, ExprId e);

class ExprTable {
 public:
  ExprTable();
  ExprId intern(Expr e);  // the existing id for an equal expression, else a new one
  const Expr& get(ExprId id) const { return exprs_.at(id); }
  size_t size() const { return exprs_.size(); }
  // The steps `root` computes from (arguments, recursively) and itself, each after what it reads.
  std::vector<ExprId> reachable(ExprId root) const;

  uint32_t intern_list(std::vector<BoundIntervention> list);  // 0 for an empty list
  const std::vector<BoundIntervention>& list(uint32_t id) const { return lists_.at(id); }

  uint64_t add_input(const Batch& b);  // registers a batch, returns its key (Batch::key() unless taken)
  const Batch& input(uint64_t key) const;

 private:
  struct Hash {
    size_t operator()(const Expr& e) const;
  };
  std::vector<Expr> exprs_;  // id 0 is a sentinel
  std::unordered_map<Expr, ExprId, Hash> index_;
  std::vector<std::vector<BoundIntervention>> lists_;
  // Hashes of contents (lists, input batches) are confirmed by comparing the contents on a hit:
  // a collision gets an entry of its own, never another's.
  std::unordered_multimap<uint64_t, uint32_t> list_index_;
  std::unordered_map<uint64_t, Batch> inputs_;
};

}  // namespace pathpatch
