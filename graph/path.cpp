#include "graph/path.hpp"

namespace pathpatch {

const char* split_name(Split s) {
  switch (s) {
    case Split::None: return "None";
    case Split::Edges: return "Edges";
    case Split::Positions: return "Positions";
  }
  return "?";
}

bool Path::contains(std::string_view name) const {
  for (const std::string* n : names_)
    if (*n == name) return true;
  return false;
}

std::string Path::str() const {
  std::string s;
  for (size_t i = 0; i < names_.size(); ++i) s += (i ? " > " : "") + *names_[i];
  return s;
}

}  // namespace pathpatch
