// Forward passes of three model shapes, GPT-2 small, Pythia-160M and a Gemma-2-shaped model:
// tokens/s and GFLOP/s, next to the SGEMM rate of the same BLAS and PyTorch eager on the same
// weights and shapes, all measured in this run.
//
//   build/bench/bench_forward            (python3-torch, if installed, adds the PyTorch column)
#include <cmath>
#include <cstdio>
#include <map>

#include "common.hpp"
#include "graph/kernels.hpp"

namespace pp = pathpatch;

int main() {
  pp::kernels::set_threads(2);
  std::printf("pathpatch forward benchmark (%s)\n", bench::env_note().c_str());
  const double peak = bench::sgemm_gflops(1024, 1024, 1024);
  std::printf("SGEMM 1024^3: %.1f GFLOP/s (the baseline)\n", peak);
  const bool torch = !bench::run_torch("--probe").empty();

  for (const bench::Shape& shape : {bench::gpt2_small(), bench::pythia_160m(), bench::gemma2_small()}) {
    const pp::Model model = shape.random();
    const pp::ModelConfig& c = model.config();
    std::printf("\n%s: %s, %d layers, d_model %d, %d heads of %d, %.0fM parameters\n", shape.name.c_str(),
                c.family_name(), c.n_layers, c.d_model, c.n_heads, c.d_head, c.n_params() / 1e6);
    const std::string dir = torch ? bench::export_for_torch(shape, 1).string() : "";
    std::printf("%-8s %10s %12s %10s %10s %12s %10s\n", "shape", "ms", "tokens/s", "GFLOP/s", "of SGEMM", "torch ms",
                "speed-up");
    for (auto [B, T] : {std::pair<int64_t, int64_t>{8, 64}, {1, 128}}) {
      std::vector<std::vector<int32_t>> rows(B);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) rows[b].push_back(static_cast<int32_t>((b * 7919 + t * 104729) % c.vocab_size));
      pp::Batch batch = pp::Batch::from_rows(rows);
      double flops = 0;
      std::map<std::string, double> by_step;
      double s = bench::time_median([&] {
        pp::Result r = pp::forward(model, batch);
        flops = r.stats.flops + pp::kernels::gemm_flops(B * T, c.vocab_size, c.d_model);
        by_step = r.stats.seconds;
      });
      double gflops = flops / s / 1e9;
      double torch_ms = NAN;
      if (torch) {
        std::string out = bench::run_torch("forward --model " + dir + " --batch " + std::to_string(B) + " --seq " +
                                           std::to_string(T));
        torch_ms = bench::parse_number(out, "ms");
      }
      std::printf("%2ldx%-5ld %10.1f %12.0f %10.1f %9.0f%% %12.1f %9.2fx\n", B, T, s * 1e3, B * T / s, gflops,
                  100 * gflops / peak, torch_ms, torch_ms / (s * 1e3));
      std::printf("         time by step (last run):");
      for (const auto& [kind, secs] : by_step) std::printf(" %s %.0f ms", kind.c_str(), secs * 1e3);
      std::printf(", unembedding the rest\n");
    }
  }
  if (!torch) std::printf("\n(python3-torch not installed: no PyTorch column)\n");
  return 0;
}
