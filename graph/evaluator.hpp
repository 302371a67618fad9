#pragma once
// The evaluator: turns provenance (ExprIds) into tensors, through the memo cache.
//
// A model implements Backend, one function per step; the evaluator decides what to compute, in
// which order, what comes from the cache, and applies interventions and probes as each named
// activation is produced (through ComputeContext::emit).
#include <cstdint>
#include <string>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pathpatch/graph/batch.hpp"
#include "pathpatch/graph/cache.hpp"
#include "pathpatch/graph/graph.hpp"
#include "pathpatch/graph/trace.hpp"

namespace pathpatch {

class ComputeContext;

// The inputs of one attention, per query head: each head reads its q, k and v from one of `x`.
struct HeadSources {
  std::vector<Tensor> x;     // distinct residual inputs, [B, T, D] each
  std::vector<int> q, k, v;  // per query head: index into x
  bool single() const { return x.size() == 1; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const Graph& graph() const = 0;
  // Each returns the step's output value; internal activations go through ctx.emit.
  virtual Tensor embed(const Batch& batch, ComputeContext& ctx) const = 0;                  // [B,T,D]
  virtual Tensor attention_z(int layer, const HeadSources& in, const Batch& layout,
                             ComputeContext& ctx) const = 0;                              // [B,T,H,E]
  virtual Tensor attention_out(int layer, const Tensor& z, ComputeContext& ctx) const = 0;  // [B,T,D]
  virtual Tensor mlp(int layer, const Tensor& x, ComputeContext& ctx) const = 0;            // [B,T,D]
  virtual Tensor final_norm(const Tensor& x, ComputeContext& ctx) const = 0;                // [B,T,D]
  virtual Tensor unembed(const Tensor& h) const = 0;                                        // [B,T,V]
};

struct ProbeRecord {
  std::string label;       // the probe's label (its activation's name as given, unless set)
  std::string activation;  // the full TransformerLens name
  ActId act;
  ExprId expr;        // the step that computed this instance
  Tensor value;
};

struct EvalStats {
  uint64_t computed = 0;     // steps computed
  uint64_t cache_hits = 0;   // steps served by the cache
  double flops = 0;          // floating-point operations spent
  double flops_saved = 0;    // what the cache hits would have cost to compute from nothing
};

class Evaluator;

// What model code sees while computing one step.
class ComputeContext {
 public:
  // True when an intervention, a probe or a capture needs `act`: the model computes activations
  // that are optional to its output (the per-head result) only then.
  bool wants(ActId act) const;
  // Hands over a freshly computed activation: interventions on it apply in place, in order; probes
  // and captures keep a reference, so the model must not write into `value` afterwards.
  void emit(ActId act, Tensor& value);
  void add_flops(double f) { flops_ += f; }

 private:
  friend class Evaluator;
  const std::vector<BoundIntervention>& entries(ActId act) const;
  Evaluator* ev_ = nullptr;
  ExprId expr_ = 0;
  bool own_run_ = true;  // the step belongs to this run's experiment (not a replace source)
  bool record_ = false;  // record probes
  ActId capture_ = -1;   // an activation the evaluator asked to keep (a replace source)
  Tensor captured_;
  double flops_ = 0;
};

class Evaluator {
 public:
  Evaluator(const Backend& backend, Cache& cache, const Batch& layout, const InterventionIndex& interventions);

  Tensor value(ExprId e);
  // Visits every step under `root` that computes a probed activation, so that probes are recorded
  // even where the memo cache answered for a step above them.
  void record_probes(ExprId root);
  std::vector<ProbeRecord>& probes() { return probes_; }
  const EvalStats& stats() const { return stats_; }

 private:
  friend class ComputeContext;
  Tensor compute(ExprId id, ActId capture, Tensor* captured, bool record);
  Tensor patch(ExprId id, const Expr& e, Tensor x, bool record);
  Tensor assemble_rows(const Expr& e);
  void record_output_probes(ExprId id, const Expr& e, const Tensor& v);
  bool has_internal_probes(const Expr& e) const;
  bool has_probes(const Expr& e) const;
  bool own_run(const Expr& e) const;
  Stage stage_of(const Expr& e) const;
  const std::vector<ActId>& acts(NodeId node, Stage stage, bool outputs) const;
  const Tensor& source_for(const BoundIntervention& iv);

  const Backend& backend_;
  const Graph& g_;
  Cache& cache_;
  const ExprTable& exprs_;
  const Batch& layout_;
  const InterventionIndex& iv_;
  std::vector<ProbeRecord> probes_;
  std::unordered_set<ExprId> visited_;  // steps whose probes were recorded in this run
  bool recording_ = true;               // false while computing replace sources
  std::unordered_map<uint64_t, Tensor> sources_;  // replace sources, by (expression, activation)
  mutable std::map<std::pair<NodeId, Stage>, std::pair<std::vector<ActId>, std::vector<ActId>>> acts_;
  EvalStats stats_;
};

}  // namespace pathpatch
