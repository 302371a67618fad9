#pragma once
// Reading and writing the safetensors format (https://huggingface.co/docs/safetensors).
//
// A file is: 8 bytes little-endian header length N, N bytes of JSON, then the data. Each JSON entry
// names a tensor with its dtype, shape and [begin, end) byte offsets into the data. Everything in
// the header is checked against the file before any byte is read: one entry per name, offsets
// inside the data, no overlaps, bytes = elements x dtype size.
//
// Tensors are read into memory when loaded (F16 and BF16 converted to F32), so nothing another
// process does to the file afterwards can change a run. WeightAccess::Map instead uses F32 tensors
// in place from a memory mapping: less memory and a faster start, but a file rewritten under a run
// changes its weights, and one truncated under it kills the process with SIGBUS.
#include <bit>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph/tensor.hpp"

namespace pathpatch {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2, U16, U32, U64 };
const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

// How a checkpoint's tensors reach memory: copied (the default), or mapped (see above).
enum class WeightAccess { Read, Map };

class SafetensorsFile {
 public:
  // Opens and validates the file; throws IoError or FormatError naming the file and the tensor.
  static SafetensorsFile open(const std::filesystem::path& path, WeightAccess access = WeightAccess::Read);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  const TensorEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor as F32 (F32, F16 and BF16 storage; other dtypes are a WeightError naming it).
  // IoError if the file changed size since it was opened.
  Tensor load(const std::string& name) const;
  Tensor load(const TensorEntry& entry) const;

 private:
  void read_bytes(void* into, uint64_t offset, uint64_t bytes, const TensorEntry& e) const;

  std::filesystem::path path_;
  std::shared_ptr<const int> fd_;    // WeightAccess::Read: the open file
  std::shared_ptr<const void> map_;  // WeightAccess::Map: keeps the mapping alive for borrowed tensors
  uint64_t data_offset_ = 0;         // start of the data section in the file
  uint64_t data_size_ = 0;
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Parses a header (the JSON text) against a data section of `data_size` bytes; `where` names the
// file in errors. Exposed for the fuzzer and the tests.
std::vector<TensorEntry> parse_safetensors_header(const std::string& json, uint64_t data_size,
                                                  const std::string& where,
                                                  std::map<std::string, std::string>* metadata = nullptr);

// Writes F32 tensors, in the given order, with optional string metadata.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A named array to write: F32 (a tensor), or integers (token ids as I32, masks as U8).
struct NamedArray {
  std::string name;
  std::string dtype;  // "F32", "I32" or "U8" (safetensors' names)
  Shape shape;
  Tensor f32;                 // F32
  std::vector<uint8_t> raw;   // I32, U8: the values' little-endian bytes
  static NamedArray of(std::string name, const Tensor& t);
  static NamedArray ints(std::string name, Shape shape, const std::vector<int32_t>& values);
  static NamedArray bytes(std::string name, Shape shape, const std::vector<uint8_t>& values);
  const void* data() const { return dtype == "F32" ? static_cast<const void*>(f32.data()) : raw.data(); }
  size_t size_bytes() const { return dtype == "F32" ? f32.bytes() : raw.size(); }
};
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedArray>& arrays,
                       const std::map<std::string, std::string>& metadata = {});
// One numpy .npy file (format 1.0) per array, NAME.npy, in the folder `dir` (made if missing), which
// numpy reads with np.load and no other package.
void write_npy_folder(const std::filesystem::path& dir, const std::vector<NamedArray>& arrays);

float f16_to_f32(uint16_t h);
// BF16 is the top half of an F32: inline, so that widening loops vectorise.
inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

}  // namespace pathpatch
