#include "graph/intervention.hpp"

#include <cstring>

#include "graph/error.hpp"

namespace pathpatch {

const char* op_name(Op op) {
  switch (op) {
    case Op::Replace: return "replace";
    case Op::Zero: return "zero";
    case Op::Add: return "add";
    case Op::Set: return "set";
    case Op::Probe: return "probe";
  }
  return "?";
}

Intervention replace(std::string activation, int source_input, Select select) {
  Intervention iv;
  iv.op = Op::Replace;
  iv.activation = std::move(activation);
  iv.source = source_input;
  iv.select = std::move(select);
  return iv;
}

Intervention zero(std::string activation, Select select) {
  Intervention iv;
  iv.op = Op::Zero;
  iv.activation = std::move(activation);
  iv.select = std::move(select);
  return iv;
}

Intervention add(std::string activation, Tensor value, Select select) {
  Intervention iv;
  iv.op = Op::Add;
  iv.activation = std::move(activation);
  iv.value = std::move(value);
  iv.select = std::move(select);
  return iv;
}

Intervention set(std::string activation, Tensor value, Select select) {
  Intervention iv = add(std::move(activation), std::move(value), std::move(select));
  iv.op = Op::Set;
  return iv;
}

Intervention probe(std::string activation, std::string label) {
  Intervention iv;
  iv.op = Op::Probe;
  iv.label = label.empty() ? activation : std::move(label);
  iv.activation = std::move(activation);
  return iv;
}

uint64_t hash_combine(uint64_t seed, uint64_t v) {
  // splitmix64 finaliser over the xor: cheap and well mixed.
  uint64_t x = seed ^ (v + 0x9e3779b97f4a7c15ull + (seed << 6) + (seed >> 2));
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_tensor(const Tensor& t) {
  uint64_t h = 0x51ed270b27a3c0f5ull;
  for (int64_t d : t.shape()) h = hash_combine(h, static_cast<uint64_t>(d));
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  size_t n = t.defined() ? t.bytes() : 0;
  // FNV-1a over the bytes, eight at a time.
  uint64_t f = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    f = (f ^ w) * 0x100000001b3ull;
  }
  for (; i < n; ++i) f = (f ^ p[i]) * 0x100000001b3ull;
  return hash_combine(h, f);
}

bool BoundIntervention::same_effect(const BoundIntervention& o) const {
  if (op != o.op || act != o.act || heads != o.heads || positions != o.positions || source != o.source) return false;
  if (value.defined() != o.value.defined()) return false;
  return !value.defined() || bit_equal(value, o.value);
}

uint64_t BoundIntervention::key() const {
  uint64_t h = hash_combine(static_cast<uint64_t>(op), static_cast<uint64_t>(act));
  h = hash_combine(h, heads.size());
  for (int x : heads) h = hash_combine(h, static_cast<uint64_t>(x));
  h = hash_combine(h, positions.size());
  for (int x : positions) h = hash_combine(h, static_cast<uint64_t>(x));
  h = hash_combine(h, source);
  return hash_combine(h, value_hash);
}

void check_broadcast(const Tensor& value, const Shape& shape, const std::string& what) {
  const Shape& v = value.shape();
  bool ok = value.defined() && v.size() <= shape.size();
  for (size_t i = 0; ok && i < v.size(); ++i) ok = v[v.size() - 1 - i] == shape[shape.size() - 1 - i];
  if (!ok)
    throw InputError(what + ": a value of shape " + (value.defined() ? to_string(v) : "(none)") +
                     " does not match the trailing axes of the activation's shape " + to_string(shape));
}

namespace {

// Visits every element whose position and head indices are selected, calling f(flat_index).
template <class F>
void for_selected(const Shape& shape, int pos_axis, int head_axis, const std::vector<int>& positions,
                  const std::vector<int>& heads, F&& f) {
  const int rank = static_cast<int>(shape.size());
  std::vector<std::vector<int64_t>> idx(rank);
  for (int a = 0; a < rank; ++a) {
    const std::vector<int>* sel = a == pos_axis ? &positions : a == head_axis ? &heads : nullptr;
    if (sel && !sel->empty()) {
      for (int i : *sel) idx[a].push_back(i);
    } else {
      for (int64_t i = 0; i < shape[a]; ++i) idx[a].push_back(i);
    }
  }
  // Contiguous innermost run: iterate the outer axes, then the last axis as a block when whole.
  std::vector<size_t> counter(rank, 0);
  std::vector<int64_t> stride(rank, 1);
  for (int a = rank - 2; a >= 0; --a) stride[a] = stride[a + 1] * shape[a + 1];
  if (rank == 0) {
    f(0);
    return;
  }
  while (true) {
    int64_t base = 0;
    for (int a = 0; a < rank - 1; ++a) base += idx[a][counter[a]] * stride[a];
    for (int64_t i : idx[rank - 1]) f(base + i);
    int a = rank - 2;
    while (a >= 0 && ++counter[a] == idx[a].size()) counter[a--] = 0;
    if (a < 0) break;
  }
}

}  // namespace

void apply_intervention(const Activation& info, const BoundIntervention& iv, Tensor& x, const Tensor* source,
                        int64_t pos_offset) {
  if (iv.op == Op::Probe) return;
  const Shape& shape = x.shape();
  float* dst = x.data_mut();
  const int64_t total = x.numel();
  const int64_t vn = iv.value.defined() ? iv.value.numel() : 1;
  const float* val = iv.value.defined() ? iv.value.data() : nullptr;
  auto body = [&](int64_t i) {
    switch (iv.op) {
      case Op::Zero: dst[i] = 0.0f; break;
      case Op::Replace: dst[i] = source->data()[i]; break;
      case Op::Add: dst[i] += val[i % vn]; break;  // trailing-axis broadcast
      case Op::Set: dst[i] = val[i % vn]; break;
      case Op::Probe: break;
    }
  };
  if (iv.op == Op::Replace) {
    PP_CHECK(source && source->shape() == shape,
             "replace source for " + info.name + " has shape " + (source ? to_string(source->shape()) : "none"));
  }
  // A value broadcasts over the whole activation; only zero and replace apply to a window.
  PP_CHECK(pos_offset == 0 || iv.op == Op::Zero || iv.op == Op::Replace, "add/set applied to a window of positions");
  if (iv.heads.empty() && iv.positions.empty() && pos_offset == 0) {
    for (int64_t i = 0; i < total; ++i) body(i);
    return;
  }
  std::vector<int> positions;  // in x's own positions
  const int pos_axis = info.pos_axis();
  const int64_t n = pos_axis >= 0 ? shape[pos_axis] : 0;
  if (iv.positions.empty()) {
    for (int64_t p = 0; p < n; ++p) positions.push_back(static_cast<int>(p));
  } else {
    for (int p : iv.positions)
      if (p >= pos_offset && p < pos_offset + n) positions.push_back(static_cast<int>(p - pos_offset));
    if (positions.empty()) return;
  }
  for_selected(shape, pos_axis, info.head_axis(), positions, iv.heads, body);
}

}  // namespace pathpatch
