#pragma once
// Sweeps in units: split over processes, and resumed after a stop.
//
// A sweep plans all its experiments together, then computes them in units (chunks of
// experiments stacked along the batch). Every unit starts from the same state: the cache as the
// plain runs and the planning left it. So a unit computes the same bits whichever other units the
// process computed before it, and a sweep split over processes (each computing a Shard of the
// units) merges into exactly the single-process result. pathpatch/distributed.hpp does that over
// MPI; UnitLogFile keeps the finished units so that a stopped sweep resumes where it stopped.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pathpatch {

// The units this process computes: unit u falls to process u % count.
struct Shard {
  int index = 0;
  int count = 1;
  bool owns(size_t unit) const { return count <= 1 || static_cast<int>(unit % static_cast<size_t>(count)) == index; }
};

// One cell of a finished unit: its flat index in the sweep's values, and the metric on each batch
// row (the cell's value is their mean, metric_mean in metrics.hpp).
struct UnitCell {
  int64_t cell = 0;
  std::vector<float> rows;
  bool operator==(const UnitCell& o) const = default;
};
using UnitCells = std::vector<UnitCell>;

// Where finished units are kept. `part` tells the sweeps of one call apart (the site name in
// activation patching; "" in path patching).
class UnitLog {
 public:
  virtual ~UnitLog() = default;
  // The cells of a unit finished earlier, or null.
  virtual const UnitCells* finished(const std::string& part, size_t unit) const = 0;
  // Called as each unit finishes, before the next starts.
  virtual void record(const std::string& part, size_t unit, const UnitCells& cells) = 0;
};

// A UnitLog in a folder: each process appends the units it finishes to its own file
// (units-<index>.log, one line per unit, each cell's rows as floats in hex so that they read back
// exactly), and reads
// every process's file when it opens, so a job resumed with another number of processes still
// finds every finished unit. The folder is stamped with the experiment (`fingerprint`: model,
// inputs, sweep and options); another experiment's folder is refused (InputError). A line cut
// short by a crash is ignored.
class UnitLogFile : public UnitLog {
 public:
  UnitLogFile(const std::filesystem::path& dir, const std::string& fingerprint, Shard shard);
  ~UnitLogFile() override;
  UnitLogFile(const UnitLogFile&) = delete;
  UnitLogFile& operator=(const UnitLogFile&) = delete;

  const UnitCells* finished(const std::string& part, size_t unit) const override;
  void record(const std::string& part, size_t unit, const UnitCells& cells) override;
  size_t resumed() const { return done_.size(); }  // units read back when it opened

 private:
  std::filesystem::path dir_;
  std::filesystem::path mine_;
  int fd_ = -1;
  std::map<std::pair<std::string, size_t>, UnitCells> done_;
};

}  // namespace pathpatch
