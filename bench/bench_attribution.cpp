// Gradients on a GPT-2-small-shaped model, batch 8 x 16 tokens (the benchmark), against
// baselines measured in this run:
//   - one forward (pp::forward, no logits: the metric reads two of them): the unit "forward-times";
//   - attribution patching (AtP) of every (layer, position, head) z, noising, against exact
//     activation patching of the same cells (bench_sweeps' sweep (c)) and against PyTorch's AtP done
//     the usual way (bench/torch_reference.py atp: a clean forward with hooks keeping z and its
//     gradient, one backward, a corrupted forward);
//   - EAP-IG with m = 5 over the whole edge graph;
// (the exact sweep runs last: what it leaves in memory would slow what came after it).
//   - what the backward keeps (Gradients::saved_bytes) and the process's peak RSS.
//
//   build/bench/bench_attribution [--no-exact]
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "common.hpp"
#include "graph/kernels.hpp"

namespace pp = pathpatch;

namespace {

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  bool exact = true;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--no-exact") == 0) exact = false;
  pp::kernels::set_threads(2);
  bench::apply_gemm_option(argc, argv);
  std::printf("pathpatch gradient benchmark (%s)\n", bench::env_note().c_str());
  const int64_t B = 8, T = 16;
  pp::Model model = bench::gpt2_small().random();
  const pp::ModelConfig& c = model.config();
  const auto [clean, corrupt, metric] = bench::inputs(c, B, T);  // bench_sweeps' and the PyTorch script's

  pp::RunOptions plain;
  plain.logits = false;
  const double forward_s = bench::time_median([&] { pp::forward(model, clean, plain); });
  std::printf("one forward (no logits), %ldx%ld: %.2f ms (the unit of \"forward-times\")\n\n", B, T, 1e3 * forward_s);

  pp::Sites z;
  z.names = {"z"};
  z.positions = pp::SitePositions::Each;
  pp::PatchingOptions noise;
  noise.direction = pp::Direction::Noise;
  pp::SweepResult atp;
  const double atp_s = bench::time_median([&] { atp = pp::attribution_patching(model, clean, corrupt, z, metric, noise)["z"]; });
  const double atp_rss = peak_rss_mb();
  const double grad_s = bench::time_median([&] { pp::gradients(model, clean, metric, {"z"}); });
  const pp::Gradients g = pp::gradients(model, clean, metric, {"z"});

  std::printf("%-44s %9s %14s\n", "", "seconds", "forward-times");
  std::printf("%-44s %9.4f %14.2f\n", "gradients of every z (forward + backward)", grad_s, grad_s / forward_s);
  std::printf("%-44s %9.4f %14.2f   (aim: <= 3)\n", "AtP, every (layer, position, head) z", atp_s, atp_s / forward_s);
  const std::string torch_out = bench::run_torch("--probe");
  if (!torch_out.empty()) {
    const std::string dir = bench::export_for_torch(bench::gpt2_small(), 1).string();
    const double torch_s = bench::parse_number(
        bench::run_torch("atp --model " + dir + " --batch " + std::to_string(B) + " --seq " + std::to_string(T)), "seconds");
    std::printf("%-44s %9.4f %14.2f   AtP speed-up over PyTorch: %.2fx\n", "PyTorch AtP (hooks, one backward)", torch_s,
                torch_s / forward_s, torch_s / atp_s);
  } else {
    std::printf("PyTorch AtP: python3-torch is not installed (scripts/setup.sh --with-torch)\n");
  }
  pp::EdgeGraph eap;
  const double eap_ig_s = bench::time_median([&] { eap = pp::edge_attribution(model, clean, corrupt, metric); }, 6.0, 3);
  std::printf("%-44s %9.4f %14.2f   (aim: <= 15; %lld edges)\n", "EAP-IG, m = 5, every edge", eap_ig_s,
              eap_ig_s / forward_s, static_cast<long long>(eap.n_edges()));
  pp::EdgeAttributionOptions one;
  one.method = pp::EdgeMethod::Eap;
  const double eap_s = bench::time_median([&] { pp::edge_attribution(model, clean, corrupt, metric, one); }, 3.0, 3);
  std::printf("%-44s %9.4f %14.2f\n", "EAP, every edge", eap_s, eap_s / forward_s);
  if (exact) {
    pp::SweepResult truth;
    const double exact_s = bench::time_median(
        [&] { truth = pp::activation_patching(model, clean, corrupt, z, metric, noise)["z"]; }, 1.0, 1);
    const pp::Agreement a = pp::agreement(atp, truth);
    std::printf("%-44s %9.4f %14.2f   AtP is %.0fx faster; correlation of the %lld changes %.3f\n",
                "exact activation patching, the same cells", exact_s, exact_s / forward_s, exact_s / atp_s,
                static_cast<long long>(a.cells), a.correlation);
  }
  std::printf("\nmemory: the backward of every z keeps %.1f MB (activations of all 12 layers); peak RSS %.0f MB "
              "after AtP, %.0f MB at the end (weights %.0f MB)\n",
              g.saved_bytes / 1048576.0, atp_rss, peak_rss_mb(), 4.0 * c.n_params() / 1048576.0);
  return 0;
}
