#pragma once
// Sweeps over the processes of an MPI job (Open MPI), in the library pathpatch::distributed,
// built when MPI is installed.
//
// Each process loads the model once, keeps its own cache, and computes its Shard of the sweep's
// units (sharding.hpp); the cells meet on rank 0, equal bit for bit to the one-process result.
// Nothing is sent while the units are computed: at the end each process sends its cells (an index
// and a float each) to rank 0, so a sweep of C cells moves 12 C bytes in all.
//
//   pathpatch::distributed::Job job(&argc, &argv);   // MPI_Init under mpirun; a job of one without
//   pathpatch::PatchingOptions o;
//   o.shard = job.shard();
//   auto r = job.run([&] { return pathpatch::activation_patching(model, clean, corrupt, sites, metric, o); });
//   if (job.root()) ...                               // r is the whole result on rank 0
//
// `mpirun -np N pathpatch patch|paths ...` does this for the command line.
#include <exception>
#include <map>
#include <string>

#include "graph/error.hpp"
#include "pathpatch/patching.hpp"

namespace pathpatch::distributed {

// One process of the job failed; every process gets this, naming the process and its error.
struct RankError : Error {
  RankError(int rank, int size, const std::string& message);
  int rank;
};

class Job {
 public:
  // Joins the MPI job this process was started in (MPI_Init), or, started without mpirun, is a
  // job of one that calls no MPI at all. MPI_Finalize when it ends. One per process.
  Job(int* argc, char*** argv);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  Shard shard() const { return {rank_, size_}; }

  // This process failed on its own (the others may be waiting for it): ends every process of the
  // job with `code` (MPI_Abort). In a job of one, returns.
  void fail(int code);

  // Collective: if any process passes a failure, every process throws RankError with the message
  // of the lowest failed rank. A job of one rethrows the failure as it is.
  void check(const std::exception_ptr& failure);
  // Collective: the cells each process filled, copied into rank 0's result (its stats summed);
  // the other processes' results are left as they are.
  void gather(SweepResult& result);
  void gather(std::map<std::string, SweepResult>& results);

  // The usual shape of a sharded sweep: run it on every process, check, gather.
  template <class Sweep>
  auto run(Sweep&& sweep) -> decltype(sweep()) {
    decltype(sweep()) out{};
    std::exception_ptr failure;
    try {
      out = sweep();
    } catch (...) {
      failure = std::current_exception();
    }
    check(failure);
    gather(out);
    return out;
  }

 private:
  bool mpi_ = false;  // started by mpirun: MPI is initialised
  int rank_ = 0, size_ = 1;
};

// Whether this process was started by mpirun (Open MPI's or a PMI launcher's variables are set).
bool launched_by_mpirun();

}  // namespace pathpatch::distributed
