// libFuzzer target: the safetensors reader on arbitrary bytes.
//   1. parse_safetensors_header on the whole input as header text, against an unbounded data section:
//      every entry it accepts must be self-consistent (bytes = elements x dtype size, no wrap-around).
//   2. the input as a file: SafetensorsFile::open, then load() of every tensor, reading every element.
// Only pathpatch::Error may escape the reader; anything else (or an ASan/UBSan report) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "graph/error.hpp"
#include "models/safetensors.hpp"
#include "scratch_dir.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

// A scratch folder per process, removed at exit; each input is written to model.safetensors in it.
const std::filesystem::path& scratch_dir() {
  static pathpatch::fuzz::ScratchDir dir("pp-fuzz-st");
  return dir.path();
}

// The entries' invariants, checked independently of the parser's own arithmetic.
void check_entries(const std::vector<pp::TensorEntry>& entries, uint64_t data_size) {
  for (const pp::TensorEntry& e : entries) {
    if (e.begin > e.end || e.end > data_size) __builtin_trap();
    unsigned __int128 bytes = pp::dtype_size(e.dtype);
    bool zero = false;
    for (int64_t d : e.shape) {
      if (d < 0) __builtin_trap();
      if (d == 0) zero = true;
    }
    for (int64_t d : e.shape) {
      if (zero) break;
      bytes *= static_cast<uint64_t>(d);
      if (bytes > e.end - e.begin) __builtin_trap();  // more bytes than the entry spans
    }
    if (zero) bytes = 0;
    if (bytes != e.end - e.begin) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);

  // 1. The header parser alone.
  try {
    std::map<std::string, std::string> meta;
    check_entries(pp::parse_safetensors_header(bytes, std::numeric_limits<uint64_t>::max(), "fuzz", &meta),
                  std::numeric_limits<uint64_t>::max());
  } catch (const pp::Error&) {
  }

  // 2. The input as a file.
  static const fs::path path = scratch_dir() / "model.safetensors";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) std::abort();
  }
  try {
    pp::SafetensorsFile f = pp::SafetensorsFile::open(path);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
    check_entries(f.entries(), size - 8 - header_len);
    for (const pp::TensorEntry& e : f.entries()) {
      if (f.find(e.name) == nullptr) __builtin_trap();
      try {
        pp::Tensor t = f.load(e);
        if (t.shape() != e.shape) __builtin_trap();
        volatile float sink = 0;
        const float* p = t.data();
        for (int64_t i = 0; i < t.numel(); ++i) sink = sink + p[i];  // ASan checks every read
      } catch (const pp::WeightError&) {  // a dtype pathpatch does not load
      }
    }
  } catch (const pp::Error&) {
  }
  return 0;
}
