#include "pathpatch/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "graph/error.hpp"
#include "graph/kernels.hpp"

namespace pathpatch {

namespace {
Metric make(MetricKind kind, std::vector<int32_t> answer, std::vector<int32_t> wrong, std::vector<int> positions) {
  Metric m;
  m.kind = kind;
  m.answer = std::move(answer);
  m.wrong = std::move(wrong);
  m.positions = std::move(positions);
  return m;
}
}  // namespace

Metric Metric::logit_diff(std::vector<int32_t> answer, std::vector<int32_t> wrong, std::vector<int> positions) {
  return make(MetricKind::LogitDiff, std::move(answer), std::move(wrong), std::move(positions));
}
Metric Metric::normalized_logit_diff(std::vector<int32_t> answer, std::vector<int32_t> wrong,
                                     std::vector<int> positions) {
  return make(MetricKind::NormalizedLogitDiff, std::move(answer), std::move(wrong), std::move(positions));
}
Metric Metric::prob(std::vector<int32_t> answer, std::vector<int> positions) {
  return make(MetricKind::Prob, std::move(answer), {}, std::move(positions));
}
Metric Metric::log_prob(std::vector<int32_t> answer, std::vector<int> positions) {
  return make(MetricKind::LogProb, std::move(answer), {}, std::move(positions));
}
Metric Metric::kl(std::vector<int> positions) { return make(MetricKind::KL, {}, {}, std::move(positions)); }
Metric Metric::cross_entropy(std::vector<int> positions) {
  return make(MetricKind::CrossEntropy, {}, {}, std::move(positions));
}

Metric Metric::custom(std::string name, MetricFn fn, std::vector<int> positions) {
  Metric m = make(MetricKind::Custom, {}, {}, std::move(positions));
  m.fn = std::move(fn);
  m.custom_name = std::move(name);
  return m;
}

std::string Metric::name() const {
  switch (kind) {
    case MetricKind::LogitDiff: return "logit difference";
    case MetricKind::NormalizedLogitDiff: return "normalised logit difference";
    case MetricKind::Prob: return "probability of the answer";
    case MetricKind::LogProb: return "log-probability of the answer";
    case MetricKind::KL: return "KL divergence from clean";
    case MetricKind::CrossEntropy: return "cross-entropy";
    case MetricKind::Custom: return custom_name.empty() ? "custom metric" : custom_name;
  }
  return "?";
}

double log_sum_exp(const float* logits, int64_t V) {
  const double mx = *std::max_element(logits, logits + V);
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(logits[v] - mx);
  return mx + std::log(z);
}

int64_t resolve_position(int64_t position, int64_t seq, const std::string& what) {
  const int64_t p = position < 0 ? position + seq : position;
  if (p < 0 || p >= seq)
    throw InputError(what + " " + std::to_string(position) + " is outside the input's " + std::to_string(seq) +
                     " positions");
  return p;
}

namespace {

std::vector<int> resolve(const std::vector<int>& positions, int64_t T) {
  std::vector<int> out;
  for (int p : positions) out.push_back(static_cast<int>(resolve_position(p, T, "metric position")));
  return out;
}

// log-softmax of one row, in double for the normaliser.
void log_softmax(const float* logits, int64_t V, float* out) {
  float mx = *std::max_element(logits, logits + V);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits[v] - mx));
  float lse = mx + static_cast<float>(std::log(sum));
  for (int64_t v = 0; v < V; ++v) out[v] = logits[v] - lse;
}

}  // namespace

Tensor logits_at(const Model& model, const Tensor& hidden, const std::vector<int>& positions) {
  const int64_t B = hidden.size(0), T = hidden.size(1), D = hidden.size(2);
  std::vector<int> pos = resolve(positions, T);
  const int64_t P = static_cast<int64_t>(pos.size());
  Tensor rows = Tensor::uninitialized({B, P, D});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i)
      std::copy_n(hidden.data() + (b * T + pos[i]) * D, D, rows.data_mut() + (b * P + i) * D);
  return model.unembed(rows);
}

Scorer::Scorer(const Model& model, const Metric& metric, const Batch& clean, const Tensor& clean_hidden,
               const Tensor& corrupted_hidden)
    : model_(model), metric_(metric) {
  const int64_t B = clean.size, T = clean.seq, V = model.config().vocab_size;
  std::vector<int> requested = metric.positions;
  if (metric.kind == MetricKind::CrossEntropy && requested.empty())
    for (int t = 0; t + 1 < T; ++t) requested.push_back(t);
  positions_ = resolve(requested, T);
  if (positions_.empty()) throw InputError("metric: no positions to score");
  auto check_tokens = [&](const std::vector<int32_t>& ids, const char* what) {
    if (static_cast<int64_t>(ids.size()) != B)
      throw InputError(std::string("metric: ") + what + " has " + std::to_string(ids.size()) +
                       " tokens for a batch of " + std::to_string(B));
    for (int32_t id : ids)
      if (id < 0 || id >= V) throw InputError(std::string("metric: ") + what + " token " + std::to_string(id) + " is outside the vocabulary");
  };
  switch (metric.kind) {
    case MetricKind::LogitDiff:
    case MetricKind::NormalizedLogitDiff:
      check_tokens(metric.answer, "answer");
      check_tokens(metric.wrong, "wrong");
      break;
    case MetricKind::Prob:
    case MetricKind::LogProb:
      check_tokens(metric.answer, "answer");
      break;
    case MetricKind::CrossEntropy:
      for (int p : positions_)
        if (p + 1 >= T) throw InputError("metric: cross-entropy at the last position has no next token to score");
      for (int64_t b = 0; b < B; ++b)
        for (int p : positions_) targets_.push_back(clean.id(b, p + 1));
      break;
    case MetricKind::Custom:
      if (!metric.fn) throw InputError("metric: a custom metric needs a function");
      break;
    case MetricKind::KL: {
      Tensor l = logits_at(model, clean_hidden, positions_);
      clean_logprobs_ = Tensor::uninitialized(l.shape());
      for (int64_t r = 0; r < l.numel() / V; ++r) log_softmax(l.data() + r * V, V, clean_logprobs_.data_mut() + r * V);
      break;
    }
  }
  clean_rows_ = raw(clean_hidden, 0);
  corrupted_rows_ = raw(corrupted_hidden, 0);
  clean_ = metric_mean(clean_rows_);
  corrupted_ = metric_mean(corrupted_rows_);
  if (metric.kind == MetricKind::LogitDiff || metric.kind == MetricKind::NormalizedLogitDiff)
    wrong_on_clean_ = std::count_if(clean_rows_.begin(), clean_rows_.end(), [](float x) { return x < 0; });
  if (metric.kind == MetricKind::NormalizedLogitDiff) {
    if (std::fabs(clean_ - corrupted_) < 1e-6f)
      throw InputError("normalised logit difference: the clean and corrupted runs score the same (" +
                       std::to_string(clean_) + "), so there is nothing to normalise by");
    normalise(clean_rows_);
    normalise(corrupted_rows_);
  }
}

void Scorer::normalise(std::vector<float>& rows) const {
  for (float& x : rows) x = (x - corrupted_) / (clean_ - corrupted_);
}

int64_t Scorer::first_position() const { return *std::min_element(positions_.begin(), positions_.end()); }
int64_t Scorer::last_position() const { return *std::max_element(positions_.begin(), positions_.end()); }

std::vector<float> Scorer::raw(const Tensor& hidden, int64_t first) const {
  const int64_t B = hidden.size(0), T = hidden.size(1), D = hidden.size(2), V = model_.config().vocab_size;
  const int64_t P = static_cast<int64_t>(positions_.size());
  PP_CHECK(first <= first_position() && last_position() < first + T, "hidden states without the scored positions");
  std::vector<int> local;
  for (int p : positions_) local.push_back(static_cast<int>(p - first));
  std::vector<float> out(B, 0.0f);
  if (metric_.kind == MetricKind::LogitDiff || metric_.kind == MetricKind::NormalizedLogitDiff) {
    // Two columns of the unembedding per row: no full logits.
    for (int64_t b = 0; b < B; ++b)
      for (int p : local) {
        const double d = model_.logit_difference(hidden.data() + (b * T + p) * D, metric_.answer[b], metric_.wrong[b]);
        out[b] += static_cast<float>(d) / P;
      }
    return out;
  }
  Tensor logits = logits_at(model_, hidden, local);
  if (metric_.kind == MetricKind::Custom) {
    std::vector<float> v = metric_.fn(logits);
    if (static_cast<int64_t>(v.size()) != B)
      throw InputError("metric '" + metric_.name() + "' returned " + std::to_string(v.size()) +
                       " values for a batch of " + std::to_string(B) + " rows (one per row is needed)");
    for (int64_t b = 0; b < B; ++b)
      if (!std::isfinite(v[b]))
        throw InputError("metric '" + metric_.name() + "' returned " + std::to_string(v[b]) + " for row " +
                         std::to_string(b) + " (a sweep needs finite values)");
    return v;
  }
  std::vector<float> lp(V);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) {
      log_softmax(logits.data() + (b * P + i) * V, V, lp.data());
      float v = 0;
      switch (metric_.kind) {
        case MetricKind::Prob: v = std::exp(lp[metric_.answer[b]]); break;
        case MetricKind::LogProb: v = lp[metric_.answer[b]]; break;
        case MetricKind::CrossEntropy: v = -lp[targets_[b * P + i]]; break;
        case MetricKind::KL: {
          const float* c = clean_logprobs_.data() + (b * P + i) * V;
          double kl = 0;
          for (int64_t t = 0; t < V; ++t) kl += std::exp(static_cast<double>(c[t])) * (c[t] - lp[t]);
          v = static_cast<float>(kl);
          break;
        }
        default: break;
      }
      out[b] += v / P;
    }
  return out;
}

std::vector<float> Scorer::per_example(const Tensor& hidden, int64_t first) const {
  std::vector<float> v = raw(hidden, first);
  if (metric_.kind == MetricKind::NormalizedLogitDiff) normalise(v);
  return v;
}

float metric_mean(const std::vector<float>& rows) {
  return std::accumulate(rows.begin(), rows.end(), 0.0f) / static_cast<float>(rows.size());
}

float Scorer::mean(const Tensor& hidden, int64_t first) const { return metric_mean(per_example(hidden, first)); }

void check_differentiable(const Metric& metric) {
  if (metric.kind == MetricKind::Custom)
    throw InputError("metric '" + metric.name() + "' is a function pathpatch cannot differentiate: gradients and "
                     "attribution need a built-in metric (logit difference, probability, log-probability, KL, "
                     "cross-entropy)");
}

Tensor Scorer::gradient(const Tensor& hidden) const {
  check_differentiable(metric_);
  const int64_t B = hidden.size(0), T = hidden.size(1), D = hidden.size(2), V = model_.config().vocab_size;
  const int64_t P = static_cast<int64_t>(positions_.size());
  // d mean / d row value: the batch mean, the mean over positions, and the normalisation.
  double s = 1.0 / static_cast<double>(B * P);
  if (metric_.kind == MetricKind::NormalizedLogitDiff) s /= (clean_ - corrupted_);
  Tensor d = Tensor::full({B, T, D}, 0.0f);
  const Tensor& W = model_.unembedding();  // [V, D]
  const float cap = model_.config().logit_softcap;
  if (metric_.kind == MetricKind::LogitDiff || metric_.kind == MetricKind::NormalizedLogitDiff) {
    for (int64_t b = 0; b < B; ++b)
      for (int p : positions_) {
        const float* h = hidden.data() + (b * T + p) * D;
        const float* wa = W.data() + int64_t(metric_.answer[b]) * D;
        const float* ww = W.data() + int64_t(metric_.wrong[b]) * D;
        double ga = s, gw = -s;  // d value / d logit, before the soft-cap
        if (cap > 0) {
          double la = model_.unembed_bias(metric_.answer[b]), lw = model_.unembed_bias(metric_.wrong[b]);
          for (int64_t i = 0; i < D; ++i) {
            la += static_cast<double>(h[i]) * wa[i];
            lw += static_cast<double>(h[i]) * ww[i];
          }
          ga *= 1 - std::pow(std::tanh(la / cap), 2);
          gw *= 1 - std::pow(std::tanh(lw / cap), 2);
        }
        float* o = d.data_mut() + (b * T + p) * D;
        for (int64_t i = 0; i < D; ++i) o[i] += static_cast<float>(ga * wa[i] + gw * ww[i]);
      }
    return d;
  }
  // The others through the full logits: d value / d logits, then back through the unembedding.
  Tensor logits = logits_at(model_, hidden, positions_);  // [B, P, V]
  Tensor dlogits = Tensor::uninitialized(logits.shape());
  std::vector<float> lp(V);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) {
      const int64_t r = b * P + i;
      log_softmax(logits.data() + r * V, V, lp.data());
      float* g = dlogits.data_mut() + r * V;
      for (int64_t v = 0; v < V; ++v) g[v] = std::exp(lp[v]);  // p
      switch (metric_.kind) {
        case MetricKind::Prob: {  // d p_a = p_a (1[a] - p)
          const float pa = g[metric_.answer[b]];
          for (int64_t v = 0; v < V; ++v) g[v] *= -pa;
          g[metric_.answer[b]] += pa;
          break;
        }
        case MetricKind::LogProb:  // 1[a] - p
          for (int64_t v = 0; v < V; ++v) g[v] = -g[v];
          g[metric_.answer[b]] += 1;
          break;
        case MetricKind::CrossEntropy: g[targets_[r]] -= 1; break;  // p - 1[target]
        case MetricKind::KL: {  // p - clean p
          const float* c = clean_logprobs_.data() + r * V;
          for (int64_t v = 0; v < V; ++v) g[v] -= std::exp(c[v]);
          break;
        }
        default: break;
      }
      for (int64_t v = 0; v < V; ++v) g[v] = static_cast<float>(g[v] * s);
    }
  Tensor dh = model_.unembed_backward(logits, dlogits);  // [B, P, D]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i)
      kernels::add_inplace(d.data_mut() + (b * T + positions_[i]) * D, dh.data() + (b * P + i) * D, D);
  return d;
}

}  // namespace pathpatch
