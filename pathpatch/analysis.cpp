#include "pathpatch/analysis.hpp"

#include <cmath>
#include <random>

#include "graph/error.hpp"
#include "models/tokenizer.hpp"
#include "pathpatch/metrics.hpp"
#include "pathpatch/run.hpp"

namespace pathpatch {

RepeatedTokens repeated_tokens(int64_t rows, int64_t half, int32_t lo, int32_t hi, uint64_t seed, int32_t bos) {
  if (rows < 1 || half < 1 || lo >= hi) throw InputError("repeated_tokens: need rows >= 1, half >= 1 and lo < hi");
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(lo, hi - 1);
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int32_t> s;
    if (bos >= 0) s.push_back(bos);
    std::vector<int32_t> half_seq;
    for (int64_t i = 0; i < half; ++i) half_seq.push_back(token(rng));
    s.insert(s.end(), half_seq.begin(), half_seq.end());
    s.insert(s.end(), half_seq.begin(), half_seq.end());
    seqs.push_back(std::move(s));
  }
  return RepeatedTokens{Batch::from_rows(seqs), half};
}

Batch unrepeated_tokens(const RepeatedTokens& r, int32_t lo, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(lo, hi - 1);
  Batch b = r.batch;
  const int64_t first = r.first_repeat() - r.half;
  for (int64_t i = 0; i < b.size; ++i)
    for (int64_t t = first; t < r.first_repeat(); ++t) b.ids[i * b.seq + t] = token(rng);
  return b;
}

namespace {

// The mean over rows and chosen (query, key) pairs of every layer's pattern, per [layer, head].
Tensor pattern_scores(const Model& m, const Batch& batch, int64_t from, int64_t offset) {
  const ModelConfig& c = m.config();
  RunOptions o;
  o.logits = false;
  for (int L = 0; L < c.n_layers; ++L) o.interventions.push_back(probe("pattern" + std::to_string(L)));
  Result r = forward(m, batch, o);
  Tensor out({c.n_layers, c.n_heads});
  const int64_t B = batch.size, T = batch.seq, H = c.n_heads;
  for (int L = 0; L < c.n_layers; ++L) {
    const Tensor& p = r.probe("pattern" + std::to_string(L));  // [B, H, T, T]
    for (int64_t h = 0; h < H; ++h) {
      double sum = 0;
      int64_t n = 0;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t q = std::max<int64_t>(from, offset); q < T; ++q) {
          if (!batch.real(b, q) || !batch.real(b, q - offset)) continue;
          sum += p.data()[((b * H + h) * T + q) * T + q - offset];
          ++n;
        }
      out.data_mut()[L * H + h] = n ? static_cast<float>(sum / n) : 0.0f;
    }
  }
  return out;
}

}  // namespace

Tensor previous_token_scores(const Model& model, const Batch& batch) { return pattern_scores(model, batch, 1, 1); }

Tensor induction_scores(const Model& model, const RepeatedTokens& r) {
  return pattern_scores(model, r.batch, r.first_repeat(), r.half - 1);
}

HeadAttention head_attention(const Model& model, const Batch& batch, int layer, int head, int64_t row) {
  const ModelConfig& c = model.config();
  if (layer < 0 || layer >= c.n_layers)
    throw InputError("layer " + std::to_string(layer) + ": the model has layers 0.." + std::to_string(c.n_layers - 1));
  if (head < 0 || head >= c.n_heads)
    throw InputError("head " + std::to_string(head) + ": the model has heads 0.." + std::to_string(c.n_heads - 1));
  if (row < 0 || row >= batch.size)
    throw InputError("row " + std::to_string(row) + ": the input has rows 0.." + std::to_string(batch.size - 1));
  RunOptions o;
  o.logits = false;
  o.interventions = {probe(model.graph().activation(model.acts().layers[layer].pattern).name, "pattern")};
  const Tensor all = forward(model, batch, o).probe("pattern");  // [B, H, T, T]
  const int64_t T = batch.seq, first = T - batch.length(row), n = T - first;
  HeadAttention out;
  std::vector<float> values;
  for (int64_t q = first; q < T; ++q) {
    const int32_t id = batch.id(row, q);
    out.tokens.push_back(model.tokenizer() ? model.tokenizer()->piece(id) : std::to_string(id));
    for (int64_t k = first; k < T; ++k) values.push_back(all.at({row, head, q, k}));
  }
  out.pattern = Tensor::from_vector({n, n}, std::move(values));
  return out;
}

std::vector<float> next_token_loss(const Model& model, const Batch& batch, int64_t from, int64_t to) {
  const int64_t B = batch.size, T = batch.seq, V = model.config().vocab_size;
  if (to < 0) to = T - 1;
  if (from < 0 || from >= to || to > T - 1) throw InputError("next_token_loss: positions " + std::to_string(from) + ".." + std::to_string(to) + " do not fit " + std::to_string(T));
  Result r = forward(model, batch);
  std::vector<float> loss(B, 0.0f);
  for (int64_t b = 0; b < B; ++b) {
    double sum = 0;
    for (int64_t t = from; t < to; ++t) {
      const float* row = r.logits.data() + (b * T + t) * V;
      sum += log_sum_exp(row, V) - row[batch.id(b, t + 1)];
    }
    loss[b] = static_cast<float>(sum / (to - from));
  }
  return loss;
}

}  // namespace pathpatch
