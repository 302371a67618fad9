#pragma once
// The pieces of one attention, llm.c style: a function each, on row-major buffers, with the shape of
// every buffer (dimension letters in graph/kernels.hpp). Model::attention_z composes them.
#include <cstdint>
#include <vector>

#include "graph/backend.hpp"
#include "graph/tensor.hpp"
#include "models/config.hpp"
#include "models/weights.hpp"

namespace pathpatch {

// RoPE's inverse frequencies for the rotated pairs (rotary_dims / 2 of them), with the config's
// frequency scaling applied (Hugging Face modeling_rope_utils), in double.
std::vector<double> rope_frequencies(const ModelConfig& cfg);

// x [B, W, N, E] at positions [first, first + W) of `layout`: the first `dims` of each head rotated
// in the rotate_half convention (dimension i pairs with i + dims / 2), the rest copied. `inverse`
// rotates back by the same angles: the rotation's transpose, so its backward.
Tensor rope(const Tensor& x, const std::vector<double>& inv_freq, int64_t dims, const Batch& layout, int64_t first,
            bool inverse = false);

// A projection per head: y [B, W, N, E] where head j of y is `heads(j)`'s block of `lin`'s output on
// input `source(j)` of `xs` (each [B, W, D]). Runs of consecutive heads reading one source with
// consecutive weight blocks share one GEMM.
template <class Source, class Weights>
Tensor project_heads(const Linear& lin, const std::vector<Tensor>& xs, int64_t n_out, int64_t E, Source&& source,
                     Weights&& heads, double* flops) {
  const Shape& s = xs.at(0).shape();
  const int64_t B = s[0], W = s[1], D = s[2], N = B * W;
  Tensor y = Tensor::uninitialized({B, W, n_out, E});
  for (int64_t j0 = 0; j0 < n_out;) {
    int64_t j1 = j0 + 1;
    while (j1 < n_out && source(j1) == source(j0) && heads(j1) == heads(j1 - 1) + 1) ++j1;
    lin.apply(xs[source(j0)].data(), D, N, y.data_mut() + j0 * E, n_out * E, heads(j0) * E, (j1 - j0) * E);
    j0 = j1;
  }
  *flops += 2.0 * N * n_out * E * D;
  return y;
}

// Scores [B, H, TQ, S] of queries q [B, W, H, E] (the last TQ of its W rows: positions [q_lo, S))
// against keys [B, S, HK, E] (query head h uses key head kv_of(h)): q.k * scale, soft-capped,
// then -inf where a query may not look: keys after it, padding keys, and keys `window` or more
// positions back (window 0: none).
Tensor masked_scores(const Tensor& q, int64_t q_lo, const Tensor& keys, const std::vector<int64_t>& kv_of,
                     const Batch& layout, float scale, float softcap, int window, double* flops);

// z [B, TQ, H, E] = pattern [B, H, TQ, S] times values [B, S, HK, E] (query head h: value head kv_of(h)).
Tensor weighted_values(const Tensor& pattern, const Tensor& values, const std::vector<int64_t>& kv_of, double* flops);

// Heads [B, P, G, E] repeated per query head [B, P, H, E] (head h gets kv head h / groups).
Tensor expand_kv_heads(const Tensor& kv, int64_t heads);

}  // namespace pathpatch
