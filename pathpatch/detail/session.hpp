#pragma once
// Engine internals shared by the front ends (run() with predicates or rules in run.cpp and
// rules.cpp, run_experiments() in patching.cpp); not part of the public headers.
//
// A Session is what every experiment on one set of inputs shares: the inputs checked and
// registered in the cache, each input's plain forward traced once, and the reference (input 0's
// plain forward) that row facts are stated against.
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "graph/evaluator.hpp"
#include "graph/trace.hpp"
#include "pathpatch/run.hpp"

namespace pathpatch::detail {

class Session {
 public:
  // Checks the inputs (check_inputs), takes the cache (fresh if null; InputError if another run
  // holds it) and binds it to the model.
  Session(const Model& model, const std::vector<Batch>& inputs, std::shared_ptr<Cache> cache);

  const Model& model() const { return model_; }
  const std::vector<Batch>& inputs() const { return inputs_; }
  const std::shared_ptr<Cache>& cache() const { return cache_; }
  ExprTable& exprs() const { return cache_->exprs(); }
  int64_t seq() const { return inputs_[0].seq; }

  // Interventions bound to the model and these inputs: names resolved, heads, positions and shapes
  // checked, each replace's source found (the plain step of its input computing the activation).
  std::vector<BoundIntervention> bind(const std::vector<Intervention>& interventions);
  // A tracer for one experiment's interventions, with the reference set where there are several
  // inputs. `index` and `names` outlive it.
  Tracer tracer(const InterventionIndex& index, const PathAlphabet* names = nullptr) const;

 private:
  const std::map<std::pair<NodeId, StepKind>, ExprId>& plain_steps(int input);

  const Model& model_;
  const std::vector<Batch>& inputs_;
  std::shared_ptr<Cache> cache_;
  Cache::Lease lease_;  // the cache is this session's until it ends
  std::vector<uint64_t> keys_;
  std::vector<std::optional<std::map<std::pair<NodeId, StepKind>, ExprId>>> plain_;  // per input, once traced
  std::optional<Reference> reference_;
};

// A run's statistics from its evaluator's and its cache's.
RunStats run_stats(const EvalStats& eval, const Cache& cache);

// run() with the tracing step supplied: `trace` builds the root expression with the run's tracer
// and reports the node visits it made.
using TraceFn = std::function<ExprId(Tracer& tracer, uint64_t& visits)>;
Result run_traced(const Model& model, const std::vector<Batch>& inputs, const RunOptions& options, const TraceFn& trace,
                  const PathAlphabet* names = nullptr);

}  // namespace pathpatch::detail
