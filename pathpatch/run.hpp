#pragma once
// run(): the path-patching engine's entry point.
//
//   auto branch = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
//   auto which  = [](const pp::Path& p) { return p.contains("a1") ? 1 : 0; };
//   pp::Result r = pp::run(model, {clean, corrupt}, which, branch);
//
// See graph/path.hpp for what paths, splits and `which` mean.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/batch.hpp"
#include "graph/cache.hpp"
#include "graph/intervention.hpp"
#include "graph/path.hpp"
#include "models/model.hpp"

namespace pathpatch {

struct RunOptions {
  std::vector<Intervention> interventions;  // applied on every path where their activation is computed
  uint64_t path_budget = 1'000'000;         // node visits the predicates may cause before a BudgetError
  bool logits = true;                       // also compute the full logits [B, T, V]
  std::shared_ptr<Cache> cache;             // share one across runs to reuse values; fresh if null
};

struct RunStats {
  uint64_t node_visits = 0;  // nodes visited along every path the predicates distinguished
  uint64_t steps = 0;        // distinct steps in the result's provenance DAG
  uint64_t computed = 0;     // steps computed in this run
  uint64_t cache_hits = 0;   // steps served by the memo cache
  uint64_t bytes_held = 0;   // memo cache size after the run
  uint64_t peak_bytes = 0;   // memo cache peak
  double flops = 0;          // spent in this run (logits excluded)
  double flops_saved = 0;    // what the cache hits would have cost to compute from nothing
  std::map<std::string, double> seconds;  // wall time of computed steps, by kind (AttnZ, Mlp, ...)
};

struct Result {
  Tensor logits;  // [B, T, V] (undefined if RunOptions::logits is false)
  Tensor hidden;  // ln_final's output [B, T, D]
  ExprId root = 0;                 // provenance of `hidden`: its steps are cache->exprs()
  std::shared_ptr<Cache> cache;    // holds the provenance DAG and memoised values
  RunStats stats;
  std::vector<ProbeRecord> probes; // one record per computed instance of each probed activation
  // What the run did that may not be what was meant: a path rule that changed nothing, ...
  std::vector<std::string> warnings;

  // The value recorded by the probe labelled `label` (or of that activation, by full or short
  // name); NameError if there is none, InputError if the activation was computed on several paths
  // (then read `probes` and pick by `expr`).
  const Tensor& probe(std::string_view label) const;
};

Result run(const Model& model, const std::vector<Batch>& inputs, const WhichFn& which, const BranchFn& branch,
           const RunOptions& options = {});

// No predicates: every path reads input 0, nothing splits; the interventions may read the other
// inputs (replace("z1", 1) patches in input 1's values). Activation patching by hand.
Result run(const Model& model, const std::vector<Batch>& inputs, const RunOptions& options);

// The plain forward on one batch, through the same engine (no split; probes and interventions as given).
Result forward(const Model& model, const Batch& batch, const RunOptions& options = {});

// The shape an activation has for a batch of `batch` rows of `seq` positions.
Shape activation_shape(const Model& model, ActId act, int64_t batch, int64_t seq);

// Checks run() inputs: at least one, each valid for the model, all of one layout.
void check_inputs(const Model& model, const std::vector<Batch>& inputs);

}  // namespace pathpatch
