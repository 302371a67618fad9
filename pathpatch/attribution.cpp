#include "pathpatch/attribution.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "graph/error.hpp"
#include "graph/kernels.hpp"
#include "pathpatch/detail/backprop.hpp"
#include "pathpatch/detail/sites.hpp"

namespace pathpatch {

using detail::backward_pass;
using detail::forward_pass;
using detail::Pass;

namespace {

// The layer whose backward the gradient of `a` needs last (0 for the embeddings, n_layers for
// ln_final: no layer's).
int layer_needed(const Model& m, ActId a) {
  const Activation& info = m.graph().activation(a);
  if (info.stage == StepKind::Embed && info.layer < 0) return 0;
  if (info.stage == StepKind::Final) return m.config().n_layers;
  return info.layer;
}

std::vector<ActId> resolve(const Model& m, const std::vector<std::string>& names) {
  const Graph& g = m.graph();
  std::vector<ActId> out;
  for (const std::string& name : names) {
    const std::string full = name == "embed" ? "hook_embed"
                             : name == "pos_embed" ? "hook_pos_embed"
                             : name == "ln_final" ? "ln_final.hook_normalized"
                                                  : name;
    try {
      out.push_back(g.find_activation(full));
    } catch (const NameError&) {
      if (g.lookup_activation(expand_activation_name(full + "0")) < 0) throw;
      for (int L = 0; L < m.config().n_layers; ++L) out.push_back(g.find_activation(full + std::to_string(L)));
    }
  }
  return out;
}

// The final hidden states of another input (a plain forward that keeps nothing).
Tensor hidden_of(const Model& m, const Batch& b) {
  Tape nothing(m.graph().activations().size());
  return forward_pass(m, b, Tensor(), nothing, m.config().n_layers).hidden;
}

const Tensor& by_name(const std::map<std::string, Tensor>& from, std::string_view name, const char* what) {
  auto it = from.find(std::string(name));
  if (it == from.end()) it = from.find(expand_activation_name(name));
  if (it == from.end()) {
    std::vector<std::string> have;
    for (const auto& kv : from) have.push_back(kv.first);
    throw NameError(std::string("no ") + what + " of '" + std::string(name) + "' was asked for" +
                    did_you_mean(name, have));
  }
  return it->second;
}

}  // namespace

const Tensor& Gradients::gradient(std::string_view name) const { return by_name(grads, name, "gradient"); }
const Tensor& Gradients::value_of(std::string_view name) const { return by_name(values, name, "value"); }

Gradients gradients(const Model& model, const Batch& input, const Metric& metric, const std::vector<std::string>& names,
                    const GradientOptions& options) {
  check_inputs(model, {input});
  check_differentiable(metric);
  const std::vector<ActId> ids = resolve(model, names);
  if (options.references.empty() && (metric.kind == MetricKind::KL || metric.kind == MetricKind::NormalizedLogitDiff))
    throw InputError("gradients of the " + metric.name() + " need the clean and corrupted inputs it compares "
                     "(GradientOptions::references)");
  if (!options.references.empty()) {
    if (options.references.size() != 2)
      throw InputError("gradients: references are {clean, corrupted}, two inputs, not " +
                       std::to_string(options.references.size()));
    check_inputs(model, {input, options.references[0], options.references[1]});
  }
  const int64_t B = input.size, T = input.seq, D = model.config().d_model;
  if (options.resid0.defined() && options.resid0.shape() != Shape{B, T, D})
    throw InputError("gradients: resid0 has shape " + to_string(options.resid0.shape()) + ", the input needs " +
                     to_string(Shape{B, T, D}));

  const size_t n_acts = model.graph().activations().size();
  int lowest = model.config().n_layers;
  for (ActId a : ids) lowest = std::min(lowest, layer_needed(model, a));
  Tape tape(n_acts);
  for (int L = lowest; L < model.config().n_layers; ++L) model.keep_for_backward(L, tape);
  if (options.values)
    for (ActId a : ids) tape.keep(a);
  const Pass pass = forward_pass(model, input, options.resid0, tape, lowest);

  // The metric's references: the input itself unless given (and then its own forward when equal).
  auto hidden_for = [&](const Batch& b) { return b == input && !options.resid0.defined() ? pass.hidden : hidden_of(model, b); };
  const Batch& clean = options.references.empty() ? input : options.references[0];
  const Tensor clean_hidden = options.references.empty() ? pass.hidden : hidden_for(clean);
  const Tensor corrupted_hidden = options.references.empty() ? pass.hidden : hidden_for(options.references[1]);
  const Scorer scorer(model, metric, clean, clean_hidden, corrupted_hidden);

  GradientSink sink(n_acts);
  for (ActId a : ids) sink.want(a);
  Gradients out;
  out.saved_bytes = tape.bytes() + pass.bytes();
  out.rows = scorer.per_example(pass.hidden);
  out.value = metric_mean(out.rows);
  backward_pass(model, input, pass, tape, scorer.gradient(pass.hidden), sink, lowest);
  for (ActId a : ids) {
    const std::string& name = model.graph().activation(a).name;
    out.grads[name] = sink[a];
    if (options.values) out.values[name] = tape[a];
  }
  return out;
}

std::map<std::string, SweepResult> attribution_patching(const Model& model, const Batch& clean, const Batch& corrupted,
                                                        const Sites& sites, const Metric& metric,
                                                        const PatchingOptions& options) {
  check_inputs(model, {clean, corrupted});
  check_differentiable(metric);
  for (const std::string& n : sites.names) detail::check_site(model, n);
  const detail::SiteLayout layout = detail::site_layout(model, sites, clean.seq);
  const Graph& graph = model.graph();
  const size_t n_acts = graph.activations().size();
  const bool denoise = options.direction == Direction::Denoise;
  const Batch& base = denoise ? corrupted : clean;  // the run that is patched
  const Batch& source = denoise ? clean : corrupted;

  // Every site's activation at every layer, on both runs; the backward from the lowest layer.
  std::vector<ActId> site_acts;
  for (const std::string& name : sites.names)
    for (int L : layout.layers) site_acts.push_back(graph.find_activation(name + std::to_string(L)));
  const int lowest = *std::min_element(layout.layers.begin(), layout.layers.end());
  Tape base_tape(n_acts), source_tape(n_acts);
  for (int L = lowest; L < model.config().n_layers; ++L) model.keep_for_backward(L, base_tape);
  for (ActId a : site_acts) {
    base_tape.keep(a);
    source_tape.keep(a);
  }
  const Pass base_pass = forward_pass(model, base, Tensor(), base_tape, lowest);
  const Pass source_pass = forward_pass(model, source, Tensor(), source_tape, model.config().n_layers);
  const Scorer scorer(model, metric, clean, (denoise ? source_pass : base_pass).hidden,
                      (denoise ? base_pass : source_pass).hidden);
  GradientSink sink(n_acts);
  for (ActId a : site_acts) sink.want(a);
  backward_pass(model, base, base_pass, base_tape, scorer.gradient(base_pass.hidden), sink, lowest);

  const int64_t B = clean.size, T = clean.seq;
  const std::vector<float>& base_rows = denoise ? scorer.corrupted_rows() : scorer.clean_rows();
  std::map<std::string, SweepResult> out;
  size_t next_act = 0;
  for (const std::string& name : sites.names) {
    const int heads = detail::site_heads(model, name, layout);
    SweepResult res = detail::site_result(name, layout, heads, scorer);
    res.title = name + " (AtP)";
    Shape rows_shape = res.values.shape();
    rows_shape.push_back(B);
    res.per_example = Tensor::uninitialized(rows_shape);
    for (size_t li = 0; li < layout.layers.size(); ++li) {
      const ActId a = site_acts[next_act++];
      const Activation& info = graph.activation(a);
      const Tensor& grad = sink[a];
      const Tensor& from = base_tape[a];
      const Tensor& to = source_tape[a];
      // grad . (to - from) per (row, position, head), over the last axis.
      const Shape& s = grad.shape();
      const int pos_axis = info.pos_axis(), head_axis = info.head_axis();
      const int64_t last = s.back(), outer = grad.numel() / last;
      std::vector<double> contrib(B * T * heads, 0.0);
      std::vector<int64_t> index(s.size(), 0);
      for (int64_t r = 0; r < outer; ++r) {
        int64_t rest = r;  // the row's coordinates on the axes before the last
        for (int ax = static_cast<int>(s.size()) - 2; ax >= 0; --ax) {
          index[ax] = rest % s[ax];
          rest /= s[ax];
        }
        const float* g = grad.data() + r * last;
        const float* f = from.data() + r * last;
        const float* t = to.data() + r * last;
        double dot = 0;
        for (int64_t i = 0; i < last; ++i) dot += static_cast<double>(g[i]) * (t[i] - f[i]);
        const int64_t pos = pos_axis >= 0 ? index[pos_axis] : 0, head = head_axis >= 0 ? index[head_axis] : 0;
        contrib[(index[0] * T + pos) * heads + head] += dot;
      }
      for (size_t gi = 0; gi < layout.groups.size(); ++gi) {
        std::vector<int> positions = layout.groups[gi];
        if (positions.empty()) {
          positions.resize(T);
          std::iota(positions.begin(), positions.end(), 0);
        }
        for (int h = 0; h < heads; ++h) {
          const int64_t cell = detail::site_cell(layout, heads, li, gi, h);
          std::vector<float> rows(B);
          for (int64_t b = 0; b < B; ++b) {
            double change = 0;  // d row_b = B * d mean: the gradient is of the batch mean
            for (int p : positions) change += contrib[(b * T + p) * heads + h];
            rows[b] = static_cast<float>(base_rows[b] + static_cast<double>(B) * change);
          }
          std::copy(rows.begin(), rows.end(), res.per_example.data_mut() + cell * B);
          res.values.data_mut()[cell] = metric_mean(rows);
          res.filled.push_back(cell);
        }
      }
    }
    std::sort(res.filled.begin(), res.filled.end());
    detail::reference_warnings(clean, corrupted, scorer, res.warnings);
    out[name] = std::move(res);
  }
  return out;
}

Agreement agreement(const SweepResult& estimate, const SweepResult& exact) {
  if (estimate.values.shape() != exact.values.shape())
    throw InputError("agreement: the estimate has shape " + to_string(estimate.values.shape()) + " and the exact sweep " +
                     to_string(exact.values.shape()));
  double sa = 0, sx = 0, saa = 0, sxx = 0, sax = 0;
  Agreement out;
  for (int64_t i = 0; i < exact.values.numel(); ++i) {
    const double a = estimate.values.data()[i], e = exact.values.data()[i];
    if (std::isnan(a) || std::isnan(e)) continue;
    sa += a, sx += e, saa += a * a, sxx += e * e, sax += a * e;
    out.worst = std::max(out.worst, std::fabs(a - e));
    ++out.cells;
  }
  const double n = static_cast<double>(out.cells);
  const double cov = sax - sa * sx / n, va = saa - sa * sa / n, vx = sxx - sx * sx / n;
  out.correlation = out.cells > 0 && va > 0 && vx > 0 ? cov / std::sqrt(va * vx) : std::nan("");
  return out;
}

}  // namespace pathpatch
