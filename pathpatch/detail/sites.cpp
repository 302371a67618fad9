#include "pathpatch/detail/sites.hpp"

#include <algorithm>
#include <limits>

#include "graph/error.hpp"

namespace pathpatch::detail {

namespace {
const char* const kLayerSites[] = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"};
const char* const kHeadSites[] = {"z", "q", "k", "v", "pattern", "result"};
}  // namespace

bool is_head_site(const std::string& name) {
  for (const char* s : kHeadSites)
    if (name == s) return true;
  return false;
}

void check_site(const Model& m, const std::string& name) {
  std::vector<std::string> valid;
  for (const char* s : kLayerSites) valid.push_back(s);
  for (const char* s : kHeadSites) valid.push_back(s);
  if (std::find(valid.begin(), valid.end(), name) == valid.end())
    throw NameError("no site named '" + name + "'" + did_you_mean(name, valid));
  if (name == "mlp_out" && !m.graph().has_mlp()) throw NameError("site 'mlp_out': this model has no MLPs");
}

std::vector<std::string> numbers(int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

std::vector<int> all_layers(const Model& m, const std::vector<int>& layers) {
  if (layers.empty()) {
    std::vector<int> out;
    for (int L = 0; L < m.config().n_layers; ++L) out.push_back(L);
    return out;
  }
  for (int L : layers)
    if (L < 0 || L >= m.config().n_layers)
      throw InputError("layer " + std::to_string(L) + " does not exist (the model has " +
                       std::to_string(m.config().n_layers) + ")");
  return layers;
}

SiteLayout site_layout(const Model& model, const Sites& sites, int64_t T) {
  SiteLayout l;
  auto check_pos = [&](int p) {
    if (p < -T || p >= T) throw InputError("site position " + std::to_string(p) + " is outside the " + std::to_string(T) + " positions");
    return p < 0 ? static_cast<int>(p + T) : p;
  };
  switch (sites.positions) {
    case SitePositions::All: l.groups.push_back({}); break;
    case SitePositions::Last: l.groups.push_back({static_cast<int>(T - 1)}); break;
    case SitePositions::Each:
      for (int p = 0; p < T; ++p) l.groups.push_back({p});
      l.pos_axis = true;
      break;
    case SitePositions::LastK:
      if (sites.k < 1 || sites.k > T) throw InputError("lastk: k = " + std::to_string(sites.k) + " is not in 1.." + std::to_string(T));
      for (int p = static_cast<int>(T) - sites.k; p < T; ++p) l.groups.push_back({p});
      l.pos_axis = true;
      break;
    case SitePositions::Custom:
      for (int p : sites.custom) l.groups.push_back({check_pos(p)});
      l.pos_axis = true;
      break;
    case SitePositions::CustomConstant: {
      std::vector<int> g;
      for (int p : sites.custom) g.push_back(check_pos(p));
      l.groups.push_back(g);
      break;
    }
  }
  if (l.groups.empty()) throw InputError("sites: no positions to patch");
  l.layers = all_layers(model, sites.layers);
  return l;
}

int site_heads(const Model& model, const std::string& name, const SiteLayout& layout) {
  if (!is_head_site(name)) return 1;
  const Graph& graph = model.graph();
  const bool kv = graph.activation(graph.find_activation(name + std::to_string(layout.layers[0]))).kv_heads;
  return kv ? graph.n_kv_heads() : graph.n_heads();
}

SweepResult scored_result(const std::string& title, const Scorer& scorer) {
  SweepResult res;
  res.title = title;
  res.metric = scorer.metric().name();
  res.clean = scorer.clean_value();
  res.corrupted = scorer.corrupted_value();
  res.clean_rows = scorer.clean_rows();
  res.corrupted_rows = scorer.corrupted_rows();
  return res;
}

SweepResult site_result(const std::string& name, const SiteLayout& layout, int heads, const Scorer& scorer) {
  SweepResult res = scored_result(name, scorer);
  Shape shape{static_cast<int64_t>(layout.layers.size())};
  res.axes.push_back("layer");
  std::vector<std::string> layer_labels;
  for (int L : layout.layers) layer_labels.push_back(std::to_string(L));
  res.labels.push_back(layer_labels);
  if (layout.pos_axis) {
    shape.push_back(static_cast<int64_t>(layout.groups.size()));
    res.axes.push_back("position");
    std::vector<std::string> pl;
    for (const auto& g : layout.groups) pl.push_back(std::to_string(g[0]));
    res.labels.push_back(pl);
  }
  if (is_head_site(name)) {
    shape.push_back(heads);
    res.axes.push_back("head");
    res.labels.push_back(numbers(heads));
  }
  res.values = Tensor::full(shape, std::numeric_limits<float>::quiet_NaN());
  return res;
}

Tensor plain_hidden(const Model& m, const Batch& b, const std::shared_ptr<Cache>& cache) {
  RunOptions o;
  o.cache = cache;
  o.logits = false;
  return forward(m, b, o).hidden;
}

Scorer plain_scorer(const Model& m, const Metric& metric, const Batch& clean, const Batch& corrupted,
                    const std::shared_ptr<Cache>& cache) {
  return Scorer(m, metric, clean, plain_hidden(m, clean, cache), plain_hidden(m, corrupted, cache));
}

void reference_warnings(const Batch& clean, const Batch& corrupted, const Scorer& scorer,
                        std::vector<std::string>& warnings) {
  if (clean == corrupted)
    warnings.push_back("the clean and corrupted inputs are identical: no patch can change anything");
  if (const int64_t wrong = scorer.wrong_on_clean())
    warnings.push_back("on " + std::to_string(wrong) + " of " + std::to_string(clean.size) +
                       " rows the clean run prefers the wrong token (negative logit difference): there the "
                       "patches move away from a wrong answer");
}

}  // namespace pathpatch::detail
