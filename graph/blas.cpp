// The BLAS-facing half of the kernels (kernels::gemm and the thread settings) and the detection
// of what OpenBLAS runs on this CPU (graph/blas.hpp says why).
#include "graph/blas.hpp"

#include <cblas.h>

// GCC 12 reports its own AVX-512 intrinsics as "maybe uninitialized" inside Eigen's GEMM kernels
// (a known false positive of avx512fintrin.h); the warning says nothing about this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include "graph/kernels.hpp"

namespace pathpatch {

namespace blas {

std::string CpuFeatures::text() const {
  std::string s;
  for (auto [on, name] : {std::pair{avx2, "avx2"}, {fma, "fma"}, {avx512, "avx512"}})
    if (on) s += s.empty() ? name : std::string(" ") + name;
  return s.empty() ? "no avx2" : s;
}

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's checks include the OS's consent (XGETBV) for the AVX and AVX-512 registers.
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

const char* to_string(GemmPath path) { return path == GemmPath::Blas ? "BLAS" : "Eigen"; }

namespace {

// OpenBLAS's x86-64 kernel sets (openblas_get_corename) that use AVX2, and those that use AVX-512.
const std::set<std::string> kAvx2Kernels = {"Haswell", "Zen", "Excavator", "SkylakeX", "Cooperlake", "SapphireRapids"};
const std::set<std::string> kAvx512Kernels = {"SkylakeX", "Cooperlake", "SapphireRapids"};

BlasInfo detect() {
  BlasInfo b;
  b.config = openblas_get_config();
  b.kernel = openblas_get_corename();
  if (const char* env = std::getenv("OPENBLAS_CORETYPE")) b.coretype_env = env;
  b.cpu = cpu_features();
  b.generic_kernel = b.cpu.avx2 && b.cpu.fma && !kAvx2Kernels.count(b.kernel);
  if (b.cpu.avx512 && !kAvx512Kernels.count(b.kernel))
    b.better_coretype = "SkylakeX";
  else if (b.generic_kernel)
    b.better_coretype = "Haswell";
  b.gemm = b.generic_kernel ? GemmPath::Eigen : GemmPath::Blas;
  return b;
}

std::atomic<int> path_override{-1};  // -1: info().gemm

thread_local GemmRecorder* recorder = nullptr;

}  // namespace

std::string BlasInfo::advice() const {
  if (better_coretype.empty()) return "";
  if (generic_kernel)
    return "OpenBLAS runs its generic '" + kernel + "' kernels on this CPU (" + cpu.text() +
           "), about 5x slower than it can be: matrix products use Eigen's GEMM instead. For full speed set "
           "OPENBLAS_CORETYPE=" + better_coretype + " before the program starts (the pathpatch CLI does it itself).";
  return "OpenBLAS runs its '" + kernel + "' kernels on a CPU with " + cpu.text() + ": OPENBLAS_CORETYPE=" +
         better_coretype + " may be faster (bench/bench_forward measures the difference).";
}

const BlasInfo& info() {
  static const BlasInfo detected = detect();
  return detected;
}

GemmPath gemm_path() {
  const int o = path_override.load(std::memory_order_relaxed);
  return o < 0 ? info().gemm : static_cast<GemmPath>(o);
}

void set_gemm_path(GemmPath path) { path_override.store(static_cast<int>(path), std::memory_order_relaxed); }

GemmRecorder::GemmRecorder() : outer_(recorder) { recorder = this; }
GemmRecorder::~GemmRecorder() { recorder = outer_; }

void detail::record_gemm(const GemmCall& call) {
  if (recorder) recorder->calls_.push_back(call);
}

}  // namespace blas

namespace kernels {

namespace {

// The BLAS thread count is one setting for the whole process: changes go through here.
std::mutex blas_mutex;
int single_scopes = 0;  // SingleThreadedBlas scopes open, on any thread
int wanted = 0;         // the count to go back to when the last one ends

// Threads a product started now may use.
int threads_now() {
  std::lock_guard<std::mutex> lock(blas_mutex);
  return single_scopes ? 1 : openblas_get_num_threads();
}

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstStrided = Eigen::Map<const RowMajorMatrix, 0, Eigen::OuterStride<>>;
using Strided = Eigen::Map<RowMajorMatrix, 0, Eigen::OuterStride<>>;

// C = op(A) op(B) + beta C with Eigen, the rows (or, for short wide products, the columns) of C
// split into one contiguous band per thread. Each band is an ordinary Eigen product.
template <class OpA, class OpB>
void eigen_product(const OpA& a, const OpB& b, float beta, Strided c, int threads) {
  const int64_t m = c.rows(), n = c.cols();
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  // Below about 2 MFLOP a second thread costs more to start than it saves.
  const int parts = 2.0 * m * n * a.cols() < 2e6 ? 1 : static_cast<int>(std::clamp<int64_t>(threads, 1, extent));
  auto band = [&](int p) {
    const int64_t begin = extent * p / parts, size = extent * (p + 1) / parts - begin;
    auto run = [&](const auto& ab, const auto& bb, auto&& out) {
      if (beta == 0.0f) {
        out.noalias() = ab * bb;  // C is not read (it may hold NaN), as in BLAS
      } else {
        if (beta != 1.0f) out *= beta;
        out.noalias() += ab * bb;
      }
    };
    if (by_rows)
      run(a.middleRows(begin, size), b, c.middleRows(begin, size));
    else
      run(a, b.middleCols(begin, size), c.middleCols(begin, size));
  };
  std::vector<std::thread> helpers;
  for (int p = 1; p < parts; ++p) helpers.emplace_back(band, p);
  band(0);
  for (std::thread& t : helpers) t.join();
}

void eigen_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  ConstStrided am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
  ConstStrided bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
  Strided cm(c, m, n, Eigen::OuterStride<>(ldc));
  if (!trans_a && !trans_b) eigen_product(am, bm, beta, cm, threads);
  if (!trans_a && trans_b) eigen_product(am, bm.transpose(), beta, cm, threads);
  if (trans_a && !trans_b) eigen_product(am.transpose(), bm, beta, cm, threads);
  if (trans_a && trans_b) eigen_product(am.transpose(), bm.transpose(), beta, cm, threads);
}

}  // namespace

void set_threads(int n) {
  std::lock_guard<std::mutex> lock(blas_mutex);
  wanted = std::max(1, n);
  if (single_scopes == 0) openblas_set_num_threads(wanted);
}

int threads() {
  std::lock_guard<std::mutex> lock(blas_mutex);
  return single_scopes ? wanted : openblas_get_num_threads();
}

SingleThreadedBlas::SingleThreadedBlas(bool active) : active_(active) {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(blas_mutex);
  if (single_scopes++ > 0) return;
  wanted = openblas_get_num_threads();
  if (wanted > 1) openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(blas_mutex);
  if (--single_scopes == 0 && wanted > 1) openblas_set_num_threads(wanted);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const bool eigen = blas::gemm_path() == blas::GemmPath::Eigen;
  const int threads = eigen || blas::recorder ? threads_now() : 0;
  if (blas::recorder) blas::detail::record_gemm({trans_a, trans_b, m, n, k, lda, ldb, ldc, threads == 1});
  if (eigen) return eigen_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc, threads);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

}  // namespace kernels

}  // namespace pathpatch
