#pragma once
// Which BLAS the engine runs, with which kernels, and whether those kernels suit this CPU.
//
// Debian 12's OpenBLAS 0.3.21 picks its kernels from the CPU's model number. A CPU it does not
// know (a recent Xeon seen through a VM) gets the generic "Prescott" SSE3 kernels: about 50
// GFLOP/s for SGEMM on a 2-core AVX-512 machine instead of about 300 with the AVX-512 kernels, and
// not a word about it. So, at first use:
//   - if OpenBLAS runs a kernel without AVX2 on a CPU that has AVX2 and FMA, kernels::gemm uses
//     Eigen's GEMM instead (compiled for this CPU; measured 4x faster than the Prescott kernels),
//     split over the BLAS's threads;
//   - info().advice says which OPENBLAS_CORETYPE to set for full speed; the CLI sets it and
//     restarts itself (pathpatch/cli/main.cpp), `pathpatch info` prints all of this.
// The variable must be set before OpenBLAS loads: a running process cannot change its kernels.
#include <cstdint>
#include <string>
#include <vector>

namespace pathpatch::blas {

// The CPU's vector units, as the CPU and the OS report them.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512 = false;  // F, CD, BW, DQ and VL: what OpenBLAS's SkylakeX kernels use
  std::string text() const;  // "avx2 fma avx512"
};
CpuFeatures cpu_features();

// What kernels::gemm runs: the BLAS's SGEMM, or Eigen's.
enum class GemmPath { Blas, Eigen };
const char* to_string(GemmPath path);

struct BlasInfo {
  std::string config;           // openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
  std::string kernel;           // openblas_get_corename(): "Haswell", "SkylakeX", "Prescott", ...
  std::string coretype_env;     // OPENBLAS_CORETYPE as this process started, "" if unset
  CpuFeatures cpu;
  bool generic_kernel = false;  // the kernel has no AVX2 but the CPU does
  std::string better_coretype;  // an OPENBLAS_CORETYPE suiting this CPU better; "" if none
  GemmPath gemm = GemmPath::Blas;  // chosen at start-up: Eigen while generic_kernel

  // One line for users: what to set and why; "" when the kernel suits the CPU.
  std::string advice() const;
};

// Detected once, on first call (thread-safe).
const BlasInfo& info();

// The path kernels::gemm takes now: info().gemm unless overridden (tests and benchmarks compare
// the two). Setting it while other threads compute is allowed; each call reads it once.
GemmPath gemm_path();
void set_gemm_path(GemmPath path);

struct GemmCall;
namespace detail {
void record_gemm(const GemmCall& call);
}

// One product as kernels::gemm received it, and whether it ran on one thread.
struct GemmCall {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
  bool one_thread = false;
  double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }
  bool operator==(const GemmCall&) const = default;
};

// Records every kernels::gemm call made on this thread while in scope (benchmarks use it to
// measure the BLAS on the very products a model makes). Scopes nest; the innermost records.
class GemmRecorder {
 public:
  GemmRecorder();
  ~GemmRecorder();
  GemmRecorder(const GemmRecorder&) = delete;
  GemmRecorder& operator=(const GemmRecorder&) = delete;
  const std::vector<GemmCall>& calls() const { return calls_; }

 private:
  friend void detail::record_gemm(const GemmCall& call);
  std::vector<GemmCall> calls_;
  GemmRecorder* outer_;
};

}  // namespace pathpatch::blas
