#pragma once
// The numeric kernels every model node is made of. Plain functions on raw row-major buffers.
//
// Dimension letters used in comments across the project:
//   B batch, T query positions, S key positions, D d_model, H query heads, G key/value heads,
//   E d_head, F d_mlp, V vocab, N flattened rows (B*T).
#include <cstdint>

namespace pathpatch::kernels {

// Threads used by the BLAS (OpenBLAS). The engine's own loops are single-threaded. These and gemm
// live in graph/blas.cpp, beside the check of which kernels OpenBLAS runs (graph/blas.hpp).
void set_threads(int n);
int threads();

// One BLAS thread while in scope. For runs of small products (one per attention head), where
// waking the second thread costs more than it saves. Scopes may overlap across threads (runs on
// several threads): the BLAS goes back to its threads when the last one ends.
class SingleThreadedBlas {
 public:
  explicit SingleThreadedBlas(bool active = true);
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  bool active_;
};

// C[M,N] = op(A)[M,K] * op(B)[K,N] + beta * C. The one call site of SGEMM in the project: every
// matmul of every model goes through here, over all rows (batch x positions) at once. It runs
// OpenBLAS's SGEMM, or Eigen's GEMM where OpenBLAS runs generic kernels (blas::gemm_path()).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
inline double gemm_flops(int64_t m, int64_t n, int64_t k) { return 2.0 * m * n * k; }

// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b, for each of `rows` rows of length `dim`.
void layer_norm(const float* x, int64_t rows, int64_t dim, const float* w, const float* b, float eps,
                float* y);
// y[r, :] = x[r, :] / sqrt(mean(x^2) + eps) * w
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* y);

void gelu_tanh(float* x, int64_t n);                 // GPT-2's gelu_new, in place
void gelu_erf(float* x, int64_t n);                  // exact GELU: x * Phi(x), in place
void silu(float* x, int64_t n);                      // x * sigmoid(x), in place
void softcap(float* x, int64_t n, float cap);        // tanh(x / cap) * cap, in place
void scale(float* x, int64_t n, float by);           // x * by, in place
void mul(const float* a, const float* b, int64_t n, float* out);
void add(const float* a, const float* b, int64_t n, float* out);
void add_inplace(float* y, const float* x, int64_t n);
void add_row_bias(float* y, int64_t rows, int64_t cols, int64_t ldy, const float* bias);

// ---- Backward: each takes its forward's input (or output, where that is cheaper) and the gradient
// of the output, and writes the gradient of the input. Statistics are recomputed in double, as the
// forward computes them; nothing is saved between the two. --------------------------------------

// dx for y = layer_norm(x) or rms_norm(x) (`centred`: LayerNorm), in two parts, so that many
// gradients through one norm share the first: each row's normalised value xhat and
// 1 / sqrt(var + eps) (statistics in double, as the forward), then d (a dy) becomes dx in place:
// dx = inv * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w (RMSNorm: no mean(g) term).
void norm_statistics(const float* x, int64_t rows, int64_t dim, bool centred, float eps, float* xhat, float* inv);
void norm_backward_in_place(const float* xhat, const float* inv, int64_t rows, int64_t dim, const float* w,
                            bool centred, float* d);
// d *= f'(x) for the nonlinearities above, x their input.
void gelu_tanh_backward(const float* x, int64_t n, float* d);
void gelu_erf_backward(const float* x, int64_t n, float* d);
void silu_backward(const float* x, int64_t n, float* d);
// d *= 1 - (y / cap)^2 for y = softcap(x): the output suffices. Where y is -inf (a masked score),
// d is left as it is (zero there already: the softmax gave the entry no weight).
void softcap_backward(const float* y, int64_t n, float cap, float* d);
// d (the gradient of softmax's output p) becomes the gradient of its input: p * (d - sum(p * d)).
void softmax_row_backward(const float* p, int64_t n, float* d);

// Softmax of one row in place. Entries equal to -inf get probability 0; a row with no finite
// entry (a query that may attend to nothing, e.g. a padding position) becomes all zeros.
void softmax_row(float* x, int64_t n);

}  // namespace pathpatch::kernels
