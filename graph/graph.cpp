#include "graph/graph.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include "graph/error.hpp"

namespace pathpatch {

int Activation::pos_axis() const {
  auto p = axes.find('T');
  return p == std::string::npos ? -1 : static_cast<int>(p);
}

int Activation::head_axis() const {
  auto p = axes.find('H');
  return p == std::string::npos ? -1 : static_cast<int>(p);
}

Graph::Graph(const Skeleton& s) : skeleton_(s) {
  NodeId prev = add_node(PathName::emb(), {});
  for (int L = 0; L < s.n_layers; ++L) {
    Layer l;
    const NodeId block_input = prev;
    l.attn = add_node(PathName::sublayer(Block::Attn, L), {block_input});
    l.attn_sum = add_node(PathName::residual(Block::Attn, L), {block_input, l.attn});
    prev = l.attn_sum;
    if (s.has_mlp) {
      l.mlp = add_node(PathName::sublayer(Block::Mlp, L), {s.parallel ? block_input : l.attn_sum});
      l.mlp_sum = add_node(PathName::residual(Block::Mlp, L), {l.attn_sum, l.mlp});
      prev = l.mlp_sum;
    }
    layers_.push_back(l);
  }
  add_node(PathName::ln_final(), {prev});
}

NodeId Graph::add_node(PathName name, std::vector<NodeId> inputs) {
  NodeId id = static_cast<NodeId>(nodes_.size());
  nodes_.push_back(Node{PathEntry{name, name.str()}, std::move(inputs)});
  return id;
}

ActId Graph::add_activation(Activation a) {
  PP_CHECK(!act_index_.count(a.name), "duplicate activation " + a.name);
  ActId id = static_cast<ActId>(acts_.size());
  act_index_[a.name] = id;
  acts_.push_back(std::move(a));
  return id;
}

NodeId Graph::node_of(const PathName& n) const {
  if (n.kind == PathName::Emb) return embedding();
  if (n.kind == PathName::Final) return output();
  if ((n.kind != PathName::Residual && n.kind != PathName::Sublayer) || n.layer < 0 || n.layer >= n_layers()) return -1;
  const Layer& l = layers_[n.layer];
  const bool sum = n.kind == PathName::Residual;
  return n.block == Block::Attn ? (sum ? l.attn_sum : l.attn) : (sum ? l.mlp_sum : l.mlp);
}

int Graph::lookup_node(std::string_view name) const {
  auto parsed = PathName::parse(name);
  return parsed ? node_of(*parsed) : -1;
}

int Graph::lookup_activation(std::string_view name) const {
  auto it = act_index_.find(std::string(name));
  return it == act_index_.end() ? -1 : it->second;
}

NodeId Graph::find_node(std::string_view name) const {
  int id = lookup_node(name);
  if (id >= 0) return id;
  std::vector<std::string> names;
  for (const Node& n : nodes_) names.push_back(n.text());
  throw NameError("no node named '" + std::string(name) + "'" + did_you_mean(name, names));
}

ActId Graph::find_activation(std::string_view name) const {
  int id = lookup_activation(name);
  if (id < 0) id = lookup_activation(expand_activation_name(name));
  if (id >= 0) return id;
  std::vector<std::string> names;
  for (const Activation& a : acts_) names.push_back(a.name);
  throw NameError("no activation named '" + std::string(name) + "'" + did_you_mean(name, names));
}

std::vector<ActId> Graph::activations_of(NodeId node, StepKind stage) const {
  std::vector<ActId> out;
  for (ActId i = 0; i < static_cast<ActId>(acts_.size()); ++i)
    if (acts_[i].node == node && acts_[i].stage == stage) out.push_back(i);
  return out;
}

PathAlphabet::PathAlphabet(const Graph& g, int64_t seq) : graph_(&g), seq_(seq), heads_(g.n_heads()) {
  // Sized once: a sweep builds an alphabet per experiment, and growing this vector step by step
  // was most of that cost at long sequences.
  const int64_t sublayers = g.n_layers() * (g.has_mlp() ? 2 : 1);
  entries_.reserve(static_cast<size_t>(g.nodes().size() + (sublayers + 1) * seq + int64_t{g.n_layers()} * heads_ * 4));
  for (const Node& n : g.nodes()) entries_.push_back(n.entry);
  head_base_.assign(g.n_layers(), -1);
  pos_base_.assign(g.nodes().size(), -1);
  for (NodeId id = 0; id < static_cast<NodeId>(g.nodes().size()); ++id) {
    const Node& n = g.node(id);
    if (!n.is(PathName::Sublayer)) continue;
    const Block b = n.name().block;
    pos_base_[id] = static_cast<int>(entries_.size());
    for (int64_t p = 0; p < seq; ++p) {
      PathName name = PathName::position(b, n.layer(), static_cast<int>(p));
      entries_.push_back(PathEntry{name, name.str()});
    }
    if (b != Block::Attn) continue;
    head_base_[n.layer()] = static_cast<int>(entries_.size());
    for (int h = 0; h < g.n_heads(); ++h) {
      PathName head = PathName::head_of(n.layer(), h);
      entries_.push_back(PathEntry{head, head.str()});
      for (Role r : {Role::Q, Role::K, Role::V}) {
        PathName input = PathName::head_input(n.layer(), h, r);
        entries_.push_back(PathEntry{input, input.str()});
      }
    }
  }
  final_base_ = static_cast<int>(entries_.size());
  for (int64_t p = 0; p < seq; ++p) {
    PathName name = PathName::final_position(static_cast<int>(p));
    entries_.push_back(PathEntry{name, name.str()});
  }
  listed_ = static_cast<int>(entries_.size());
  const int64_t all = listed_ + int64_t{g.n_layers()} * heads_ * 3 * seq;
  if (all > std::numeric_limits<int>::max())
    throw InputError("a sequence of " + std::to_string(seq) + " positions gives this model more path names (" +
                     std::to_string(all) + ") than the path rules can number");
  size_ = static_cast<int>(all);
}

PathName PathAlphabet::name(int symbol) const {
  PP_CHECK(symbol >= 0 && symbol < size_, "a path symbol out of range");
  if (symbol < listed_) return entries_[symbol].name;
  int64_t i = symbol - listed_;
  const int pos = static_cast<int>(i % seq_);
  i /= seq_;
  const Role role = static_cast<Role>(i % 3);
  i /= 3;
  return PathName::head_input_position(static_cast<int>(i / heads_), static_cast<int>(i % heads_), role, pos);
}

int PathAlphabet::find(const PathName& n) const {
  const Graph& g = *graph_;
  const bool head_ok = n.layer >= 0 && n.layer < g.n_layers() && n.head >= 0 && n.head < heads_;
  const bool pos_ok = n.pos >= 0 && n.pos < seq_;
  switch (n.kind) {
    case PathName::Head: return head_ok ? head(n.layer, n.head) : -1;
    case PathName::HeadInput: return head_ok ? head_input(n.layer, n.head, n.role) : -1;
    case PathName::HeadInputPosition: return head_ok && pos_ok ? head_input_position(n.layer, n.head, n.role, n.pos) : -1;
    case PathName::FinalPosition: return pos_ok ? final_position(n.pos) : -1;
    case PathName::Position: {
      const NodeId sub = pos_ok ? g.node_of(PathName::sublayer(n.block, n.layer)) : -1;
      return sub < 0 ? -1 : position(sub, n.pos);
    }
    default: return g.node_of(n);
  }
}

std::string expand_activation_name(std::string_view name) {
  // Split "<short><layer>" (or "<short>.<layer>") into its parts.
  size_t end = name.size();
  while (end > 0 && std::isdigit(static_cast<unsigned char>(name[end - 1]))) --end;
  if (end == name.size() || end == 0) return std::string(name);
  std::string stem(name.substr(0, end));
  std::string layer(name.substr(end));
  if (!stem.empty() && stem.back() == '.') stem.pop_back();
  static const std::pair<const char*, const char*> kForms[] = {
      {"resid_pre", "hook_resid_pre"},      {"resid_mid", "hook_resid_mid"},
      {"resid_post", "hook_resid_post"},    {"attn_out", "hook_attn_out"},
      {"mlp_out", "hook_mlp_out"},          {"q", "attn.hook_q"},
      {"k", "attn.hook_k"},                 {"v", "attn.hook_v"},
      {"z", "attn.hook_z"},                 {"rot_q", "attn.hook_rot_q"},
      {"rot_k", "attn.hook_rot_k"},         {"attn_scores", "attn.hook_attn_scores"},
      {"scores", "attn.hook_attn_scores"},  {"pattern", "attn.hook_pattern"},
      {"result", "attn.hook_result"},       {"pre", "mlp.hook_pre"},
      {"pre_linear", "mlp.hook_pre_linear"}, {"post", "mlp.hook_post"},
      {"ln1", "ln1.hook_normalized"},       {"ln2", "ln2.hook_normalized"},
      {"ln1_post", "ln1_post.hook_normalized"}, {"ln2_post", "ln2_post.hook_normalized"},
  };
  for (const auto& [short_name, suffix] : kForms)
    if (stem == short_name) return "blocks." + layer + "." + suffix;
  return std::string(name);
}

namespace {
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}
}  // namespace

std::vector<std::string> closest_names(std::string_view name, const std::vector<std::string>& candidates,
                                       size_t count) {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& c : candidates) scored.emplace_back(edit_distance(name, c), c);
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < count; ++i) out.push_back(scored[i].second);
  return out;
}

std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates) {
  auto close = closest_names(name, candidates);
  if (close.empty()) return "";
  std::string s = "; closest valid names: ";
  for (size_t i = 0; i < close.size(); ++i) s += (i ? ", " : "") + close[i];
  return s;
}

}  // namespace pathpatch
