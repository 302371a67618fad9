#pragma once
// Whole files in and out, with the checks every reader and writer of pathpatch needs.
//
// Reading: only regular files, and only up to a stated size (a config.json that is /dev/zero, a
// FIFO or a 40 GB file is refused before it is read). Writing: all or nothing: into a temporary
// file beside the destination, every write, the flush and the close checked, then renamed over it,
// so a full disk or an I/O error is an IoError naming the path and leaves nothing half-written
// under the final name. A destination that is a device or a FIFO is written in place, each write
// checked. Every error says what happened in words ("permission denied", "is a directory", "no
// space left on device") and names the path.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace pathpatch::files {

// Size limits of the files pathpatch reads whole.
inline constexpr uint64_t kMaxConfigBytes = 16ull << 20;      // config.json, shard indexes, circuit.json
inline constexpr uint64_t kMaxTokenizerBytes = 256ull << 20;  // vocab.json, merges.txt, tokenizer.json/.model

// The contents of the regular file at `path`, which must hold at most `limit` bytes. `what` says
// what the file is for ("config", "vocabulary") in the IoError.
std::string read(const std::filesystem::path& path, uint64_t limit, std::string_view what);

// Checks that `path` is a regular file of at most `limit` bytes, without reading it; returns its
// size. For files a library reads by itself (sentencepiece) or in pieces (safetensors).
uint64_t check_regular(const std::filesystem::path& path, uint64_t limit, std::string_view what);

// Opens a regular file for reading (O_RDONLY | O_CLOEXEC), checked as check_regular does; returns
// the descriptor and sets *size.
int open_regular(const std::filesystem::path& path, uint64_t limit, std::string_view what, uint64_t* size);

// Whether something exists at `path` (a broken symbolic link counts; a loop of them is an IoError).
bool exists(const std::filesystem::path& path);

// Writes `bytes` to `path`, all or nothing (see the top of this file).
void write(const std::filesystem::path& path, std::string_view bytes);

// A file written in pieces, all or nothing: nothing appears under `path` until commit().
class Writer {
 public:
  explicit Writer(std::filesystem::path path);
  ~Writer();  // without commit(): the temporary file is removed
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void write(const void* data, size_t bytes);
  void commit();  // flush, close, rename; IoError if any of it fails

 private:
  std::filesystem::path path_, temp_, temp_dest_;  // as given; the temporary file; where it goes
  int fd_ = -1;
  bool in_place_ = false;  // a device or FIFO: written directly
};

// "permission denied", "no such file or directory", ... for an errno value.
std::string error_text(int err);

}  // namespace pathpatch::files
