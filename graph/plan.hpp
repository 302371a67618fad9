#pragma once
// The evaluator's working state (evaluator.hpp): what planning decides for each step, and the calls
// execution makes. Internal to graph/planner.cpp and graph/evaluator.cpp.
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/evaluator.hpp"

namespace pathpatch {

struct Evaluator::Task {
  Window need;             // positions the consumers ask for (the hull of their windows)
  Window compute;          // positions this step computes itself; the rest come from its reference
  int64_t kv_lo = 0;       // attention: positions whose keys and values come from the reference
  bool expanded = false;   // its reads were collected: it may be computed
  bool planned = false;
  bool cached = false;     // `value` came from the memo cache
  bool alone = false;      // computed on its own over all positions (probes, captures, interventions inside)
  bool need_kv = false;    // an attention whose keys and values serve as another's prefix
  bool in_run = false;     // reached from the roots through arguments and references, not only as a source
  bool first = false;      // in the run and not yet visited by this evaluator: record its probes
  bool root = false;
  int consumers = 0;       // steps that still have to read this one
  std::vector<ActId> captures;  // activations computed inside it that replace interventions read
  Tensor value;            // positions `need`
  Tensor k, v;             // keys and values kept for prefixes (all positions)
};

struct Evaluator::Plan {
  std::unordered_map<ExprId, Task> tasks;
  std::vector<ExprId> order;  // dependencies before dependants
  // Captured activations replace interventions read: (step, activation) -> all positions.
  std::map<std::pair<ExprId, ActId>, Tensor> captured;
  std::unordered_set<ExprId> recompute;           // steps computed even when cached (sources to capture)
  std::unordered_set<ExprId> unexpanded_sources;  // sources to capture that were collected as cached
};

// One computation: a step, or several of one kind, node and window whose batches are stacked.
struct Evaluator::Call {
  std::vector<ExprId> exprs;
  Window w;            // positions computed
  int64_t kv_lo = 0;   // attention: keys and values below come from the references
  bool alone = false;  // all positions, probes recorded, captures kept
};

// The evaluator's ComputeContext for one call.
class Evaluator::StepContext final : public ComputeContext {
 public:
  StepContext(Evaluator& ev, ExprId expr, bool record, const std::vector<ActId>& captures, int64_t pos_offset)
      : ev_(ev), expr_(expr), record_(record), captures_(captures), pos_offset_(pos_offset) {}
  bool wants(ActId act) const override;
  void emit(ActId act, Tensor& value) override;
  const Tensor& captured(ActId act) const;

 private:
  Evaluator& ev_;
  ExprId expr_;
  bool record_;                          // record probes
  const std::vector<ActId>& captures_;   // activations to keep for replace sources
  std::map<ActId, Tensor> captured_;
  int64_t pos_offset_;                   // the first position of the values emitted
};

}  // namespace pathpatch
