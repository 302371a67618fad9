#include "graph/kernels.hpp"

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>
#include <algorithm>
#include <cmath>
#include <limits>

namespace pathpatch::kernels {

using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* w, const float* b, float eps,
                float* y) {
  ConstArrayMap wm(w, dim), bm(b, dim);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap xr(x + r * dim, dim);
    ArrayMap yr(y + r * dim, dim);
    // Two passes in double for the statistics: cheap next to the GEMMs, and it keeps the
    // normalised values within a few ulp of a float64 reference.
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; ++i) mean += xr[i];
    mean /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(dim);
    float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    yr = (xr - static_cast<float>(mean)) * inv * wm + bm;
  }
}

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* y) {
  ConstArrayMap wm(w, dim);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap xr(x + r * dim, dim);
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    ArrayMap(y + r * dim, dim) = xr * inv * wm;
  }
}

namespace {

// Eigen evaluates exp and tanh with packet code in the body of a buffer and scalar code at its
// unaligned ends, and the two can differ in the last bit. Here every element takes the packet path
// (through an aligned scratch padded to whole packets), so a value's bits depend on the value
// alone, not on where it sits: a step computed for some positions matches the same step computed
// for all of them.
template <class F>
void in_packets(float* x, int64_t n, float pad, F&& f) {
  constexpr int64_t kChunk = 4096;
  alignas(64) static thread_local float scratch[kChunk];
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i), padded = (m + 15) / 16 * 16;
    std::copy(x + i, x + i + m, scratch);
    std::fill(scratch + m, scratch + padded, pad);
    Eigen::Map<Eigen::ArrayXf, Eigen::Aligned64> v(scratch, padded);
    f(v);
    std::copy(scratch, scratch + m, x + i);
  }
}

}  // namespace

void gelu_tanh(float* x, int64_t n) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  in_packets(x, n, 0.0f, [&](auto& v) { v = 0.5f * v * (1.0f + (kC * (v + 0.044715f * v.cube())).tanh()); });
}

void gelu_erf(float* x, int64_t n) {
  constexpr float kInvSqrt2 = 0.7071067811865476f;
  in_packets(x, n, 0.0f, [&](auto& v) { v = 0.5f * v * (1.0f + (v * kInvSqrt2).erf()); });
}

void softcap(float* x, int64_t n, float cap) {
  in_packets(x, n, 0.0f, [&](auto& v) { v = (v / cap).tanh() * cap; });
}

void scale(float* x, int64_t n, float by) { ArrayMap(x, n) *= by; }

void silu(float* x, int64_t n) {
  in_packets(x, n, 0.0f, [](auto& v) { v = v / (1.0f + (-v).exp()); });
}

void mul(const float* a, const float* b, int64_t n, float* out) {
  ArrayMap(out, n) = ConstArrayMap(a, n) * ConstArrayMap(b, n);
}

void add(const float* a, const float* b, int64_t n, float* out) {
  ArrayMap(out, n) = ConstArrayMap(a, n) + ConstArrayMap(b, n);
}

void add_inplace(float* y, const float* x, int64_t n) { ArrayMap(y, n) += ConstArrayMap(x, n); }

void add_row_bias(float* y, int64_t rows, int64_t cols, int64_t ldy, const float* bias) {
  ConstArrayMap bm(bias, cols);
  for (int64_t r = 0; r < rows; ++r) ArrayMap(y + r * ldy, cols) += bm;
}

void softmax_row(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  // exp(-inf) = 0 for masked entries and for the padding. Rows longer than one scratch chunk are
  // summed chunk by chunk, in the same order every time.
  const float ninf = -std::numeric_limits<float>::infinity();
  double sum = 0;
  in_packets(x, n, ninf, [&](auto& v) {
    v = (v - mx).exp();
    sum += v.sum();
  });
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// ---- Backward ---------------------------------------------------------------------------------

namespace {

// Vectorised (Eigen's packet tanh, erf, exp) over chunks: the backward runs on every MLP
// activation, and scalar libm calls cost as much as the layer's GEMMs at small batches.
template <class F>
void chunked(const float* x, int64_t n, float* d, F&& f) {
  constexpr int64_t kChunk = 4096;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    f(ConstArrayMap(x + i, m), ArrayMap(d + i, m));
  }
}

}  // namespace

void norm_statistics(const float* x, int64_t rows, int64_t dim, bool centred, float eps, float* xhat, float* inv) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double mean = 0, ss = 0;
    if (centred) {
      for (int64_t i = 0; i < dim; ++i) mean += xr[i];
      mean /= static_cast<double>(dim);
    }
    for (int64_t i = 0; i < dim; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
    inv[r] = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    ArrayMap(xhat + r * dim, dim) = (ConstArrayMap(xr, dim) - static_cast<float>(mean)) * inv[r];
  }
}

void norm_backward_in_place(const float* xhat, const float* inv, int64_t rows, int64_t dim, const float* w,
                            bool centred, float* d) {
  ConstArrayMap wm(w, dim);
  for (int64_t r = 0; r < rows; ++r) {
    ArrayMap dr(d + r * dim, dim);
    ConstArrayMap xr(xhat + r * dim, dim);
    dr *= wm;  // g
    const float g_mean = centred ? dr.sum() / static_cast<float>(dim) : 0.0f;
    const float gx_mean = (dr * xr).sum() / static_cast<float>(dim);
    dr = inv[r] * (dr - g_mean - xr * gx_mean);
  }
}

void gelu_tanh_backward(const float* x, int64_t n, float* d) {
  constexpr float kC = 0.7978845608028654f, kA = 0.044715f;
  chunked(x, n, d, [&](const auto& v, auto dv) {
    const Eigen::ArrayXf t = (kC * (v + kA * v.cube())).tanh();
    dv *= 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t.square()) * kC * (1.0f + 3.0f * kA * v.square());
  });
}

void gelu_erf_backward(const float* x, int64_t n, float* d) {
  constexpr float kInvSqrt2 = 0.7071067811865476f, kInvSqrt2Pi = 0.3989422804014327f;
  chunked(x, n, d, [&](const auto& v, auto dv) {
    dv *= 0.5f * (1.0f + (v * kInvSqrt2).erf()) + v * kInvSqrt2Pi * (-0.5f * v.square()).exp();
  });
}

void silu_backward(const float* x, int64_t n, float* d) {
  chunked(x, n, d, [&](const auto& v, auto dv) {
    const Eigen::ArrayXf s = 1.0f / (1.0f + (-v).exp());
    dv *= s * (1.0f + v * (1.0f - s));
  });
}

void softcap_backward(const float* y, int64_t n, float cap, float* d) {
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(y[i])) d[i] *= 1.0f - (y[i] / cap) * (y[i] / cap);
}

void softmax_row_backward(const float* p, int64_t n, float* d) {
  double dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(p[i]) * d[i];
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(p[i] * (d[i] - dot));
}

}  // namespace pathpatch::kernels
