// libFuzzer target: the CLI's file handling. The input is split into a config.json and a
// model.safetensors, written into a scratch model folder, and pp::load_model reads the folder.
//   byte 0      bit 0: write config.json; bit 1: write model.safetensors
//   bytes 1-2   length of config.json (little-endian, clipped to what is left)
//   the rest    config.json's bytes, then model.safetensors's
// Only pathpatch::Error may escape load_model; any other exception (std::bad_alloc included: a
// config must not make the loader allocate more than the files hold), a crash or a sanitizer
// report is a finding.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "graph/error.hpp"
#include "models/model.hpp"
#include "scratch_dir.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

// The model folder each input is written into, removed at exit.
const std::filesystem::path& scratch_dir() {
  static pathpatch::fuzz::ScratchDir dir("pp-fuzz-model");
  return dir.path();
}

void put(const fs::path& path, bool present, const uint8_t* data, size_t size) {
  std::error_code ec;
  fs::remove(path, ec);
  if (!present) return;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const unsigned mode = data[0];
  size_t config_len = data[1] | (size_t(data[2]) << 8);
  data += 3;
  size -= 3;
  if (config_len > size) config_len = size;
  const fs::path& dir = scratch_dir();
  put(dir / "config.json", mode & 1, data, config_len);
  put(dir / "model.safetensors", mode & 2, data + config_len, size - config_len);
  try {
    pp::Model m = pp::load_model(dir);
    volatile size_t n = m.config().summary().size() + m.graph().nodes().size();
    (void)n;
  } catch (const pp::Error&) {
  }
  return 0;
}
