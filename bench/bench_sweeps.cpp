// The three sweeps of the engine issue on a GPT-2-small-shaped model, batch 8 x 16 tokens, against
// PyTorch done the usual way (forward hooks, two cached runs, one forward per variant), measured
// in this run:
//   (a) every sender head -> the final residual, MLPs frozen
//   (b) the same with MLPs on the path (recomputed)
//   (c) activation patching of every head's z at every position
// For each: wall time, the FLOP floor (what the variants must compute at the least), the FLOPs the
// engine spent, the share of the SGEMM rate that floor/time reaches, the speed-up over PyTorch, and
// the process's peak RSS so far.
//
// "of SGEMM" is floor / time over the rate the BLAS reaches on the model's own products at this
// batch (bench::gemm_floor of a clean forward).
//
//   build/bench/bench_sweeps [--torch-every N] [--only a|b|c] [--gemm blas|eigen] [--repeat N]
//   (PyTorch times every Nth variant and scales to the sweep; default 8; --repeat: the best of N
//   runs of each sweep, as bench/bench_python.py compares)
//   build/bench/bench_sweeps --export-model   writes the benchmark's model as a checkpoint folder
//                                             and prints its path (the Python benchmark loads it)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "common.hpp"
#include "graph/kernels.hpp"

namespace pp = pathpatch;

namespace {

double seconds(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int every = 8, repeat = 1;
  std::string only;  // run one sweep: a, b or c
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--export-model") == 0) {
      std::printf("%s\n", bench::export_for_torch(bench::gpt2_small(), 1).string().c_str());
      return 0;
    }
    if (i + 1 == argc) break;
    if (std::strcmp(argv[i], "--torch-every") == 0) every = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::max(1, std::atoi(argv[i + 1]));
  }
  pp::kernels::set_threads(2);
  bench::apply_gemm_option(argc, argv);
  std::printf("pathpatch sweep benchmark (%s)\n", bench::env_note().c_str());
  const int64_t B = 8, T = 16;
  pp::Model model = bench::gpt2_small().random();
  const pp::ModelConfig& c = model.config();
  const double D = c.d_model, E = c.d_head, L = c.n_layers, H = c.n_heads;

  const auto [clean, corrupt, metric] = bench::inputs(c, B, T);  // the same as the PyTorch script's
  const double peak = bench::gemm_floor([&] { pp::forward(model, clean); }).gflops();
  std::printf("SGEMM on the model's products at %ldx%ld: %.1f GFLOP/s (the baseline)\n", B, T, peak);

  // FLOP floors, without the unembedding (the metric reads two logits per row). A row is one
  // position of one batch row; per layer a row costs 8 d^2 in the attention projections (q, k, v,
  // o), 16 d^2 in the MLP and 4 d_head per head per key it attends to (FLOPs, multiply-add = 2).
  const double mlp_row = 16 * D * D, attn_row = 8 * D * D, head_out_row = 2 * E * D, kv_row = 4 * D * D;
  auto mix = [&](double keys) { return 4 * H * E * keys; };
  double floor_a = L * H * B * head_out_row;  // the sender's own output change at the scored row
  double floor_b = 0, floor_c = 0;
  for (int l = 0; l < L; ++l) {
    floor_b += H * B * (head_out_row + (L - l) * mlp_row);  // and the MLPs after it, at the scored row
    // Patching z at (layer l, position p) changes positions p..T-1 from layer l on; only the last
    // position is scored, so the last layer needs the changed rows' keys and values and nothing
    // else but the scored row.
    for (int p = 0; p < T; ++p) {
      const double changed = T - p, last_layer_after = l + 1 < L ? 1 : 0;
      double f = (l + 1 < L ? changed : 1) * (head_out_row + mlp_row);
      for (int k = l + 1; k + 1 < L; ++k)
        for (int t = p; t < T; ++t) f += attn_row + mlp_row + mix(t + 1);
      f += last_layer_after * (changed * kv_row + (attn_row - kv_row) + mlp_row + mix(T));
      floor_c += H * B * f;
    }
  }

  struct Case {
    const char* name;
    const char* torch_kind;
    double floor;
    std::function<pp::RunStats()> run;  // returns the work the engine did
    double target;
  };
  std::vector<Case> cases = {
      {"(a) senders -> resid, MLPs frozen", "senders", floor_a,
       [&] { return pp::sweep_senders(model, clean, corrupt, {pp::Receiver::logits()}, metric).stats; }, 20},
      {"(b) senders -> resid, MLPs on path", "senders-mlp", floor_b,
       [&] {
         pp::PathPatchingOptions o;
         o.mlps_on_path = true;
         return pp::sweep_senders(model, clean, corrupt, {pp::Receiver::logits()}, metric, o).stats;
       },
       4},
      {"(c) act. patching z, every pos", "act-z", floor_c,
       [&] {
         pp::Sites s;
         s.names = {"z"};
         s.positions = pp::SitePositions::Each;
         pp::PatchingOptions o;
         o.direction = pp::Direction::Noise;
         return pp::activation_patching(model, clean, corrupt, s, metric, o)["z"].stats;
       },
       4},
  };
  const bool torch = !bench::run_torch("--probe").empty();
  std::string dir = torch ? bench::export_for_torch(bench::gpt2_small(), 1).string() : "";
  std::printf("\n%-36s %9s %12s %12s %10s %11s %9s %7s %9s\n", "sweep", "seconds", "floor GFLOP", "spent GFLOP",
              "of SGEMM", "torch s", "speed-up", "target", "peak RSS");
  for (const Case& k : cases) {
    if (!only.empty() && k.name[1] != only[0]) continue;
    pp::RunStats stats;
    double s = INFINITY;
    for (int r = 0; r < repeat; ++r) s = std::min(s, seconds([&] { stats = k.run(); }));
    const double spent = stats.flops;
    double torch_s = NAN;
    if (torch) {
      std::string out = bench::run_torch("sweep --model " + dir + " --kind " + k.torch_kind + " --batch " +
                                         std::to_string(B) + " --seq " + std::to_string(T) + " --every " +
                                         std::to_string(every));
      torch_s = bench::parse_number(out, "seconds");
    }
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);  // peak so far: the model, the cache, and the largest sweep yet
    std::printf("%-36s %9.3f %12.2f %12.2f %9.1f%% %11.1f %8.1fx %6.0fx %7.0f MB\n", k.name, s, k.floor / 1e9,
                spent / 1e9, 100 * k.floor / s / 1e9 / peak, torch_s, torch_s / s, k.target, ru.ru_maxrss / 1024.0);
    std::printf("%-36s", "    time in steps:");  // where the engine's time went, by kind of step
    for (const auto& [kind, sec] : stats.seconds) std::printf(" %s %.2f s,", kind.c_str(), sec);
    // Where the peak went: the weights, the memo cache at its fullest, idle pooled buffers at their
    // most, and the rest (the sweeps' working tensors, the allocator, the program).
    const double mb = 1 << 20, model_mb = 4.0 * c.n_params() / mb, cache_mb = stats.peak_bytes / mb,
                 pool_mb = pp::buffer_pool_peak_idle_bytes() / mb, rss_mb = ru.ru_maxrss / 1024.0;
    std::printf("\n%-36s model %.0f MB + cache %.0f MB + idle pool %.0f MB + working set %.0f MB (peaks so far)\n",
                "    peak RSS:", model_mb, cache_mb, pool_mb, rss_mb - model_mb - cache_mb - pool_mb);
  }
  if (torch) std::printf("\nPyTorch timed on every %dth variant and scaled to the whole sweep.\n", every);
  return 0;
}
