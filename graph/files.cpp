#include "graph/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "graph/error.hpp"

namespace pathpatch::files {

namespace fs = std::filesystem;

std::string error_text(int err) {
  switch (err) {
    case ENOENT: return "no such file or directory";
    case EACCES:
    case EPERM: return "permission denied";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "a component of the path is not a directory";
    case ELOOP: return "too many levels of symbolic links";
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case EIO: return "input/output error";
    case EROFS: return "read-only file system";
    case ENAMETOOLONG: return "file name too long";
    default: return std::strerror(err);
  }
}

namespace {

[[noreturn]] void fail(const fs::path& path, std::string_view what, const std::string& why) {
  throw IoError(path.string() + ": cannot read the " + std::string(what) + " (" + why + ")");
}

std::string bytes_text(uint64_t n) {
  if (n >= (1ull << 30)) return std::to_string(n >> 30) + " GiB";
  if (n >= (1ull << 20)) return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

// The checks of check_regular on an open descriptor.
uint64_t checked_size(int fd, const fs::path& path, uint64_t limit, std::string_view what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(path, what, error_text(errno));
  if (S_ISDIR(st.st_mode)) fail(path, what, "is a directory");
  if (!S_ISREG(st.st_mode))
    fail(path, what, S_ISFIFO(st.st_mode) ? "a FIFO, not a regular file" : "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > limit)
    fail(path, what, "it holds " + bytes_text(size) + ", more than the " + bytes_text(limit) + " such a file may hold");
  return size;
}

}  // namespace

int open_regular(const fs::path& path, uint64_t limit, std::string_view what, uint64_t* size) {
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer; the check below refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, what, error_text(errno));
  try {
    const uint64_t n = checked_size(fd, path, limit, what);
    if (size) *size = n;
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

uint64_t check_regular(const fs::path& path, uint64_t limit, std::string_view what) {
  uint64_t size = 0;
  ::close(open_regular(path, limit, what, &size));
  return size;
}

std::string read(const fs::path& path, uint64_t limit, std::string_view what) {
  uint64_t size = 0;
  const int fd = open_regular(path, limit, what, &size);
  std::string out(size, '\0');
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, out.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : 0;
      ::close(fd);
      fail(path, what, err ? error_text(err) : "the file shrank while it was read");
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return out;
}

bool exists(const fs::path& path) {
  std::error_code ec;
  const fs::file_status s = fs::status(path, ec);
  if (ec && ec.value() != ENOENT && ec.value() != ENOTDIR) throw IoError(path.string() + ": " + error_text(ec.value()));
  if (fs::exists(s)) return true;
  return fs::is_symlink(fs::symlink_status(path, ec));  // a broken link: there, and unreadable
}

// ---- Writing -------------------------------------------------------------------------------

namespace {

[[noreturn]] void write_failed(const fs::path& path, int err) {
  throw IoError(path.string() + ": cannot write (" + error_text(err) + ")");
}

void write_all(int fd, const void* data, size_t bytes, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) write_failed(path, n < 0 ? errno : EIO);
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

// Where to write: symbolic links are followed, so the link stays and its target is replaced.
fs::path destination(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(path, ec))) return path;
  fs::path target = fs::read_symlink(path, ec);
  if (ec) write_failed(path, ec.value());
  if (target.is_relative()) target = path.parent_path() / target;
  // Resolve a chain of links (a loop is an error).
  for (int hops = 0; fs::is_symlink(fs::symlink_status(target, ec)); ++hops) {
    if (hops > 40) write_failed(path, ELOOP);
    fs::path next = fs::read_symlink(target, ec);
    if (ec) write_failed(path, ec.value());
    target = next.is_relative() ? target.parent_path() / next : next;
  }
  return target;
}

}  // namespace

Writer::Writer(fs::path path) : path_(std::move(path)) {
  const fs::path dest = destination(path_);
  struct stat st {};
  if (::stat(dest.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) write_failed(path_, EISDIR);
    in_place_ = !S_ISREG(st.st_mode);  // a device or FIFO: there is no file to replace
  }
  if (in_place_) {
    fd_ = ::open(dest.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) write_failed(path_, errno);
    return;
  }
  static std::atomic<unsigned> counter{0};
  const fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  std::string name = ".";  // appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "." + std::string
  name += dest.filename().string();
  name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  temp_ = dir / name;
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) write_failed(path_, errno);
  temp_dest_ = dest;
}

Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) ::unlink(temp_.c_str());
}

void Writer::write(const void* data, size_t bytes) { write_all(fd_, data, bytes, path_); }

void Writer::commit() {
  if (!in_place_ && ::fsync(fd_) != 0) write_failed(path_, errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) write_failed(path_, errno);
  if (in_place_) return;
  if (::rename(temp_.c_str(), temp_dest_.c_str()) != 0) write_failed(path_, errno);
  temp_.clear();
}

void write(const fs::path& path, std::string_view bytes) {
  Writer w(path);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

}  // namespace pathpatch::files
