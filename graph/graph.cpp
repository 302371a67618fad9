#include "graph/graph.hpp"

#include <algorithm>
#include <cctype>

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

NodeId Graph::add_node(std::string name, NodeKind kind, int layer, std::vector<NodeId> inputs) {
  PP_CHECK(!node_index_.count(name), "duplicate node " + name);
  NodeId id = static_cast<NodeId>(nodes_.size());
  node_index_[name] = id;
  nodes_.push_back(Node{std::move(name), kind, layer, std::move(inputs)});
  return id;
}

ActId Graph::add_activation(Activation a) {
  PP_CHECK(!act_index_.count(a.name), "duplicate activation " + a.name);
  ActId id = static_cast<ActId>(acts_.size());
  act_index_[a.name] = id;
  acts_.push_back(std::move(a));
  return id;
}

int Graph::lookup_node(std::string_view name) const {
  auto it = node_index_.find(std::string(name));
  return it == node_index_.end() ? -1 : it->second;
}

int Graph::lookup_activation(std::string_view name) const {
  auto it = act_index_.find(std::string(name));
  return it == act_index_.end() ? -1 : it->second;
}

NodeId Graph::find_node(std::string_view name) const {
  int id = lookup_node(name);
  if (id >= 0) return id;
  std::vector<std::string> names;
  for (const Node& n : nodes_) names.push_back(n.name);
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

std::vector<ActId> Graph::activations_of(NodeId node, Stage stage) const {
  std::vector<ActId> out;
  for (ActId i = 0; i < static_cast<ActId>(acts_.size()); ++i)
    if (acts_[i].node == node && acts_[i].stage == stage) out.push_back(i);
  return out;
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
