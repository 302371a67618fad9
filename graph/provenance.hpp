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

namespace pathpatch {

enum class ExprKind : uint8_t {
  Embed,       // input -> resid_pre0                       args: {}          input: batch key
  Rows,        // position P's row from args[P]             args: [T]
  AttnZ,       // ln1 .. z of one attention on one input     args: {x}
  AttnZHeads,  // z with per-head q/k/v inputs               args: [3H] (q,k,v of head 0, 1, ...)
  ZGather,     // head h's z from args[h] (an AttnZ)         args: [H]
  AttnOut,     // result, attn_out from z                    args: {z}
  Mlp,         // ln2 .. mlp_out                             args: {x}
  Add,         // residual sum at aL / fL                    args: {residual, sub-layer}
  Final,       // ln_final                                   args: {x}
  Patch,       // output activations' interventions          args: {x}
};
const char* expr_kind_name(ExprKind k);

struct Expr {
  ExprKind kind;
  NodeId node = -1;         // the graph node this step belongs to
  uint32_t interventions = 0;  // intervention list (0: none) applied inside this step
  uint64_t input = 0;       // Embed: the batch's key
  std::vector<ExprId> args;
  bool operator==(const Expr& o) const {
    return kind == o.kind && node == o.node && interventions == o.interventions && input == o.input &&
           args == o.args;
  }
};

class ExprTable {
 public:
  ExprTable();
  ExprId intern(Expr e);  // the existing id for an equal expression, else a new one
  const Expr& get(ExprId id) const { return exprs_.at(id); }
  size_t size() const { return exprs_.size(); }

  uint32_t intern_list(std::vector<BoundIntervention> list);  // 0 for an empty list
  const std::vector<BoundIntervention>& list(uint32_t id) const { return lists_.at(id); }

  uint64_t add_input(const Batch& b);  // registers a batch, returns its key
  const Batch& input(uint64_t key) const;

 private:
  struct Hash {
    size_t operator()(const Expr& e) const;
  };
  std::vector<Expr> exprs_;  // id 0 is a sentinel
  std::unordered_map<Expr, ExprId, Hash> index_;
  std::vector<std::vector<BoundIntervention>> lists_;
  std::unordered_map<uint64_t, uint32_t> list_index_;
  std::unordered_map<uint64_t, Batch> inputs_;
};

}  // namespace pathpatch
