#include "graph/tensor.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>

#include "graph/error.hpp"

namespace pathpatch {

namespace detail {
void fail_check(const char* cond, const char* file, int line, const std::string& msg) {
  throw InternalError(std::string("pathpatch internal error: ") + msg + " (" + cond + " failed at " +
                      file + ":" + std::to_string(line) + ")");
}
}  // namespace detail

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    PP_CHECK(d >= 0, "negative dimension in shape " + to_string(shape));
    n *= d;
  }
  return n;
}

std::string to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// Idle buffers, kept for reuse. Only large buffers are pooled (small ones are cheap for malloc).
// A request takes the smallest idle buffer that holds it, if that is at most twice its size:
// the stacked steps of a sweep vary in rows, and a fresh buffer would fault in every page again.
// When the idle bytes would pass the limit, the buffers idle longest are freed first.
class BufferPool {
 public:
  static constexpr size_t kMinPooled = 64 << 10;
  static constexpr size_t kHugePage = 2 << 20, kHugeFrom = 4 << 20;

  struct Buffer {
    void* ptr;
    size_t bytes;  // the buffer's real size, at least what was asked for
  };

  Buffer get(size_t bytes) {
    bytes = bytes >= kMinPooled ? (bytes + 4095) / 4096 * 4096 : (bytes + 63) / 64 * 64;
    if (bytes >= kMinPooled) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = by_size_.lower_bound(bytes);
      if (it != by_size_.end() && it->first <= 2 * bytes) {
        Buffer b = *it->second;
        lru_.erase(it->second);
        by_size_.erase(it);
        held_ -= b.bytes;
        return b;
      }
    }
    void* p = nullptr;
    if (bytes >= kHugeFrom) {
      // Whole 2 MiB pages, aligned, marked for transparent huge pages: a model's weights fault in
      // 512x fewer pages (loading a 1B model spent over half its time in 4 KiB page faults).
      bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
      p = std::aligned_alloc(kHugePage, bytes);
      if (p) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without it the pages are merely small
    } else {
      p = std::aligned_alloc(64, bytes);
    }
    if (!p) throw std::bad_alloc();
    return {p, bytes};
  }

  void put(Buffer b) {
    if (b.bytes >= kMinPooled) {
      std::lock_guard<std::mutex> lock(mu_);
      if (b.bytes <= limit_) {
        evict_until(limit_ - b.bytes);
        lru_.push_front(b);
        by_size_.emplace(b.bytes, lru_.begin());
        held_ += b.bytes;
        peak_ = std::max(peak_, held_);
        return;
      }
    }
    std::free(b.ptr);
  }

  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = bytes;
    evict_until(limit_);
  }

  size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_;
  }

  size_t limit() {
    std::lock_guard<std::mutex> lock(mu_);
    return limit_;
  }

  size_t peak() {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }

  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    evict_until(0);
  }

 private:
  // Frees the least recently returned buffers until at most `target` bytes are idle.
  void evict_until(size_t target) {
    while (held_ > target && !lru_.empty()) {
      auto oldest = std::prev(lru_.end());
      auto [lo, hi] = by_size_.equal_range(oldest->bytes);
      for (auto it = lo; it != hi; ++it)
        if (it->second == oldest) {
          by_size_.erase(it);
          break;
        }
      std::free(oldest->ptr);
      held_ -= oldest->bytes;
      lru_.erase(oldest);
    }
  }

  std::mutex mu_;
  std::list<Buffer> lru_;                                     // newest first
  std::multimap<size_t, std::list<Buffer>::iterator> by_size_;  // the same buffers, by size
  size_t held_ = 0;
  size_t peak_ = 0;
  size_t limit_ = default_limit();

  // An eighth of the machine's memory, between 256 MiB and 4 GiB: enough for a sweep's stacked
  // steps to find their buffers again, little enough to leave the machine to others.
  static size_t default_limit() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const size_t ram = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
    return std::clamp(ram / 8, size_t(256) << 20, size_t(4) << 30);
  }
};

// Never destroyed: tensors in static storage may outlive any destruction order.
BufferPool& pool() {
  static BufferPool* p = new BufferPool;
  return *p;
}

// 64-byte aligned buffers: whole cache lines for the GEMM and the vectorised loops.
std::shared_ptr<float> allocate(int64_t count) {
  BufferPool::Buffer b = pool().get(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float));
  return std::shared_ptr<float>(static_cast<float*>(b.ptr), [b](float*) { pool().put(b); });
}

}  // namespace

void set_buffer_pool_limit(size_t bytes) { pool().set_limit(bytes); }
size_t buffer_pool_limit() { return pool().limit(); }
size_t buffer_pool_idle_bytes() { return pool().held(); }
size_t buffer_pool_peak_idle_bytes() { return pool().peak(); }
void release_idle_buffers() { pool().release(); }

Tensor::Tensor(Shape shape)
    : shape_(std::move(shape)), numel_(pathpatch::numel(shape_)), data_(allocate(numel_)), owned_(true) {
  std::memset(data_.get(), 0, bytes());
}

Tensor Tensor::uninitialized(Shape shape) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = pathpatch::numel(t.shape_);
  t.data_ = allocate(t.numel_);
  t.owned_ = true;
  return t;
}

Tensor Tensor::from_vector(Shape shape, std::vector<float> values) {
  PP_CHECK(pathpatch::numel(shape) == static_cast<int64_t>(values.size()),
           "from_vector: " + std::to_string(values.size()) + " values for shape " + to_string(shape));
  Tensor t = uninitialized(std::move(shape));
  if (!values.empty()) std::memcpy(t.data_.get(), values.data(), t.bytes());
  return t;
}

Tensor Tensor::full(Shape shape, float value) {
  Tensor t = uninitialized(std::move(shape));
  std::fill(t.data_.get(), t.data_.get() + t.numel(), value);
  return t;
}

Tensor Tensor::borrow(Shape shape, std::shared_ptr<const void> owner, const float* data) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = pathpatch::numel(t.shape_);
  // The aliasing constructor keeps `owner` alive for as long as any view exists.
  t.data_ = std::shared_ptr<float>(std::const_pointer_cast<void>(owner), const_cast<float*>(data));
  t.owned_ = false;
  return t;
}

int64_t Tensor::size(int axis) const {
  int d = dim();
  int a = axis < 0 ? axis + d : axis;
  PP_CHECK(a >= 0 && a < d, "axis " + std::to_string(axis) + " out of range for shape " + to_string(shape_));
  return shape_[a];
}

bool Tensor::writable() const { return owned_ && data_.use_count() == 1; }

float* Tensor::data_mut() {
  PP_CHECK(writable(), "write to a shared or borrowed tensor of shape " + to_string(shape_));
  return data_.get();
}

Tensor Tensor::clone() const {
  Tensor t = uninitialized(shape_);
  if (numel()) std::memcpy(t.data_.get(), data_.get(), bytes());
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  PP_CHECK(pathpatch::numel(shape) == numel(),
           "reshape " + to_string(shape_) + " to " + to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;  // numel unchanged
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  PP_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
           "slice0 [" + std::to_string(begin) + ", " + std::to_string(end) + ") of " + to_string(shape_));
  int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  Tensor t;
  t.shape_ = shape_;
  t.shape_[0] = end - begin;
  t.numel_ = (end - begin) * row;
  t.data_ = std::shared_ptr<float>(data_, data_.get() + begin * row);
  t.owned_ = owned_;
  return t;
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  PP_CHECK(static_cast<int>(index.size()) == dim(), "index rank differs from shape " + to_string(shape_));
  int64_t flat = 0;
  int axis = 0;
  for (int64_t i : index) {
    PP_CHECK(i >= 0 && i < shape_[axis], "index out of range for shape " + to_string(shape_));
    flat = flat * shape_[axis++] + i;
  }
  return data_.get()[flat];
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  PP_CHECK(a.shape() == b.shape(), "max_abs_diff of " + to_string(a.shape()) + " and " + to_string(b.shape()));
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    float d = std::fabs(a.data()[i] - b.data()[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && (a.numel() == 0 || std::memcmp(a.data(), b.data(), a.bytes()) == 0);
}

Tensor concat0(const std::vector<Tensor>& parts) {
  PP_CHECK(!parts.empty(), "concat0 of nothing");
  Shape shape = parts[0].shape();
  int64_t rows = 0;
  for (const Tensor& p : parts) {
    Shape s = p.shape();
    PP_CHECK(s.size() == shape.size() && std::equal(s.begin() + 1, s.end(), shape.begin() + 1),
             "concat0 of " + to_string(shape) + " and " + to_string(s));
    rows += s[0];
  }
  shape[0] = rows;
  Tensor out = Tensor::uninitialized(shape);
  float* dst = out.data_mut();
  for (const Tensor& p : parts) {
    if (p.numel()) std::memcpy(dst, p.data(), p.bytes());
    dst += p.numel();
  }
  return out;
}

}  // namespace pathpatch

namespace pathpatch {

Tensor slice1(const Tensor& t, int64_t begin, int64_t end) {
  PP_CHECK(t.dim() >= 2 && 0 <= begin && begin <= end && end <= t.size(1),
           "slice1 [" + std::to_string(begin) + ", " + std::to_string(end) + ") of " + to_string(t.shape()));
  if (begin == 0 && end == t.size(1)) return t;
  const int64_t B = t.size(0), T = t.size(1), inner = T ? t.numel() / (B * T) : 0;
  Shape shape = t.shape();
  shape[1] = end - begin;
  Tensor out = Tensor::uninitialized(shape);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(out.data_mut() + b * (end - begin) * inner, t.data() + (b * T + begin) * inner,
                (end - begin) * inner * sizeof(float));
  return out;
}

Tensor concat1(const Tensor& a, const Tensor& b) {
  PP_CHECK(a.dim() >= 2 && a.dim() == b.dim() && a.size(0) == b.size(0) &&
               std::equal(a.shape().begin() + 2, a.shape().end(), b.shape().begin() + 2),
           "concat1 of " + to_string(a.shape()) + " and " + to_string(b.shape()));
  const int64_t B = a.size(0), Ta = a.size(1), Tb = b.size(1);
  const int64_t inner = a.numel() ? a.numel() / (B * Ta) : (b.numel() ? b.numel() / (B * Tb) : 0);
  Shape shape = a.shape();
  shape[1] = Ta + Tb;
  Tensor out = Tensor::uninitialized(shape);
  float* o = out.data_mut();
  for (int64_t i = 0; i < B; ++i) {
    std::memcpy(o, a.data() + i * Ta * inner, Ta * inner * sizeof(float));
    o += Ta * inner;
    std::memcpy(o, b.data() + i * Tb * inner, Tb * inner * sizeof(float));
    o += Tb * inner;
  }
  return out;
}

}  // namespace pathpatch
