#include "pathpatch/sharding.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "graph/error.hpp"
#include "graph/files.hpp"

namespace pathpatch {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxLogBytes = 1ull << 30;  // a log of a billion-cell sweep would be this big

// One line: "<part> <unit> <count> <cell>:<row 0>,<row 1>,... ...\n", the rows' values in hex. A
// part is a site name.
std::string line_of(const std::string& part, size_t unit, const UnitCells& cells) {
  std::string s = (part.empty() ? "-" : part) + " " + std::to_string(unit) + " " + std::to_string(cells.size());
  char buf[64];
  for (const UnitCell& c : cells) {
    std::snprintf(buf, sizeof buf, " %lld:", static_cast<long long>(c.cell));
    s += buf;
    for (size_t i = 0; i < c.rows.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%a", i ? "," : "", static_cast<double>(c.rows[i]));
      s += buf;
    }
  }
  return s + "\n";
}

// "<cell>:<v>,<v>,..." -> the cell; false if it is not that.
bool parse_cell(const std::string& item, UnitCell& out) {
  const size_t colon = item.find(':');
  if (colon == std::string::npos || colon + 1 == item.size()) return false;
  char* end = nullptr;
  const long long cell = std::strtoll(item.c_str(), &end, 10);
  if (end != item.c_str() + colon || cell < 0) return false;
  out.cell = cell;
  out.rows.clear();
  const char* at = item.c_str() + colon + 1;
  for (;;) {
    const float v = std::strtof(at, &end);
    if (end == at) return false;
    out.rows.push_back(v);
    if (*end == '\0') return true;
    if (*end != ',') return false;
    at = end + 1;
  }
}

// Reads one file's complete lines into `done`; a last line without its newline (a crash while
// writing it) is ignored, anything else malformed is an InputError naming the file and line.
void read_log(const fs::path& path, std::map<std::pair<std::string, size_t>, UnitCells>& done) {
  const std::string text = files::read(path, kMaxLogBytes, "unit log");
  size_t at = 0;
  for (int line_no = 1;; ++line_no) {
    const size_t end = text.find('\n', at);
    if (end == std::string::npos) return;  // nothing, or a line cut short
    std::istringstream in(text.substr(at, end - at));
    at = end + 1;
    std::string part;
    size_t unit = 0, count = 0;
    auto bad = [&](const std::string& why) {
      return InputError(path.string() + ":" + std::to_string(line_no) + ": " + why +
                        "; remove the folder to start the sweep afresh");
    };
    if (!(in >> part >> unit >> count)) throw bad("expected '<part> <unit> <count> <cell>:<value>,...'");
    UnitCells cells;
    std::string item;
    while (in >> item) {
      UnitCell c;
      if (!parse_cell(item, c)) throw bad("'" + item + "' is not <cell>:<value>,<value>,...");
      cells.push_back(std::move(c));
    }
    if (cells.size() != count) throw bad("says " + std::to_string(count) + " cells, holds " + std::to_string(cells.size()));
    done[{part == "-" ? "" : part, unit}] = std::move(cells);
  }
}

}  // namespace

UnitLogFile::UnitLogFile(const fs::path& dir, const std::string& fingerprint, Shard shard) : dir_(dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot make this folder (" + files::error_text(ec.value()) + ")");
  const fs::path stamp = dir / "experiment";
  if (files::exists(stamp)) {
    if (files::read(stamp, files::kMaxConfigBytes, "unit log stamp") != fingerprint + "\n")
      throw InputError(dir.string() + " holds the finished units of another experiment (see " + stamp.string() +
                       "); give another folder, or remove it to start afresh");
  } else {
    files::write(stamp, fingerprint + "\n");  // every process writes the same bytes
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("units-", 0) == 0 && name.size() > 10 && name.substr(name.size() - 4) == ".log")
      read_log(entry.path(), done_);
  }
  mine_ = dir / ("units-" + std::to_string(shard.index) + ".log");
  fd_ = ::open(mine_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(mine_.string() + ": cannot open for appending (" + files::error_text(errno) + ")");
  // A line cut short by a crash would run into the next one: cut it off.
  const std::string text = files::read(mine_, kMaxLogBytes, "unit log");
  const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (keep != text.size() && ::ftruncate(fd_, static_cast<off_t>(keep)) != 0)
    throw IoError(mine_.string() + ": " + files::error_text(errno));
}

UnitLogFile::~UnitLogFile() {
  if (fd_ >= 0) ::close(fd_);
}

const UnitCells* UnitLogFile::finished(const std::string& part, size_t unit) const {
  auto it = done_.find({part, unit});
  return it == done_.end() ? nullptr : &it->second;
}

void UnitLogFile::record(const std::string& part, size_t unit, const UnitCells& cells) {
  if (part.find_first_of(" \t\n") != std::string::npos)
    throw InputError("unit log: part name '" + part + "' has white space");
  const std::string line = line_of(part, unit, cells);
  // One write per line (O_APPEND), then to the disk: a unit is either whole in the log or, cut
  // short by a crash, ignored when read back.
  for (size_t done = 0; done < line.size();) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(mine_.string() + ": " + files::error_text(errno));
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) throw IoError(mine_.string() + ": " + files::error_text(errno));
  done_[{part, unit}] = cells;
}

}  // namespace pathpatch
