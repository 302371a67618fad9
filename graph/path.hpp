#pragma once
// Paths and splits: the vocabulary of the branch/which predicates (nano-path-patching's semantics).
//
// A path lists the node names it passed through, from the output back toward the embeddings:
//   ln_final, f1, f1.head, a1, a1.head, a1.head3, a1.head3.q, f0, ..., emb
// `branch(path)` is asked at aL, aL.head, aL.headH, fL and fL.head, with the node's name last, and
// returns how the node's inputs are computed:
//   Split::None       one shared path for all the node's inputs (the path keeps the node's name).
//   Split::Edges      each incoming edge gets its own path. At aL / fL: the residual edge (whose
//                     path does NOT include aL / fL) and the sub-layer edge (path continues through
//                     aL.head / fL.head). At aL.head: one path per query head, aL.headH. At aL.headH:
//                     one per input of that head, aL.headH.q, aL.headH.k, aL.headH.v.
//   Split::Positions  at aL.head and fL.head: position P's row of the sub-layer's input comes from
//                     its own path, aL.head.posP / fL.head.posP.
// Below an unsplit aL or fL the sub-layer is not asked: its input is the residual's.
// `which(path)` is asked at `emb` and returns the index of the input that path reads.
//
// Grouped-query attention (Llama): head paths are per query head. Query head H uses the key/value
// weights of kv head H / (n_heads / n_kv_heads); when aL.headH splits, aL.headH.k / aL.headH.v are
// that head's own key and value inputs, computed with its group's weights. Heads of a group that
// read the same input share one key/value computation (as the model itself does).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pathpatch {

enum class Split { None, Edges, Positions };
const char* split_name(Split s);

class Path {
 public:
  size_t size() const { return names_.size(); }
  bool empty() const { return names_.empty(); }
  std::string_view operator[](size_t i) const { return *names_[i]; }
  std::string_view back() const { return *names_.back(); }
  std::string_view front() const { return *names_.front(); }
  bool contains(std::string_view name) const;
  std::string str() const;  // "ln_final > f1 > f1.head > ..."

  // Used by the tracer as it walks (names must outlive the path).
  void push(const std::string* name) { names_.push_back(name); }
  void pop() { names_.pop_back(); }

 private:
  std::vector<const std::string*> names_;
};

}  // namespace pathpatch
