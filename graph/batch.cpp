#include "graph/batch.hpp"

#include "graph/error.hpp"
#include "graph/intervention.hpp"

namespace pathpatch {

Batch Batch::from_rows(const std::vector<std::vector<int32_t>>& rows, int32_t pad_id) {
  if (rows.empty()) throw InputError("empty input: no sequences given");
  Batch b;
  b.size = static_cast<int64_t>(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].empty()) throw InputError("empty input: sequence " + std::to_string(r) + " has no tokens");
    b.seq = std::max<int64_t>(b.seq, static_cast<int64_t>(rows[r].size()));
  }
  b.ids.assign(b.size * b.seq, pad_id);
  b.mask.assign(b.size * b.seq, 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    int64_t pad = b.seq - static_cast<int64_t>(rows[r].size());
    for (size_t t = 0; t < rows[r].size(); ++t) {
      b.ids[r * b.seq + pad + t] = rows[r][t];
      b.mask[r * b.seq + pad + t] = 1;
    }
  }
  return b;
}

int64_t Batch::length(int64_t b) const {
  int64_t n = 0;
  for (int64_t t = 0; t < seq; ++t) n += real(b, t);
  return n;
}

std::vector<int32_t> Batch::position_ids() const {
  std::vector<int32_t> pos(size * seq);
  for (int64_t b = 0; b < size; ++b) {
    int32_t count = 0;
    for (int64_t t = 0; t < seq; ++t) {
      count += real(b, t);
      pos[b * seq + t] = real(b, t) ? count - 1 : 1;
    }
  }
  return pos;
}

void Batch::validate(int vocab_size, int n_ctx, const std::string& what) const {
  if (size <= 0 || seq <= 0) throw InputError(what + ": empty input (no tokens)");
  if (static_cast<int64_t>(ids.size()) != size * seq || static_cast<int64_t>(mask.size()) != size * seq)
    throw InputError(what + ": ids and mask must hold batch x seq = " + std::to_string(size * seq) + " entries");
  if (seq > n_ctx)
    throw InputError(what + ": sequences of " + std::to_string(seq) + " tokens are longer than the model's context of " +
                     std::to_string(n_ctx));
  for (int64_t b = 0; b < size; ++b) {
    bool seen_real = false;
    for (int64_t t = 0; t < seq; ++t) {
      if (real(b, t)) {
        seen_real = true;
        int32_t id = this->id(b, t);
        if (id < 0 || id >= vocab_size)
          throw InputError(what + ": token id " + std::to_string(id) + " at row " + std::to_string(b) + ", position " +
                           std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
      } else if (seen_real) {
        throw InputError(what + ": row " + std::to_string(b) + " has padding at position " + std::to_string(t) +
                         " after real tokens; pad on the left");
      }
    }
    if (!seen_real) throw InputError(what + ": row " + std::to_string(b) + " has no real tokens");
  }
}

uint64_t Batch::key() const {
  uint64_t h = hash_combine(static_cast<uint64_t>(size), static_cast<uint64_t>(seq));
  for (size_t i = 0; i < ids.size(); ++i)
    h = hash_combine(h, (static_cast<uint64_t>(static_cast<uint32_t>(ids[i])) << 1) | mask[i]);
  return h;
}

bool Batch::same_layout(const Batch& o) const { return size == o.size && seq == o.seq && mask == o.mask; }

Batch Batch::rows(int64_t first, int64_t count) const {
  if (first < 0 || count < 1 || first + count > size)
    throw InputError("rows " + std::to_string(first) + ".." + std::to_string(first + count - 1) + " of a batch of " +
                     std::to_string(size));
  Batch out;
  out.size = count;
  out.seq = seq;
  out.ids.assign(ids.begin() + first * seq, ids.begin() + (first + count) * seq);
  out.mask.assign(mask.begin() + first * seq, mask.begin() + (first + count) * seq);
  return out;
}

}  // namespace pathpatch
