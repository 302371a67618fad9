#include "pathpatch/generate.hpp"

#include <algorithm>

#include "graph/error.hpp"
#include "pathpatch/metrics.hpp"

namespace pathpatch {

Generation generate(const Model& model, const Batch& batch, int n_tokens, const RunOptions& options) {
  check_inputs(model, {batch});
  const int64_t ctx = model.config().n_ctx, V = model.config().vocab_size;
  if (n_tokens < 0) throw InputError("generate: " + std::to_string(n_tokens) + " tokens asked for");
  if (batch.seq + n_tokens > ctx)
    throw InputError("generate: " + std::to_string(batch.seq) + " positions and " + std::to_string(n_tokens) +
                     " new tokens exceed the model's context of " + std::to_string(ctx));
  Generation g;
  g.batch = batch;
  g.tokens.resize(static_cast<size_t>(batch.size));
  RunOptions o = options;
  o.logits = false;  // only the last position's are needed: logits_at
  for (int i = 0; i < n_tokens; ++i) {
    const Result r = forward(model, g.batch, o);
    const Tensor logits = logits_at(model, r.hidden, {-1});  // [B, 1, V]
    // Left padding keeps every row's last token at the end: each row grows by one position.
    const int64_t B = g.batch.size, T = g.batch.seq;
    Batch next;
    next.size = B;
    next.seq = T + 1;
    for (int64_t b = 0; b < B; ++b) {
      const float* row = logits.data() + b * V;
      const int32_t token = static_cast<int32_t>(std::max_element(row, row + V) - row);
      g.tokens[b].push_back(token);
      next.ids.insert(next.ids.end(), g.batch.ids.begin() + b * T, g.batch.ids.begin() + (b + 1) * T);
      next.ids.push_back(token);
      next.mask.insert(next.mask.end(), g.batch.mask.begin() + b * T, g.batch.mask.begin() + (b + 1) * T);
      next.mask.push_back(1);
    }
    g.batch = std::move(next);
  }
  return g;
}

}  // namespace pathpatch
