// The two GEMM paths (OpenBLAS's SGEMM and Eigen's, used where OpenBLAS runs generic kernels)
// against a float64 product, the detection of generic kernels, and the GEMM recorder.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "graph/blas.hpp"
#include "graph/kernels.hpp"
#include "helpers.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;
namespace blas = pathpatch::blas;

namespace {

// Sets the GEMM path for a scope, then goes back to the path detected at start-up.
struct UsePath {
  explicit UsePath(blas::GemmPath p) { blas::set_gemm_path(p); }
  ~UsePath() { blas::set_gemm_path(blas::info().gemm); }
};

struct Product {
  bool ta, tb;
  int64_t m, n, k, pad;  // pad: extra columns in every stored row (lda > width)
  float beta;
};

// Runs kernels::gemm on random data and returns the worst |ours - float64| relative to the scale
// of the terms (sum of |a||b| over k), so that long sums are not judged by short ones' standard.
double worst_error(const Product& p) {
  std::mt19937 rng(static_cast<uint32_t>(p.m * 131 + p.n * 17 + p.k));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t a_rows = p.ta ? p.k : p.m, a_cols = p.ta ? p.m : p.k;
  const int64_t b_rows = p.tb ? p.n : p.k, b_cols = p.tb ? p.k : p.n;
  const int64_t lda = a_cols + p.pad, ldb = b_cols + p.pad, ldc = p.n + p.pad;
  std::vector<float> a(a_rows * lda), b(b_rows * ldb), c(p.m * ldc);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  for (float& x : c) x = p.beta == 0 ? std::numeric_limits<float>::quiet_NaN() : u(rng);
  const std::vector<float> c0 = c;
  pp::kernels::gemm(p.ta, p.tb, p.m, p.n, p.k, a.data(), lda, b.data(), ldb, p.beta, c.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      double sum = 0, scale = 1e-30;
      for (int64_t l = 0; l < p.k; ++l) {
        const double x = p.ta ? a[l * lda + i] : a[i * lda + l], y = p.tb ? b[j * ldb + l] : b[l * ldb + j];
        sum += x * y;
        scale += std::abs(x * y);
      }
      if (p.beta != 0) {
        sum += p.beta * static_cast<double>(c0[i * ldc + j]);
        scale += std::abs(p.beta * c0[i * ldc + j]);
      }
      worst = std::max(worst, std::abs(c[i * ldc + j] - sum) / scale);
    }
  // The padding between rows of C is never written.
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = p.n; j < ldc; ++j)
      if (!(std::isnan(c[i * ldc + j]) && std::isnan(c0[i * ldc + j])) && c[i * ldc + j] != c0[i * ldc + j])
        return std::numeric_limits<double>::infinity();
  return worst;
}

}  // namespace

TEST_CASE("both GEMM paths compute op(A) op(B) + beta C, on any strides, on one or two threads", "[blas]") {
  const std::vector<Product> products = {
      {false, false, 37, 29, 53, 0, 0.0f},   {false, true, 64, 48, 96, 3, 0.0f},  {true, false, 33, 70, 20, 5, 1.0f},
      {true, true, 17, 9, 128, 1, 0.5f},     {false, false, 1, 300, 64, 0, 0.0f}, {false, true, 256, 7, 64, 2, 1.0f},
      {false, false, 200, 160, 120, 4, 0.0f}, {true, true, 150, 230, 90, 0, 0.0f}, {false, false, 5, 6, 0, 1, 0.5f}};
  for (blas::GemmPath path : {blas::GemmPath::Blas, blas::GemmPath::Eigen})
    for (bool one_thread : {false, true}) {
      UsePath use(path);
      pp::kernels::SingleThreadedBlas scope(one_thread);
      for (const Product& p : products) {
        INFO(blas::to_string(path) << (one_thread ? ", one thread" : "") << ": " << p.m << "x" << p.n << "x" << p.k
                                   << " ta " << p.ta << " tb " << p.tb << " pad " << p.pad << " beta " << p.beta);
        CHECK(worst_error(p) < 1e-6);
      }
    }
}

TEST_CASE("a forward on Eigen's GEMM matches the PyTorch reference like one on the BLAS", "[blas]") {
  // The golden comparison of test_golden.cpp, on the path a machine with generic OpenBLAS kernels
  // takes, for one family with every kind of product (GQA, gated MLP, untied unembedding).
  const pp::Model& m = pptest::model("llama-gqa");
  auto ref = pp::SafetensorsFile::open(pptest::golden("llama-gqa") / "batch.safetensors");
  pp::Batch batch = pptest::batch_from(ref.load("input_ids"), ref.load("attention_mask"));
  pp::RunOptions opt;
  for (const auto& a : m.graph().activations()) opt.interventions.push_back(pp::probe(a.name));
  UsePath use(blas::GemmPath::Eigen);
  pp::Result r = pp::forward(m, batch, opt);
  for (const auto& e : ref.entries()) {
    if (e.name == "input_ids" || e.name == "attention_mask") continue;
    INFO(e.name);
    CHECK(pptest::max_diff(e.name == "logits" ? r.logits : r.probe(e.name), ref.load(e)) <= 1e-5f);
  }
}

TEST_CASE("the detection is consistent: a generic kernel means Eigen's GEMM and advice to act on", "[blas]") {
  const blas::BlasInfo& b = blas::info();
  CHECK(b.config.find("OpenBLAS") != std::string::npos);
  CHECK(!b.kernel.empty());
  CHECK(b.generic_kernel == (b.gemm == blas::GemmPath::Eigen));
  if (b.generic_kernel) CHECK(b.advice().find("OPENBLAS_CORETYPE=" + b.better_coretype) != std::string::npos);
  CHECK(b.advice().empty() == b.better_coretype.empty());
}

// Run by ctest with OPENBLAS_CORETYPE=Prescott (blas_generic_kernel in tests/CMakeLists.txt): the
// kernels OpenBLAS 0.3.21 falls back to on a CPU it does not know.
TEST_CASE("OpenBLAS's Prescott kernels on an AVX2 CPU are found generic", "[.prescott]") {
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  REQUIRE(env != nullptr);
  REQUIRE(std::string(env) == "Prescott");
  const blas::BlasInfo& b = blas::info();
  CHECK(b.kernel == "Prescott");
  const bool avx2 = b.cpu.avx2 && b.cpu.fma;
  CHECK(b.generic_kernel == avx2);
  CHECK(b.gemm == (avx2 ? blas::GemmPath::Eigen : blas::GemmPath::Blas));
  if (avx2) CHECK(b.better_coretype == (b.cpu.avx512 ? "SkylakeX" : "Haswell"));
}

TEST_CASE("the GEMM recorder sees every product of a forward, once, on its own thread", "[blas]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Batch batch = pp::Batch::from_rows({{1, 2, 3, 4}, {5, 6, 7, 8}});
  std::vector<blas::GemmCall> calls;
  {
    blas::GemmRecorder rec;
    {
      blas::GemmRecorder inner;  // the innermost scope records
      pp::forward(m, batch);
      CHECK(!inner.calls().empty());
    }
    CHECK(rec.calls().empty());
    pp::forward(m, batch);
    calls = rec.calls();
  }
  const pp::ModelConfig& c = m.config();
  // Per layer at least the q/k/v, output and two MLP products; plus the unembedding.
  CHECK(calls.size() >= static_cast<size_t>(4 * c.n_layers + 1));
  bool unembedding = false;
  for (const blas::GemmCall& g : calls) unembedding |= g.m == 8 && g.n == c.vocab_size && g.k == c.d_model;
  CHECK(unembedding);
  blas::GemmRecorder after;
  CHECK(after.calls().empty());
}
