// Sweeps split over the processes of an MPI job (pathpatch/distributed.hpp), against the same
// sweeps in one process: equal bit for bit; a rank that throws ends the sweep on every rank with
// its name; the finished units are kept and a second run resumes from them to the same bits.
//
//   mpirun -np N build/tests/pathpatch_mpi_tests GOLDEN_DIR SCRATCH_DIR   (ctest runs N = 2 and 3)
//
// Every process uses one BLAS thread: OpenBLAS's results depend on its thread count, so the
// single-process reference is computed with one thread too.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "graph/kernels.hpp"
#include "pathpatch/distributed.hpp"
#include "pathpatch/pathpatch.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool ok, const std::string& what, const pp::distributed::Job& job) {
  if (ok) {
    if (job.root()) std::printf("ok    %s\n", what.c_str());
    return;
  }
  ++failures;
  std::printf("FAIL  %s (rank %d of %d)\n", what.c_str(), job.rank(), job.size());
}

bool same_bits(const pp::Tensor& a, const pp::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }
pp::Metric logit_diff() { return pp::Metric::logit_diff({40, 41}, {50, 51}); }

// Activation patching of z and resid_pre at each position: one unit per position.
std::map<std::string, pp::SweepResult> patching(const pp::Model& m, pp::Shard shard, pp::UnitLog* log = nullptr,
                                                pp::Progress progress = {}) {
  pp::Sites sites;
  sites.names = {"z", "resid_pre"};
  sites.positions = pp::SitePositions::Each;
  pp::PatchingOptions o;
  o.shard = shard;
  o.log = log;
  o.progress = std::move(progress);
  return pp::activation_patching(m, clean(), corrupt(), sites, logit_diff(), o);
}

}  // namespace

int main(int argc, char** argv) {
  pp::distributed::Job job(&argc, &argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: mpirun -np N %s GOLDEN_DIR SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  pp::kernels::set_threads(1);
  const fs::path golden = argv[1], scratch = argv[2];
  const std::string n = std::to_string(job.size()) + " ranks";
  if (job.root()) std::printf("%s\n", n.c_str());

  for (const char* name : {"gpt2", "llama-gqa"}) {
    const pp::Model m = pp::load_model(golden / name);
    auto shared = job.run([&] { return patching(m, job.shard()); });
    pp::PathPatchingOptions po;
    po.chunk = 3;
    po.mlps_on_path = true;
    auto senders = job.run([&] {
      pp::PathPatchingOptions o = po;
      o.shard = job.shard();
      return pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff(), o, true);
    });
    if (job.root()) {  // the same sweeps in this one process
      auto alone = patching(m, {});
      for (const char* site : {"z", "resid_pre"})
        check(same_bits(shared[site].values, alone[site].values) &&
                  same_bits(shared[site].per_example, alone[site].per_example) && shared[site].filled == alone[site].filled,
              std::string(name) + ": activation patching of " + site + " over " + n +
                  " equals one process, bit for bit (means and rows)",
              job);
      const auto one = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff(), po, true);
      check(same_bits(senders.values, one.values) && same_bits(senders.per_example, one.per_example),
            std::string(name) + ": path patching senders over " + n + " equals one process, bit for bit", job);
    }
  }

  // The last rank throws after its first unit; every rank learns which rank failed and why.
  const pp::Model m = pp::load_model(golden / "gpt2");
  const fs::path dir = scratch / ("resume-" + std::to_string(job.size()));
  if (job.root()) fs::remove_all(dir);
  job.check(nullptr);  // a barrier: the folder is gone before anyone opens it
  const int bad = job.size() - 1;
  try {
    pp::UnitLogFile log(dir, "mpi test", job.shard());
    int units = 0;
    job.run([&] {
      return patching(m, job.shard(), &log, [&](size_t, size_t) {
        if (job.rank() == bad && ++units == 1) throw pp::InputError("injected failure");
      });
    });
    check(false, "a failing rank stops the sweep", job);
  } catch (const pp::distributed::RankError& e) {
    check(e.rank == bad && std::string(e.what()).find("injected failure") != std::string::npos &&
              std::string(e.what()).find("rank " + std::to_string(bad) + " of") != std::string::npos,
          std::string("every rank learns that rank ") + std::to_string(bad) + " failed: " + e.what(), job);
  }
  // Resumed: the units finished before the failure are read back, the rest computed.
  pp::UnitLogFile log(dir, "mpi test", job.shard());
  size_t computed = 0;
  auto resumed = job.run([&] { return patching(m, job.shard(), &log, [&](size_t done, size_t) { computed = done; }); });
  check(log.resumed() >= 1, "the finished units are kept (" + std::to_string(log.resumed()) + " read back)", job);
  if (job.root()) {
    auto alone = patching(m, {});
    check(same_bits(resumed["z"].values, alone["z"].values) && same_bits(resumed["resid_pre"].values, alone["resid_pre"].values),
          "the resumed sweep equals one process, bit for bit", job);
  }
  int all = failures;
  if (pp::distributed::launched_by_mpirun()) MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (job.root()) std::printf("%s\n", all ? "FAILED" : "all passed");
  return all ? 1 : 0;
}
