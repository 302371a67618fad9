#pragma once
// Paths and splits: the vocabulary of the branch/which predicates (nano-path-patching's semantics).
//
// A path lists the names it passed through, from the output back toward the embeddings:
//   ln_final, f1, f1.head, a1, a1.head, a1.head3, a1.head3.q, f0, ..., emb
// The names (PathName below, parsed and printed in this file alone):
//   emb                  the embeddings
//   aL / fL              layer L's residual sum after its attention / its MLP
//   aL.head / fL.head    the attention / MLP sub-layer of layer L
//   aL.headH             query head H of layer L (an edge name: only a split adds it)
//   aL.headH.q|k|v       that head's query, key or value input (edge)
//   aL.head.posP         position P's row of the attention's input (edge); fL.head.posP for the MLP
//   aL.headH.q.posP      position P's row of that head's query input (edge); .k.posP, .v.posP likewise
//   ln_final             the final norm
//   ln_final.posP        position P's row of the final norm's input (edge)
//
// `branch(path)` is asked at ln_final, aL, aL.head, aL.headH, aL.headH.q|k|v, fL and fL.head, with
// the node's name last, and returns how the node's inputs are computed:
//   Split::None       one shared path for all the node's inputs (the path keeps the node's name).
//   Split::Edges      each incoming edge gets its own path. At aL / fL: the residual edge (whose
//                     path does NOT include aL / fL) and the sub-layer edge (path continues through
//                     aL.head / fL.head). At aL.head: one path per query head, aL.headH. At aL.headH:
//                     one per input of that head, aL.headH.q, aL.headH.k, aL.headH.v.
//   Split::Positions  at aL.head and fL.head: position P's row of the sub-layer's input comes from
//                     its own path, aL.head.posP / fL.head.posP. At aL.headH.q|k|v: position P's
//                     row of that one head's input, aL.headH.q.posP (IOI's "queries of 2.0 at END").
//                     At ln_final: position P's row of the final residual, ln_final.posP (what a
//                     sender at some positions sends to the logits, as the residual stream keeps
//                     each row to its own position).
//                     ln_final and a head input have one edge: Split::Edges there is refused.
// Below an unsplit aL or fL the sub-layer is not asked: it reads what the residual edge read.
// `which(path)` is asked at `emb` and returns the index of the input that path reads.
//
// Grouped-query attention (Llama): head paths are per query head. Query head H uses the key/value
// weights of kv head H / (n_heads / n_kv_heads); when aL.headH splits, aL.headH.k / aL.headH.v are
// that head's own key and value inputs, computed with its group's weights. Heads of a group that
// read the same input share one key/value computation (as the model itself does).
//
// Parallel residual blocks (GPT-NeoX, GPT-J): both sub-layers of layer L read the residual that
// enters the layer, resid_pre(L). The nodes stay the same: aL = resid_pre(L) + attention, and
// fL = aL + MLP (fL's value is resid_post(L)); only the MLP's input differs, fL.head reading the
// node before aL instead of aL. So:
//   - fL split: the residual edge continues at aL; the MLP edge goes through fL.head (and its
//     positions, if split there) straight to the node before aL, passing no aL.
//   - fL not split: aL is evaluated on the path as usual, and the MLP reads the very value aL's
//     residual edge read (on `... fL aL <prev>` when aL does not split, on `... fL <prev>` when it
//     does): the block is one unit, as in the model, and no path of its own is walked for the MLP.
// A sender at aL therefore never reaches layer L's own MLP, as in the model.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pathpatch {

enum class Split { None, Edges, Positions };
const char* split_name(Split s);

// The two kinds of sub-layer: 'a' (attention) and 'f' (MLP) in path names.
enum class Block : uint8_t { Attn, Mlp };
// An attention head's inputs.
enum class Role : uint8_t { Q, K, V };

// A path name as a value: what it names, and where.
struct PathName {
  enum Kind : uint8_t {
    Emb,                // emb
    Residual,           // aL, fL
    Sublayer,           // aL.head, fL.head
    Head,               // aL.headH
    HeadInput,          // aL.headH.q|k|v
    Position,           // aL.head.posP, fL.head.posP
    HeadInputPosition,  // aL.headH.q|k|v.posP
    Final,              // ln_final
    FinalPosition,      // ln_final.posP
  };
  Kind kind = Emb;
  Block block = Block::Attn;  // Residual, Sublayer, Position (Head, HeadInput: always Attn)
  Role role = Role::Q;        // HeadInput, HeadInputPosition
  int layer = -1;             // all but Emb, Final and FinalPosition
  int head = -1;              // Head, HeadInput, HeadInputPosition
  int pos = -1;               // Position, HeadInputPosition, FinalPosition

  static PathName emb() { return {}; }
  static PathName ln_final() { return {Final}; }
  static PathName final_position(int pos) { return {FinalPosition, Block::Attn, Role::Q, -1, -1, pos}; }
  static PathName residual(Block b, int layer) { return {Residual, b, Role::Q, layer}; }
  static PathName sublayer(Block b, int layer) { return {Sublayer, b, Role::Q, layer}; }
  static PathName head_of(int layer, int head) { return {Head, Block::Attn, Role::Q, layer, head}; }
  static PathName head_input(int layer, int head, Role r) { return {HeadInput, Block::Attn, r, layer, head}; }
  static PathName position(Block b, int layer, int pos) { return {Position, b, Role::Q, layer, -1, pos}; }
  static PathName head_input_position(int layer, int head, Role r, int pos) {
    return {HeadInputPosition, Block::Attn, r, layer, head, pos};
  }

  std::string str() const;                                  // "a3.head5.q"
  static std::optional<PathName> parse(std::string_view s);  // nullopt unless s is a path name
  // The name with its layer written as `layer` ("aL.head", "f*"): for patterns and legends.
  std::string str_with_layer(std::string_view layer) const;

  bool is_node() const { return kind == Emb || kind == Residual || kind == Sublayer || kind == Final; }
  bool operator==(const PathName& o) const = default;
};
const char* role_name(Role r);  // "q", "k", "v"

// An interned name: the value, and its text as predicates read it.
struct PathEntry {
  PathName name;
  std::string text;
};

// The path a predicate is asked about. Names compare as text (`p.back() == "a1"`) or as values
// (`p.last().kind == PathName::Head`).
class Path {
 public:
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::string_view operator[](size_t i) const { return entries_[i]->text; }
  std::string_view back() const { return entries_.back()->text; }
  std::string_view front() const { return entries_.front()->text; }
  const PathName& name(size_t i) const { return entries_[i]->name; }
  const PathName& last() const { return entries_.back()->name; }
  bool contains(std::string_view name) const;
  bool contains(const PathName& name) const;
  std::string str() const;  // "ln_final > f1 > f1.head > ..."

  // Used by the tracer as it walks (entries must outlive the path).
  void push(const PathEntry* e) { entries_.push_back(e); }
  void pop() { entries_.pop_back(); }

 private:
  std::vector<const PathEntry*> entries_;
};

using WhichFn = std::function<int(const Path&)>;
using BranchFn = std::function<Split(const Path&)>;

}  // namespace pathpatch
