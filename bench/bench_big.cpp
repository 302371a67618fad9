// A billion-parameter checkpoint on this machine: a random Llama-3.2-1B-shaped model in BF16
// (tools/make_big_checkpoint.py; 16 layers, d_model 2048, 32 query and 8 key/value heads, vocab
// 128256, 2.5 GB on disk). Measures the load time, the peak RSS against the F32 size of the
// weights, a forward at 1 x 128 (tokens/s, % of the SGEMM rate on its own products), and path
// patching every head to the logits over 16 prompts.
//
//   build/bench/bench_big [DIR]   (default: $TMPDIR/pathpatch-llama-1b; written by the script
//                                  with /usr/bin/python3 if absent, which needs python3-torch)
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "common.hpp"
#include "graph/kernels.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

double seconds_of(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double peak_rss_gb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0 / 1024.0;
}

double rss_gb() {  // resident now, from /proc/self/statm (pages)
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
  pp::kernels::set_threads(2);
  bench::apply_gemm_option(argc, argv);
  std::printf("pathpatch billion-parameter benchmark (%s)\n", bench::env_note().c_str());
  const fs::path dir = argc > 1 && argv[1][0] != '-' ? fs::path(argv[1]) : fs::temp_directory_path() / "pathpatch-llama-1b";
  if (!fs::exists(dir / "model.safetensors")) {
    const std::string cmd = "/usr/bin/python3 " + std::string(PP_SOURCE_DIR) + "/tools/make_big_checkpoint.py " + dir.string();
    std::printf("writing the checkpoint: %s\n", cmd.c_str());
    const double s = seconds_of([&] {
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "bench_big: the checkpoint script failed (python3-torch installed?)\n");
        std::exit(1);
      }
    });
    std::printf("written in %.1f s\n", s);
  }
  const double file_gb = static_cast<double>(fs::file_size(dir / "model.safetensors")) / (1 << 30);

  // Load. The file is read into memory and widened to F32 (models/safetensors.cpp).
  const double rss_before = rss_gb();
  std::optional<pp::Model> loaded;
  const double load_s = seconds_of([&] { loaded.emplace(pp::Model::load(dir)); });
  const pp::Model& model = *loaded;
  const pp::ModelConfig& c = model.config();
  const double f32_gb = 4.0 * static_cast<double>(c.n_params()) / (1 << 30);
  std::printf("\n%s: %d layers, d_model %d, %d heads of %d (%d key/value), d_mlp %d, vocab %d: %.3f B parameters\n",
              c.family_name(), c.n_layers, c.d_model, c.n_heads, c.d_head, c.n_kv_heads, c.d_mlp, c.vocab_size,
              c.n_params() / 1e9);
  std::printf("file %.2f GiB BF16; F32 weights %.2f GiB\n", file_gb, f32_gb);
  std::printf("load            %8.1f s   (%.2f GiB/s of file)  RSS %.2f GiB (%.2f before), peak %.2f GiB = %.2fx the F32 weights\n",
              load_s, file_gb / load_s, rss_gb(), rss_before, peak_rss_gb(), peak_rss_gb() / f32_gb);

  // What keeping the weights in BF16 and widening them per product would cost: widening every
  // weight once per forward, measured on a 64M-element slice (best of three).
  {
    const int64_t n = int64_t{1} << 26;
    std::vector<uint16_t> raw(n, 0x3f80);
    pp::Tensor wide = pp::Tensor::uninitialized({n});
    float* out = wide.data_mut();
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep)
      best = std::min(best, seconds_of([&] {
        for (int64_t i = 0; i < n; ++i) out[i] = pp::bf16_to_f32(raw[i]);
      }));
    std::printf("widen BF16->F32 %8.2f s per forward if done per product (%.1f G elements/s on one thread)\n",
                best * static_cast<double>(c.n_params()) / n, n / best / 1e9);
  }

  // Forward 1 x 128.
  const int64_t T = 128;
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < T; ++t) ids.push_back(static_cast<int32_t>((t * 104729 + 17) % c.vocab_size));
  const pp::Batch one = pp::Batch::from_rows({ids});
  double flops = 0;
  const double fwd_s = bench::time_median(
      [&] { flops = pp::forward(model, one).stats.flops + pp::kernels::gemm_flops(T, c.vocab_size, c.d_model); }, 6.0, 3);
  std::printf("forward 1x%ld   %8.2f s   %.0f tokens/s, %.1f GFLOP/s, peak %.2f GiB\n", T, fwd_s, T / fwd_s,
              flops / fwd_s / 1e9, peak_rss_gb());

  // Path patching: every head -> logits over 16 prompts of 16 tokens, corrupted at the middle.
  const int64_t B = 16, S = 16;
  std::vector<std::vector<int32_t>> rows(B), bad;
  std::mt19937 rng(7);
  for (auto& r : rows)
    for (int64_t t = 0; t < S; ++t) r.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  bad = rows;
  for (auto& r : bad) r[S / 2] = (r[S / 2] + 1) % c.vocab_size;
  const pp::Batch clean = pp::Batch::from_rows(rows), corrupt = pp::Batch::from_rows(bad);
  const pp::Metric metric = pp::Metric::logit_diff(std::vector<int32_t>(B, 100), std::vector<int32_t>(B, 200));
  pp::SweepResult sweep;
  const double sweep_s =
      seconds_of([&] { sweep = pp::sweep_senders(model, clean, corrupt, {pp::Receiver::logits()}, metric); });
  std::printf("path patching   %8.1f s   %d senders -> logits, %ldx%ld prompts: %.1f senders/s, %.0f GFLOP spent, peak %.2f GiB = %.2fx the F32 weights\n",
              sweep_s, c.n_layers * c.n_heads, B, S, c.n_layers * c.n_heads / sweep_s, sweep.stats.flops / 1e9,
              peak_rss_gb(), peak_rss_gb() / f32_gb);

  // Last, since its buffers (a 1 GiB copy of the unembedding among them) would count in the peaks.
  const bench::GemmFloor floor = bench::gemm_floor([&] { pp::forward(model, one); });
  std::printf("SGEMM on the forward's %zu products (%zu distinct): %.1f GFLOP/s; the forward reaches %.0f%% of it\n",
              floor.calls, floor.distinct, floor.gflops(), 100 * floor.seconds / fwd_s);
  return 0;
}
