// Forward passes of three model shapes, GPT-2 small, Pythia-160M and a Gemma-2-shaped model:
// tokens/s and GFLOP/s, next to the SGEMM rate of the same BLAS on the forward's own products and
// PyTorch eager on the same weights and shapes, all measured in this run.
//
// "of SGEMM" is the time the BLAS needs for the forward's products, each timed alone (best of 15
// after a warm-up, bench::gemm_floor), over the forward's median time: 100% would be a forward
// that is nothing but its products at the BLAS's best speed.
//
//   build/bench/bench_forward [--gemm blas|eigen]   (python3-torch, if installed, adds PyTorch)
#include <cmath>
#include <cstdio>
#include <map>

#include "common.hpp"
#include "graph/kernels.hpp"

namespace pp = pathpatch;

int main(int argc, char** argv) {
  pp::kernels::set_threads(2);
  bench::apply_gemm_option(argc, argv);
  std::printf("pathpatch forward benchmark (%s)\n", bench::env_note().c_str());
  std::printf("SGEMM 1024^3: %.1f GFLOP/s (for reference; the baseline is each forward's own products)\n",
              bench::sgemm_gflops(1024, 1024, 1024));
  const bool torch = !bench::run_torch("--probe").empty();

  for (const bench::Shape& shape : {bench::gpt2_small(), bench::pythia_160m(), bench::gemma2_small()}) {
    const pp::Model model = shape.random();
    const pp::ModelConfig& c = model.config();
    std::printf("\n%s: %s, %d layers, d_model %d, %d heads of %d, %.0fM parameters\n", shape.name.c_str(),
                c.family_name(), c.n_layers, c.d_model, c.n_heads, c.d_head, c.n_params() / 1e6);
    const std::string dir = torch ? bench::export_for_torch(shape, 1).string() : "";
    std::printf("%-8s %10s %12s %10s %13s %10s %12s %10s\n", "shape", "ms", "tokens/s", "GFLOP/s", "SGEMM GFLOP/s",
                "of SGEMM", "torch ms", "speed-up");
    for (auto [B, T] : {std::pair<int64_t, int64_t>{8, 64}, {1, 128}}) {
      const pp::Batch batch = bench::inputs(c, B, T).clean;
      double flops = 0;
      std::map<std::string, double> by_step;
      double s = bench::time_median([&] {
        pp::Result r = pp::forward(model, batch);
        flops = r.stats.flops + pp::kernels::gemm_flops(B * T, c.vocab_size, c.d_model);
        by_step = r.stats.seconds;
      });
      const bench::GemmFloor floor = bench::gemm_floor([&] { pp::forward(model, batch); });
      double gflops = flops / s / 1e9;
      double torch_ms = NAN;
      if (torch) {
        std::string out = bench::run_torch("forward --model " + dir + " --batch " + std::to_string(B) + " --seq " +
                                           std::to_string(T));
        torch_ms = bench::parse_number(out, "ms");
      }
      std::printf("%2ldx%-5ld %10.1f %12.0f %10.1f %13.1f %9.0f%% %12.1f %9.2fx\n", B, T, s * 1e3, B * T / s, gflops,
                  floor.gflops(), 100 * floor.seconds / s, torch_ms, torch_ms / (s * 1e3));
      std::printf("         SGEMM baseline: %zu products, %zu distinct, %.1f ms at best\n", floor.calls, floor.distinct,
                  floor.seconds * 1e3);
      std::printf("         time by step (last run):");
      for (const auto& [kind, secs] : by_step) std::printf(" %s %.0f ms", kind.c_str(), secs * 1e3);
      std::printf(", unembedding the rest\n");
    }
  }
  if (!torch) std::printf("\n(no PyTorch column: python3-torch is not installed, or PP_BENCH_NO_TORCH is set)\n");
  return 0;
}
