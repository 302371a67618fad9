#include "models/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "models/json_text.hpp"

namespace pathpatch {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit on the JSON header

struct DTypeInfo {
  const char* name;
  DType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F64", DType::F64, 8},  {"F32", DType::F32, 4},   {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2}, {"I64", DType::I64, 8},   {"I32", DType::I32, 4},
    {"I16", DType::I16, 2},  {"I8", DType::I8, 1},     {"U8", DType::U8, 1},
    {"BOOL", DType::BOOL, 1}, {"F8_E4M3", DType::F8_E4M3, 1}, {"F8_E5M2", DType::F8_E5M2, 1},
    {"U16", DType::U16, 2},  {"U32", DType::U32, 4},   {"U64", DType::U64, 8},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}


uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

const char* dtype_name(DType d) {
  for (const auto& x : kDTypes)
    if (x.dtype == d) return x.name;
  return "?";
}

size_t dtype_size(DType d) {
  for (const auto& x : kDTypes)
    if (x.dtype == d) return x.size;
  return 0;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;  // inf or nan
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<TensorEntry> parse_safetensors_header(const std::string& text, uint64_t data_size,
                                                  const std::string& where,
                                                  std::map<std::string, std::string>* metadata) {
  nlohmann::json header;
  std::set<std::string> names;  // the parser keeps the last of two equal keys: refuse them instead
  auto unique_names = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second)
      throw FormatError(where + ": tensor '" + parsed.get<std::string>() + "' is listed twice in the header");
    return true;
  };
  try {
    header = nlohmann::json::parse(text, unique_names);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": the safetensors header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw FormatError(where + ": the safetensors header is not a JSON object");

  std::vector<TensorEntry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw FormatError(where + ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw FormatError(where + ": __metadata__ value '" + m.key() + "' is not a string");
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string at = where + ": tensor '" + name + "'";
    if (!v.is_object()) throw FormatError(at + " is not described by an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw FormatError(at + " has no dtype string");
    if (!v.contains("shape") || !v["shape"].is_array()) throw FormatError(at + " has no shape array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw FormatError(at + " has no [begin, end] data_offsets");

    TensorEntry e;
    e.name = name;
    const DTypeInfo* d = find_dtype(v["dtype"].get<std::string>());
    if (!d) throw FormatError(at + " has unknown dtype '" + v["dtype"].get<std::string>() + "'");
    e.dtype = d->dtype;

    uint64_t count = 1;
    for (const auto& dim : v["shape"]) {
      if (!dim.is_number_unsigned())
        throw FormatError(at + " has a shape entry that is not a non-negative integer: " + detail::json_text(dim));
      uint64_t n = dim.get<uint64_t>();
      if (n > (1ull << 40) || (n && count > (1ull << 62) / n))
        throw FormatError(at + " has an impossibly large shape " + v["shape"].dump());
      count *= n;
      e.shape.push_back(static_cast<int64_t>(n));
    }
    if (count > std::numeric_limits<uint64_t>::max() / d->size)  // the byte count below would wrap around
      throw FormatError(at + " has an impossibly large shape " + v["shape"].dump());
    for (const auto& off : v["data_offsets"])
      if (!off.is_number_unsigned()) throw FormatError(at + " has a data offset that is not a non-negative integer");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end) throw FormatError(at + " has data_offsets with begin > end");
    if (e.end > data_size)
      throw FormatError(at + " ends at byte " + std::to_string(e.end) + " of the data, which holds only " +
                        std::to_string(data_size) + " bytes (truncated file?)");
    uint64_t expect = count * d->size;
    if (e.end - e.begin != expect)
      throw FormatError(at + " has " + std::to_string(e.end - e.begin) + " bytes but shape " +
                        to_string(e.shape) + " of " + d->name + " needs " + std::to_string(expect));
    entries.push_back(std::move(e));
  }

  std::vector<const TensorEntry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
  const TensorEntry* furthest = nullptr;  // the tensor reaching furthest into the data so far
  for (const TensorEntry* cur : by_offset) {
    if (cur->end == cur->begin) continue;
    if (furthest && cur->begin < furthest->end)
      throw FormatError(where + ": tensors '" + furthest->name + "' and '" + cur->name + "' overlap in the data");
    if (!furthest || cur->end > furthest->end) furthest = cur;
  }
  return entries;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path, WeightAccess access) {
  const std::string where = path.string();
  uint64_t size = 0;
  const int fd = files::open_regular(path, std::numeric_limits<uint64_t>::max(), "safetensors file", &size);
  std::shared_ptr<const int> owner(new int(fd), [](const int* f) {
    ::close(*f);
    delete f;
  });
  if (size < 8) throw FormatError(where + ": " + std::to_string(size) + " bytes is too short for a safetensors file");
  uint8_t len[8];
  if (::pread(fd, len, 8, 0) != 8) throw IoError(where + ": cannot read the header length");
  const uint64_t header_len = read_le64(len);
  if (header_len > kMaxHeader || header_len > size - 8)
    throw FormatError(where + ": header length " + std::to_string(header_len) + " runs past the end of the " +
                      std::to_string(size) + "-byte file");
  std::string text(header_len, '\0');
  if (header_len && ::pread(fd, text.data(), header_len, 8) != static_cast<ssize_t>(header_len))
    throw IoError(where + ": cannot read the header (the file changed while it was read?)");

  SafetensorsFile f;
  f.path_ = path;
  f.data_offset_ = 8 + header_len;
  f.data_size_ = size - 8 - header_len;
  f.entries_ = parse_safetensors_header(text, f.data_size_, where, &f.metadata_);
  for (size_t i = 0; i < f.entries_.size(); ++i) f.index_[f.entries_[i].name] = i;
  if (access == WeightAccess::Read) {
    f.fd_ = owner;
  } else {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) throw IoError(where + ": cannot memory-map (" + files::error_text(errno) + ")");
    f.map_ = std::shared_ptr<const void>(m, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  }
  return f;
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::load(const std::string& name) const {
  const TensorEntry* e = find(name);
  if (!e) throw WeightError(path_.string() + ": no tensor named '" + name + "'");
  return load(*e);
}

// Bytes [offset, offset + bytes) of the data section, from the file or its mapping.
void SafetensorsFile::read_bytes(void* into, uint64_t offset, uint64_t bytes, const TensorEntry& e) const {
  if (map_) {
    std::memcpy(into, static_cast<const uint8_t*>(map_.get()) + data_offset_ + offset, bytes);
    return;
  }
  auto* dst = static_cast<uint8_t*>(into);
  for (uint64_t done = 0; done < bytes;) {
    const ssize_t n = ::pread(*fd_, dst + done, bytes - done, static_cast<off_t>(data_offset_ + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw IoError(path_.string() + ": tensor '" + e.name + "': " +
                    (n < 0 ? files::error_text(errno) : std::string("the file is shorter than when it was opened")));
    done += static_cast<uint64_t>(n);
  }
}

Tensor SafetensorsFile::load(const TensorEntry& e) const {
  const int64_t n = numel(e.shape);
  switch (e.dtype) {
    case DType::F32: {
      if (map_) {
        const uint8_t* src = static_cast<const uint8_t*>(map_.get()) + data_offset_ + e.begin;
        if (reinterpret_cast<uintptr_t>(src) % alignof(float) == 0)
          return Tensor::borrow(e.shape, map_, reinterpret_cast<const float*>(src));
      }
      Tensor t = Tensor::uninitialized(e.shape);
      read_bytes(t.data_mut(), e.begin, t.bytes(), e);
      return t;
    }
    case DType::F16:
    case DType::BF16: {
      // Widened a slice at a time: loading never holds a whole 16-bit copy beside the F32 one
      // (a 1B model's embedding alone is 0.5 GB in BF16).
      constexpr int64_t kSlice = int64_t{1} << 20;
      std::vector<uint16_t> raw(static_cast<size_t>(std::min(n, kSlice)));
      Tensor t = Tensor::uninitialized(e.shape);
      float* dst = t.data_mut();
      for (int64_t at = 0; at < n; at += kSlice) {
        const int64_t m = std::min(kSlice, n - at);
        read_bytes(raw.data(), e.begin + 2 * static_cast<uint64_t>(at), 2 * static_cast<uint64_t>(m), e);
        if (e.dtype == DType::F16)
          for (int64_t i = 0; i < m; ++i) dst[at + i] = f16_to_f32(raw[i]);
        else
          for (int64_t i = 0; i < m; ++i) dst[at + i] = bf16_to_f32(raw[i]);
      }
      return t;
    }
    default:
      throw WeightError(path_.string() + ": tensor '" + e.name + "' is stored as " + dtype_name(e.dtype) +
                        "; pathpatch reads F32, F16 and BF16 weights");
  }
}

NamedArray NamedArray::of(std::string name, const Tensor& t) { return {std::move(name), "F32", t.shape(), t, {}}; }

NamedArray NamedArray::ints(std::string name, Shape shape, const std::vector<int32_t>& values) {
  PP_CHECK(numel(shape) == static_cast<int64_t>(values.size()), "NamedArray::ints: shape and values disagree");
  std::vector<uint8_t> raw;
  for (int32_t v : values)
    for (int i = 0; i < 4; ++i) raw.push_back(static_cast<uint8_t>((static_cast<uint32_t>(v) >> (8 * i)) & 0xff));
  return {std::move(name), "I32", std::move(shape), Tensor(), std::move(raw)};
}

NamedArray NamedArray::bytes(std::string name, Shape shape, const std::vector<uint8_t>& values) {
  PP_CHECK(numel(shape) == static_cast<int64_t>(values.size()), "NamedArray::bytes: shape and values disagree");
  return {std::move(name), "U8", std::move(shape), Tensor(), values};
}

void write_safetensors(const std::filesystem::path& path, const std::vector<NamedArray>& arrays,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const NamedArray& a : arrays) {
    if (header.contains(a.name)) throw InputError(path.string() + ": tensor '" + a.name + "' written twice");
    header[a.name] = {{"dtype", a.dtype}, {"shape", a.shape}, {"data_offsets", {offset, offset + a.size_bytes()}}};
    offset += a.size_bytes();
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8) text += ' ';  // keep the data 8-byte aligned, as the reference writer does
  files::Writer out(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((text.size() >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (const NamedArray& a : arrays) out.write(a.data(), a.size_bytes());
  out.commit();
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<NamedArray> arrays;
  for (const auto& [name, t] : tensors) arrays.push_back(NamedArray::of(name, t));
  write_safetensors(path, arrays, metadata);
}

void write_npy_folder(const std::filesystem::path& dir, const std::vector<NamedArray>& arrays) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir, ec))
    throw IoError(dir.string() + ": cannot make this folder (" + files::error_text(ec ? ec.value() : ENOTDIR) + ")");
  for (const NamedArray& a : arrays) {
    if (a.name.empty() || a.name.find('/') != std::string::npos || a.name[0] == '.')
      throw InputError(dir.string() + ": '" + a.name + "' cannot name a file");
    // numpy's format 1.0: magic, version, header length, a Python dict literal padded with spaces
    // and ended by a newline so that the data starts on a 64-byte boundary.
    const char* descr = a.dtype == "F32" ? "<f4" : a.dtype == "I32" ? "<i4" : "|u1";
    std::string shape;  // "2, 3"; one axis keeps its comma, as a Python tuple: "3,"
    for (size_t i = 0; i < a.shape.size(); ++i) {
      if (i) shape += ", ";
      shape += std::to_string(a.shape[i]);
    }
    if (a.shape.size() == 1) shape += ",";
    std::string header = "{'descr': '";
    header.append(descr).append("', 'fortran_order': False, 'shape': (").append(shape).append("), }");
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    files::Writer out(dir / (a.name + ".npy"));
    const uint8_t magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    const uint8_t len[2] = {static_cast<uint8_t>(header.size() & 0xff), static_cast<uint8_t>(header.size() >> 8)};
    out.write(magic, 8);
    out.write(len, 2);
    out.write(header.data(), header.size());
    out.write(a.data(), a.size_bytes());
    out.commit();
  }
}

}  // namespace pathpatch
