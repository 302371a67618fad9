// Sweep (c) of bench_sweeps (activation patching of every head's z at every position, GPT-2
// small shape, batch 8 x 16) split over the processes of an MPI job, one BLAS thread each.
// Run by bench/mpi_scaling.sh with 1 and 2 processes; prints this job's wall time and
// experiments per second, and the bytes of cells gathered on rank 0 (12 per cell).
//
//   mpirun -np N build/bench/bench_mpi
#include <chrono>
#include <cstdio>

#include "common.hpp"
#include "graph/kernels.hpp"
#include "pathpatch/distributed.hpp"

namespace pp = pathpatch;

int main(int argc, char** argv) {
  pp::distributed::Job job(&argc, &argv);
  pp::kernels::set_threads(1);
  const int64_t B = 8, T = 16;
  const pp::Model model = bench::gpt2_small().random();
  const auto [clean, corrupt, metric] = bench::inputs(model.config(), B, T);
  pp::Sites sites;
  sites.names = {"z"};
  sites.positions = pp::SitePositions::Each;
  pp::PatchingOptions o;
  o.direction = pp::Direction::Noise;
  o.shard = job.shard();

  job.check(nullptr);  // start together
  const auto t0 = std::chrono::steady_clock::now();
  auto result = job.run([&] { return pp::activation_patching(model, clean, corrupt, sites, metric, o); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (job.root()) {
    const pp::SweepResult& z = result["z"];
    std::printf("processes=%d seconds=%.2f experiments=%lld experiments_per_s=%.1f gflop=%.0f gathered_bytes=%lld\n",
                job.size(), s, static_cast<long long>(z.values.numel()), z.values.numel() / s, z.stats.flops / 1e9,
                static_cast<long long>(z.filled.size()) * 12);
  }
  return 0;
}
