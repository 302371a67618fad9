#include "pathpatch/lens.hpp"

#include <cmath>

#include "graph/error.hpp"
#include "graph/kernels.hpp"
#include "pathpatch/detail/sites.hpp"

namespace pathpatch {

namespace {

// A step run outside the engine: nothing wanted, nothing recorded.
class NoContext final : public ComputeContext {
 public:
  bool wants(ActId) const override { return false; }
  void emit(ActId, Tensor&) override {}
};

// The value of the probe this file placed under `label` ("lens:..." / "dla:...": labels of its own,
// so that a caller's probes of the same activations, in the options, are no second match).
const Tensor& labelled(const Result& r, const std::string& label) {
  for (const ProbeRecord& p : r.probes)
    if (p.label == label) return p.value;
  throw InternalError("no probe labelled " + label);
}

const std::string& name_of(const Model& m, ActId a) { return m.graph().activation(a).name; }

// Gemma-2 normalises the sum of its heads (and the output bias) before the residual: each head's
// part of layer L's attention output at `p` is its result through the post-norm with the norm's
// scale frozen at the whole sum's, as the final norm's is frozen for the shares; the parts then add
// up to the attention's output. [B, H, D] from results [B, T, H, D].
std::vector<float> post_normed_heads(const Model& model, int L, const Tensor& result, int64_t p) {
  const ModelConfig& c = model.config();
  const NormWeights& norm = model.layer(L).attn_post_norm;
  const Tensor& bias = model.layer(L).o.b;
  const int64_t B = result.size(0), T = result.size(1), H = result.size(2), D = result.size(3);
  const bool centred = norm.b.defined();
  std::vector<float> parts(static_cast<size_t>(B * H * D)), sum(static_cast<size_t>(D)), xhat(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b) {
    const float* heads = result.data() + (b * T + p) * H * D;
    for (int64_t i = 0; i < D; ++i) sum[i] = bias.defined() ? bias.data()[i] : 0.0f;
    for (int64_t h = 0; h < H; ++h) kernels::add_inplace(sum.data(), heads + h * D, D);
    float inv = 0;
    kernels::norm_statistics(sum.data(), 1, D, centred, c.norm_eps, xhat.data(), &inv);
    for (int64_t h = 0; h < H; ++h) {
      const float* r = heads + h * D;
      double mean = 0;
      if (centred)
        for (int64_t i = 0; i < D; ++i) mean += r[i];
      mean /= static_cast<double>(D);
      for (int64_t i = 0; i < D; ++i)
        parts[(b * H + h) * D + i] = static_cast<float>((r[i] - mean) * inv * norm.w.data()[i]);
    }
  }
  return parts;
}

}  // namespace

Tensor final_norm(const Model& model, const Tensor& resid) {
  const int64_t D = model.config().d_model;
  if (!resid.defined() || resid.dim() == 0 || resid.size(-1) != D)
    throw InputError("final_norm: expected residual-stream values [..., " + std::to_string(D) + "]");
  NoContext ctx;
  return model.final_norm(resid, ctx);
}

// ---- The logit lens --------------------------------------------------------------------------

LogitLens logit_lens(const Model& model, const Batch& batch, const RunOptions& options) {
  check_inputs(model, {batch});
  const int n = model.config().n_layers;
  RunOptions o = options;
  o.logits = false;
  LogitLens lens;
  lens.batch = batch;
  for (int L = 0; L < n; ++L) {
    lens.labels.push_back("resid_pre" + std::to_string(L));
    o.interventions.push_back(probe(name_of(model, model.acts().layers[L].resid_pre), "lens:" + lens.labels.back()));
  }
  lens.labels.push_back("resid_post" + std::to_string(n - 1));
  o.interventions.push_back(probe(name_of(model, model.acts().layers[n - 1].resid_post), "lens:" + lens.labels.back()));
  const Result r = forward(model, batch, o);
  const int64_t each = batch.size * batch.seq * model.config().d_model;
  lens.hidden = Tensor::uninitialized({n + 1, batch.size, batch.seq, model.config().d_model});
  for (size_t i = 0; i < lens.labels.size(); ++i) {
    const Tensor h = final_norm(model, labelled(r, "lens:" + lens.labels[i]));
    std::copy(h.data(), h.data() + each, lens.hidden.data_mut() + i * each);
  }
  return lens;
}

Tensor LogitLens::reading(int64_t r) const {
  if (r < 0 || r >= readings())
    throw InputError("logit lens: reading " + std::to_string(r) + " of " + std::to_string(readings()));
  return hidden.slice0(r, r + 1).reshape({batch.size, batch.seq, hidden.size(3)});
}

Tensor LogitLens::logits(const Model& model, int64_t position) const {
  const int64_t p = resolve_position(position, batch.seq, "logit lens: position");
  const int64_t R = readings(), B = batch.size, T = batch.seq, D = hidden.size(3);
  Tensor rows = Tensor::uninitialized({R, B, D});
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < B; ++b) {
      const float* src = hidden.data() + ((r * B + b) * T + p) * D;
      std::copy(src, src + D, rows.data_mut() + (r * B + b) * D);
    }
  return model.unembed(rows);
}

Tensor LogitLens::score(const Model& model, const Metric& metric) const {
  if (metric.kind == MetricKind::NormalizedLogitDiff)
    throw InputError("logit lens: the normalised logit difference needs a corrupted run, and the lens reads one; "
                     "score it by the logit difference");
  const int64_t R = readings(), B = batch.size;
  const Tensor own = reading(R - 1);
  const Scorer scorer(model, metric, batch, own, own);
  Tensor out = Tensor::uninitialized({R, B});
  for (int64_t r = 0; r < R; ++r) {
    const std::vector<float> rows = scorer.per_example(reading(r));
    std::copy(rows.begin(), rows.end(), out.data_mut() + r * B);
  }
  return out;
}

Tensor LogitLens::next_token_probs(const Model& model) const {
  const int64_t R = readings(), B = batch.size, T = batch.seq, V = model.config().vocab_size;
  if (T < 2) throw InputError("logit lens: next-token probabilities need at least two positions");
  Tensor out = Tensor::full({R, T - 1}, std::nanf(""));
  for (int64_t r = 0; r < R; ++r) {
    const Tensor logits = model.unembed(reading(r));  // [B, T, V]
    for (int64_t t = 0; t + 1 < T; ++t) {
      double sum = 0;
      int64_t rows = 0;
      for (int64_t b = 0; b < B; ++b) {
        if (!batch.real(b, t)) continue;  // padding is on the left: t + 1 is real too
        const float* l = logits.data() + (b * T + t) * V;
        sum += std::exp(l[batch.id(b, t + 1)] - log_sum_exp(l, V));
        ++rows;
      }
      if (rows > 0) out.data_mut()[r * (T - 1) + t] = static_cast<float>(sum / rows);
    }
  }
  return out;
}

// ---- Direct logit attribution ----------------------------------------------------------------

std::string ResidualPart::name() const {
  std::string a = "a";  // built by appends: GCC 12 warns falsely (-Wrestrict) on a + ".h" + ...
  a.append(std::to_string(layer));
  switch (kind) {
    case Embed:
      return "embed";
    case PosEmbed:
      return "pos_embed";
    case Head:
      return a.append(".h").append(std::to_string(head));
    case AttnBias:
      return a.append(".bias");
    case Mlp:
      return "m" + std::to_string(layer);
    case NormBias:
      return "ln_final.bias";
    case UnembedBias:
      return "b_U";
  }
  return "?";
}

LogitAttribution direct_logit_attribution(const Model& model, const Batch& batch, const std::vector<int32_t>& answer,
                                          const std::vector<int32_t>& wrong, int64_t position,
                                          const RunOptions& options) {
  check_inputs(model, {batch});
  const ModelConfig& c = model.config();
  const int64_t B = batch.size, T = batch.seq, D = c.d_model, H = c.n_heads, V = c.vocab_size;
  const int n = c.n_layers;
  if (static_cast<int64_t>(answer.size()) != B || (!wrong.empty() && static_cast<int64_t>(wrong.size()) != B))
    throw InputError("direct logit attribution: " + std::to_string(answer.size()) + " answers and " +
                     std::to_string(wrong.size()) + " wrong tokens for " + std::to_string(B) +
                     " rows; give one per row (no wrong tokens: the answer's logit alone)");
  for (size_t i = 0; i < answer.size() + wrong.size(); ++i) {
    const int32_t t = i < answer.size() ? answer[i] : wrong[i - answer.size()];
    if (t < 0 || t >= V)
      throw InputError("direct logit attribution: token " + std::to_string(t) + " is outside the vocabulary (" +
                       std::to_string(V) + ")");
  }
  const int64_t p = resolve_position(position, batch.seq, "direct logit attribution: position");
  const bool has_mlp = model.graph().has_mlp(), has_pos = model.acts().pos_embed >= 0;

  RunOptions o = options;
  o.logits = false;
  const ModelActs& acts = model.acts();
  auto want = [&](ActId a) { o.interventions.push_back(probe(name_of(model, a), "dla:" + name_of(model, a))); };
  want(acts.layers[0].resid_pre);
  if (has_pos) want(acts.pos_embed);
  for (int L = 0; L < n; ++L) {
    want(acts.layers[L].attn_out);
    want(acts.layers[L].result);
    if (has_mlp) want(acts.layers[L].mlp_out);
  }
  want(acts.layers[n - 1].resid_post);
  const Result r = forward(model, batch, o);

  // Per row: the direction d = w * (W_U[answer] - W_U[wrong]) / scale, the final norm's scale
  // frozen at the whole residual's; a part x then contributes sum((x - mean(x)) * d) (RMSNorm:
  // no mean). Double sums: the shares are differences of nearly equal numbers.
  const NormWeights& norm = model.final_norm_weights();
  const bool centred = norm.b.defined();
  auto value = [&](ActId a) -> const Tensor& { return labelled(r, "dla:" + name_of(model, a)); };
  const Tensor& final_resid = value(acts.layers[n - 1].resid_post);
  const Tensor& W = model.unembedding();
  std::vector<double> dir(static_cast<size_t>(B * D)), dir_sum(static_cast<size_t>(B), 0.0);
  std::vector<double> bias_share(static_cast<size_t>(B), 0.0), bias_of_logits(static_cast<size_t>(B), 0.0);
  LogitAttribution out;
  out.position = p;
  out.total.assign(static_cast<size_t>(B), 0.0f);
  std::vector<float> xhat(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b) {
    float inv = 0;
    kernels::norm_statistics(final_resid.data() + (b * T + p) * D, 1, D, centred, c.norm_eps, xhat.data(), &inv);
    const float* wa = W.data() + int64_t{answer[b]} * D;
    const float* ww = wrong.empty() ? nullptr : W.data() + int64_t{wrong[b]} * D;
    const float* h = r.hidden.data() + (b * T + p) * D;
    double total = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double u = static_cast<double>(wa[i]) - (ww ? ww[i] : 0.0f);
      dir[b * D + i] = u * norm.w.data()[i] * inv;
      dir_sum[b] += dir[b * D + i];
      if (centred) bias_share[b] += u * norm.b.data()[i];
      total += u * h[i];
    }
    bias_of_logits[b] = static_cast<double>(model.unembed_bias(answer[b])) - (ww ? model.unembed_bias(wrong[b]) : 0.0f);
    out.total[b] = static_cast<float>(total + bias_of_logits[b]);
  }
  // The share of each row's part at `p`, its rows `stride` floats apart ([B, T, D] parts: T * D).
  auto share = [&](const float* first, int64_t stride) {
    std::vector<double> s(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      const float* x = first + b * stride;
      double dot = 0, mean = 0;
      for (int64_t i = 0; i < D; ++i) dot += x[i] * dir[b * D + i], mean += x[i];
      s[b] = dot - (centred ? mean / D * dir_sum[b] : 0.0);
    }
    return s;
  };
  auto of = [&](ActId a) { return share(value(a).data() + p * D, T * D); };
  std::vector<std::vector<double>> shares;
  auto add = [&](ResidualPart part, std::vector<double> s) {
    out.components.push_back(part);
    shares.push_back(std::move(s));
  };
  std::vector<double> embed = of(acts.layers[0].resid_pre);
  if (has_pos) {
    std::vector<double> pos = of(acts.pos_embed);
    for (int64_t b = 0; b < B; ++b) embed[b] -= pos[b];
    add({ResidualPart::Embed}, embed);
    add({ResidualPart::PosEmbed}, pos);
  } else {
    add({ResidualPart::Embed}, embed);
  }
  for (int L = 0; L < n; ++L) {
    std::vector<double> attn = of(acts.layers[L].attn_out);
    const Tensor& result = value(acts.layers[L].result);  // [B, T, H, D]
    const std::vector<float> parts = c.post_norms ? post_normed_heads(model, L, result, p) : std::vector<float>{};
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> s = c.post_norms ? share(parts.data() + h * D, H * D)
                                           : share(result.data() + (p * H + h) * D, T * H * D);
      for (int64_t b = 0; b < B; ++b) attn[b] -= s[b];
      add({ResidualPart::Head, L, static_cast<int>(h)}, std::move(s));
    }
    add({ResidualPart::AttnBias, L}, attn);
    if (has_mlp) add({ResidualPart::Mlp, L}, of(acts.layers[L].mlp_out));
  }
  if (centred) add({ResidualPart::NormBias}, bias_share);
  if (model.unembed_bias_defined()) add({ResidualPart::UnembedBias}, bias_of_logits);

  const int64_t C = static_cast<int64_t>(shares.size());
  out.per_example = Tensor::uninitialized({C, B});
  out.values = Tensor::uninitialized({C});
  for (int64_t k = 0; k < C; ++k) {
    std::vector<float> rows(shares[k].begin(), shares[k].end());
    std::copy(rows.begin(), rows.end(), out.per_example.data_mut() + k * B);
    out.values.data_mut()[k] = metric_mean(rows);  // as every sweep's values are its rows' mean
  }
  return out;
}

SweepResult LogitAttribution::heads(const Model& model) const {
  const ModelConfig& c = model.config();
  const int n = c.n_layers, H = c.n_heads;
  const bool mlp = model.graph().has_mlp();
  const int cols = H + (mlp ? 1 : 0);
  const int64_t B = per_example.size(1);
  SweepResult s;
  s.title = "direct logit attribution";
  s.metric = "share of the logit difference";
  s.axes = {"layer", "head"};
  s.labels = {detail::numbers(n), detail::numbers(H)};
  if (mlp) s.labels[1].push_back("mlp");
  s.values = Tensor::full({n, cols}, 0.0f);
  s.per_example = Tensor::full({n, cols, B}, 0.0f);
  for (size_t k = 0; k < components.size(); ++k) {
    const ResidualPart& part = components[k];
    if (part.kind != ResidualPart::Head && part.kind != ResidualPart::Mlp) continue;
    const int L = part.layer, h = part.kind == ResidualPart::Head ? part.head : H;
    s.values.data_mut()[L * cols + h] = values.data()[k];
    for (int64_t b = 0; b < B; ++b) s.per_example.data_mut()[(L * cols + h) * B + b] = per_example.data()[k * B + b];
  }
  s.clean = metric_mean(total);
  s.clean_rows = total;
  s.corrupted = std::nanf("");  // no second run: the shares are of the one run's own difference
  s.corrupted_rows.assign(total.size(), std::nanf(""));
  for (int64_t i = 0; i < s.values.numel(); ++i) s.filled.push_back(i);
  return s;
}

}  // namespace pathpatch
