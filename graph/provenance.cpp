#include "graph/provenance.hpp"

#include <unordered_set>

#include "graph/error.hpp"

namespace pathpatch {

int step_rank(const ExprTable& t, ExprId e) {
  constexpr int kPerNode = 8;
  const Expr& x = t.get(e);
  if (x.kind == StepKind::Patch) return step_rank(t, x.args[0]) + 1;
  return x.node * kPerNode + traits(x.kind).order;
}

size_t ExprTable::Hash::operator()(const Expr& e) const {
  uint64_t h = hash_combine(static_cast<uint64_t>(e.kind), static_cast<uint64_t>(e.node));
  h = hash_combine(h, e.interventions);
  h = hash_combine(h, e.input);
  for (ExprId a : e.args) h = hash_combine(h, a);
  return static_cast<size_t>(h);
}

ExprTable::ExprTable() {
  exprs_.push_back(Expr{StepKind::Embed, -1, 0, 0, {}});  // id 0: "no expression"
  lists_.emplace_back();                                 // list 0: no interventions
}

ExprId ExprTable::intern(Expr e) {
  auto it = index_.find(e);
  if (it != index_.end()) return it->second;
  for (ExprId a : e.args) PP_CHECK(a > 0 && a < exprs_.size(), "expression argument out of range");
  ExprId id = static_cast<ExprId>(exprs_.size());
  exprs_.push_back(e);
  index_.emplace(std::move(e), id);
  return id;
}

std::vector<ExprId> ExprTable::reachable(ExprId root) const {
  std::vector<ExprId> order;
  std::unordered_set<ExprId> seen;
  std::vector<std::pair<ExprId, bool>> stack{{root, false}};
  while (!stack.empty()) {
    auto [e, expanded] = stack.back();
    stack.pop_back();
    if (expanded) {
      order.push_back(e);
      continue;
    }
    if (!seen.insert(e).second) continue;
    stack.push_back({e, true});
    for (ExprId a : get(e).args) stack.push_back({a, false});
  }
  return order;
}

uint32_t ExprTable::intern_list(std::vector<BoundIntervention> list) {
  if (list.empty()) return 0;
  uint64_t key = 0x6a09e667f3bcc909ull;
  for (const auto& iv : list) key = hash_combine(key, iv.key());
  auto same = [&](const std::vector<BoundIntervention>& other) {
    if (other.size() != list.size()) return false;
    for (size_t i = 0; i < list.size(); ++i)
      if (!list[i].same_effect(other[i])) return false;
    return true;
  };
  for (auto [it, end] = list_index_.equal_range(key); it != end; ++it)
    if (same(lists_[it->second])) return it->second;
  uint32_t id = static_cast<uint32_t>(lists_.size());
  lists_.push_back(std::move(list));
  list_index_.emplace(key, id);
  return id;
}

uint64_t ExprTable::add_input(const Batch& b) {
  // Another batch under the same hash takes the next free key.
  for (uint64_t k = b.key();; ++k) {
    auto [it, added] = inputs_.emplace(k, b);
    if (added || it->second == b) return k;
  }
}

const Batch& ExprTable::input(uint64_t key) const {
  auto it = inputs_.find(key);
  PP_CHECK(it != inputs_.end(), "unknown input key");
  return it->second;
}

}  // namespace pathpatch
