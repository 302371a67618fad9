#pragma once
// The tracer: walks the paths the branch/which predicates distinguish and builds the provenance
// DAG of the result (no tensor is computed here; evaluator.hpp does that).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "graph/graph.hpp"
#include "graph/path.hpp"
#include "graph/provenance.hpp"

namespace pathpatch {

// What the tracer knows about a step's positions: rows [0, clean) of the step equal rows
// [0, clean) of `ref`, the same step of the reference run (the plain forward of input 0, no
// interventions). Causal attention and position-wise steps keep the rows before the first change.
struct RowFact {
  ExprId ref = 0;
  int64_t clean = 0;
};
using RowFacts = std::unordered_map<ExprId, RowFact>;

// The reference run, the plain forward of input 0 with no interventions (its step at each node
// and stage), and per input its first position that differs from input 0: what row facts are
// stated against. One serves every experiment on the same inputs.
struct Reference {
  std::map<std::pair<NodeId, StepKind>, ExprId> steps;
  std::unordered_set<ExprId> exprs;
  std::vector<int64_t> first_difference;
};

// One run's interventions, indexed by where they act.
class InterventionIndex {
 public:
  InterventionIndex() = default;
  InterventionIndex(const Graph& g, ExprTable& exprs, const std::vector<BoundIntervention>& all);

  uint32_t inside(NodeId node, StepKind stage) const;  // list for the step's internal activations
  uint32_t after(NodeId node, StepKind stage) const;   // list for its output activations (a Patch)
  // All entries for one activation, in order, probes included.
  const std::vector<BoundIntervention>& of(ActId act) const;
  bool any(ActId act) const { return !of(act).empty(); }
  bool patched(ActId act) const;  // has an entry other than a probe

 private:
  std::map<std::pair<NodeId, StepKind>, uint32_t> inside_, after_;
  std::map<ActId, std::vector<BoundIntervention>> by_act_;
};

class Tracer {
 public:
  // `names`, the path names of g for `seq` positions, is needed by trace() alone (it outlives
  // the tracer); plain forwards and rule tracing do without.
  Tracer(const Graph& g, ExprTable& exprs, std::vector<uint64_t> input_keys, int64_t seq,
         const InterventionIndex& interventions, const PathAlphabet* names = nullptr);

  // The root (ln_final) expression of the computation the predicates describe. Throws
  // PredicateError for an invalid answer, BudgetError past `budget` node visits; exceptions thrown
  // by the predicates reach the caller unchanged.
  ExprId trace(const WhichFn& which, const BranchFn& branch, uint64_t budget);
  // The plain forward on one input (no split); `steps`, if given, receives each step's expression.
  ExprId plain(int input, std::map<std::pair<NodeId, StepKind>, ExprId>* steps = nullptr);
  uint64_t visits() const { return visits_; }

  // Enables row facts against `reference` (which outlives the tracer).
  void set_reference(const Reference* reference) { ref_ = reference; }
  const RowFacts& facts() const { return facts_; }
  bool has_reference() const { return ref_ != nullptr; }

  // Building blocks, one step each: interventions of the run are attached here.
  ExprId embed(int input);
  ExprId attention(int layer, ExprId x);
  ExprId attention_heads(int layer, const std::vector<ExprId>& qkv);  // 3 per query head
  ExprId mlp(int layer, ExprId x);
  ExprId rows(NodeId node, const std::vector<ExprId>& parts);  // one per position
  ExprId residual(NodeId node, ExprId residual, ExprId sublayer);
  ExprId final(ExprId x);
  ExprId sublayer_on(NodeId sub, ExprId x);  // the attention or MLP of a sub-layer node on x

 private:
  ExprId step(StepKind kind, NodeId node, std::vector<ExprId> args, uint64_t input = 0, int64_t clean = -1,
              bool patch_output = true);
  ExprId intern(Expr e, StepKind stage, int64_t clean);  // hash-conses and records the row fact
  int64_t clean_rows(ExprId e) const;
  void refuse_split_kv(NodeId attn, const std::vector<ExprId>& qkv) const;
  ExprId value_of(NodeId n, ExprId* residual_in = nullptr);
  ExprId sublayer(NodeId sub);
  int ask_which();
  Split ask_branch(bool positions_ok, const char* edges_mean);
  void enter(int symbol);
  ExprId head_input(int layer, int head, Role role, NodeId sub);  // below aL.headH, split
  // The input of `node` (ln_final or a sub-layer) with each position's row from its own path, the
  // path entering symbol(P) first.
  ExprId per_position(NodeId node, const std::function<int(int64_t)>& symbol);

  const Graph& g_;
  const PathAlphabet* names_;
  ExprTable& exprs_;
  std::vector<uint64_t> inputs_;
  int64_t seq_;
  const InterventionIndex& iv_;

  Path path_;
  std::unordered_map<int, PathEntry> made_;  // the symbols the alphabet does not intern, as entered
  const WhichFn* which_ = nullptr;
  const BranchFn* branch_ = nullptr;
  uint64_t visits_ = 0, budget_ = 0;
  std::map<std::pair<NodeId, StepKind>, ExprId>* steps_ = nullptr;

  const Reference* ref_ = nullptr;
  RowFacts facts_;
};

}  // namespace pathpatch
