#pragma once
// Gradients on the engine's forward, and what they buy:
//  - gradients(): d metric / d any named activation on a batch, TransformerLens's backward hooks
//    as one call, by reverse mode over the forward's steps (models/backward.cpp);
//  - attribution_patching(): AtP (Nanda 2023; Syed et al. 2023), activation_patching's sweep
//    estimated to first order, with the same axes and type, for two forwards and one backward.
//
//   pp::Gradients g = pp::gradients(model, clean, pp::Metric::logit_diff(answer, wrong), {"z", "resid_pre0"});
//   const pp::Tensor& dz3 = g.gradient("z3");   // d mean logit difference / d blocks.3.attn.hook_z [B,T,H,E]
//
//   auto exact = pp::activation_patching(model, clean, corrupt, sites, metric);
//   auto quick = pp::attribution_patching(model, clean, corrupt, sites, metric);   // same keys, axes
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"

namespace pathpatch {

struct GradientOptions {
  // The clean and corrupted inputs the metric is measured against: KL's clean distribution, the
  // normalised logit difference's two ends, cross-entropy's targets (from the clean one). Empty:
  // the input is both, and KL and the normalised difference refuse (nothing to compare with).
  std::vector<Batch> references;
  bool values = false;  // also return the activations' values at the input
  // The residual stream entering layer 0 [B, T, D], instead of the input's embeddings (integrated
  // gradients walk it between two inputs). Undefined: the input's.
  Tensor resid0;
};

struct Gradients {
  std::vector<float> rows;              // the metric on each batch row
  float value = 0;                      // their mean: the quantity differentiated
  std::map<std::string, Tensor> grads;  // d value / d activation, by full TransformerLens name
  std::map<std::string, Tensor> values; // the activations themselves (GradientOptions::values)
  // What the forward kept for the backward, at most (bytes): the activations the backward reads,
  // of the layers from the lowest one asked for up (models/backward.cpp lists them per layer).
  int64_t saved_bytes = 0;

  // By full or short name ("z3", "resid_pre0"); NameError if it was not asked for.
  const Tensor& gradient(std::string_view name) const;
  const Tensor& value_of(std::string_view name) const;
};

// d (mean of `metric` over the batch) / d each activation in `names`: full TransformerLens names,
// short forms ("z3"), or a site's name for every layer ("z", "resid_pre", "pattern", ...; "embed",
// "pos_embed", "ln_final" for the model-wide ones). Each gradient has its activation's shape.
// InputError for a custom metric (no derivative), NameError for an unknown name.
Gradients gradients(const Model& model, const Batch& input, const Metric& metric, const std::vector<std::string>& names,
                    const GradientOptions& options = {});

// AtP: each cell of activation_patching(model, clean, corrupted, sites, metric, options) estimated
// as the unpatched run's value plus grad . (patched value - unpatched value) at the cell's site,
// heads and positions, with the gradient taken on the run that is patched (the corrupted one when
// denoising, the clean one when noising). Same keys, axes, labels, references and per-example
// rows as the exact sweep; `stats` are empty. options.direction is honoured; cache, shard and log
// are not used (nothing here is worth caching or sharing out).
std::map<std::string, SweepResult> attribution_patching(const Model& model, const Batch& clean, const Batch& corrupted,
                                                        const Sites& sites, const Metric& metric,
                                                        const PatchingOptions& options = {});

// How closely an estimate (AtP) follows the exact sweep over the same cells: the Pearson
// correlation of their values (NaN when either is constant) and the largest |estimate - exact|,
// over the cells where both are numbers. InputError for sweeps of different shapes.
struct Agreement {
  double correlation = 0;
  double worst = 0;
  int64_t cells = 0;
};
Agreement agreement(const SweepResult& estimate, const SweepResult& exact);

}  // namespace pathpatch
