#include "pathpatch/patching.hpp"

#include <cmath>
#include <limits>

#include "pathpatch/graph/error.hpp"

namespace pathpatch {

namespace {

const char* const kLayerSites[] = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"};
const char* const kHeadSites[] = {"z", "q", "k", "v", "pattern", "result"};

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
  if (name == "mlp_out" && !m.graph().has_mlp) throw NameError("site 'mlp_out': this model has no MLPs");
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

// The plain runs both experiments compare against, through the shared cache.
Tensor plain_hidden(const Model& m, const Batch& b, const std::shared_ptr<Cache>& cache) {
  RunOptions o;
  o.cache = cache;
  o.logits = false;
  return forward(m, b, o).hidden;
}

}  // namespace

std::map<std::string, SweepResult> activation_patching(const Model& model, const Batch& clean, const Batch& corrupted,
                                                       const Sites& sites, const Metric& metric,
                                                       const PatchingOptions& options) {
  check_inputs(model, {clean, corrupted});
  for (const std::string& n : sites.names) check_site(model, n);
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  Scorer scorer(model, metric, clean, plain_hidden(model, clean, cache), plain_hidden(model, corrupted, cache));
  const bool denoise = options.direction == Direction::Denoise;
  const std::vector<Batch> inputs = denoise ? std::vector<Batch>{corrupted, clean} : std::vector<Batch>{clean, corrupted};
  const int64_t T = clean.seq;

  // Position groups: each is patched in one run.
  std::vector<std::vector<int>> groups;
  bool pos_axis = false;
  auto check_pos = [&](int p) {
    if (p < -T || p >= T) throw InputError("site position " + std::to_string(p) + " is outside the " + std::to_string(T) + " positions");
    return p < 0 ? static_cast<int>(p + T) : p;
  };
  switch (sites.positions) {
    case SitePositions::All: groups.push_back({}); break;
    case SitePositions::Last: groups.push_back({static_cast<int>(T - 1)}); break;
    case SitePositions::Each:
      for (int p = 0; p < T; ++p) groups.push_back({p});
      pos_axis = true;
      break;
    case SitePositions::LastK:
      if (sites.k < 1 || sites.k > T) throw InputError("lastk: k = " + std::to_string(sites.k) + " is not in 1.." + std::to_string(T));
      for (int p = static_cast<int>(T) - sites.k; p < T; ++p) groups.push_back({p});
      pos_axis = true;
      break;
    case SitePositions::Custom:
      for (int p : sites.custom) groups.push_back({check_pos(p)});
      pos_axis = true;
      break;
    case SitePositions::CustomConstant: {
      std::vector<int> g;
      for (int p : sites.custom) g.push_back(check_pos(p));
      groups.push_back(g);
      break;
    }
  }
  if (groups.empty()) throw InputError("sites: no positions to patch");
  const std::vector<int> layers = all_layers(model, sites.layers);

  std::map<std::string, SweepResult> out;
  for (const std::string& name : sites.names) {
    const bool per_head = is_head_site(name);
    const bool kv = model.config().family == Family::Llama && (name == "k" || name == "v");
    const int heads = per_head ? (kv ? model.config().n_kv_heads : model.config().n_heads) : 1;
    SweepResult res;
    res.title = name;
    res.metric = metric.name();
    res.clean = scorer.clean_value();
    res.corrupted = scorer.corrupted_value();
    Shape shape{static_cast<int64_t>(layers.size())};
    res.axes.push_back("layer");
    std::vector<std::string> layer_labels;
    for (int L : layers) layer_labels.push_back(std::to_string(L));
    res.labels.push_back(layer_labels);
    if (pos_axis) {
      shape.push_back(static_cast<int64_t>(groups.size()));
      res.axes.push_back("position");
      std::vector<std::string> pl;
      for (const auto& g : groups) pl.push_back(std::to_string(g[0]));
      res.labels.push_back(pl);
    }
    if (per_head) {
      shape.push_back(heads);
      res.axes.push_back("head");
      res.labels.push_back(numbers(heads));
    }
    res.values = Tensor(shape);
    float* v = res.values.data_mut();
    for (int L : layers)
      for (const auto& group : groups)
        for (int h = 0; h < heads; ++h) {
          RunOptions o;
          o.cache = cache;
          o.logits = false;
          Select sel;
          sel.positions = group;
          if (per_head) sel.heads = {h};
          o.interventions.push_back(replace(expand_activation_name(name + std::to_string(L)), 1, sel));
          Result r = run(model, inputs, [](const Path&) { return 0; }, [](const Path&) { return Split::None; }, o);
          *v++ = scorer.mean(r.hidden);
        }
    out[name] = std::move(res);
  }
  return out;
}

// ---- Path patching -------------------------------------------------------------------------

namespace {

std::string sender_pattern(const Model& m, const Sender& s) {
  const ModelConfig& c = m.config();
  if (s.layer < 0 || s.layer >= c.n_layers)
    throw InputError("sender layer " + std::to_string(s.layer) + " does not exist (the model has " + std::to_string(c.n_layers) + ")");
  std::string L = std::to_string(s.layer);
  if (s.head < 0) {
    if (!m.graph().has_mlp) throw InputError("sender: this model has no MLPs");
    return "f" + L + " f" + L + ".head";
  }
  if (s.head >= c.n_heads)
    throw InputError("sender head " + std::to_string(s.head) + " does not exist (the model has " + std::to_string(c.n_heads) + ")");
  return "a" + L + " a" + L + ".head a" + L + ".head" + std::to_string(s.head);
}

std::string sender_name(const Sender& s) {
  return s.head < 0 ? "f" + std::to_string(s.layer) + ".head" : "a" + std::to_string(s.layer) + ".head" + std::to_string(s.head);
}

std::string receiver_pattern(const Model& m, const Receiver& r) {
  if (r.kind == Receiver::Logits) return "ln_final";
  const ModelConfig& c = m.config();
  if (r.layer < 0 || r.layer >= c.n_layers || r.head < 0 || r.head >= c.n_heads)
    throw InputError("receiver a" + std::to_string(r.layer) + ".head" + std::to_string(r.head) + " does not exist");
  std::string head = "a" + std::to_string(r.layer) + ".head" + std::to_string(r.head);
  std::string prefix = "a" + std::to_string(r.layer) + " a" + std::to_string(r.layer) + ".head " + head + " ";
  switch (r.kind) {
    case Receiver::Q: return prefix + head + ".q";
    case Receiver::K: return prefix + head + ".k";
    case Receiver::V: return prefix + head + ".v";
    default: return prefix + "(" + head + ".q | " + head + ".k | " + head + ".v)";
  }
}

}  // namespace

PathRules path_patching_rules(const Model& model, const std::vector<Sender>& senders,
                              const std::vector<Receiver>& receivers, bool mlps_on_path) {
  if (senders.empty()) throw InputError("path patching: no senders");
  if (receivers.empty()) throw InputError("path patching: no receivers");
  PathRules rules;
  for (const Receiver& r : receivers)
    for (const Sender& s : senders) {
      if (r.kind != Receiver::Logits && s.layer >= r.layer)
        throw RuleError("sender " + sender_name(s) + " does not come before receiver a" + std::to_string(r.layer) +
                        ".head" + std::to_string(r.head) + ": there is no path from it to the receiver's input");
      std::string middle = mlps_on_path ? " (f* f*.head)* " : " ";
      rules.add(receiver_pattern(model, r) + middle + sender_pattern(model, s), 1);
    }
  return rules;
}

Result path_patch(const Model& model, const Batch& clean, const Batch& corrupted, const std::vector<Sender>& senders,
                  const std::vector<Receiver>& receivers, const PathPatchingOptions& options) {
  RunOptions o;
  o.cache = options.cache;
  return run(model, {clean, corrupted}, path_patching_rules(model, senders, receivers, options.mlps_on_path), o);
}

namespace {

SweepResult grid(const Model& m, const std::string& title, const Scorer& scorer, int columns, bool mlp_column) {
  SweepResult res;
  res.title = title;
  res.metric = scorer.metric().name();
  res.clean = scorer.clean_value();
  res.corrupted = scorer.corrupted_value();
  res.axes = {"layer", "head"};
  res.labels.push_back(numbers(m.config().n_layers));
  std::vector<std::string> heads = numbers(m.config().n_heads);
  if (mlp_column) heads.push_back("mlp");
  res.labels.push_back(heads);
  res.values = Tensor::full({m.config().n_layers, columns}, std::numeric_limits<float>::quiet_NaN());
  return res;
}

float score(const Model& m, const Batch& clean, const Batch& corrupted, const PathRules& rules, const Scorer& scorer,
            const std::shared_ptr<Cache>& cache) {
  RunOptions o;
  o.cache = cache;
  o.logits = false;
  return scorer.mean(run(m, {clean, corrupted}, rules, o).hidden);
}

}  // namespace

SweepResult sweep_senders(const Model& model, const Batch& clean, const Batch& corrupted,
                          const std::vector<Receiver>& receivers, const Metric& metric,
                          const PathPatchingOptions& options, bool include_mlps) {
  check_inputs(model, {clean, corrupted});
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  Scorer scorer(model, metric, clean, plain_hidden(model, clean, cache), plain_hidden(model, corrupted, cache));
  const int H = model.config().n_heads;
  const bool mlps = include_mlps && model.graph().has_mlp;
  SweepResult res = grid(model, "senders", scorer, H + (mlps ? 1 : 0), mlps);
  float* v = res.values.data_mut();
  for (int L = 0; L < model.config().n_layers; ++L)
    for (int h = 0; h < H + (mlps ? 1 : 0); ++h) {
      Sender s{L, h < H ? h : -1};
      bool causal = true;
      for (const Receiver& r : receivers) causal = causal && (r.kind == Receiver::Logits || L < r.layer);
      if (!causal) continue;  // no path: left as NaN
      v[L * (H + (mlps ? 1 : 0)) + h] =
          score(model, clean, corrupted, path_patching_rules(model, {s}, receivers, options.mlps_on_path), scorer, cache);
    }
  return res;
}

SweepResult sweep_receivers(const Model& model, const Batch& clean, const Batch& corrupted,
                            const std::vector<Sender>& senders, Receiver::Kind kind, const Metric& metric,
                            const PathPatchingOptions& options) {
  check_inputs(model, {clean, corrupted});
  if (kind == Receiver::Logits) throw InputError("sweep_receivers: sweep heads' q, k, v or input, not the logits");
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  Scorer scorer(model, metric, clean, plain_hidden(model, clean, cache), plain_hidden(model, corrupted, cache));
  const int H = model.config().n_heads;
  int first = 0;
  for (const Sender& s : senders) first = std::max(first, s.layer + 1);
  SweepResult res = grid(model, "receivers", scorer, H, false);
  float* v = res.values.data_mut();
  for (int L = first; L < model.config().n_layers; ++L)
    for (int h = 0; h < H; ++h)
      v[L * H + h] = score(model, clean, corrupted,
                           path_patching_rules(model, senders, {Receiver{kind, L, h}}, options.mlps_on_path), scorer, cache);
  return res;
}

}  // namespace pathpatch
