// Where `patch` and `paths` keep their finished units (cli/options.hpp, SweepUnits).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "graph/files.hpp"
#include "pathpatch/cli/options.hpp"

namespace fs = std::filesystem;

namespace pathpatch::cli {

namespace {

// The engine's hash_combine over bytes: plain arithmetic, the same across builds and machines.
uint64_t hash_bytes(const char* bytes, size_t n, uint64_t h = 0) {
  for (size_t i = 0; i < n; ++i) h = hash_combine(h, static_cast<unsigned char>(bytes[i]));
  return h;
}

uint64_t file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t h = 0;
  std::string chunk(1 << 16, '\0');
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0)
    h = hash_bytes(chunk.data(), static_cast<size_t>(in.gcount()), h);
  return h;
}

// What else decides the numbers of an automatic folder's units, beyond the command line: the
// folder it runs in (relative paths), the prompt file's bytes and the model's files as they are now.
std::string what_the_files_are(const std::string& model_dir, const std::string& prompts_file) {
  std::error_code ec;
  std::string s = "cwd " + fs::current_path(ec).string();
  if (!prompts_file.empty()) s += "\nprompts " + std::to_string(file_hash(prompts_file));
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const auto when = entry.last_write_time(ec).time_since_epoch().count();
    s += "\n" + entry.path().filename().string() + " " + std::to_string(entry.file_size(ec)) + " " +
         std::to_string(when);
  }
  return s;
}

// Ctrl-C during a sweep: say where its finished units are, then let the signal end the process.
// Only async-signal-safe calls here; the message is written before the handler is installed.
char stop_message[1024];
size_t stop_length = 0;
void say_where_units_are(int sig) {
  if (stop_length > 0 && ::write(STDERR_FILENO, stop_message, stop_length) < 0) {
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

// The log the sweep writes through: counts what it records, and (tests) stops the process after
// PATHPATCH_TEST_STOP_AFTER_UNITS units as a user's Ctrl-C would (tests/cli_refusals.sh).
class SweepUnits::Counted final : public UnitLog {
 public:
  Counted(UnitLog& inner, long stop_after) : inner_(inner), left_(stop_after) {}
  const UnitCells* finished(const std::string& part, size_t unit) const override {
    return inner_.finished(part, unit);
  }
  void record(const std::string& part, size_t unit, const UnitCells& cells) override {
    inner_.record(part, unit, cells);
    ++recorded;
    if (--left_ == 0) std::raise(SIGINT);
  }
  size_t recorded = 0;

 private:
  UnitLog& inner_;
  long left_;
};

SweepUnits::SweepUnits(const std::string& resume, const std::string& stamp, const std::string& model_dir,
                       const std::string& prompts_file, Shard shard, bool root, int processes)
    : root_(root) {
  std::string full_stamp = stamp;
  if (resume.empty()) {
    // With several processes each may have its own temporary folder: they keep units only in a
    // --resume folder they share.
    if (processes > 1) return;
    full_stamp += "\n" + what_the_files_are(model_dir, prompts_file);
    char name[64];
    std::snprintf(name, sizeof name, "pathpatch-units-%u-%016llx", static_cast<unsigned>(::getuid()),
                  static_cast<unsigned long long>(hash_bytes(full_stamp.data(), full_stamp.size())));
    std::error_code ec;
    const fs::path tmp = fs::temp_directory_path(ec);
    if (ec) {
      if (root_) std::cerr << "pathpatch: warning: no temporary folder ($TMPDIR): this sweep keeps no finished units\n";
      return;
    }
    folder_ = (tmp / name).string();
    if (!claim_private_folder()) return;
    automatic_ = true;
  } else {
    folder_ = resume;
  }
  file_ = std::make_unique<UnitLogFile>(folder_, full_stamp, shard);
  const char* stop = std::getenv("PATHPATCH_TEST_STOP_AFTER_UNITS");
  counted_ = std::make_unique<Counted>(*file_, stop ? std::atol(stop) : -1);
  if (root_ && file_->resumed())
    std::cerr << "pathpatch: resuming: " << file_->resumed() << " finished units read from " << folder_ << "\n";
}

SweepUnits::~SweepUnits() {
  counted_.reset();
  file_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

// The automatic folder must be the user's own (made 0700, not a link, nobody else's) and free:
// another run of the same command holds it locked while it runs.
bool SweepUnits::claim_private_folder() {
  auto give_up = [&](const std::string& why) {
    if (root_) std::cerr << "pathpatch: warning: " << why << ": this sweep keeps no finished units (give --resume)\n";
    folder_.clear();
    return false;
  };
  if (::mkdir(folder_.c_str(), 0700) != 0 && errno != EEXIST)
    return give_up(folder_ + ": cannot make this folder (" + files::error_text(errno) + ")");
  struct stat st {};
  if (::lstat(folder_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid() || (st.st_mode & 077))
    return give_up(folder_ + " is not a private folder of yours");
  lock_fd_ = ::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (lock_fd_ < 0) return give_up(folder_ + ": " + files::error_text(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    return give_up("another run of this command keeps its units in " + folder_);
  }
  return true;
}

UnitLog* SweepUnits::log() { return counted_.get(); }

void SweepUnits::announce_stop() {
  if (!file_ || !root_) return;
  const std::string text = "\npathpatch: stopped; the finished units are kept in " + folder_ +
                           (automatic_ ? ": the same command goes on from them\n"
                                       : ": run again with --resume " + folder_ + " to go on\n");
  stop_length = std::min(text.size(), sizeof stop_message);
  std::memcpy(stop_message, text.data(), stop_length);
  std::signal(SIGINT, say_where_units_are);
  std::signal(SIGTERM, say_where_units_are);
}

void SweepUnits::finish(bool succeeded) {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (!automatic_ || !root_ || !file_) return;
  const bool holds_units = file_->resumed() > 0 || counted_->recorded > 0;
  if (!succeeded && holds_units) {
    std::cerr << "pathpatch: the finished units are kept in " << folder_ << ": the same command goes on from them\n";
    return;
  }
  counted_.reset();
  file_.reset();
  std::error_code ec;
  fs::remove_all(folder_, ec);  // done, or nothing worth keeping
}

}  // namespace pathpatch::cli
