#include "models/attention.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "graph/kernels.hpp"

namespace pathpatch {

std::vector<double> rope_frequencies(const ModelConfig& c) {
  const int64_t R = c.rotary_dims;
  const RopeScaling& s = c.rope_scaling;
  std::vector<double> inv;
  for (int64_t i = 0; i < R / 2; ++i) {
    double f = 1.0 / std::pow(c.rope_theta, 2.0 * i / R);
    if (s.kind == RopeScaling::Linear) f /= s.factor;
    if (s.kind == RopeScaling::Llama3) {
      // Long wavelengths are stretched by the factor, short ones kept, the band between blended.
      const double wavelen = 2 * M_PI / f, low = s.original_context / s.low_freq_factor,
                   high = s.original_context / s.high_freq_factor;
      if (wavelen > low) {
        f /= s.factor;
      } else if (wavelen >= high) {
        const double smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv.push_back(f);
  }
  return inv;
}

Tensor rope(const Tensor& x, const std::vector<double>& inv_freq, int64_t dims, const Batch& layout, int64_t first,
            bool inverse) {
  const int64_t B = x.size(0), W = x.size(1), N = x.size(2), E = x.size(3), half = dims / 2, T = layout.seq;
  std::vector<int32_t> pid = layout.position_ids();
  Tensor y = Tensor::uninitialized(x.shape());
  const float* src = x.data();
  float* dst = y.data_mut();
  std::vector<float> cs(half), sn(half);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < W; ++i) {
      const int64_t row = b * W + i;
      for (int64_t j = 0; j < half; ++j) {
        double angle = pid[b * T + first + i] * inv_freq[j];  // in double: float32 angles cost ~1e-6
        cs[j] = static_cast<float>(std::cos(angle));
        sn[j] = static_cast<float>(inverse ? -std::sin(angle) : std::sin(angle));
      }
      for (int64_t h = 0; h < N; ++h) {
        const float* a = src + (row * N + h) * E;
        float* o = dst + (row * N + h) * E;
        for (int64_t j = 0; j < half; ++j) {
          o[j] = a[j] * cs[j] - a[j + half] * sn[j];
          o[j + half] = a[j + half] * cs[j] + a[j] * sn[j];
        }
        std::memcpy(o + dims, a + dims, (E - dims) * sizeof(float));
      }
    }
  return y;
}

Tensor masked_scores(const Tensor& q, int64_t q_lo, const Tensor& keys, const std::vector<int64_t>& kv_of,
                     const Batch& layout, float scale, float softcap, int window, double* flops) {
  const int64_t B = q.size(0), W = q.size(1), H = q.size(2), E = q.size(3), S = keys.size(1), HK = keys.size(2);
  const int64_t TQ = S - q_lo, q_skip = W - TQ;
  // Per-head products are small: one BLAS thread each beats waking two for every one of them.
  kernels::SingleThreadedBlas one_thread(TQ * S * E < (1 << 22));
  Tensor scores = Tensor::uninitialized({B, H, TQ, S});
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      float* s = scores.data_mut() + (b * H + h) * TQ * S;
      kernels::gemm(false, true, TQ, S, E, q.data() + ((b * W + q_skip) * H + h) * E, H * E,
                    keys.data() + (b * S * HK + kv_of[h]) * E, HK * E, 0.0f, s, S);
      kernels::scale(s, TQ * S, scale);
      if (softcap > 0) kernels::softcap(s, TQ * S, softcap);
      for (int64_t i = 0; i < TQ; ++i) {
        const int64_t at = q_lo + i;  // the query's position
        for (int64_t j = 0; j < S; ++j)
          if (j > at || !layout.real(b, j) || (window > 0 && at - j >= window)) s[i * S + j] = ninf;
      }
    }
  }
  *flops += kernels::gemm_flops(B * H * TQ, S, E);
  return scores;
}

Tensor weighted_values(const Tensor& pattern, const Tensor& values, const std::vector<int64_t>& kv_of, double* flops) {
  const int64_t B = pattern.size(0), H = pattern.size(1), TQ = pattern.size(2), S = pattern.size(3);
  const int64_t HK = values.size(2), E = values.size(3);
  kernels::SingleThreadedBlas one_thread(TQ * S * E < (1 << 22));
  Tensor z = Tensor::uninitialized({B, TQ, H, E});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      kernels::gemm(false, false, TQ, E, S, pattern.data() + (b * H + h) * TQ * S, S,
                    values.data() + (b * S * HK + kv_of[h]) * E, HK * E, 0.0f, z.data_mut() + (b * TQ * H + h) * E,
                    H * E);
  *flops += kernels::gemm_flops(B * H * TQ, S, E);
  return z;
}

Tensor expand_kv_heads(const Tensor& kv, int64_t heads) {
  const int64_t rows = kv.size(0) * kv.size(1), G = kv.size(2), E = kv.size(3), groups = heads / G;
  Tensor x = Tensor::uninitialized({kv.size(0), kv.size(1), heads, E});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h)
      std::memcpy(x.data_mut() + (r * heads + h) * E, kv.data() + (r * G + h / groups) * E, E * sizeof(float));
  return x;
}

}  // namespace pathpatch
