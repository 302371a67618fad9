#pragma once
// A scratch folder per fuzzing process (in /dev/shm when there is one, so files cost no disk I/O),
// removed at exit. The targets that read files write each input into it.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace pathpatch::fuzz {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    const std::string base = std::filesystem::exists("/dev/shm") ? std::string("/dev/shm")
                                                                  : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/" + prefix + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace pathpatch::fuzz
