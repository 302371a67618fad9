#pragma once
// Metrics of a patched run, from its final hidden states: logits are computed only at the scored
// positions (and, for logit differences, only for the two answer tokens).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "graph/batch.hpp"
#include "graph/tensor.hpp"
#include "models/model.hpp"

namespace pathpatch {

enum class MetricKind {
  LogitDiff,            // logit(answer) - logit(wrong)
  NormalizedLogitDiff,  // (patched - corrupted) / (clean - corrupted), by the batch means of the two
  Prob,                 // p(answer)
  LogProb,              // log p(answer)
  KL,                   // KL(clean || patched) of the next-token distribution
  CrossEntropy,         // -log p(next token of the clean input)
  Custom,               // the user's function of the logits at the scored positions
};

// A user metric: the logits [B, P, V] at the scored positions in, one value per batch row out.
// Called from the thread that runs the sweep; what it throws propagates out of the sweep.
using MetricFn = std::function<std::vector<float>(const Tensor& logits)>;

struct Metric {
  MetricKind kind = MetricKind::LogitDiff;
  std::vector<int32_t> answer;     // per batch row
  std::vector<int32_t> wrong;      // per batch row (logit differences)
  std::vector<int> positions{-1};  // scored positions, negative from the end; averaged over them
  MetricFn fn;                     // Custom
  std::string custom_name;         // Custom: its name in titles and legends

  static Metric logit_diff(std::vector<int32_t> answer, std::vector<int32_t> wrong, std::vector<int> positions = {-1});
  static Metric normalized_logit_diff(std::vector<int32_t> answer, std::vector<int32_t> wrong,
                                      std::vector<int> positions = {-1});
  static Metric prob(std::vector<int32_t> answer, std::vector<int> positions = {-1});
  static Metric log_prob(std::vector<int32_t> answer, std::vector<int> positions = {-1});
  static Metric kl(std::vector<int> positions = {-1});
  static Metric cross_entropy(std::vector<int> positions = {});  // empty: every position but the last
  // `fn` sees all scored positions at once (P of them), so it averages over them as it likes.
  static Metric custom(std::string name, MetricFn fn, std::vector<int> positions = {-1});

  std::string name() const;  // "logit difference", ... for titles and legends
};

// InputError for a metric without a derivative (a custom one): before gradient work starts.
void check_differentiable(const Metric& metric);

// A batch's value of a metric: the mean of its rows' values (in float, in row order: a sweep read
// back from its unit log recomputes the very same bits).
float metric_mean(const std::vector<float>& rows);

// log(sum exp(logits[v])) over one row of V logits, in double: the row's log-normaliser.
double log_sum_exp(const float* logits, int64_t V);

// `position` (negative: from the end) as an index into `seq` positions. InputError "<what> P is
// outside the input's T positions" where it is not one.
int64_t resolve_position(int64_t position, int64_t seq, const std::string& what);

// The logits [B, P, V] at `positions` (negative from the end) of final hidden states [B, T, D].
Tensor logits_at(const Model& model, const Tensor& hidden, const std::vector<int>& positions);

// Scores patched runs of one experiment. Holds the clean and corrupted references the metric
// needs (their logits at the scored positions, their logit differences).
class Scorer {
 public:
  // `clean_hidden` and `corrupted_hidden` are the plain runs' ln_final outputs.
  Scorer(const Model& model, const Metric& metric, const Batch& clean, const Tensor& clean_hidden,
         const Tensor& corrupted_hidden);

  // One value per batch row. `hidden` holds positions [first, first + hidden.size(1)), which must
  // include the scored ones (first_position() .. last_position()).
  std::vector<float> per_example(const Tensor& hidden, int64_t first = 0) const;
  float mean(const Tensor& hidden, int64_t first = 0) const;
  // The gradient of mean(hidden) with respect to hidden [B, T, D] (every position; zero where the
  // metric scores none). InputError for a custom metric: its function has no derivative here.
  Tensor gradient(const Tensor& hidden) const;
  int64_t first_position() const;
  int64_t last_position() const;
  float clean_value() const { return clean_; }          // batch means
  float corrupted_value() const { return corrupted_; }
  const std::vector<float>& clean_rows() const { return clean_rows_; }  // per batch row
  const std::vector<float>& corrupted_rows() const { return corrupted_rows_; }
  // Logit differences: the rows where the clean run prefers the wrong token (0 for other metrics).
  int64_t wrong_on_clean() const { return wrong_on_clean_; }
  const Metric& metric() const { return metric_; }

 private:
  std::vector<float> raw(const Tensor& hidden, int64_t first) const;  // before normalisation
  void normalise(std::vector<float>& rows) const;  // NormalizedLogitDiff: raw -> (x - corrupted) / (clean - corrupted)

  const Model& model_;
  Metric metric_;
  std::vector<int> positions_;    // resolved, non-negative
  std::vector<int32_t> targets_;  // cross-entropy: [B, P]
  Tensor clean_logprobs_;         // KL: [B, P, V]
  float clean_ = 0, corrupted_ = 0;
  std::vector<float> clean_rows_, corrupted_rows_;
  int64_t wrong_on_clean_ = 0;
};

}  // namespace pathpatch
