#pragma once
// The evaluator: turns provenance (ExprIds) into tensors, through the memo cache.
//
// A model implements Backend, one function per step; the evaluator plans what to compute, for which
// positions, in which order, and what comes from the cache:
//  - Rows. Every value between steps is [B, T, ...] with positions on axis 1, and a step is asked
//    only for the positions its consumers need (a metric at the last position needs the last row
//    of the position-wise steps; an attention needs all keys up to its last query).
//  - Dirty rows. The tracer tells, for each step, the reference step (the plain forward of input 0)
//    it agrees with on its first rows. Those rows are copied from the reference; an attention
//    reuses the reference's keys and values for them as a prefix, as incremental decoding does.
//  - Stacking. Steps of the same kind, layer and positions, from one experiment or many, are
//    computed in one call with their batches stacked, so the GEMMs stay large.
// Interventions and probes apply as each named activation is produced (ComputeContext::emit).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/batch.hpp"
#include "graph/cache.hpp"
#include "graph/graph.hpp"
#include "graph/trace.hpp"

namespace pathpatch {

class ComputeContext;

// Positions [lo, hi) of the position axis.
struct Window {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi > lo ? hi - lo : 0; }
  bool empty() const { return hi <= lo; }
};

// The inputs of one attention, per query head: each head reads its q, k and v from one of `x`.
struct HeadSources {
  std::vector<Tensor> x;     // distinct residual inputs
  std::vector<int> q, k, v;  // per query head: index into x
};

// One attention computation: queries at positions [q_lo, hi), keys and values at [0, hi), of which
// [0, kv_lo) come precomputed (the prefix) and [kv_lo, hi) from the inputs.
struct AttnCall {
  HeadSources in;             // each input holds positions [kv_lo, hi): [B, hi - kv_lo, D]
  int64_t q_lo = 0, kv_lo = 0, hi = 0;
  Tensor k_prefix, v_prefix;  // [B, kv_lo, G, E], keys after RoPE; undefined when kv_lo == 0
  const Batch* layout = nullptr;  // masks and position ids of the B rows
  bool keep_kv = false;       // also return the keys and values of [kv_lo, hi)
};

struct AttnResult {
  Tensor z;     // [B, hi - q_lo, H, E]
  Tensor k, v;  // [B, hi - kv_lo, G, E] when asked for
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const Graph& graph() const = 0;
  // Each returns the step's output for the positions asked (row-wise steps: those of their input);
  // internal activations go through ctx.emit.
  virtual Tensor embed(const Batch& batch, Window rows, ComputeContext& ctx) const = 0;  // [B,w,D]
  virtual AttnResult attention_z(int layer, const AttnCall& call, ComputeContext& ctx) const = 0;
  virtual Tensor attention_out(int layer, const Tensor& z, ComputeContext& ctx) const = 0;  // [B,w,D]
  virtual Tensor mlp(int layer, const Tensor& x, ComputeContext& ctx) const = 0;            // [B,w,D]
  virtual Tensor final_norm(const Tensor& x, ComputeContext& ctx) const = 0;                // [B,w,D]
  virtual Tensor unembed(const Tensor& h) const = 0;                                        // [B,w,V]
};

struct ProbeRecord {
  std::string label;       // the probe's label (its activation's name as given, unless set)
  std::string activation;  // the full TransformerLens name
  ActId act;
  ExprId expr;             // the step that computed this instance
  Tensor value;
};

struct EvalStats {
  uint64_t computed = 0;     // steps computed
  uint64_t cache_hits = 0;   // steps served by the memo cache
  double flops = 0;          // floating-point operations spent
  double flops_saved = 0;    // what the cache hits would have cost to compute from nothing
  std::map<std::string, double> seconds;  // wall time of computed steps, by kind (AttnZ, Mlp, ...)
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
  std::vector<BoundIntervention> entries(ActId act) const;
  Evaluator* ev_ = nullptr;
  ExprId expr_ = 0;
  bool record_ = false;  // record probes
  ActId capture_ = -1;   // an activation the evaluator asked to keep (a replace source)
  Tensor captured_;
  int64_t pos_offset_ = 0;  // the first position of the values emitted (Patch over a window)
  double flops_ = 0;
};

class Evaluator {
 public:
  // `facts` says which rows of a step agree with a reference step (trace.hpp); null for runs
  // without a reference (one input), which then keep no keys and values for later prefixes.
  Evaluator(const Backend& backend, Cache& cache, const Batch& layout, const InterventionIndex& interventions,
            const RowFacts* facts = nullptr);

  // Positions `rows` of each root's value, all computed in one plan.
  std::vector<Tensor> values(const std::vector<ExprId>& roots, Window rows);
  // Whether computed values go into the memo cache (default). Batches of one-off experiments turn
  // it off: their steps are rarely shared, and storing them would push out the plain runs' values
  // they all read. Keys and values kept for prefixes are stored either way.
  void set_memoise(bool on) { memoise_ = on; }
  Tensor value(ExprId e);  // every position
  // Visits every step under `root` that computes a probed activation, so that probes are recorded
  // even where the memo cache answered for a step above them.
  void record_probes(ExprId root);
  std::vector<ProbeRecord>& probes() { return probes_; }
  const EvalStats& stats() const { return stats_; }

 private:
  friend class ComputeContext;
  struct Plan;
  struct Task;

  // Planning.
  void collect(ExprId e, Plan& plan);
  void demand(ExprId e, Window w, Plan& plan);
  void plan_step(ExprId e, Plan& plan);
  // Execution.
  void execute(Plan& plan);
  void release_inputs(ExprId e, Plan& plan);
  void run_group(const std::vector<ExprId>& group, Plan& plan);
  Tensor compute_alone(ExprId e, Plan& plan);
  Tensor rows_of(ExprId e, Window w, Plan& plan);
  Tensor finish(ExprId e, Tensor computed, Plan& plan);
  void account(ExprId e, double flops, double seconds);  // stats and the cache's cost and time

  // A step computed on its own over all positions, with probes and captures (replace sources).
  Tensor compute_full(ExprId id, ActId capture, Tensor* captured, bool record,
                      const std::function<Tensor(ExprId)>& arg, Task* keep_kv);
  Tensor patch(ExprId id, const Expr& e, Tensor x, int64_t pos_offset, bool record);
  const Tensor& source_for(const BoundIntervention& iv);
  ComputeContext context(ExprId id, bool record, ActId capture = -1);

  // Probes.
  void record_output_probes(ExprId id, const Expr& e, const Tensor& v);
  bool has_internal_probes(const Expr& e) const;
  bool has_probes(const Expr& e) const;
  bool own_run(const Expr& e) const;
  static bool windowable(const std::vector<BoundIntervention>& list);
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
  bool recording_ = true;               // false while computing replace sources
  bool memoise_ = true;
  std::unordered_map<uint64_t, Tensor> sources_;  // replace sources, by (expression, activation)
  std::map<int64_t, Batch> stacked_layouts_;       // the layout repeated n times, by n
  mutable std::map<std::pair<NodeId, StepKind>, std::pair<std::vector<ActId>, std::vector<ActId>>> acts_;
  EvalStats stats_;
};

}  // namespace pathpatch
