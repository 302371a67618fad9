#pragma once
// Tensor: an N-d, row-major, contiguous F32 array with shared storage.
//
// Storage is shared between copies of a Tensor (copying is cheap) and becomes read-only once shared:
// data_mut() checks that the caller is the only owner. That is what keeps memo-cache entries
// immutable: a value handed to the cache can never be written through another handle.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace pathpatch {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);  // "[2, 7, 64]"

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape);                                // zero-filled
  static Tensor uninitialized(Shape shape);                    // contents undefined
  static Tensor from_vector(Shape shape, std::vector<float> values);
  static Tensor full(Shape shape, float value);
  // A read-only view of memory owned by `owner` (a memory-mapped checkpoint, say).
  static Tensor borrow(Shape shape, std::shared_ptr<const void> owner, const float* data);

  bool defined() const { return static_cast<bool>(data_); }
  const Shape& shape() const { return shape_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int axis) const;  // negative axes count from the end
  int64_t numel() const { return numel_; }
  size_t bytes() const { return static_cast<size_t>(numel()) * sizeof(float); }

  const float* data() const { return data_.get(); }
  float* data_mut();              // only while this handle owns writable storage alone
  bool writable() const;

  Tensor clone() const;                           // a deep, writable copy
  Tensor reshape(Shape shape) const;              // same storage, same numel
  Tensor slice0(int64_t begin, int64_t end) const;  // rows [begin, end) of axis 0, shared storage
  float at(std::initializer_list<int64_t> index) const;  // bounds-checked element read

  // Identity of the underlying storage (two handles on the same buffer compare equal).
  const void* storage_id() const { return data_.get(); }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<float> data_;
  bool owned_ = false;  // false for borrowed (possibly read-only mapped) memory
};

// Large tensor buffers are recycled through a pool, so a forward does not fault in fresh pages for
// every activation. The limit caps what the pool keeps idle (default: an eighth of the machine's
// memory, between 256 MiB and 4 GiB); 0 disables the pool.
void set_buffer_pool_limit(size_t bytes);
size_t buffer_pool_limit();
size_t buffer_pool_idle_bytes();
size_t buffer_pool_peak_idle_bytes();  // the most it has held idle since the process started
// Frees every idle buffer: sweeps call it as they end, so a finished sweep holds no idle memory.
void release_idle_buffers();

// Max |a - b| over all elements; shapes must match.
float max_abs_diff(const Tensor& a, const Tensor& b);
bool bit_equal(const Tensor& a, const Tensor& b);
// Concatenate along axis 0; all other axes must match.
Tensor concat0(const std::vector<Tensor>& parts);
// Axis 1 is the position axis of every activation that is passed between steps ([B, T, ...]).
Tensor slice1(const Tensor& t, int64_t begin, int64_t end);  // a copy of positions [begin, end)
Tensor concat1(const Tensor& a, const Tensor& b);            // positions of a, then of b

}  // namespace pathpatch
