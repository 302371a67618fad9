#pragma once
// A batch of token-id sequences with its attention mask, left-padded to one length.
#include <cstdint>
#include <string>
#include <vector>

namespace pathpatch {

struct Batch {
  int64_t size = 0;           // B
  int64_t seq = 0;            // T
  std::vector<int32_t> ids;   // [B, T]
  std::vector<uint8_t> mask;  // [B, T]: 1 = real token, 0 = padding (always on the left)

  // Left-pads rows of different lengths to the longest with `pad_id`. InputError if `rows` is
  // empty or a row is empty.
  static Batch from_rows(const std::vector<std::vector<int32_t>>& rows, int32_t pad_id = 0);

  int32_t id(int64_t b, int64_t t) const { return ids[b * seq + t]; }
  bool real(int64_t b, int64_t t) const { return mask[b * seq + t] != 0; }
  int64_t length(int64_t b) const;  // real tokens in row b
  // Rows [first, first + count) as a batch of their own (the same positions; padding kept).
  // InputError for rows the batch does not have.
  Batch rows(int64_t first, int64_t count) const;

  // Position ids as Hugging Face computes them from the mask: cumsum(mask) - 1, and 1 at padding.
  std::vector<int32_t> position_ids() const;

  // InputError unless every id is in [0, vocab), every row has a real token, padding is on the left
  // and the length fits the context.
  void validate(int vocab_size, int n_ctx, const std::string& what) const;

  uint64_t key() const;  // hash of the contents: equal batches have equal keys
  // The same rows: sizes, ids and padding.
  bool operator==(const Batch& o) const { return size == o.size && seq == o.seq && ids == o.ids && mask == o.mask; }
  bool same_layout(const Batch& other) const;  // same B, T and mask
};

}  // namespace pathpatch
