#pragma once
// The evaluator: turns provenance (ExprIds) into tensors, through the memo cache.
//
// It works in two phases. Planning (planner.cpp) walks the provenance from the roots and decides,
// before anything is computed, what each step computes, for which positions, and what comes from
// the cache:
//  - Rows. Every value between steps is [B, T, ...] with positions on axis 1, and a step is asked
//    only for the positions its consumers need (a metric at the last position needs the last row
//    of the position-wise steps; an attention needs all keys up to its last query).
//  - Dirty rows. The tracer tells, for each step, the reference step (the plain forward of input 0)
//    it agrees with on its first rows. Those rows are copied from the reference; an attention
//    reuses the reference's keys and values for them as a prefix, as incremental decoding does.
//  - Sources. A replace intervention's value (another input's activation) is a step of the plan
//    like any other, computed before the steps that read it.
// Execution (evaluator.cpp) then runs the steps in forward order, one compute function per kind of
// step; steps of the same kind, node and positions, from one experiment or many, are computed in
// one call with their batches stacked, so the GEMMs stay large. Interventions and probes apply as
// each named activation is produced (ComputeContext::emit).
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/backend.hpp"
#include "graph/batch.hpp"
#include "graph/cache.hpp"
#include "graph/graph.hpp"
#include "graph/trace.hpp"

namespace pathpatch {

struct EvalStats {
  uint64_t computed = 0;     // steps computed
  uint64_t cache_hits = 0;   // steps served by the memo cache
  double flops = 0;          // floating-point operations spent
  double flops_saved = 0;    // what the cache hits would have cost to compute from nothing
  std::map<std::string, double> seconds;  // wall time of computed steps, by kind (AttnZ, Mlp, ...)

  void add(const EvalStats& o) {
    computed += o.computed;
    cache_hits += o.cache_hits;
    flops += o.flops;
    flops_saved += o.flops_saved;
    for (const auto& [kind, s] : o.seconds) seconds[kind] += s;
  }
};

class Evaluator {
 public:
  // `facts` says which rows of a step agree with a reference step (trace.hpp); null for runs
  // without a reference (one input), which then keep no keys and values for later prefixes.
  Evaluator(const Backend& backend, Cache& cache, const Batch& layout, const InterventionIndex& interventions,
            const RowFacts* facts = nullptr);
  ~Evaluator();

  // Positions `rows` of each root's value, all computed in one plan.
  std::vector<Tensor> values(const std::vector<ExprId>& roots, Window rows);
  Tensor value(ExprId e);  // every position
  // Whether computed values go into the memo cache (default). Batches of one-off experiments turn
  // it off: their steps are rarely shared, and storing them would push out the plain runs' values
  // they all read. Keys, values and captured sources are stored either way.
  void set_memoise(bool on) { memoise_ = on; }
  // Computes every step under `root` that computes a probed activation and was not computed by
  // this evaluator yet, so that probes are recorded even where the memo cache answered for a step
  // above them.
  void record_probes(ExprId root);
  std::vector<ProbeRecord>& probes() { return probes_; }
  const EvalStats& stats() const { return stats_; }

 private:
  struct Task;
  struct Plan;
  struct Call;
  class StepContext;

  // Planning (planner.cpp).
  void collect(ExprId e, Plan& plan);
  void collect_source(const BoundIntervention& iv, Plan& plan);
  void mark_run(const std::vector<ExprId>& roots, Plan& plan) const;
  void demand(ExprId e, Window w, Plan& plan);
  void plan_step(ExprId e, Plan& plan);
  std::vector<ExprId> reads(ExprId e) const;  // arguments, reference and replace sources
  static bool windowable(const std::vector<BoundIntervention>& list);

  // Execution (evaluator.cpp): run() computes one call with the function for its kind.
  void execute(Plan& plan);
  void run(const Call& c, Plan& plan);
  Tensor embed(const Call& c, StepContext& ctx);
  Tensor assemble_rows(const Call& c, Plan& plan);
  Tensor attention(const Call& c, Plan& plan, StepContext& ctx);
  Tensor gather_heads(const Call& c, Plan& plan);
  Tensor add(const Call& c, Plan& plan, StepContext& ctx);
  Tensor patch(const Call& c, Plan& plan, StepContext& ctx);
  Tensor stacked_input(const Call& c, Window w, Plan& plan);  // args[0] of each expression, stacked
  const Batch& layout_for(int64_t copies);
  Tensor rows_of(ExprId e, Window w, Plan& plan);
  Tensor finish(ExprId e, Tensor computed, Plan& plan);
  void release_inputs(ExprId e, Plan& plan);
  void account(ExprId e, double flops, double seconds);  // stats and the cache's cost and time
  const Tensor& source_value(const BoundIntervention& iv) const;

  // Probes and interventions.
  void record_output_probes(ExprId id, const Expr& e, const Tensor& v);
  bool has_internal_probes(const Expr& e) const;
  bool has_probes(const Expr& e) const;
  bool own_run(const Expr& e) const;
  std::vector<BoundIntervention> entries(ExprId e, ActId act) const;
  StepKind stage_of(const Expr& e) const;
  const std::vector<ActId>& acts(NodeId node, StepKind stage, bool outputs) const;
  int64_t clean_rows(ExprId e) const;  // leading positions equal to the reference step
  ExprId reference(ExprId e) const;
  bool keeps_kv() const;  // runs with a reference keep attentions' keys and values for prefixes

  const Backend& backend_;
  const Graph& g_;
  Cache& cache_;
  const ExprTable& exprs_;
  const Batch& layout_;
  const int64_t seq_;
  const InterventionIndex& iv_;
  const RowFacts* facts_;
  std::vector<ProbeRecord> probes_;
  std::unordered_set<ExprId> visited_;  // steps whose probes were recorded in this run
  bool memoise_ = true;
  Plan* plan_ = nullptr;                // the plan being executed (sources are read from it)
  std::map<int64_t, Batch> stacked_layouts_;  // the layout repeated n times, by n
  mutable std::map<std::pair<NodeId, StepKind>, std::pair<std::vector<ActId>, std::vector<ActId>>> acts_;
  EvalStats stats_;
};

}  // namespace pathpatch
