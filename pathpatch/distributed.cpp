#include "pathpatch/distributed.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace pathpatch::distributed {

namespace {

// An MPI call that fails here is a broken job (a dead peer, a network error): MPI's default
// handler aborts the whole job with its own message, which is what we want.
MPI_Comm world() { return MPI_COMM_WORLD; }

std::string message_of(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

RankError::RankError(int r, int size, const std::string& message)
    : Error("rank " + std::to_string(r) + " of " + std::to_string(size) + " failed: " + message), rank(r) {}

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

Job::Job(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) throw InputError("distributed::Job: MPI is initialised already; make one Job per process");
  MPI_Init(argc, argv);
  mpi_ = true;
  MPI_Comm_rank(world(), &rank_);
  MPI_Comm_size(world(), &size_);
}

Job::~Job() {
  if (mpi_) MPI_Finalize();
}

void Job::fail(int code) {
  if (mpi_ && size_ > 1) MPI_Abort(world(), code);
}

void Job::check(const std::exception_ptr& failure) {
  if (!mpi_ || size_ == 1) {  // alone: the failure as it is
    if (failure) std::rethrow_exception(failure);
    return;
  }
  // The lowest failed rank, or size_ if none failed.
  int mine = failure ? rank_ : size_, first = size_;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world());
  if (first == size_) return;
  std::string text = rank_ == first ? message_of(failure) : std::string();
  int length = static_cast<int>(text.size());
  MPI_Bcast(&length, 1, MPI_INT, first, world());
  text.resize(static_cast<size_t>(length));
  MPI_Bcast(text.data(), length, MPI_CHAR, first, world());
  throw RankError(first, size_, text);
}

void Job::gather(SweepResult& r) {
  if (!mpi_ || size_ == 1) return;
  // Each process sends its cells and their rows; rank 0 writes them in and takes each cell's
  // value as the rows' mean, the very bits the sending process computed.
  const int64_t B = r.per_example.size(-1);
  const int n = static_cast<int>(r.filled.size());
  std::vector<int64_t> cells(r.filled.begin(), r.filled.end());
  std::vector<float> rows;
  for (int64_t c : cells) rows.insert(rows.end(), r.per_example.data() + c * B, r.per_example.data() + (c + 1) * B);
  std::vector<int> counts(root() ? size_ : 0), offsets(root() ? size_ : 0), row_counts, row_offsets;
  MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world());
  int total = 0;
  for (int i = 0; i < static_cast<int>(counts.size()); ++i) {
    offsets[i] = total;
    total += counts[i];
    row_counts.push_back(static_cast<int>(counts[i] * B));
    row_offsets.push_back(static_cast<int>(offsets[i] * B));
  }
  std::vector<int64_t> all_cells(static_cast<size_t>(total));
  std::vector<float> all_rows(static_cast<size_t>(total * B));
  MPI_Gatherv(cells.data(), n, MPI_INT64_T, all_cells.data(), counts.data(), offsets.data(), MPI_INT64_T, 0, world());
  MPI_Gatherv(rows.data(), static_cast<int>(n * B), MPI_FLOAT, all_rows.data(), row_counts.data(), row_offsets.data(),
              MPI_FLOAT, 0, world());
  // The work done, summed over the processes.
  double work[3] = {r.stats.flops, static_cast<double>(r.stats.computed), static_cast<double>(r.stats.cache_hits)};
  double sum[3] = {0, 0, 0};
  MPI_Reduce(work, sum, 3, MPI_DOUBLE, MPI_SUM, 0, world());
  if (!root()) return;
  const int64_t numel = r.values.numel();
  Tensor values = r.values.clone(), per_example = r.per_example.clone();
  for (int i = 0; i < total; ++i) {
    const int64_t c = all_cells[i];
    PP_CHECK(c >= 0 && c < numel, "a process sent a cell outside the sweep");
    std::vector<float> cell_rows(all_rows.begin() + i * B, all_rows.begin() + (i + 1) * B);
    values.data_mut()[c] = metric_mean(cell_rows);
    std::copy(cell_rows.begin(), cell_rows.end(), per_example.data_mut() + c * B);
  }
  r.values = values;
  r.per_example = per_example;
  std::sort(all_cells.begin(), all_cells.end());
  r.filled = all_cells;
  r.stats.flops = sum[0];
  r.stats.computed = static_cast<uint64_t>(sum[1]);
  r.stats.cache_hits = static_cast<uint64_t>(sum[2]);
}

void Job::gather(std::map<std::string, SweepResult>& results) {
  for (auto& [name, r] : results) gather(r);  // the same names, in the same order, on every process
}

}  // namespace pathpatch::distributed
