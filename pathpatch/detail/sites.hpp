#pragma once
// Activation patching's sites (pathpatch/patching.hpp, Sites), laid out once for the exact sweep
// (activation_patching) and its first-order estimate (attribution_patching): which layers, which
// groups of positions, and the axes of the result. Not part of the public headers.
#include <string>
#include <vector>

#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"

namespace pathpatch::detail {

bool is_head_site(const std::string& name);
// NameError unless `name` is a site this model has.
void check_site(const Model& model, const std::string& name);
// `layers`, checked; empty: every layer.
std::vector<int> all_layers(const Model& model, const std::vector<int>& layers);
std::vector<std::string> numbers(int64_t n);  // "0", "1", ... tick labels

struct SiteLayout {
  std::vector<int> layers;
  std::vector<std::vector<int>> groups;  // positions patched together (non-negative; empty: all)
  bool pos_axis = false;                 // one cell per group (else a single group)
};
SiteLayout site_layout(const Model& model, const Sites& sites, int64_t seq);

// The heads a site's cells count (1 for layer sites; key/value heads for k and v of GQA models).
int site_heads(const Model& model, const std::string& name, const SiteLayout& layout);
// The flat index of cell (layer index, group index, head) in a site's values.
inline int64_t site_cell(const SiteLayout& l, int heads, size_t layer_index, size_t group, int head) {
  const int64_t G = l.pos_axis ? static_cast<int64_t>(l.groups.size()) : 1;
  return (static_cast<int64_t>(layer_index) * G + (l.pos_axis ? static_cast<int64_t>(group) : 0)) * heads + head;
}
// A sweep's result before any value: its title and the metric's name and references (the clean
// and corrupted runs' values, batch means and rows).
SweepResult scored_result(const std::string& title, const Scorer& scorer);
// A site's result before any value: title, metric, references, axes (layer, [position], [head]),
// labels, values all NaN.
SweepResult site_result(const std::string& name, const SiteLayout& layout, int heads, const Scorer& scorer);

// The final hidden states of an input's plain run, through a shared cache: the references sweeps
// and circuits compare against.
Tensor plain_hidden(const Model& model, const Batch& batch, const std::shared_ptr<Cache>& cache);
// The metric against the plain clean and corrupted runs (their hidden states through the cache).
Scorer plain_scorer(const Model& model, const Metric& metric, const Batch& clean, const Batch& corrupted,
                    const std::shared_ptr<Cache>& cache);

// What makes a sweep's numbers say less than they seem to, whatever computed them: identical
// clean and corrupted inputs, rows where the clean run prefers the wrong answer.
void reference_warnings(const Batch& clean, const Batch& corrupted, const Scorer& scorer,
                        std::vector<std::string>& warnings);

}  // namespace pathpatch::detail
