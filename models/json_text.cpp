#include "models/json_text.hpp"

#include <utility>
#include <vector>

namespace pathpatch::detail {

std::string json_text(const nlohmann::json& v) {
  std::vector<std::pair<const nlohmann::json*, int>> todo{{&v, 0}};
  while (!todo.empty()) {
    auto [j, depth] = todo.back();
    todo.pop_back();
    if (!j->is_structured()) continue;
    if (depth >= 16) return std::string("a deeply nested ") + v.type_name();
    for (const auto& child : *j) todo.emplace_back(&child, depth + 1);
  }
  return v.dump();
}

}  // namespace pathpatch::detail
